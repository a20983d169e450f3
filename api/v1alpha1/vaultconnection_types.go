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

// VaultConnectionSpec is a Key Vault and how to authenticate to it, shared by the VaultSecrets
// of one namespace.
// +kubebuilder:validation:XValidation:rule="!has(self.cloud) || self.cloud != 'Custom' || has(self.customCloud)",message="spec.customCloud is required when cloud is Custom",fieldPath=".customCloud",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.customCloud) || (has(self.cloud) && self.cloud == 'Custom')",message="spec.customCloud is only allowed when cloud is Custom",fieldPath=".customCloud",reason=FieldValueForbidden
type VaultConnectionSpec struct {
	// url is the Key Vault URL, such as https://my-vault.vault.azure.net/. It must use https.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && self.startsWith('https://') && url(self).getHostname().size() > 0",message="spec.url must be an https URL with a host, such as https://my-vault.vault.azure.net/"
	URL string `json:"url"`

	// auth is how the operator authenticates to Key Vault. Exactly one method must be set:
	// workloadIdentity (a ServiceAccount of this namespace), servicePrincipal (Secrets of this
	// namespace) or azureCLI (development only).
	// +required
	// +kubebuilder:validation:XValidation:rule="!has(self.managedIdentity)",message="spec.auth.managedIdentity is only allowed in a ClusterVaultConnection: a managed identity belongs to the node or the operator, not to a namespace",fieldPath=".managedIdentity",reason=FieldValueForbidden
	// +kubebuilder:validation:XValidation:rule="!has(self.operatorIdentity)",message="spec.auth.operatorIdentity is only allowed in a ClusterVaultConnection: it is the operator's own identity, not a namespace's",fieldPath=".operatorIdentity",reason=FieldValueForbidden
	// +kubebuilder:validation:XValidation:rule="!self.?workloadIdentity.?serviceAccountNamespace.hasValue()",message="spec.auth.workloadIdentity.serviceAccountNamespace is not allowed: a VaultConnection can only use ServiceAccounts of its own namespace",fieldPath=".workloadIdentity.serviceAccountNamespace",reason=FieldValueForbidden
	Auth VaultAuth `json:"auth"`

	// cloud is the Azure cloud of the vault: AzurePublic, AzureChina, AzureUSGovernment or
	// Custom (then customCloud is required). When unset, it follows from the vault URL's DNS
	// suffix (AzurePublic for anything not sovereign).
	// +optional
	Cloud CloudName `json:"cloud,omitempty"`

	// customCloud describes a private cloud or Azure Stack Hub; only with cloud Custom.
	// +optional
	CustomCloud *CustomCloud `json:"customCloud,omitempty"`

	// probe names a Key Vault object the connection must be able to read. Without it, Ready
	// means a token was acquired; with it, Ready also proves the read permission.
	// +optional
	Probe *ConnectionProbe `json:"probe,omitempty"`
}

// ConnectionProbe names a Key Vault object read by a connection's preflight check.
type ConnectionProbe struct {
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
}

// ConnectionStatus is the observed state of a VaultConnection or ClusterVaultConnection.
type ConnectionStatus struct {
	// conditions describe the connection; Ready says whether the preflight check (token
	// acquired, and the probe object read when one is named) passed.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// observedGeneration is the generation of the spec that was last checked.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// lastCheckTime is when the preflight check last ran.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`

	// identity describes the identity the connection signs in as (method, tenant and client
	// ids); it never holds a credential.
	// +optional
	Identity string `json:"identity,omitempty"`
}

// VaultConnection is a Key Vault and an identity to reach it with, shared by the VaultSecrets
// of its namespace through spec.connectionRef.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vc,categories=vaultsync
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VaultConnection struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the vault and the identity.
	// +required
	Spec VaultConnectionSpec `json:"spec"`

	// status is the result of the last preflight check.
	// +optional
	Status ConnectionStatus `json:"status,omitempty"`
}

// VaultConnectionList is a list of VaultConnections.
// +kubebuilder:object:root=true
type VaultConnectionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the VaultConnections.
	Items []VaultConnection `json:"items"`
}

