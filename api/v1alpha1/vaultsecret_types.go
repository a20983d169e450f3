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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Well-known names used on VaultSecrets and on the Secrets they manage.
const (
	// ConditionReady is the condition type that tells whether the target Secret holds the
	// data the spec asks for.
	ConditionReady = "Ready"

	// AnnotationForceSync, set on a VaultSecret to any new value (a timestamp is customary),
	// makes the operator sync it again now.
	AnnotationForceSync = "vaultsync.io/force-sync"

	// LabelManaged marks a Secret written by the operator; its value is LabelManagedValue.
	// The operator caches only Secrets with this label.
	LabelManaged = "vaultsync.io/managed"

	// LabelManagedValue is the value of LabelManaged.
	LabelManagedValue = "true"

	// AnnotationOwner on a Secret names the VaultSecret that writes it, as
	// "<namespace>/<vaultsecret name>".
	AnnotationOwner = "vaultsync.io/owner"

	// DefaultRefreshInterval is the refresh interval used when spec.refreshInterval is not set.
	DefaultRefreshInterval = time.Hour
)

// ObjectType is the kind of Key Vault object an item reads.
// +kubebuilder:validation:Enum=secret;certificate;key
type ObjectType string

// Key Vault object types.
const (
	// ObjectTypeSecret reads a Key Vault secret.
	ObjectTypeSecret ObjectType = "secret"
	// ObjectTypeCertificate reads a Key Vault certificate (with its private key, when it is exportable).
	ObjectTypeCertificate ObjectType = "certificate"
	// ObjectTypeKey reads the public part of a Key Vault key.
	ObjectTypeKey ObjectType = "key"
)

// DecodeMode says how a secret value is decoded before it is written.
// +kubebuilder:validation:Enum=None;Base64
type DecodeMode string

// Decode modes.
const (
	// DecodeNone writes the value as it is stored in Key Vault.
	DecodeNone DecodeMode = "None"
	// DecodeBase64 base64-decodes the value (standard or URL alphabet, padding optional).
	DecodeBase64 DecodeMode = "Base64"
)

// Format is the output format of a certificate or key item.
// +kubebuilder:validation:Enum=TLS;PEM;PFX;CertOnly;JWK
type Format string

// Output formats.
const (
	// FormatTLS (certificates, the default) writes tls.crt (leaf then intermediates), tls.key and ca.crt.
	FormatTLS Format = "TLS"
	// FormatPEM writes one PEM bundle under the item's key: for a certificate the private key
	// followed by the chain; for a key (the default) the public key.
	FormatPEM Format = "PEM"
	// FormatPFX (certificates) writes the PKCS#12 archive under the item's key.
	FormatPFX Format = "PFX"
	// FormatCertOnly (certificates) writes the certificate chain without the private key under the item's key.
	FormatCertOnly Format = "CertOnly"
	// FormatJWK (keys) writes the public key as a JSON Web Key under the item's key.
	FormatJWK Format = "JWK"
)

// CreationPolicy says who owns the target Secret.
// +kubebuilder:validation:Enum=Owner;Orphan;Merge
type CreationPolicy string

// Creation policies.
const (
	// CreationPolicyOwner creates the Secret and owns it: it is deleted with the VaultSecret.
	CreationPolicyOwner CreationPolicy = "Owner"
	// CreationPolicyOrphan creates the Secret but leaves it in place when the VaultSecret is deleted.
	CreationPolicyOrphan CreationPolicy = "Orphan"
	// CreationPolicyMerge adds the keys to a Secret that already exists and is owned by someone else.
	CreationPolicyMerge CreationPolicy = "Merge"
)

