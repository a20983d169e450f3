// Package kvtypes holds the few Key Vault words that the client (internal/keyvault), the audit
// log (internal/audit) and the Event Grid receiver (internal/events) share: the kind of an
// object and the description of one request. It imports nothing but the standard library, so
// sharing them costs audit and events no dependency on the Key Vault client or the Azure SDK.
package kvtypes

import "time"

// ObjectType names the kind of Key Vault object.
type ObjectType string

const (
	// TypeSecret is a plain Key Vault secret.
	TypeSecret ObjectType = "secret"
	// TypeCertificate is a certificate, read with its private key through the secrets endpoint.
	TypeCertificate ObjectType = "certificate"
	// TypeKey is a key; only its public parts are ever returned.
	TypeKey ObjectType = "key"
)

// RequestInfo describes one HTTP request sent to a vault, for observers that need more than
// the host, operation, status and duration (the audit log).
type RequestInfo struct {
	// VaultHost is the vault's host, e.g. demo.vault.azure.net.
	VaultHost string
	// Operation is GetSecret, GetCertificateSecret, GetKey, ListSecrets, or one of a push
	// (GetSecretProperties, SetSecret, DeleteSecret, GetCertificate, ImportCertificate,
	// DeleteCertificate).
	Operation string
	// ObjectType is the kind of object the operation reads.
	ObjectType ObjectType
	// Object is the object name from the request path ("" for a list).
	Object string
	// Version is the version from the request path or, when the latest was asked for, the
	// version the successful answer named.
	Version string
	// StatusCode is the HTTP status (0 when no response arrived, see Err).
	StatusCode int
	Duration   time.Duration
	Err        error
	// Challenge is true for a request sent without a bearer token: the first leg of Key Vault's
	// challenge authentication, normally answered 401 and repeated with a token.
	Challenge bool
}
