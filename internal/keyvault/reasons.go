package keyvault

import (
	"errors"
	"net"
	"strings"

	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

// Condition reasons returned by Reason. They are fixed CamelCase words for status conditions and events.
const (
	ReasonSecretNotFound              = "SecretNotFound"
	ReasonCertificateNotFound         = "CertificateNotFound"
	ReasonKeyNotFound                 = "KeyNotFound"
	ReasonSecretDisabled              = "SecretDisabled"
	ReasonCertificateDisabled         = "CertificateDisabled"
	ReasonKeyDisabled                 = "KeyDisabled"
	ReasonForbiddenByRbac             = "ForbiddenByRbac"
	ReasonForbiddenByPolicy           = "ForbiddenByPolicy"
	ReasonForbiddenByFirewall         = "ForbiddenByFirewall"
	ReasonAccessDenied                = "AccessDenied"
	ReasonThrottled                   = "Throttled"
	ReasonUnauthorized                = "Unauthorized"
	ReasonAuthenticationFailed        = "AuthenticationFailed"
	ReasonFederatedCredentialMismatch = "FederatedCredentialMismatch"
	ReasonClientNotFound              = "ClientNotFound"
	ReasonInvalidClientSecret         = "InvalidClientSecret"
	ReasonInvalidClientCertificate    = "InvalidClientCertificate"
	ReasonTenantNotFound              = "TenantNotFound"
	ReasonTenantMismatch              = "TenantMismatch"
	ReasonTokenServiceUnavailable     = "TokenServiceUnavailable"
	ReasonKeyVaultUnavailable         = "KeyVaultUnavailable"
	ReasonVaultNotResolvable          = "VaultNotResolvable"
	ReasonNotACertificate             = "NotACertificate"
	ReasonTooManySecrets              = "TooManySecrets"
	ReasonInvalidRequest              = "InvalidRequest"
	ReasonTLSVerificationFailed       = "TLSVerificationFailed"
	ReasonKeyVaultError               = "KeyVaultError"
)

var aadstsReasons = map[string]string{
	// No federated credential matches the presented assertion: generic (70021), or naming the
	// issuer (700211), the audience (700212), the subject (700213), or a subject that matches only
	// when letter case is ignored (7002138).
	"70021":   ReasonFederatedCredentialMismatch,
	"700211":  ReasonFederatedCredentialMismatch,
	"700212":  ReasonFederatedCredentialMismatch,
	"700213":  ReasonFederatedCredentialMismatch,
	"7002138": ReasonFederatedCredentialMismatch,
	"700016":  ReasonClientNotFound,
	"7000215": ReasonInvalidClientSecret,
	"700027":  ReasonInvalidClientCertificate,
	"90002":   ReasonTenantNotFound,
}

// Reason gives a fixed CamelCase reason for err, for conditions and events. It returns "" for nil
// and KeyVaultError for errors it does not know.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		return ReasonKeyVaultError
	}
	//nolint:errorlint // Kind holds a bare sentinel, never a wrapped error: == is exact
	switch e.Kind {
	case ErrNotFound:
		return byType(e.Type, ReasonSecretNotFound, ReasonCertificateNotFound, ReasonKeyNotFound)
	case ErrDisabled:
		return byType(e.Type, ReasonSecretDisabled, ReasonCertificateDisabled, ReasonKeyDisabled)
	case ErrForbidden:
		switch e.InnerCode {
		case ReasonForbiddenByRbac, ReasonForbiddenByPolicy, ReasonForbiddenByFirewall:
			return e.InnerCode
		}
		return ReasonAccessDenied
	case ErrThrottled:
		return ReasonThrottled
	case ErrUnauthorized:
		return ReasonUnauthorized
	case ErrAuth:
		// An outage of Entra ID is not a configuration error, whatever
		// credential saw it.
		if tokenServiceUnavailable(e) {
			return ReasonTokenServiceUnavailable
		}
		var ar authReasoner
		if errors.As(e.Err, &ar) && ar.AuthReason() != "" {
			return ar.AuthReason()
		}
		if r, ok := aadstsReasons[e.AADSTS]; ok {
			return r
		}
		if e.AADSTS == "" && strings.Contains(e.Message, "configured to acquire tokens for tenant") {
			return ReasonTenantMismatch // azidentity refused the tenant named by the vault's challenge
		}
		return ReasonAuthenticationFailed
	case ErrTransient:
		var dnsErr *net.DNSError
		if errors.As(e.Err, &dnsErr) && dnsErr.IsNotFound {
			return ReasonVaultNotResolvable
		}
		return ReasonKeyVaultUnavailable
	case ErrNotCertificate:
		return ReasonNotACertificate
	case ErrTooMany:
		return ReasonTooManySecrets
	case ErrInvalid:
		return ReasonInvalidRequest
	}
	if isTLSError(e.Err) {
		return ReasonTLSVerificationFailed
	}
	return ReasonKeyVaultError
}

func byType(t kvtypes.ObjectType, secret, cert, key string) string {
	switch t {
	case kvtypes.TypeCertificate:
		return cert
	case kvtypes.TypeKey:
		return key
	}
	return secret
}