// VaultSecretSpec is the desired state of a VaultSecret.
// +kubebuilder:validation:XValidation:rule="has(self.vault) || has(self.connectionRef)",message="spec.vault is required unless spec.connectionRef names a VaultConnection or ClusterVaultConnection: the Key Vault to read from",fieldPath=".vault",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.connectionRef) || !has(self.vault)",message="spec.vault and spec.connectionRef are mutually exclusive: set exactly one",fieldPath=".connectionRef",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="self.?data.orValue([]).size() > 0 || self.?dataFrom.orValue([]).size() > 0",message="spec.data or spec.dataFrom must list at least one Key Vault object to sync",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.?target.?type.orValue('Opaque') != 'kubernetes.io/tls' || (has(self.data) && self.data.exists(i, i.remote.?type.orValue('secret') == 'certificate' && i.remote.?format.orValue('TLS') == 'TLS')) || ['tls.crt', 'tls.key'].all(k, (has(self.data) && self.data.exists(i, i.?key.orValue('') == k)) || (has(self.target.template) && has(self.target.template.data) && k in self.target.template.data))",message="spec.target.type kubernetes.io/tls needs a certificate item in TLS format in spec.data, or spec.data or spec.target.template.data keys producing both tls.crt and tls.key",fieldPath=".target.type"
type VaultSecretSpec struct {
	// vault is the Key Vault to read from and how to authenticate to it.
	// Exactly one of vault and connectionRef must be set.
	// +optional
	Vault *VaultRef `json:"vault,omitempty"`

	// connectionRef uses a shared connection instead of an inline vault: a VaultConnection of
	// this namespace, or a ClusterVaultConnection that allows this namespace. It has no
	// namespace field: a VaultSecret can never use another namespace's VaultConnection.
	// Exactly one of vault and connectionRef must be set.
	// +optional
	ConnectionRef *ConnectionRef `json:"connectionRef,omitempty"`

	// refreshInterval is how often the Key Vault objects are read again, as a duration such as
	// 30m, 1h or 1h30m (units h, m, s). It must be at least 1m, or 0 to sync once and then only
	// when the VaultSecret changes or is annotated with vaultsync.io/force-sync.
	// Defaults to 1h.
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+)$')",message="spec.refreshInterval must be a duration such as 30m, 1h or 1h30m (units h, m, s), or 0"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+)$') || duration(self) == duration('0s') || duration(self) >= duration('1m')",message="spec.refreshInterval must be 0 (sync once, then only on change) or at least 1m"
	// +optional
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`

	// target describes the Secret that is written: its name, type, ownership, labels,
	// annotations and templates.
	// +kubebuilder:default={}
	// +optional
	Target SecretTarget `json:"target,omitempty"`

	// data lists Key Vault objects to write under chosen keys of the Secret. Keys must be
	// unique across data; a certificate item in TLS format counts as writing tls.crt, tls.key
	// and ca.crt. At most 256 items.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:XValidation:rule="[self.map(i, i.?key)].all(keys, keys.all(k, !k.hasValue() || keys.exists_one(x, x == k)))",message="spec.data: every key must be unique"
	// +kubebuilder:validation:XValidation:rule="self.filter(i, i.remote.?type.orValue('secret') == 'certificate' && i.remote.?format.orValue('TLS') == 'TLS').size() <= 1",message="spec.data: at most one certificate item may use format TLS, because each writes tls.crt, tls.key and ca.crt"
	// +kubebuilder:validation:XValidation:rule="!self.exists(i, i.?key.orValue('') in ['tls.crt', 'tls.key', 'ca.crt']) || !self.exists(i, i.remote.?type.orValue('secret') == 'certificate' && i.remote.?format.orValue('TLS') == 'TLS')",message="spec.data: keys tls.crt, tls.key and ca.crt are written by the certificate item in TLS format and cannot be used by another item"
	// +optional
	Data []DataItem `json:"data,omitempty"`

	// dataFrom lists Key Vault secrets whose contents are expanded into many keys: a JSON
	// secret (each top-level field becomes a key) or a search by name and tags (each match
	// becomes a key). Keys written by data win over keys from dataFrom. At most 16 items.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +optional
	DataFrom []DataFromSource `json:"dataFrom,omitempty"`

	// refreshPolicy says when Key Vault is read again. Periodic (the default): every
	// refreshInterval, and at once on a spec change, a Key Vault event or a force-sync.
	// OnChange: only on a spec change, a Key Vault event or a force-sync. CreatedOnce: the
	// Secret is written once and never updated while it exists.
	// +kubebuilder:validation:Enum=Periodic;OnChange;CreatedOnce
	// +kubebuilder:default=Periodic
	// +optional
	RefreshPolicy RefreshPolicy `json:"refreshPolicy,omitempty"`

	// rolloutRestartTargets are workloads of this namespace restarted (like kubectl rollout
	// restart) when the synced data changes: once per change, never on the first sync, an
	// operator restart, a metadata-only change or a failed sync. A missing workload is a
	// Warning event, not a failure. At most 16.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +optional
	RolloutRestartTargets []RolloutTarget `json:"rolloutRestartTargets,omitempty"`
}

// RefreshPolicy says when a VaultSecret reads Key Vault again.
type RefreshPolicy string

// Refresh policies.
const (
	RefreshPeriodic    RefreshPolicy = "Periodic"
	RefreshOnChange    RefreshPolicy = "OnChange"
	RefreshCreatedOnce RefreshPolicy = "CreatedOnce"
)

// RolloutTarget names a workload to restart when the Secret's data changes.
type RolloutTarget struct {
	// kind is Deployment, StatefulSet or DaemonSet.
	// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet
	// +required
	Kind string `json:"kind"`

	// name is the workload's name in this namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// SourceDeletedPolicy says what happens to the Secret when a Key Vault object it was synced
// from is deleted.
type SourceDeletedPolicy string

// Source-deleted policies.
const (
	SourceDeletedRetain SourceDeletedPolicy = "Retain"
	SourceDeletedDelete SourceDeletedPolicy = "Delete"
)

// Condition types besides Ready.
const (
	// ConditionExpiringSoon is True when a synced certificate or secret expires within the
	// operator's warning threshold.
	ConditionExpiringSoon = "ExpiringSoon"
	// ConditionSourceDeleted is True when a Key Vault object this VaultSecret synced was deleted,
	// and Unknown while a deletion is being confirmed by a second read (onSourceDeleted: Delete).
	ConditionSourceDeleted = "SourceDeleted"
	// ConditionRolloutComplete is True when every rolloutRestartTarget was restarted for the
	// current data, and False while a refused or failed restart is being retried.
	ConditionRolloutComplete = "RolloutComplete"
)

// VaultRef points at a Key Vault and says how to authenticate to it.
// +kubebuilder:validation:XValidation:rule="!has(self.cloud) || self.cloud != 'Custom' || has(self.customCloud)",message="spec.vault.customCloud is required when cloud is Custom",fieldPath=".customCloud",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.customCloud) || (has(self.cloud) && self.cloud == 'Custom')",message="spec.vault.customCloud is only allowed when cloud is Custom",fieldPath=".customCloud",reason=FieldValueForbidden
type VaultRef struct {
	// url is the Key Vault URL, such as https://my-vault.vault.azure.net/. It must use https.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && self.startsWith('https://') && url(self).getHostname().size() > 0",message="spec.vault.url must be an https URL with a host, such as https://my-vault.vault.azure.net/"
	URL string `json:"url"`

	// auth is how the operator authenticates to Key Vault. Exactly one method must be set;
	// managedIdentity and operatorIdentity are only available through a ClusterVaultConnection.
	// +required
	// +kubebuilder:validation:XValidation:rule="!has(self.managedIdentity)",message="spec.vault.auth.managedIdentity is only allowed in a ClusterVaultConnection: a managed identity belongs to the node or the operator, not to a namespace",fieldPath=".managedIdentity",reason=FieldValueForbidden
	// +kubebuilder:validation:XValidation:rule="!has(self.operatorIdentity)",message="spec.vault.auth.operatorIdentity is only allowed in a ClusterVaultConnection: it is the operator's own identity, not a namespace's",fieldPath=".operatorIdentity",reason=FieldValueForbidden
	// +kubebuilder:validation:XValidation:rule="!self.?workloadIdentity.?serviceAccountNamespace.hasValue()",message="spec.vault.auth.workloadIdentity.serviceAccountNamespace is not allowed: a VaultSecret can only use ServiceAccounts of its own namespace",fieldPath=".workloadIdentity.serviceAccountNamespace",reason=FieldValueForbidden
	Auth VaultAuth `json:"auth"`

	// cloud is the Azure cloud of the vault: AzurePublic, AzureChina, AzureUSGovernment or
	// Custom (then customCloud is required). When unset, it follows from the vault URL's DNS
	// suffix (AzurePublic for anything not sovereign).
	// +optional
	Cloud CloudName `json:"cloud,omitempty"`

	// customCloud describes a private cloud or Azure Stack Hub; only with cloud Custom.
	// +optional
	CustomCloud *CustomCloud `json:"customCloud,omitempty"`
}

// SecretTarget describes the Secret that is written.
// +kubebuilder:validation:XValidation:rule="self.?creationPolicy.orValue('Owner') != 'Merge' || self.?type.orValue('Opaque') == 'Opaque'",message="spec.target.type must be Opaque (the default) when creationPolicy is Merge: a merged Secret keeps the type it already has",fieldPath=".type"
type SecretTarget struct {
	// name is the name of the Secret, in the namespace of this VaultSecret. Defaults to the
	// name of the VaultSecret.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.target.name must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
	// +optional
	Name string `json:"name,omitempty"`

	// type is the type of the Secret: Opaque (the default), kubernetes.io/tls,
	// kubernetes.io/dockerconfigjson, kubernetes.io/basic-auth or kubernetes.io/ssh-auth.
	// kubernetes.io/tls needs data producing tls.crt and tls.key. With creationPolicy Merge
	// the type must stay Opaque: the existing Secret keeps its own type.
	// +kubebuilder:validation:Enum=Opaque;kubernetes.io/tls;kubernetes.io/dockerconfigjson;kubernetes.io/basic-auth;kubernetes.io/ssh-auth
	// +kubebuilder:default=Opaque
	// +optional
	Type corev1.SecretType `json:"type,omitempty"`

	// creationPolicy says who owns the Secret. Owner (the default): the operator creates the
	// Secret and it is deleted with this VaultSecret. Orphan: the operator creates the Secret
	// and leaves it in place when this VaultSecret is deleted. Merge: the Secret must already
	// exist and allow it with the annotation vaultsync.io/merge-allowed (this VaultSecret's
	// name in a comma-separated list, or "*"), set by whoever may write that Secret; the
	// operator only adds and updates its own keys and never deletes the Secret.
	// +kubebuilder:default=Owner
	// +optional
	CreationPolicy CreationPolicy `json:"creationPolicy,omitempty"`

	// labels are added to the Secret. The operator also sets vaultsync.io/managed=true.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="!('vaultsync.io/managed' in self)",message="spec.target.labels must not set vaultsync.io/managed: the operator sets it"
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are added to the Secret. The operator also sets vaultsync.io/owner.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="!('vaultsync.io/owner' in self)",message="spec.target.annotations must not set vaultsync.io/owner: the operator sets it"
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// template computes Secret keys from the synced values.
	// +optional
	Template *SecretTemplate `json:"template,omitempty"`

	// onSourceDeleted says what happens when a Key Vault object that was synced is deleted (or
	// purged): Retain (the default) keeps the Secret with its last data; Delete deletes a
	// Secret this VaultSecret created (with Merge: removes only its keys). Either way the
	// SourceDeleted condition says so.
	// +kubebuilder:validation:Enum=Retain;Delete
	// +kubebuilder:default=Retain
	// +optional
	OnSourceDeleted SourceDeletedPolicy `json:"onSourceDeleted,omitempty"`
}

// SecretTemplate computes Secret keys with Go templates.
type SecretTemplate struct {
	// data maps a Secret key to a Go text/template whose output becomes that key's value.
	// The synced values are available by key, as {{ .username }} or
	// {{ index . "db-password" }}. When a template key is also written by data or dataFrom,
	// the template wins. Keys consist of letters, digits, '-', '_' and '.'. At most 64 keys.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 253 && k.matches('^[-._a-zA-Z0-9]+$') && k != '.' && !k.startsWith('..'))",message="spec.target.template.data keys must be valid Secret keys: at most 253 letters, digits, '-', '_' or '.', and not '.' or starting with '..'"
	// +optional
	Data map[string]string `json:"data,omitempty"`
}

// DataItem writes one Key Vault object into the Secret.
// +kubebuilder:validation:XValidation:rule="self.?key.orValue('') != '' || (self.remote.?type.orValue('secret') == 'certificate' && self.remote.?format.orValue('TLS') == 'TLS')",message="key is required: the Secret key to write (only a certificate with format TLS goes without a key)",fieldPath=".key",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.remote.?type.orValue('secret') != 'certificate' || self.remote.?format.orValue('TLS') != 'TLS' || self.?key.orValue('') == ''",message="key must be empty for a certificate with format TLS: it writes tls.crt, tls.key and ca.crt",fieldPath=".key",reason=FieldValueForbidden
type DataItem struct {
	// key is the Secret key to write the value under: letters, digits, '-', '_' and '.'.
	// Required, except for a certificate with format TLS (the default format for
	// certificates), which writes tls.crt, tls.key and ca.crt and must leave key empty.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$') && self != '.' && !self.startsWith('..')",message="key must be a valid Secret key: letters, digits, '-', '_' or '.', and not '.' or starting with '..'"
	// +optional
	Key string `json:"key,omitempty"`

	// remote is the Key Vault object to read.
	// +required
	Remote RemoteRef `json:"remote"`
}

// RemoteRef names a Key Vault object and says how to turn it into Secret data.
// +kubebuilder:validation:XValidation:rule="!has(self.property) || self.?type.orValue('secret') == 'secret'",message="property is only allowed when type is secret",fieldPath=".property",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="self.?decode.orValue('None') == 'None' || self.?type.orValue('secret') == 'secret'",message="decode Base64 is only allowed when type is secret",fieldPath=".decode",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.format) || self.?type.orValue('secret') != 'secret'",message="format is only allowed when type is certificate or key",fieldPath=".format",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.format) || (self.?type.orValue('') == 'certificate' ? self.format in ['TLS', 'PEM', 'PFX', 'CertOnly'] : self.?type.orValue('') != 'key' || self.format in ['PEM', 'JWK'])",messageExpression="self.?type.orValue('') == 'certificate' ? 'format of a certificate must be TLS, PEM, PFX or CertOnly' : 'format of a key must be PEM or JWK'",message="format of a certificate must be TLS, PEM, PFX or CertOnly; format of a key must be PEM or JWK",fieldPath=".format"
type RemoteRef struct {
	// name is the name of the object in Key Vault: 1 to 127 letters, digits and '-'.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=127
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-zA-Z-]+$')",message="name must be a Key Vault object name: 1 to 127 letters, digits and '-'"
	Name string `json:"name"`

	// type is the kind of object: secret (the default), certificate or key.
	// +kubebuilder:default=secret
	// +optional
	Type ObjectType `json:"type,omitempty"`

	// version pins a version of the object: the 32-character hexadecimal version id.
	// Empty means the latest enabled version.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-fA-F]{32}$')",message="version must be a 32-character hexadecimal Key Vault version id, or empty for the latest enabled version"
	// +optional
	Version string `json:"version,omitempty"`

	// property selects a field of a secret holding a JSON object, as a dot path such as
	// db.password. Only for type secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Property string `json:"property,omitempty"`

	// decode decodes a secret value before it is written: None (the default) or Base64.
	// Base64 is only allowed for type secret.
	// +kubebuilder:default=None
	// +optional
	Decode DecodeMode `json:"decode,omitempty"`

	// format is how a certificate or key is written; not allowed for secrets.
	// Certificates: TLS (the default; writes tls.crt, tls.key and ca.crt, and the item has no
	// key), PEM (private key and chain in one PEM bundle under key), PFX (the PKCS#12 archive
	// under key) or CertOnly (the chain without the private key under key).
	// Keys: PEM (the default; the public key) or JWK (the public key as a JSON Web Key).
	// +optional
	Format Format `json:"format,omitempty"`
}

// DataFromSource expands Key Vault secrets into many keys. Exactly one of remote and find must be set.
// +kubebuilder:validation:XValidation:rule="has(self.remote) != has(self.find)",message="spec.dataFrom items must set exactly one of remote or find"
type DataFromSource struct {
	// remote reads one secret holding a JSON object; each top-level field becomes a key.
	// +optional
	Remote *DataFromRemote `json:"remote,omitempty"`

	// find reads every enabled secret whose name and tags match; each becomes a key named
	// after the secret (optionally rewritten).
	// +optional
	Find *FindSpec `json:"find,omitempty"`
}

// DataFromRemote names a secret that holds a JSON object.
type DataFromRemote struct {
	// name is the name of the secret in Key Vault: 1 to 127 letters, digits and '-'.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=127
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-zA-Z-]+$')",message="name must be a Key Vault object name: 1 to 127 letters, digits and '-'"
	Name string `json:"name"`

	// version pins a version of the secret: the 32-character hexadecimal version id.
	// Empty means the latest enabled version.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-fA-F]{32}$')",message="version must be a 32-character hexadecimal Key Vault version id, or empty for the latest enabled version"
	// +optional
	Version string `json:"version,omitempty"`
}

// FindSpec selects Key Vault secrets by name and tags. At least one of nameRegex and tags must be set.
// +kubebuilder:validation:XValidation:rule="has(self.nameRegex) || (has(self.tags) && size(self.tags) > 0)",message="spec.dataFrom find must set nameRegex, tags or both"
type FindSpec struct {
	// nameRegex selects secrets whose name matches this regular expression (RE2 syntax, as in
	// Go). An invalid expression is reported in the Ready condition.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +optional
	NameRegex string `json:"nameRegex,omitempty"`

	// tags selects secrets that carry all of these tags with these values. At most 16.
	// +kubebuilder:validation:MaxProperties=16
	// +optional
	Tags map[string]string `json:"tags,omitempty"`

	// rewrite turns each secret name into a Secret key.
	// +optional
	Rewrite *Rewrite `json:"rewrite,omitempty"`
}

// Rewrite replaces the matches of a regular expression in a secret name to form a Secret key.
type Rewrite struct {
	// regex is the regular expression to replace (RE2 syntax, as in Go).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Regex string `json:"regex"`

	// replace is the replacement; $1 or ${name} refer to capture groups. It may be empty.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Replace string `json:"replace"`
}

// VaultSecretStatus is the observed state of a VaultSecret. It never holds secret values.
type VaultSecretStatus struct {
	// conditions describe the state of the sync; Ready says whether the Secret holds the
	// data the spec asks for.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// observedGeneration is the generation of the spec that was last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// lastSyncTime is when the Secret was last written or confirmed up to date.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`

	// nextSyncTime is when the next periodic sync is due; empty when refreshInterval is 0.
	// +optional
	NextSyncTime *metav1.Time `json:"nextSyncTime,omitempty"`

	// syncedVersions maps each Secret key (or, for dataFrom, the Key Vault object name) to the
	// Key Vault version id that was written. It never holds values.
	// +optional
	SyncedVersions map[string]string `json:"syncedVersions,omitempty"`

	// dataHash is an HMAC-SHA256 of the written data under a per-installation key; it changes
	// when the data changes and reveals nothing about it.
	// +optional
	DataHash string `json:"dataHash,omitempty"`

	// syncedVault is the host name of the vault the Secret's data was last read from.
	// +optional
	SyncedVault string `json:"syncedVault,omitempty"`

	// syncedGeneration is the generation of the spec the Secret's data was last synced from.
	// +optional
	SyncedGeneration int64 `json:"syncedGeneration,omitempty"`

	// lastForceSync is the value of the vaultsync.io/force-sync annotation that was last acted
	// on; setting the annotation to any other value triggers an immediate sync.
	// +optional
	LastForceSync string `json:"lastForceSync,omitempty"`

	// connectionVersion identifies the connection (a VaultConnection or ClusterVaultConnection,
	// at its generation) and the credential Secrets (at their resource versions) the last sync
	// used. It is opaque; when it changes, the VaultSecret syncs again.
	// +optional
	ConnectionVersion string `json:"connectionVersion,omitempty"`

	// certificates describes the certificates written to the Secret.
	// +listType=atomic
	// +optional
	Certificates []CertificateStatus `json:"certificates,omitempty"`

	// expiresAt is the earliest expiry among the synced objects: a certificate's notAfter or a
	// secret's expiry attribute. Empty when none expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// expiries lists every synced object that expires, earliest first. The operator rebuilds
	// its expiry metrics and the ExpiringSoon condition from it after a restart.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1024
	// +optional
	Expiries []ExpiryStatus `json:"expiries,omitempty"`
}