// ClusterVaultConnectionSpec is a Key Vault and how to authenticate to it, offered by a cluster
// administrator to the namespaces it allows.
// +kubebuilder:validation:XValidation:rule="!has(self.cloud) || self.cloud != 'Custom' || has(self.customCloud)",message="spec.customCloud is required when cloud is Custom",fieldPath=".customCloud",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.customCloud) || (has(self.cloud) && self.cloud == 'Custom')",message="spec.customCloud is only allowed when cloud is Custom",fieldPath=".customCloud",reason=FieldValueForbidden
type ClusterVaultConnectionSpec struct {
	// url is the Key Vault URL, such as https://my-vault.vault.azure.net/. It must use https.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && self.startsWith('https://') && url(self).getHostname().size() > 0",message="spec.url must be an https URL with a host, such as https://my-vault.vault.azure.net/"
	URL string `json:"url"`

	// auth is how the operator authenticates to Key Vault. Exactly one method must be set:
	// workloadIdentity (with serviceAccountNamespace), managedIdentity, operatorIdentity or
	// azureCLI (development only). servicePrincipal is not available here.
	// +required
	// +kubebuilder:validation:XValidation:rule="!has(self.servicePrincipal)",message="spec.auth.servicePrincipal is not allowed in a ClusterVaultConnection: its Secrets would have no namespace; use a VaultConnection in the namespace that holds them",fieldPath=".servicePrincipal",reason=FieldValueForbidden
	// +kubebuilder:validation:XValidation:rule="!has(self.workloadIdentity) || has(self.workloadIdentity.serviceAccountNamespace)",message="spec.auth.workloadIdentity.serviceAccountNamespace is required in a ClusterVaultConnection: name the namespace of the ServiceAccount",fieldPath=".workloadIdentity.serviceAccountNamespace",reason=FieldValueRequired
	Auth VaultAuth `json:"auth"`

	// cloud is the Azure cloud of the vault: AzurePublic, AzureChina, AzureUSGovernment or
	// Custom (then customCloud is required). When unset, it follows from the vault URL's DNS
	// suffix (AzurePublic for anything not sovereign).
	// +optional
	Cloud CloudName `json:"cloud,omitempty"`

	// customCloud describes a private cloud or Azure Stack Hub; only with cloud Custom.
	// +optional
	CustomCloud *CustomCloud `json:"customCloud,omitempty"`

	// probe names a Key Vault object the connection must be able to read. Without it, Ready
	// means a token was acquired; with it, Ready also proves the read permission.
	// +optional
	Probe *ConnectionProbe `json:"probe,omitempty"`

	// allowedNamespaces says which namespaces' VaultSecrets may use this connection: those
	// listed by name and those whose labels match the selector. A VaultSecret of any other
	// namespace gets Ready=False with reason NamespaceNotAllowed, and nothing is sent to Azure.
	// +required
	AllowedNamespaces AllowedNamespaces `json:"allowedNamespaces"`
}

// AllowedNamespaces selects namespaces by name and by labels. A namespace is allowed when
// it is listed in names or matches selector. An empty selector ({}) matches every namespace.
// +kubebuilder:validation:XValidation:rule="has(self.names) || has(self.selector)",message="spec.allowedNamespaces must set names, selector or both (selector: {} allows every namespace)"
type AllowedNamespaces struct {
	// names lists allowed namespaces by name. At most 256.
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Names []string `json:"names,omitempty"`

	// selector allows the namespaces whose labels match it.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// ClusterVaultConnection is a Key Vault and an identity to reach it with, offered by a cluster
// administrator to chosen namespaces; VaultSecrets use it through spec.connectionRef with
// kind ClusterVaultConnection.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cvc,categories=vaultsync
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterVaultConnection struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the vault, the identity and the allowed namespaces.
	// +required
	Spec ClusterVaultConnectionSpec `json:"spec"`

	// status is the result of the last preflight check.
	// +optional
	Status ConnectionStatus `json:"status,omitempty"`
}

// ClusterVaultConnectionList is a list of ClusterVaultConnections.
// +kubebuilder:object:root=true
type ClusterVaultConnectionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the ClusterVaultConnections.
	Items []ClusterVaultConnection `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VaultConnection{}, &VaultConnectionList{},
		&ClusterVaultConnection{}, &ClusterVaultConnectionList{})
}
