package credentials

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
	// ErrAuthorityNotAllowed means a Custom cloud names an authority host the operator does not
	// trust: credentials (a ServiceAccount token, a client secret) would be sent to it.
	ErrAuthorityNotAllowed = errors.New("credentials: authority host not allowed")
	// ErrSecretNotFound means a Secret holding credential material does not exist.
	ErrSecretNotFound = errors.New("credentials: credential Secret not found")
	// ErrSecretKeyNotFound means the Secret exists but lacks the named key (or it is empty).
	ErrSecretKeyNotFound = errors.New("credentials: key not found in credential Secret")
	// ErrInvalidCertificate means the client certificate cannot be read (format, password, key type).
	ErrInvalidCertificate = errors.New("credentials: client certificate cannot be used")
	// ErrOperatorIdentityUnavailable means the operator's own workload identity is not configured.
	ErrOperatorIdentityUnavailable = errors.New("credentials: the operator has no workload identity")
	// ErrFederatedCredentialMismatch means Entra ID found no federated credential matching the
	// presented service-account token (AADSTS70021, 700211, 700212, 700213 or 7002138).
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
	ReasonAuthorityHostNotAllowed       = "AuthorityHostNotAllowed"
	ReasonCredentialSecretNotFound      = "CredentialSecretNotFound"
	ReasonCredentialKeyNotFound         = "CredentialKeyNotFound" //nolint:gosec // G101: a condition reason, not a credential
	ReasonClientCertificateUnusable     = "ClientCertificateUnusable"
	ReasonOperatorIdentityNotConfigured = "OperatorIdentityNotConfigured"
	ReasonFederatedCredentialMismatch   = "FederatedCredentialMismatch"
)

const (
	defaultFederatedCredentialAudience = TokenAudience
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
	// AADSTS is Entra ID's error number (for ErrFederatedCredentialMismatch: 70021, 700211, ...).
	AADSTS string
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
	switch {
	case e.Kind == ErrFederatedCredentialMismatch && e.AADSTS != "": //nolint:errorlint // Kind holds a bare sentinel, never a wrapped error: == is exact
		msg += " (AADSTS" + e.AADSTS
		if e.Detail != "" {
			msg += ": " + e.Detail
		}
		msg += ")"
	case e.Detail != "":
		msg += ": " + e.Detail
	}
	if e.Err != nil && e.Kind != ErrFederatedCredentialMismatch { //nolint:errorlint // Kind holds a bare sentinel, never a wrapped error: == is exact
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
	//nolint:errorlint // Kind holds a bare sentinel, never a wrapped error: == is exact
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
	case ErrAuthorityNotAllowed:
		return ReasonAuthorityHostNotAllowed
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
	//nolint:errorlint // Kind holds a bare sentinel, never a wrapped error: == is exact
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
	case ErrAuthorityNotAllowed:
		return "the operator sends credentials only to the Azure clouds' own authority hosts and to those its administrator lists with --custom-authority-hosts (chart value customAuthorityHosts)"
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

// federationHint says which claim of the presented token matched no federated credential (as far
// as Entra's code tells), what the federated credential must hold, and how to create it.
func (e *Error) federationHint() string {
	who := "the managed identity or Entra application"
	if e.ClientID != "" {
		who += " with client id " + e.ClientID
	}
	c := e.Claims
	if c == nil || (c.Issuer == "" && c.Subject == "") {
		what := "no federated credential of " + who + " matches the service-account token"
		if e.AADSTS == "7002138" {
			what = "a federated credential of " + who + " has a subject that differs from the token's subject only in letter case, and Entra ID compares subjects case-sensitively"
		}
		return what + ": add a federated credential with the cluster's service-account issuer, subject system:serviceaccount:<namespace>:<name> and audience " +
			defaultFederatedCredentialAudience + " (" + federatedCredentialCommands(e.ClientID, "<issuer>", "system:serviceaccount:<namespace>:<name>", defaultFederatedCredentialAudience) + ")"
	}
	aud := c.Audience
	if aud == "" {
		aud = defaultFederatedCredentialAudience
	}
	add := fmt.Sprintf("add one with issuer %q, subject %q and audience %q (%s)", c.Issuer, c.Subject, aud,
		federatedCredentialCommands(e.ClientID, c.Issuer, c.Subject, aud))
	switch e.AADSTS {
	case "700211":
		return fmt.Sprintf("%s has no federated credential with the issuer %q that the service-account token carried; "+
			"the issuer must equal the cluster's service-account issuer exactly (a trailing \"/\" counts): %s", who, c.Issuer, add)
	case "700213":
		return fmt.Sprintf("a federated credential of %s trusts the issuer %q, but none has the subject %q that the token carried "+
			"(the subject is system:serviceaccount:<namespace>:<name> of the ServiceAccount used): %s", who, c.Issuer, c.Subject, add)
	case "7002138":
		return fmt.Sprintf("a federated credential of %s has a subject that differs from the token's subject %q only in letter case, "+
			"and Entra ID compares subjects case-sensitively: set its subject to exactly %q, or %s", who, c.Subject, c.Subject, add)
	case "700212":
		return fmt.Sprintf("a federated credential of %s matches the issuer %q and subject %q, but its audiences do not include %q, "+
			"the audience of the token: set its audience to %q, or %s", who, c.Issuer, c.Subject, aud, aud, add)
	}
	return fmt.Sprintf("the token carried issuer %q, subject %q and audience %q, and no federated credential of %s matches all three: "+
		"add one with exactly these values (%s)", c.Issuer, c.Subject, aud, who, federatedCredentialCommands(e.ClientID, c.Issuer, c.Subject, aud))
}

// federatedCredentialCommands are the Azure CLI commands that add a federated credential to a
// managed identity and to an application registration.
func federatedCredentialCommands(clientID, issuer, subject, audience string) string {
	if clientID == "" {
		clientID = "<client-id>"
	}
	var params strings.Builder
	enc := json.NewEncoder(&params)
	enc.SetEscapeHTML(false) // keep the <placeholders> readable
	_ = enc.Encode(struct {
		Name      string   `json:"name"`
		Issuer    string   `json:"issuer"`
		Subject   string   `json:"subject"`
		Audiences []string `json:"audiences"`
	}{"<name>", issuer, subject, []string{audience}})
	return fmt.Sprintf("managed identity: az identity federated-credential create --name <name> --identity-name <identity> --resource-group <group> "+
		"--issuer %s --subject %s --audiences %s; application: az ad app federated-credential create --id %s --parameters '%s'",
		issuer, subject, audience, clientID, strings.TrimSpace(params.String()))
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