// Hint gives the user's next step for err, for condition messages. It returns "" when there is none.
func Hint(err error) string {
	reason := Reason(err)
	var e *Error
	errors.As(err, &e)
	switch reason {
	case ReasonSecretNotFound, ReasonCertificateNotFound, ReasonKeyNotFound:
		return "check the object name and version in the vault; it may be deleted or not created yet"
	case ReasonSecretDisabled, ReasonCertificateDisabled, ReasonKeyDisabled:
		return "enable the object (or the version) in the vault, or reference another version"
	case ReasonForbiddenByRbac:
		if e != nil && isWrite(e.Op) {
			if e.Type == kvtypes.TypeCertificate {
				return "grant the identity the 'Key Vault Certificates Officer' role on the vault (or on the certificate): pushing a certificate imports, reads and deletes certificates"
			}
			return "grant the identity the 'Key Vault Secrets Officer' role on the vault (or on the secret): pushing a secret sets, reads and deletes secrets"
		}
		if e != nil && e.Type == kvtypes.TypeKey {
			return "grant the identity the 'Key Vault Crypto User' role on the vault"
		}
		if e != nil && e.Op == opListSecrets {
			return "grant the identity the 'Key Vault Secrets User' role on the vault (listing needs it on the whole vault)"
		}
		return "grant the identity the 'Key Vault Secrets User' role on the vault"
	case ReasonForbiddenByPolicy:
		if e != nil && e.Type == kvtypes.TypeKey {
			return "add the 'get' key permission for the identity to the vault's access policies"
		}
		return "add the 'get' and 'list' secret permissions for the identity to the vault's access policies"
	case ReasonForbiddenByFirewall:
		return "allow the operator's outbound address in the vault's firewall, or reach the vault through a private endpoint"
	case ReasonAccessDenied:
		return "check the identity's role assignments and the vault's network rules"
	case ReasonThrottled:
		return "the vault is throttling requests; vaultsync retries after the interval the vault asked for; lengthen refresh intervals or spread objects over vaults"
	case ReasonUnauthorized:
		return "the vault rejected the token: check that the identity belongs to the vault's tenant"
	case ReasonFederatedCredentialMismatch:
		return federationHint(e)
	case ReasonClientNotFound:
		return "check the client id: no application with that id exists in the tenant"
	case ReasonInvalidClientSecret:
		return "the client secret is wrong or expired: create a new one and update the referenced Kubernetes Secret"
	case ReasonInvalidClientCertificate:
		return "upload the certificate to the Entra application, or reference the certificate whose key signs the assertion"
	case ReasonTenantNotFound:
		return "check the tenant id"
	case ReasonTokenServiceUnavailable:
		return "Microsoft Entra ID did not issue a token (unreachable, unavailable or throttling); vaultsync retries with backoff"
	case ReasonTenantMismatch:
		return "the vault belongs to another tenant than the identity: set the identity's tenant id to the vault's tenant"
	case ReasonAuthenticationFailed:
		var ar authReasoner
		if e != nil && errors.As(e.Err, &ar) && ar.AuthHint() != "" {
			return ar.AuthHint()
		}
		return "check the identity's tenant id, client id and credential"
	case ReasonKeyVaultUnavailable:
		return "the vault could not be reached or failed; vaultsync retries with backoff"
	case ReasonVaultNotResolvable:
		return "check the vault URL: its host name does not resolve"
	case ReasonNotACertificate:
		return "the object is a plain secret: reference it with type secret"
	case ReasonTooManySecrets:
		return "narrow the find filter or split the secrets over several vaults"
	case ReasonInvalidRequest:
		return "check the vault URL, object name (1-127 letters, digits and dashes) and version (32 hex characters)"
	case ReasonTLSVerificationFailed:
		return "the vault's TLS certificate is not trusted: check proxies and the trusted CA bundle"
	case ReasonKeyVaultError:
		if e != nil {
			return "unexpected answer from the vault; vaultsync retries with backoff"
		}
	}
	var ar authReasoner
	if e != nil && errors.As(e.Err, &ar) {
		return ar.AuthHint()
	}
	return ""
}

// federationHint is the next step for a federated credential mismatch seen without the presented
// token (internal/credentials' own hint, which quotes the token's claims, wins when it is there).
func federationHint(e *Error) string {
	what := map[string]string{
		"700211": "no federated credential has the token's issuer (Entra's message names it; it must equal the cluster's service-account issuer exactly, trailing \"/\" included)",
		"700212": "the federated credential of the token's issuer and subject does not list the token's audience (Entra's message names it)",
		"700213": "no federated credential of the token's issuer has the token's subject (Entra's message names it)",
		"7002138": "a federated credential's subject differs from the token's subject (Entra's message names it) only in letter case, " +
			"and Entra ID compares subjects case-sensitively: set its subject to exactly the token's",
	}[aadstsOfError(e)]
	if what == "" {
		what = "no federated credential matches the token's issuer, subject and audience"
	}
	return what + "; add a federated credential to the managed identity or Entra application with the cluster's service-account issuer, " +
		"subject system:serviceaccount:<namespace>:<name> and audience api://AzureADTokenExchange " +
		"(az identity federated-credential create --name <name> --identity-name <identity> --resource-group <group> --issuer <issuer> --subject <subject> --audiences api://AzureADTokenExchange, " +
		"or for an application az ad app federated-credential create --id <client-id> --parameters <json>)"
}

func aadstsOfError(e *Error) string {
	if e == nil {
		return ""
	}
	return e.AADSTS
}

// isWrite reports whether op is one of the operations of a push (writes, and the reads that
// decide them).
func isWrite(op string) bool {
	switch op {
	case opGetSecretInfo, opSetSecret, opDeleteSecret, opGetCertificateInfo, opImportCertificate, opDeleteCertificate:
		return true
	}
	return false
}
