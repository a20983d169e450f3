// Package admin holds the wire types shared by the emulator's YAML configuration and its admin HTTP API,
// and a small client for that API. It imports nothing of the emulator, so out-of-process users (the demo,
// end-to-end tests) can drive a running kv-emulator without linking it.
package admin

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("1h", "1500ms") in JSON and YAML.
// A bare number is read as seconds.
type Duration struct {
	time.Duration
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: %w", s, err)
		}
		d.Duration = v
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("invalid duration %s: want a string like \"10s\" or a number of seconds", string(b))
	}
	d.Duration = time.Duration(f * float64(time.Second))
	return nil
}

// Identity is an Entra ID application (service principal) or managed identity of the emulated tenant.
type Identity struct {
	// Name is a unique label used in role assignments and the request log.
	Name string `json:"name"`
	// ClientID is the application (client) id, a GUID.
	ClientID string `json:"clientId"`
	// ObjectID is the service principal object id, a GUID; derived from ClientID when empty.
	ObjectID string `json:"objectId,omitempty"`
	// ClientSecrets are accepted client secret values.
	ClientSecrets []string `json:"clientSecrets,omitempty"`
	// Certificates are registered client certificates (public part only).
	Certificates []ClientCertificate `json:"certificates,omitempty"`
	// FederatedCredentials are trusted external token issuers (workload identity federation).
	FederatedCredentials []FederatedCredential `json:"federatedCredentials,omitempty"`
	// ManagedIdentity makes the identity reachable through the managed identity endpoint.
	ManagedIdentity *ManagedIdentity `json:"managedIdentity,omitempty"`
}

// ClientCertificate is a registered client certificate: PEM text or a PEM file (relative to the config file).
type ClientCertificate struct {
	PEM  string `json:"pem,omitempty"`
	File string `json:"file,omitempty"`
}

// FederatedCredential trusts tokens of an external issuer for an identity. Issuer, Subject and Audience
// must match the presented assertion exactly. The signing keys come from JWKS (an inline JWKS document,
// as a YAML/JSON object or a JSON string) or are fetched from JWKSURL (loopback only), optionally
// with a CA file and a bearer token file (for a kube-apiserver's /openid/v1/jwks).
type FederatedCredential struct {
	Name            string          `json:"name,omitempty"`
	Issuer          string          `json:"issuer"`
	Subject         string          `json:"subject"`
	Audience        string          `json:"audience,omitempty"`
	JWKS            json.RawMessage `json:"jwks,omitempty"`
	JWKSURL         string          `json:"jwksURL,omitempty"`
	CAFile          string          `json:"caFile,omitempty"`
	BearerTokenFile string          `json:"bearerTokenFile,omitempty"`
}

// Managed identity types.
const (
	SystemAssigned = "SystemAssigned"
	UserAssigned   = "UserAssigned"
)

// ManagedIdentity marks an identity as a managed identity. The SystemAssigned one answers managed identity
// requests without a selector; UserAssigned ones are selected by client_id, object_id or mi_res_id.
type ManagedIdentity struct {
	Type       string `json:"type"`
	ResourceID string `json:"resourceId,omitempty"`
}

// Cloud names.
const (
	CloudPublic     = "AzurePublic"
	CloudChina      = "AzureChina"
	CloudGovernment = "AzureUSGovernment"
)

// Vault is an emulated Key Vault, reachable at https://{name}.vault.azure.net (or the sovereign suffix).
type Vault struct {
	Name            string           `json:"name"`
	Cloud           string           `json:"cloud,omitempty"`
	RoleAssignments []RoleAssignment `json:"roleAssignments,omitempty"`
	Secrets         []Secret         `json:"secrets,omitempty"`
	Certificates    []Certificate    `json:"certificates,omitempty"`
	Keys            []Key            `json:"keys,omitempty"`
	Limits          *Limits          `json:"limits,omitempty"`
	// EmptyLastPage makes every list end with an extra empty page, as the real service sometimes does.
	EmptyLastPage bool `json:"emptyLastPage,omitempty"`
}

// RoleAssignment grants a role on a vault (or, with Scope "secrets/NAME", "certificates/NAME" or
// "keys/NAME", on one object) to an identity named by name, client id or object id.
type RoleAssignment struct {
	Principal string `json:"principal"`
	Role      string `json:"role"`
	Scope     string `json:"scope,omitempty"`
}

// Limits is a per-vault request budget.
type Limits struct {
	// Requests per Window; default 4000 per 10s.
	Requests int       `json:"requests,omitempty"`
	Window   *Duration `json:"window,omitempty"`
	// Mode is "sliding" (default) or "fixed".
	Mode string `json:"mode,omitempty"`
}

