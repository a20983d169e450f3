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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LabelClusterVaultSecret marks a VaultSecret created by a ClusterVaultSecret; its value is the
// ClusterVaultSecret's name. The label alone proves nothing: a copy is the ClusterVaultSecret's
// only when it also carries its controller owner reference.
const LabelClusterVaultSecret = "vaultsync.io/cluster-vault-secret" // #nosec G101 -- a label key, not a credential.

// MaxListedNamespaces bounds status.provisionedNamespaces and status.failedNamespaces; the
// counts are always exact.
const MaxListedNamespaces = 256

// ClusterVaultSecretSpec is one VaultSecret to create in each selected namespace.
// +kubebuilder:validation:XValidation:rule="(has(self.namespaces) && size(self.namespaces) > 0) || has(self.namespaceSelector)",message="spec.namespaces or spec.namespaceSelector must select at least one namespace (namespaceSelector: {} selects every namespace the connection allows)",reason=FieldValueRequired
type ClusterVaultSecretSpec struct {
	// namespaces lists target namespaces by name. At most 256.
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// namespaceSelector selects target namespaces by their labels. A namespace is a target when
	// it is listed in namespaces or matches this selector.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// vaultSecretName is the name of the VaultSecret created in each namespace. Defaults to the
	// name of this ClusterVaultSecret.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.vaultSecretName must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
	// +optional
	VaultSecretName string `json:"vaultSecretName,omitempty"`

	// template is the VaultSecret created in each namespace: its labels, annotations and spec.
	// +required
	Template VaultSecretTemplate `json:"template"`
}

// VaultSecretTemplate is the metadata and spec of the VaultSecrets a ClusterVaultSecret creates.
type VaultSecretTemplate struct {
	// metadata holds the labels and annotations of each VaultSecret.
	// +optional
	Metadata TemplateMetadata `json:"metadata,omitempty"`

	// spec is the spec of each VaultSecret. It must read through a ClusterVaultConnection
	// (connectionRef with kind ClusterVaultConnection): an administrator's connection that
	// decides which namespaces may use it. An inline spec.vault is refused, since its identity
	// (a ServiceAccount or a Secret) would be looked up in each tenant's namespace.
	// +required
	// +kubebuilder:validation:XValidation:rule="!has(self.vault)",message="spec.template.spec.vault is not allowed: a ClusterVaultSecret reads only through a ClusterVaultConnection (spec.template.spec.connectionRef with kind ClusterVaultConnection), never with a tenant's ServiceAccount or Secrets",fieldPath=".vault",reason=FieldValueForbidden
	// +kubebuilder:validation:XValidation:rule="self.?connectionRef.?kind.orValue('') == 'ClusterVaultConnection'",message="spec.template.spec.connectionRef must name a ClusterVaultConnection (kind: ClusterVaultConnection): a VaultConnection belongs to one namespace",fieldPath=".connectionRef",reason=FieldValueInvalid
	Spec VaultSecretSpec `json:"spec"`
}

// TemplateMetadata is the labels and annotations of a templated object.
type TemplateMetadata struct {
	// labels are set on each VaultSecret. The operator also sets vaultsync.io/cluster-vault-secret.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="!('vaultsync.io/cluster-vault-secret' in self)",message="spec.template.metadata.labels must not set vaultsync.io/cluster-vault-secret: the operator sets it"
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are set on each VaultSecret.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Reasons of a ClusterVaultSecret's Ready condition and of its failed namespaces.
const (
	// ReasonProvisioned: every selected namespace has its VaultSecret, and each is Ready.
	ReasonProvisioned = "Provisioned"
	// ReasonPartiallyProvisioned: some selected namespaces have no VaultSecret (see
	// status.failedNamespaces).
	ReasonPartiallyProvisioned = "PartiallyProvisioned"
	// ReasonCopiesNotReady: every selected namespace has its VaultSecret, but some are not Ready.
	ReasonCopiesNotReady = "VaultSecretsNotReady"
	// ReasonNoNamespaces: no namespace is selected.
	ReasonNoNamespaces = "NoNamespacesSelected"
)

// NamespaceFailure is a selected namespace that has no VaultSecret of a ClusterVaultSecret, or
// whose VaultSecret is not Ready.
type NamespaceFailure struct {
	// namespace is the namespace's name.
	Namespace string `json:"namespace"`

	// reason is a CamelCase word: NamespaceNotAllowed, TargetConflict, ConnectionNotFound, or
	// the Ready reason of the namespace's VaultSecret.
	Reason string `json:"reason"`

	// message says what is wrong and what to do next. It never holds a secret value.
	Message string `json:"message"`
}

// ClusterVaultSecretStatus is the observed state of a ClusterVaultSecret.
type ClusterVaultSecretStatus struct {
	// conditions describe the fan-out; Ready is True when every selected namespace has its
	// VaultSecret and each of them is Ready.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// observedGeneration is the generation of the spec that was last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// provisionedCount is the number of selected namespaces whose VaultSecret exists and is Ready.
	// +optional
	ProvisionedCount int32 `json:"provisionedCount,omitempty"`

	// failedCount is the number of selected namespaces without a Ready VaultSecret.
	// +optional
	FailedCount int32 `json:"failedCount,omitempty"`

	// provisionedNamespaces lists, sorted, the namespaces whose VaultSecret exists and is Ready
	// (at most 256; provisionedCount is exact).
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	// +optional
	ProvisionedNamespaces []string `json:"provisionedNamespaces,omitempty"`

	// failedNamespaces lists, sorted by namespace, the selected namespaces without a Ready
	// VaultSecret and why (at most 256; failedCount is exact).
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	// +optional
	FailedNamespaces []NamespaceFailure `json:"failedNamespaces,omitempty"`
}

// ClusterVaultSecret creates, updates and deletes one VaultSecret in each selected namespace,
// all reading through one administrator-owned ClusterVaultConnection.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cvs,categories=vaultsync
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="a ClusterVaultSecret's name must be at most 63 characters: it is the value of the vaultsync.io/cluster-vault-secret label on its VaultSecrets"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Provisioned",type=integer,JSONPath=`.status.provisionedCount`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failedCount`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterVaultSecret struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the namespaces and the VaultSecret to create in each.
	// +required
	Spec ClusterVaultSecretSpec `json:"spec"`

	// status is the observed state of the fan-out.
	// +optional
	Status ClusterVaultSecretStatus `json:"status,omitempty"`
}

// ClusterVaultSecretList is a list of ClusterVaultSecrets.
// +kubebuilder:object:root=true
type ClusterVaultSecretList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the ClusterVaultSecrets.
	Items []ClusterVaultSecret `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ClusterVaultSecret{}, &ClusterVaultSecretList{})
}

// VaultSecretNameOrDefault is spec.vaultSecretName, or the ClusterVaultSecret's name.
func (c *ClusterVaultSecret) VaultSecretNameOrDefault() string {
	if c.Spec.VaultSecretName != "" {
		return c.Spec.VaultSecretName
	}
	return c.Name
}
