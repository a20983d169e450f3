/*
Copyright 2026 The vaultsync Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Tags vaultsync puts on every Key Vault object a VaultPushSecret writes.
const (
	// TagManagedBy marks an object written by vaultsync; its value is TagManagedByValue.
	TagManagedBy = "managed-by"
	// TagManagedByValue is the value of TagManagedBy.
	TagManagedByValue = "vaultsync"
	// TagOwner names the VaultPushSecret that owns an object, as
	// "<cluster id>/<namespace>/<name>". vaultsync writes only objects that are absent or carry
	// its own value of this tag.
	TagOwner = "vaultsync-owner"
	// TagDataHash is an HMAC-SHA256 (hex) of the pushed data under the installation's hash key;
	// a push writes a new version only when it differs. It reveals nothing about the data.
	TagDataHash = "vaultsync-data-hmac"
	// FinalizerPushCleanup holds a VaultPushSecret with deletionPolicy Delete until its Key Vault
	// objects are deleted.
	FinalizerPushCleanup = "vaultsync.io/push-cleanup"
)

// PushObjectType is the kind of Key Vault object a push item writes.
// +kubebuilder:validation:Enum=secret;certificate
type PushObjectType string

// Push object types.
const (
	// PushTypeSecret writes a Key Vault secret.
	PushTypeSecret PushObjectType = "secret"
	// PushTypeCertificate imports a Key Vault certificate (PEM: private key and chain).
	PushTypeCertificate PushObjectType = "certificate"
)

// UpdatePolicy says whether an existing Key Vault object is updated.
// +kubebuilder:validation:Enum=Replace;IfNotExists
type UpdatePolicy string

// Update policies.
const (
	// UpdateReplace writes a new version whenever the pushed data differs from the vault's.
	UpdateReplace UpdatePolicy = "Replace"
	// UpdateIfNotExists writes an object only when it does not exist yet, and never again.
	UpdateIfNotExists UpdatePolicy = "IfNotExists"
)

// DeletionPolicy says what happens to the Key Vault objects when the VaultPushSecret is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

// Deletion policies.
const (
	// DeletionRetain leaves the objects in the vault.
	DeletionRetain DeletionPolicy = "Retain"
	// DeletionDelete deletes (soft-deletes, never purges) the objects this VaultPushSecret owns.
	DeletionDelete DeletionPolicy = "Delete"
)

// DataFromMode says how dataFrom turns a Secret into one Key Vault object.
// +kubebuilder:validation:Enum=WholeSecret
type DataFromMode string

// DataFrom modes.
const (
	// DataFromWhole pushes all keys of the Secret as one JSON secret: {"key": "value", ...}.
	DataFromWhole DataFromMode = "WholeSecret"
)

// VaultPushSecretSpec is what to push from a Secret of this namespace into Key Vault.
// +kubebuilder:validation:XValidation:rule="has(self.vault) || has(self.connectionRef)",message="spec.vault is required unless spec.connectionRef names a VaultConnection or ClusterVaultConnection: the Key Vault to write to",fieldPath=".vault",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.vault) || !has(self.connectionRef)",message="spec.vault and spec.connectionRef are mutually exclusive: set exactly one",fieldPath=".connectionRef",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="(has(self.data) && size(self.data) > 0) || has(self.dataFrom)",message="spec.data or spec.dataFrom must say what to push",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.dataFrom) || !has(self.data) || !self.data.exists(i, i.remote.name.lowerAscii() == self.dataFrom.remote.name.lowerAscii())",message="spec.dataFrom.remote.name is also written by an item of spec.data: each Key Vault object is written by one item",fieldPath=".dataFrom.remote.name"
type VaultPushSecretSpec struct {
	// secretRef names the Secret to push, in the namespace of this VaultPushSecret.
	// +required
	SecretRef PushSecretRef `json:"secretRef"`

	// vault is the Key Vault to write to and how to authenticate to it, exactly as for a
	// VaultSecret. Exactly one of vault and connectionRef must be set.
	// +optional
	Vault *VaultRef `json:"vault,omitempty"`

	// connectionRef uses a shared connection instead of an inline vault: a VaultConnection of
	// this namespace, or a ClusterVaultConnection that allows this namespace.
	// Exactly one of vault and connectionRef must be set.
	// +optional
	ConnectionRef *ConnectionRef `json:"connectionRef,omitempty"`

	// data lists keys of the Secret and the Key Vault object each is written to.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, b.remote.name.lowerAscii() == a.remote.name.lowerAscii()))",message="spec.data: every remote.name must be unique (Key Vault names are case-insensitive)"
	// +optional
	Data []PushDataItem `json:"data,omitempty"`

	// dataFrom pushes the whole Secret as one JSON secret.
	// +optional
	DataFrom *PushDataFrom `json:"dataFrom,omitempty"`

	// updatePolicy is Replace (the default: a new version whenever the Secret's data differs
	// from the vault's) or IfNotExists (an object is written once, when it does not exist, and
	// never updated).
	// +kubebuilder:default=Replace
	// +optional
	UpdatePolicy UpdatePolicy `json:"updatePolicy,omitempty"`

	// deletionPolicy is Retain (the default: the objects stay in the vault when this
	// VaultPushSecret is deleted) or Delete (the objects this VaultPushSecret owns are deleted;
	// Key Vault keeps them soft-deleted for its retention period, and vaultsync never purges).
	// +kubebuilder:default=Retain
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// refreshInterval is how often the vault is checked, so that an object changed or deleted
	// by someone else is written again (a change of the Secret is pushed at once, whatever the
	// interval). A duration such as 30m or 1h, at least 1m, or 0 to check only when the Secret
	// or this VaultPushSecret changes. Defaults to 1h.
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+)$')",message="spec.refreshInterval must be a duration such as 30m, 1h or 1h30m (units h, m, s), or 0"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+)$') || duration(self) == duration('0s') || duration(self) >= duration('1m')",message="spec.refreshInterval must be 0 (check only on change) or at least 1m"
	// +optional
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`
}

// PushSecretRef names the Secret a VaultPushSecret reads.
type PushSecretRef struct {
	// name is the Secret's name, in the namespace of the VaultPushSecret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.secretRef.name must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.'"
	Name string `json:"name"`
}

// PushDataItem writes one key of the Secret (or, for a certificate, the whole TLS Secret) to
// one Key Vault object.
// +kubebuilder:validation:XValidation:rule="(has(self.remote.type) && self.remote.type == 'certificate') || (has(self.secretKey) && size(self.secretKey) > 0)",message="secretKey is required for a secret item",fieldPath=".secretKey",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!(has(self.remote.type) && self.remote.type == 'certificate') || !has(self.secretKey) || self.secretKey == 'tls.crt'",message="a certificate item reads tls.crt, tls.key and ca.crt of a kubernetes.io/tls Secret: leave secretKey empty (or tls.crt)",fieldPath=".secretKey",reason=FieldValueForbidden
type PushDataItem struct {
	// secretKey is the key of the Secret whose value is pushed: letters, digits, '-', '_' and
	// '.'. Required for a secret; a certificate reads tls.crt, tls.key and (when present)
	// ca.crt and leaves it empty.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$') && self != '.' && !self.startsWith('..')",message="secretKey must be a valid Secret key: letters, digits, '-', '_' or '.', and not '.' or starting with '..'"
	// +optional
	SecretKey string `json:"secretKey,omitempty"`

	// remote is the Key Vault object to write.
	// +required
	Remote PushRemoteRef `json:"remote"`
}

// PushRemoteRef names the Key Vault object a push item writes.
// +kubebuilder:validation:XValidation:rule="!has(self.contentType) || !has(self.type) || self.type == 'secret'",message="contentType is only allowed for type secret: a certificate is imported as PEM",fieldPath=".contentType",reason=FieldValueForbidden
type PushRemoteRef struct {
	// name is the name of the object in Key Vault: 1 to 127 letters, digits and '-'.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=127
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-zA-Z-]+$')",message="name must be a Key Vault object name: 1 to 127 letters, digits and '-'"
	Name string `json:"name"`

	// type is secret (the default) or certificate (a kubernetes.io/tls Secret imported as a Key
	// Vault certificate: PEM private key, tls.crt's chain in its order, ca.crt appended).
	// +kubebuilder:default=secret
	// +optional
	Type PushObjectType `json:"type,omitempty"`

	// contentType is the secret's content type, a hint for its readers such as text/plain or
	// application/json. Only for type secret.
	// +kubebuilder:validation:MaxLength=255
	// +optional
	ContentType string `json:"contentType,omitempty"`
}

// PushDataFrom pushes the whole Secret.
type PushDataFrom struct {
	// mode is WholeSecret: every key of the Secret, as one JSON object {"key": "value"} (values
	// are the Secret's data as UTF-8 text; a value that is not valid UTF-8 is refused).
	// +required
	Mode DataFromMode `json:"mode"`

	// remote is the Key Vault secret to write; its content type is application/json.
	// +required
	Remote PushJSONRemote `json:"remote"`
}

// PushJSONRemote names the Key Vault secret that receives a whole Secret.
type PushJSONRemote struct {
	// name is the name of the secret in Key Vault: 1 to 127 letters, digits and '-'.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=127
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-zA-Z-]+$')",message="name must be a Key Vault object name: 1 to 127 letters, digits and '-'"
	Name string `json:"name"`
}

// PushedObject is one Key Vault object a VaultPushSecret wrote or checked. It never holds data.
type PushedObject struct {
	// name is the object's name in Key Vault.
	Name string `json:"name"`

	// type is secret or certificate.
	Type PushObjectType `json:"type"`

	// version is the object's version that holds the pushed data (for IfNotExists, the version
	// that was found).
	// +optional
	Version string `json:"version,omitempty"`

	// dataHash is the HMAC of the data written to this version (the value of the
	// vaultsync-data-hmac tag).
	// +optional
	DataHash string `json:"dataHash,omitempty"`

	// lastWriteTime is when vaultsync last wrote a version of this object.
	// +optional
	LastWriteTime *metav1.Time `json:"lastWriteTime,omitempty"`
}

// VaultPushSecretStatus is the observed state of a VaultPushSecret. It never holds secret values.
type VaultPushSecretStatus struct {
	// conditions describe the push; Ready says whether every object in the vault holds the
	// Secret's current data.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// observedGeneration is the generation of the spec that was last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// lastPushTime is when the vault was last written or confirmed up to date.
	// +optional
	LastPushTime *metav1.Time `json:"lastPushTime,omitempty"`

	// pushedVault is the host name of the vault the objects were pushed to.
	// +optional
	PushedVault string `json:"pushedVault,omitempty"`

	// owner is the value of the vaultsync-owner tag this VaultPushSecret writes.
	// +optional
	Owner string `json:"owner,omitempty"`

	// objects lists the Key Vault objects this VaultPushSecret wrote, with their versions.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=65
	// +optional
	Objects []PushedObject `json:"objects,omitempty"`
}

// VaultPushSecret pushes a Secret of its namespace into Azure Key Vault, as secrets or as a
// certificate.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vps,categories=vaultsync
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 127",message="a VaultPushSecret's name must be at most 127 characters: it is part of the vaultsync-owner tag, whose value Key Vault limits to 256"
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.spec.secretRef.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Last Push",type=date,JSONPath=`.status.lastPushTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VaultPushSecret struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what to push and where.
	// +required
	Spec VaultPushSecretSpec `json:"spec"`

	// status is the observed state of the push.
	// +optional
	Status VaultPushSecretStatus `json:"status,omitempty"`
}

// VaultPushSecretList is a list of VaultPushSecrets.
// +kubebuilder:object:root=true
type VaultPushSecretList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the VaultPushSecrets.
	Items []VaultPushSecret `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VaultPushSecret{}, &VaultPushSecretList{})
}

// RefreshIntervalOrDefault is spec.refreshInterval, or DefaultRefreshInterval when unset.
func (p *VaultPushSecret) RefreshIntervalOrDefault() time.Duration {
	if p.Spec.RefreshInterval == nil {
		return DefaultRefreshInterval
	}
	return p.Spec.RefreshInterval.Duration
}

// UpdatePolicyOrDefault is spec.updatePolicy, UpdateReplace when unset.
func (p *VaultPushSecret) UpdatePolicyOrDefault() UpdatePolicy {
	if p.Spec.UpdatePolicy == "" {
		return UpdateReplace
	}
	return p.Spec.UpdatePolicy
}

// DeletionPolicyOrDefault is spec.deletionPolicy, DeletionRetain when unset.
func (p *VaultPushSecret) DeletionPolicyOrDefault() DeletionPolicy {
	if p.Spec.DeletionPolicy == "" {
		return DeletionRetain
	}
	return p.Spec.DeletionPolicy
}

// TypeOrDefault is the object type, PushTypeSecret when unset.
func (r *PushRemoteRef) TypeOrDefault() PushObjectType {
	if r.Type == "" {
		return PushTypeSecret
	}
	return r.Type
}
