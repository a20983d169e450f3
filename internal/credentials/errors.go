package credentials

import (
	"errors"
	"fmt"
)

// Sentinel errors.
var (
	// ErrServiceAccountNotFound means the ServiceAccount to mint a token for does not exist.
	ErrServiceAccountNotFound = errors.New("credentials: service account not found")
	// ErrTokenRequestForbidden means the operator may not create tokens for the ServiceAccount.
	ErrTokenRequestForbidden = errors.New("credentials: token request forbidden")
	// ErrTokenRequest means any other TokenRequest failure.
	ErrTokenRequest = errors.New("credentials: token request failed")
	// ErrMissingClientID means neither the spec nor the ServiceAccount annotation gives a client id.
	ErrMissingClientID = errors.New("credentials: no client id")
	// ErrMissingTenantID means neither the spec nor the ServiceAccount annotation gives a tenant id.
	ErrMissingTenantID = errors.New("credentials: no tenant id")
	// ErrMethodNotAllowed means the authentication method may not be used where it is named
	// (azureCLI without --dev, managedIdentity outside a ClusterVaultConnection, ...).
	ErrMethodNotAllowed = errors.New("credentials: authentication method not allowed here")
	// ErrSecretNotFound means a Secret holding credential material does not exist.
	ErrSecretNotFound = errors.New("credentials: credential Secret not found")
	// ErrSecretKeyNotFound means the Secret exists but lacks the named key (or it is empty).
	ErrSecretKeyNotFound = errors.New("credentials: key not found in credential Secret")
	// ErrInvalidCertificate means the client certificate cannot be read (format, password, key type).
	ErrInvalidCertificate = errors.New("credentials: client certificate cannot be used")
	// ErrOperatorIdentityUnavailable means the operator's own workload identity is not configured.
	ErrOperatorIdentityUnavailable = errors.New("credentials: the operator has no workload identity")
	// ErrFederatedCredentialMismatch means Entra ID found no federated credential matching the
	// presented service-account token (AADSTS70021).
	ErrFederatedCredentialMismatch = errors.New("credentials: no federated credential matches the service-account token")
)

// Condition reasons of credential errors.
const (
	ReasonServiceAccountNotFound        = "ServiceAccountNotFound"
	ReasonTokenRequestForbidden         = "TokenRequestForbidden"
	ReasonTokenRequestFailed            = "TokenRequestFailed"
	ReasonMissingClientID               = "MissingClientID"
	ReasonMissingTenantID               = "MissingTenantID"
	ReasonAuthMethodNotAllowed          = "AuthMethodNotAllowed"
	ReasonCredentialSecretNotFound      = "CredentialSecretNotFound"
	ReasonCredentialKeyNotFound         = "CredentialKeyNotFound"
	ReasonClientCertificateUnusable     = "ClientCertificateUnusable"
	ReasonOperatorIdentityNotConfigured = "OperatorIdentityNotConfigured"
	ReasonFederatedCredentialMismatch   = "FederatedCredentialMismatch"
)

const (
	defaultFederatedCredentialAudience   = TokenAudience
	federatedCredentialDocumentationHint = "az identity federated-credential create --identity-name <identity> --resource-group <group> --name <name>"
)

// Claims are the non-secret claims of a presented federated token, for diagnostics.
type Claims struct {
	Issuer   string
	Subject  string
	Audience string
}

// Error is a credential failure. Unwrap yields the sentinel and the cause. It implements
// AuthReason and AuthHint, which internal/keyvault's Reason and Hint use when the failure
// surfaces through a vault request.
type Error struct {
	Kind error
	// Namespace and ServiceAccount name the ServiceAccount, or Namespace and Secret the Secret.
	Namespace      string
	ServiceAccount string
	Secret         string
	// Key is the key of Secret that is missing or unusable.
	Key string
	// Method is the authentication method (for ErrMethodNotAllowed).
	Method string
	// Detail says why, in words a user can act on (never secret material).
	Detail string
	// ClientID names the application (for ErrFederatedCredentialMismatch).
	ClientID string
	// Claims are the claims of the presented token (for ErrFederatedCredentialMismatch).
	Claims *Claims
	Err    error
}