// SecretVersion is the content and properties of one secret version.
type SecretVersion struct {
	Value       string            `json:"value"`
	ContentType string            `json:"contentType,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Enabled     *bool             `json:"enabled,omitempty"`
	NotBefore   *time.Time        `json:"nbf,omitempty"`
	Expires     *time.Time        `json:"exp,omitempty"`
}

// Secret seeds a secret. Either the inline SecretVersion fields give one version, or Versions lists
// several, oldest first (the last one is the latest).
type Secret struct {
	Name string `json:"name"`
	SecretVersion
	Versions []SecretVersion `json:"versions,omitempty"`
}

// SecretUpdate changes the properties of a secret version; nil fields stay as they are.
type SecretUpdate struct {
	ContentType *string           `json:"contentType,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Enabled     *bool             `json:"enabled,omitempty"`
	NotBefore   *time.Time        `json:"nbf,omitempty"`
	Expires     *time.Time        `json:"exp,omitempty"`
}

// Certificate content types.
const (
	ContentTypePKCS12 = "application/x-pkcs12"
	ContentTypePEM    = "application/x-pem-file"
)

// PKCS#12 encodings of a certificate's secret.
const (
	PFXModern = "modern" // AES-256-CBC + PBKDF2 (default)
	PFXLegacy = "legacy" // 3DES for the key, RC2-40 for the certificates
)

