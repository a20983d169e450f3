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

// Authentication methods, clouds and shared connection references. The same VaultAuth is used
// inline in a VaultSecret, in a VaultConnection and in a ClusterVaultConnection; each of those
// decides with its own validation rules which methods and fields it allows, so that every
// message names the place of the problem.

// AuthMethod names an authentication method, as it appears in conditions and in the docs.
type AuthMethod string

// Authentication methods.
const (
	// AuthMethodWorkloadIdentity is VaultAuth.WorkloadIdentity.
	AuthMethodWorkloadIdentity AuthMethod = "workloadIdentity"
	// AuthMethodServicePrincipal is VaultAuth.ServicePrincipal.
	AuthMethodServicePrincipal AuthMethod = "servicePrincipal"
	// AuthMethodManagedIdentity is VaultAuth.ManagedIdentity.
	AuthMethodManagedIdentity AuthMethod = "managedIdentity"
	// AuthMethodOperatorIdentity is VaultAuth.OperatorIdentity.
	AuthMethodOperatorIdentity AuthMethod = "operatorIdentity"
	// AuthMethodAzureCLI is VaultAuth.AzureCLI.
	AuthMethodAzureCLI AuthMethod = "azureCLI"
)

// VaultAuth selects one authentication method. Exactly one member must be set.
// +kubebuilder:validation:XValidation:rule="(has(self.workloadIdentity) ? 1 : 0) + (has(self.servicePrincipal) ? 1 : 0) + (has(self.managedIdentity) ? 1 : 0) + (has(self.operatorIdentity) ? 1 : 0) + (has(self.azureCLI) ? 1 : 0) == 1",message="auth must set exactly one authentication method: workloadIdentity, servicePrincipal, managedIdentity, operatorIdentity or azureCLI"
type VaultAuth struct {
	// workloadIdentity authenticates as the Entra ID application or user-assigned managed
	// identity federated with a ServiceAccount (Azure Workload Identity). The operator requests
	// a token for that ServiceAccount and exchanges it; it never mounts it into a pod. In a
	// VaultSecret or VaultConnection the ServiceAccount is one of its own namespace; in a
	// ClusterVaultConnection it is named with serviceAccountNamespace.
	// +optional
	WorkloadIdentity *WorkloadIdentityAuth `json:"workloadIdentity,omitempty"`

	// servicePrincipal authenticates as an Entra ID application with a client secret or a
	// client certificate read from a Secret of the object's own namespace. For clusters
	// outside Azure and for CI. Not allowed in a ClusterVaultConnection.
	// +optional
	ServicePrincipal *ServicePrincipalAuth `json:"servicePrincipal,omitempty"`

	// managedIdentity authenticates as the managed identity of the node (or of the operator's
	// pod, on App Service-like hosts): system-assigned, or the user-assigned one named by
	// clientID or resourceID. Only in a ClusterVaultConnection: it is not a namespace's identity.
	// +optional
	ManagedIdentity *ManagedIdentityAuth `json:"managedIdentity,omitempty"`

	// operatorIdentity authenticates as the operator itself, with the workload identity of its
	// own pod (AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE, as injected by
	// the Azure Workload Identity webhook). Only in a ClusterVaultConnection.
	// +optional
	OperatorIdentity *OperatorIdentityAuth `json:"operatorIdentity,omitempty"`

	// azureCLI authenticates as the user logged in to the Azure CLI on the machine the
	// operator runs on. Only honoured when the operator runs with --dev (make run); refused
	// otherwise.
	// +optional
	AzureCLI *AzureCLIAuth `json:"azureCLI,omitempty"`
}

// Method returns the name of the method that is set, or "" when none is.
func (a *VaultAuth) Method() AuthMethod {
	switch {
	case a == nil:
		return ""
	case a.WorkloadIdentity != nil:
		return AuthMethodWorkloadIdentity
	case a.ServicePrincipal != nil:
		return AuthMethodServicePrincipal
	case a.ManagedIdentity != nil:
		return AuthMethodManagedIdentity
	case a.OperatorIdentity != nil:
		return AuthMethodOperatorIdentity
	case a.AzureCLI != nil:
		return AuthMethodAzureCLI
	}
	return ""
}