// Error formats the failure; it never includes a token or secret material.
func (e *Error) Error() string {
	msg := e.Kind.Error()
	switch {
	case e.ServiceAccount != "":
		msg += fmt.Sprintf(" (service account %s/%s)", e.Namespace, e.ServiceAccount)
	case e.Secret != "" && e.Key != "":
		msg += fmt.Sprintf(" (Secret %s/%s, key %q)", e.Namespace, e.Secret, e.Key)
	case e.Secret != "":
		msg += fmt.Sprintf(" (Secret %s/%s)", e.Namespace, e.Secret)
	case e.Method != "":
		msg += fmt.Sprintf(" (%s)", e.Method)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil && e.Kind != ErrFederatedCredentialMismatch {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the sentinel and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// AuthReason returns a fixed CamelCase condition reason.
func (e *Error) AuthReason() string {
	switch e.Kind {
	case ErrServiceAccountNotFound:
		return ReasonServiceAccountNotFound
	case ErrTokenRequestForbidden:
		return ReasonTokenRequestForbidden
	case ErrMissingClientID:
		return ReasonMissingClientID
	case ErrMissingTenantID:
		return ReasonMissingTenantID
	case ErrMethodNotAllowed:
		return ReasonAuthMethodNotAllowed
	case ErrSecretNotFound:
		return ReasonCredentialSecretNotFound
	case ErrSecretKeyNotFound:
		return ReasonCredentialKeyNotFound
	case ErrInvalidCertificate:
		return ReasonClientCertificateUnusable
	case ErrOperatorIdentityUnavailable:
		return ReasonOperatorIdentityNotConfigured
	case ErrFederatedCredentialMismatch:
		return ReasonFederatedCredentialMismatch
	}
	return ReasonTokenRequestFailed
}

// AuthHint returns the user's next step.
func (e *Error) AuthHint() string {
	switch e.Kind {
	case ErrServiceAccountNotFound:
		return fmt.Sprintf("create the ServiceAccount %q in namespace %q, or reference an existing one", e.ServiceAccount, e.Namespace)
	case ErrTokenRequestForbidden:
		return "allow the operator to create serviceaccounts/token in this namespace (the chart's ClusterRole grants it)"
	case ErrMissingClientID:
		return "set the client id in the spec, or annotate the ServiceAccount with " + AnnotationClientID
	case ErrMissingTenantID:
		return "set the tenant id in the spec, or annotate the ServiceAccount with " + AnnotationTenantID
	case ErrMethodNotAllowed:
		return "see docs/authentication.md for where each method may be used"
	case ErrSecretNotFound:
		return fmt.Sprintf("create the Secret %q in namespace %q; credential Secrets are always read from the namespace of the object that names them", e.Secret, e.Namespace)
	case ErrSecretKeyNotFound:
		return fmt.Sprintf("add the key %q to the Secret %s/%s, or name the key that holds the credential", e.Key, e.Namespace, e.Secret)
	case ErrInvalidCertificate:
		return "store the certificate with its private key as PEM (unencrypted key) or PFX (with passwordRef when it has a password); Entra ID accepts RSA keys only"
	case ErrOperatorIdentityUnavailable:
		return "give the operator's ServiceAccount the azure.workload.identity/client-id annotation and its pods the label azure.workload.identity/use=true, so the Azure Workload Identity webhook sets AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE"
	case ErrFederatedCredentialMismatch:
		return e.federationHint()
	}
	return "the Kubernetes API refused the service-account token request; it is retried"
}

func (e *Error) federationHint() string {
	c := e.Claims
	if c == nil || (c.Issuer == "" && c.Subject == "") {
		return "add a federated credential to the Entra application or managed identity with the cluster's service-account issuer, subject system:serviceaccount:<namespace>:<name> and audience " + defaultFederatedCredentialAudience
	}
	aud := c.Audience
	if aud == "" {
		aud = defaultFederatedCredentialAudience
	}
	who := "the Entra application or managed identity"
	if e.ClientID != "" {
		who += " with client id " + e.ClientID
	}
	return fmt.Sprintf("the token carried issuer %q, subject %q and audience %q, and no federated credential of %s matches all three: "+
		"add one with exactly these values (%s --issuer %s --subject %s --audiences %s)",
		c.Issuer, c.Subject, aud, who, federatedCredentialDocumentationHint, c.Issuer, c.Subject, aud)
}

// Reason returns the condition reason of a credentials error, or "" when err is not one.
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.AuthReason()
	}
	return ""
}

// Hint returns the user's next step for a credentials error, or "".
func Hint(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.AuthHint()
	}
	return ""
}

// NotAllowed returns an ErrMethodNotAllowed error for method with a reason the user can act on.
func NotAllowed(method, detail string) error {
	return &Error{Kind: ErrMethodNotAllowed, Method: method, Detail: detail}
}

// IsSecretMaterialError reports whether err says that credential material in a Secret is
// missing or unusable (as opposed to a refusal by Entra ID).
func IsSecretMaterialError(err error) bool {
	return errors.Is(err, ErrSecretNotFound) || errors.Is(err, ErrSecretKeyNotFound) || errors.Is(err, ErrInvalidCertificate)
}