// ExpiryStatus is the expiry of one synced object.
type ExpiryStatus struct {
	// key is the Secret key the object was written to (for dataFrom, the object name).
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`

	// kind is certificate (the leaf's notAfter) or secret (the secret's expiry attribute).
	// +kubebuilder:validation:Enum=certificate;secret
	Kind string `json:"kind"`

	// notAfter is when the object expires.
	NotAfter metav1.Time `json:"notAfter"`
}

// CertificateStatus describes one certificate written to the Secret.
type CertificateStatus struct {
	// key is the Secret key holding the certificate.
	Key string `json:"key"`

	// notAfter is when the leaf certificate expires.
	NotAfter metav1.Time `json:"notAfter"`

	// subject is the distinguished name of the leaf certificate.
	Subject string `json:"subject"`
}

// VaultSecret syncs Azure Key Vault secrets, certificates and keys into a Kubernetes Secret
// in the same namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vs,categories=vaultsync
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Last Sync",type=date,JSONPath=`.status.lastSyncTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VaultSecret struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what to sync and where to write it.
	// +required
	Spec VaultSecretSpec `json:"spec"`

	// status is the observed state of the sync.
	// +optional
	Status VaultSecretStatus `json:"status,omitempty"`
}

// VaultSecretList is a list of VaultSecrets.
// +kubebuilder:object:root=true
type VaultSecretList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the VaultSecrets.
	Items []VaultSecret `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VaultSecret{}, &VaultSecretList{})
}

// TargetName is the name of the Secret to write: spec.target.name, or the VaultSecret's name.
func (v *VaultSecret) TargetName() string {
	if v.Spec.Target.Name != "" {
		return v.Spec.Target.Name
	}
	return v.Name
}

// RefreshIntervalOrDefault is spec.refreshInterval, or DefaultRefreshInterval when unset.
// Zero means: sync once, then only when the spec changes or a force-sync is requested.
func (v *VaultSecret) RefreshIntervalOrDefault() time.Duration {
	if v.Spec.RefreshInterval == nil {
		return DefaultRefreshInterval
	}
	return v.Spec.RefreshInterval.Duration
}

// CreationPolicyOrDefault is spec.target.creationPolicy, or CreationPolicyOwner when unset.
func (v *VaultSecret) CreationPolicyOrDefault() CreationPolicy {
	if v.Spec.Target.CreationPolicy == "" {
		return CreationPolicyOwner
	}
	return v.Spec.Target.CreationPolicy
}

// SecretTypeOrDefault is spec.target.type, or Opaque when unset.
func (v *VaultSecret) SecretTypeOrDefault() corev1.SecretType {
	if v.Spec.Target.Type == "" {
		return corev1.SecretTypeOpaque
	}
	return v.Spec.Target.Type
}

// TypeOrDefault is the object type, ObjectTypeSecret when unset.
func (r *RemoteRef) TypeOrDefault() ObjectType {
	if r.Type == "" {
		return ObjectTypeSecret
	}
	return r.Type
}

// DecodeOrDefault is the decode mode, DecodeNone when unset.
func (r *RemoteRef) DecodeOrDefault() DecodeMode {
	if r.Decode == "" {
		return DecodeNone
	}
	return r.Decode
}

// FormatOrDefault is the output format, with the default for the object type when unset:
// FormatTLS for certificates, FormatPEM for keys, and "" for secrets (which have no format).
func (r *RemoteRef) FormatOrDefault() Format {
	if r.Format != "" {
		return r.Format
	}
	switch r.TypeOrDefault() {
	case ObjectTypeCertificate:
		return FormatTLS
	case ObjectTypeKey:
		return FormatPEM
	default:
		return ""
	}
}

// RefreshPolicyOrDefault is spec.refreshPolicy, RefreshPeriodic when unset.
func (v *VaultSecret) RefreshPolicyOrDefault() RefreshPolicy {
	if v.Spec.RefreshPolicy == "" {
		return RefreshPeriodic
	}
	return v.Spec.RefreshPolicy
}

// OnSourceDeletedOrDefault is spec.target.onSourceDeleted, SourceDeletedRetain when unset.
func (v *VaultSecret) OnSourceDeletedOrDefault() SourceDeletedPolicy {
	if v.Spec.Target.OnSourceDeleted == "" {
		return SourceDeletedRetain
	}
	return v.Spec.Target.OnSourceDeleted
}

// WritesTLSKeys reports whether the item is a certificate in TLS format, which writes
// tls.crt, tls.key and ca.crt instead of a single key.
func (d *DataItem) WritesTLSKeys() bool {
	return d.Remote.TypeOrDefault() == ObjectTypeCertificate && d.Remote.FormatOrDefault() == FormatTLS
}