// WorkloadIdentityAuth authenticates with a federated ServiceAccount token.
type WorkloadIdentityAuth struct {
	// serviceAccountName is the name of a ServiceAccount whose tokens Entra ID trusts (a
	// federated identity credential). In a VaultSecret or VaultConnection it is in the
	// object's own namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="serviceAccountName must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
	ServiceAccountName string `json:"serviceAccountName"`

	// serviceAccountNamespace is the namespace of the ServiceAccount. Required in a
	// ClusterVaultConnection and refused everywhere else: a VaultSecret or VaultConnection can
	// only use ServiceAccounts of its own namespace.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="serviceAccountNamespace must be a namespace name: lower-case letters, digits and '-', starting and ending with a letter or digit"
	// +optional
	ServiceAccountNamespace string `json:"serviceAccountNamespace,omitempty"`

	// clientID is the application (client) ID to sign in as, a GUID. Defaults to the
	// ServiceAccount's azure.workload.identity/client-id annotation.
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",message="clientID must be a GUID such as 00000000-0000-0000-0000-000000000000"
	// +optional
	ClientID string `json:"clientID,omitempty"`

	// tenantID is the Entra ID tenant (directory) ID, a GUID. Defaults to the ServiceAccount's
	// azure.workload.identity/tenant-id annotation.
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",message="tenantID must be a GUID such as 00000000-0000-0000-0000-000000000000"
	// +optional
	TenantID string `json:"tenantID,omitempty"`
}

// ServicePrincipalAuth authenticates as an Entra ID application with a client secret or a
// client certificate. The Secrets it names are always read from the namespace of the object
// that holds this spec; the references have no namespace field.
// +kubebuilder:validation:XValidation:rule="has(self.clientSecretRef) != has(self.clientCertificateRef)",message="servicePrincipal must set exactly one of clientSecretRef or clientCertificateRef"
// +kubebuilder:validation:XValidation:rule="!has(self.passwordRef) || has(self.clientCertificateRef)",message="passwordRef is only allowed with clientCertificateRef (it opens a PFX file)",fieldPath=".passwordRef",reason=FieldValueForbidden
type ServicePrincipalAuth struct {
	// tenantID is the Entra ID tenant (directory) ID of the application, a GUID.
	// +required
	// +kubebuilder:validation:MinLength=36
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",message="tenantID must be a GUID such as 00000000-0000-0000-0000-000000000000"
	TenantID string `json:"tenantID"`

	// clientID is the application (client) ID, a GUID.
	// +required
	// +kubebuilder:validation:MinLength=36
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",message="clientID must be a GUID such as 00000000-0000-0000-0000-000000000000"
	ClientID string `json:"clientID"`

	// clientSecretRef names the key of a Secret in the same namespace that holds the client
	// secret value.
	// +optional
	ClientSecretRef *SecretKeyRef `json:"clientSecretRef,omitempty"`

	// clientCertificateRef names the key of a Secret in the same namespace that holds the
	// client certificate with its private key: PEM (an unencrypted private key and the
	// certificate, leaf first) or PFX/PKCS#12 (raw or base64; with passwordRef when it has a
	// password).
	// +optional
	ClientCertificateRef *SecretKeyRef `json:"clientCertificateRef,omitempty"`

	// passwordRef names the key of a Secret in the same namespace that holds the password of
	// the PFX file named by clientCertificateRef.
	// +optional
	PasswordRef *SecretKeyRef `json:"passwordRef,omitempty"`
}

// SecretKeyRef names one key of a Secret in the namespace of the referring object. It has no
// namespace field on purpose.
type SecretKeyRef struct {
	// name is the name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="name must be a Secret name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
	Name string `json:"name"`

	// key is the key of the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$')",message="key must be a Secret key: letters, digits, '-', '_' or '.'"
	Key string `json:"key"`
}