// Certificate seeds or imports a certificate. Exactly one of Generate, PEM, PEMFile, PFX or PFXFile.
type Certificate struct {
	Name     string               `json:"name"`
	Generate *GenerateCertificate `json:"generate,omitempty"`
	// PEM holds a private key (PKCS#8, PKCS#1 or SEC1) and the certificate chain, leaf first.
	PEM     string `json:"pem,omitempty"`
	PEMFile string `json:"pemFile,omitempty"`
	// PFX is a standard-base64 PKCS#12 file with Password.
	PFX      string `json:"pfx,omitempty"`
	PFXFile  string `json:"pfxFile,omitempty"`
	Password string `json:"password,omitempty"`
	// ContentType of the backing secret: application/x-pkcs12 (default) or application/x-pem-file.
	ContentType string `json:"contentType,omitempty"`
	// PFXEncoding of the backing secret when ContentType is PKCS#12: "modern" (default) or "legacy".
	PFXEncoding string            `json:"pfxEncoding,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Enabled     *bool             `json:"enabled,omitempty"`
}

// GenerateCertificate asks for a leaf certificate issued by a generated intermediate issued by a
// generated root (a 3-level chain).
type GenerateCertificate struct {
	// Subject like "CN=app.example.com"; default "CN={certificate name}".
	Subject  string   `json:"subject,omitempty"`
	DNSNames []string `json:"dnsNames,omitempty"`
	// KeyType "RSA" (default) or "EC"; KeySize 2048 (default), 3072, 4096; Curve P-256 (default), P-384, P-521.
	KeyType  string    `json:"keyType,omitempty"`
	KeySize  int       `json:"keySize,omitempty"`
	Curve    string    `json:"curve,omitempty"`
	Validity *Duration `json:"validity,omitempty"`
}

// Key seeds a key.
type Key struct {
	Name string `json:"name"`
	// Kty is RSA (default) or EC.
	Kty     string            `json:"kty,omitempty"`
	Size    int               `json:"size,omitempty"`
	Curve   string            `json:"curve,omitempty"`
	KeyOps  []string          `json:"keyOps,omitempty"`
	Tags    map[string]string `json:"tags,omitempty"`
	Enabled *bool             `json:"enabled,omitempty"`
}

// VersionInfo identifies an object version created through the admin API.
type VersionInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	ID      string `json:"id"`
	// X5t is the certificate thumbprint (certificates only).
	X5t string `json:"x5t,omitempty"`
}

// Faults is the complete set of injected faults.
type Faults struct {
	Vaults       []VaultFault       `json:"vaults,omitempty"`
	TokenService *TokenServiceFault `json:"tokenService,omitempty"`
	// TokenLifetime overrides the lifetime of newly issued access tokens.
	TokenLifetime *Duration `json:"tokenLifetime,omitempty"`
}

// VaultFault disturbs requests to a vault ("" = every vault), optionally one operation (e.g. "GetSecret").
// Latency is added first; then, if Status is set, the request fails with it with probability ErrorRate
// (0 means always). Count > 0 limits the fault to that many matching requests (it counts down).
type VaultFault struct {
	Vault     string    `json:"vault,omitempty"`
	Operation string    `json:"operation,omitempty"`
	Latency   *Duration `json:"latency,omitempty"`
	Status    int       `json:"status,omitempty"`
	ErrorRate float64   `json:"errorRate,omitempty"`
	Count     int       `json:"count,omitempty"`
}

// Token service fault modes.
const (
	TokenDownUnavailable = "unavailable" // HTTP 503 with an AADSTS error body
	TokenDownReset       = "reset"       // the connection is closed without an answer
)

// TokenServiceFault makes Entra ID (and the managed identity endpoint) fail or slow down.
type TokenServiceFault struct {
	Down    bool      `json:"down,omitempty"`
	Mode    string    `json:"mode,omitempty"`
	Latency *Duration `json:"latency,omitempty"`
}

// Services in the request log.
const (
	ServiceVault           = "keyvault"
	ServiceEntra           = "entra"
	ServiceManagedIdentity = "managedidentity"
	ServiceProxy           = "proxy"
)

// Token request methods in the request log (AuthMethod).
const (
	AuthClientSecret      = "client_secret"
	AuthClientCertificate = "client_certificate"
	AuthFederated         = "federated"
	AuthManagedIdentity   = "managed_identity"
	AuthMinted            = "minted"
)

// LogEntry is one request handled by the emulator.
type LogEntry struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Service string    `json:"service"`
	Host    string    `json:"host,omitempty"`
	Vault   string    `json:"vault,omitempty"`
	Method  string    `json:"method"`
	Path    string    `json:"path"`
	// Operation is the Key Vault operation id (GetSecret, SetSecret, GetSecrets, ...) or, for the token
	// services, Token, OpenIDConfiguration, InstanceDiscovery, ManagedIdentityToken.
	Operation  string `json:"operation"`
	Object     string `json:"object,omitempty"`
	Version    string `json:"version,omitempty"`
	Identity   string `json:"identity,omitempty"`
	AppID      string `json:"appid,omitempty"`
	ObjectID   string `json:"oid,omitempty"`
	AuthMethod string `json:"authMethod,omitempty"`
	Status     int    `json:"status"`
	ErrorCode  string `json:"errorCode,omitempty"`
	InnerCode  string `json:"innerCode,omitempty"`
}

// LogFilter selects log entries; empty fields match everything. Identity matches name, client id or object id.
type LogFilter struct {
	Service    string    `json:"service,omitempty"`
	Vault      string    `json:"vault,omitempty"`
	Operation  string    `json:"operation,omitempty"`
	Object     string    `json:"object,omitempty"`
	Identity   string    `json:"identity,omitempty"`
	AuthMethod string    `json:"authMethod,omitempty"`
	Status     int       `json:"status,omitempty"`
	Since      time.Time `json:"since,omitzero"`
}

// Match reports whether e passes the filter.
func (f LogFilter) Match(e LogEntry) bool {
	eq := func(want, got string) bool { return want == "" || equalFold(want, got) }
	return eq(f.Service, e.Service) && eq(f.Vault, e.Vault) && eq(f.Operation, e.Operation) &&
		eq(f.Object, e.Object) && eq(f.AuthMethod, e.AuthMethod) &&
		(f.Identity == "" || equalFold(f.Identity, e.Identity) || equalFold(f.Identity, e.AppID) || equalFold(f.Identity, e.ObjectID)) &&
		(f.Status == 0 || f.Status == e.Status) && (f.Since.IsZero() || !e.Time.Before(f.Since))
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Counter is the number of requests with the same service, vault, operation, identity, auth method and status.
type Counter struct {
	Service    string `json:"service"`
	Vault      string `json:"vault,omitempty"`
	Operation  string `json:"operation"`
	Identity   string `json:"identity,omitempty"`
	AuthMethod string `json:"authMethod,omitempty"`
	Status     int    `json:"status"`
	Count      int    `json:"count"`
}

// TokenRequest asks the emulator to mint an access token for an identity without a token request
// (for a fake `az` or curl).
type TokenRequest struct {
	// Principal is an identity name, client id or object id.
	Principal string `json:"principal"`
	// Resource defaults to https://vault.azure.net.
	Resource string    `json:"resource,omitempty"`
	Lifetime *Duration `json:"lifetime,omitempty"`
}

// Token is a minted access token.
type Token struct {
	AccessToken string `json:"accessToken"`
	ExpiresOn   int64  `json:"expiresOn"`
}

// Error is the admin API's error body.
type Error struct {
	Error string `json:"error"`
}

// DurationOf returns a *Duration of d (a convenience for literals).
func DurationOf(d time.Duration) *Duration { return &Duration{Duration: d} }