// ManagedIdentityAuth selects a managed identity. With neither clientID nor resourceID the
// system-assigned identity is used.
// +kubebuilder:validation:XValidation:rule="!(has(self.clientID) && has(self.resourceID))",message="managedIdentity may set clientID or resourceID, not both"
type ManagedIdentityAuth struct {
	// clientID is the client ID of a user-assigned managed identity, a GUID.
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",message="clientID must be a GUID such as 00000000-0000-0000-0000-000000000000"
	// +optional
	ClientID string `json:"clientID,omitempty"`

	// resourceID is the Azure resource ID of a user-assigned managed identity:
	// /subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.matches('(?i)^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft[.]managedidentity/userassignedidentities/[^/]+$')",message="resourceID must be a user-assigned identity's resource ID: /subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
	// +optional
	ResourceID string `json:"resourceID,omitempty"`
}

// OperatorIdentityAuth uses the operator's own workload identity. It has no fields.
type OperatorIdentityAuth struct{}

// AzureCLIAuth uses the Azure CLI login of the machine the operator runs on (development only).
type AzureCLIAuth struct {
	// tenantID asks the CLI for a token of this tenant, a GUID. Defaults to the CLI's tenant.
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",message="tenantID must be a GUID such as 00000000-0000-0000-0000-000000000000"
	// +optional
	TenantID string `json:"tenantID,omitempty"`
}

// CloudName is an Azure cloud.
// +kubebuilder:validation:Enum=AzurePublic;AzureChina;AzureUSGovernment;Custom
type CloudName string

// Azure clouds.
const (
	// CloudAzurePublic is the global Azure cloud (login.microsoftonline.com, *.vault.azure.net).
	CloudAzurePublic CloudName = "AzurePublic"
	// CloudAzureChina is Azure operated by 21Vianet (login.chinacloudapi.cn, *.vault.azure.cn).
	CloudAzureChina CloudName = "AzureChina"
	// CloudAzureUSGovernment is Azure Government (login.microsoftonline.us, *.vault.usgovcloudapi.net).
	CloudAzureUSGovernment CloudName = "AzureUSGovernment"
	// CloudCustom is a private cloud or Azure Stack Hub described by CustomCloud.
	CloudCustom CloudName = "Custom"
)

// CustomCloud describes the endpoints of a private cloud or Azure Stack Hub.
type CustomCloud struct {
	// authorityHost is the Microsoft Entra ID (or AD FS) endpoint tokens are requested from,
	// an https URL such as https://login.microsoftonline.com/.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && self.startsWith('https://') && url(self).getHostname().size() > 0",message="authorityHost must be an https URL with a host, such as https://login.microsoftonline.com/"
	AuthorityHost string `json:"authorityHost"`

	// vaultDNSSuffix is the DNS suffix of the cloud's vaults, such as vault.local.azurestack.external.
	// The vault URL must end with it, and tokens are requested for the Key Vault resource
	// https://<vaultDNSSuffix>.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+$')",message="vaultDNSSuffix must be a DNS suffix such as vault.local.azurestack.external, without a leading dot"
	VaultDNSSuffix string `json:"vaultDNSSuffix"`
}

// ConnectionKind is the kind of a shared connection.
// +kubebuilder:validation:Enum=VaultConnection;ClusterVaultConnection
type ConnectionKind string

// Connection kinds.
const (
	// KindVaultConnection is a namespaced VaultConnection.
	KindVaultConnection ConnectionKind = "VaultConnection"
	// KindClusterVaultConnection is a cluster-scoped ClusterVaultConnection.
	KindClusterVaultConnection ConnectionKind = "ClusterVaultConnection"
)

// ConnectionRef names a shared connection. It has no namespace field: a VaultConnection is
// always looked up in the VaultSecret's own namespace.
type ConnectionRef struct {
	// kind is VaultConnection (the default: a connection of this namespace) or
	// ClusterVaultConnection (a cluster-wide connection that must allow this namespace).
	// +kubebuilder:default=VaultConnection
	// +optional
	Kind ConnectionKind `json:"kind,omitempty"`

	// name is the name of the connection.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="name must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
	Name string `json:"name"`
}

// KindOrDefault is the kind, KindVaultConnection when unset.
func (r *ConnectionRef) KindOrDefault() ConnectionKind {
	if r.Kind == "" {
		return KindVaultConnection
	}
	return r.Kind
}
