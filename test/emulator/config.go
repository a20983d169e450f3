package emulator

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// Aliases of the wire types, so users of the in-process API need only this package.
type (
	// Identity is an Entra ID application or managed identity.
	Identity = admin.Identity
	// ClientCertificate is a registered client certificate.
	ClientCertificate = admin.ClientCertificate
	// FederatedCredential trusts an external token issuer.
	FederatedCredential = admin.FederatedCredential
	// ManagedIdentity marks an identity as a managed identity.
	ManagedIdentity = admin.ManagedIdentity
	// Vault is an emulated Key Vault.
	Vault = admin.Vault
	// RoleAssignment grants a role on a vault.
	RoleAssignment = admin.RoleAssignment
	// Limits is a per-vault request budget.
	Limits = admin.Limits
	// Secret seeds a secret.
	Secret = admin.Secret
	// SecretVersion is one secret version.
	SecretVersion = admin.SecretVersion
	// SecretUpdate changes secret version properties.
	SecretUpdate = admin.SecretUpdate
	// Certificate seeds or imports a certificate.
	Certificate = admin.Certificate
	// GenerateCertificate asks for a generated 3-level chain.
	GenerateCertificate = admin.GenerateCertificate
	// Key seeds a key.
	Key = admin.Key
	// VersionInfo identifies a created version.
	VersionInfo = admin.VersionInfo
	// Faults is the set of injected faults.
	Faults = admin.Faults
	// VaultFault disturbs vault requests.
	VaultFault = admin.VaultFault
	// TokenServiceFault disturbs the token services.
	TokenServiceFault = admin.TokenServiceFault
	// LogEntry is one logged request.
	LogEntry = admin.LogEntry
	// LogFilter selects log entries.
	LogFilter = admin.LogFilter
	// Counter counts requests.
	Counter = admin.Counter
	// TokenRequest asks for a minted token.
	TokenRequest = admin.TokenRequest
	// Token is a minted access token.
	Token = admin.Token
	// Duration is a JSON/YAML duration.
	Duration = admin.Duration
)

// DurationOf returns a *Duration of d.
func DurationOf(d time.Duration) *Duration { return admin.DurationOf(d) }

// Content types of a certificate's secret.
const (
	ContentTypePKCS12 = admin.ContentTypePKCS12
	ContentTypePEM    = admin.ContentTypePEM
)

// DefaultTenantID is the tenant used when the configuration names none.
const DefaultTenantID = "8d1c7e4a-3f2b-4a6c-9e0d-5b7a1c2e3f40"

// DefaultFederatedAudience is the audience Entra ID expects in workload identity assertions.
const DefaultFederatedAudience = "api://AzureADTokenExchange"

// Config is the emulator configuration, read from one YAML (or JSON) file.
type Config struct {
	// TenantID of the emulated directory (a GUID); DefaultTenantID when empty.
	TenantID string `json:"tenantId,omitempty"`
	// TokenLifetime of access tokens; default 1h, at least 1s.
	TokenLifetime *Duration `json:"tokenLifetime,omitempty"`
	// ManagedIdentityHeader is the IDENTITY_HEADER secret; random when empty.
	ManagedIdentityHeader string     `json:"managedIdentityHeader,omitempty"`
	Identities            []Identity `json:"identities,omitempty"`
	Vaults                []Vault    `json:"vaults,omitempty"`
	// EventSubscriptions deliver Key Vault events to loopback webhooks (validated in the background at start).
	EventSubscriptions []EventSubscription `json:"eventSubscriptions,omitempty"`

	// BaseDir resolves relative file names in the configuration (LoadConfig sets it to the file's folder).
	BaseDir string `json:"-"`
}

// LoadConfig reads and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(b, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and validates a YAML or JSON configuration; relative file names resolve against
// the working directory.
func ParseConfig(data []byte) (*Config, error) {
	return parseConfig(data, "")
}

func parseConfig(data []byte, baseDir string) (*Config, error) {
	cfg := &Config{}
	if err := yaml.UnmarshalStrict(data, cfg); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	cfg.BaseDir = baseDir
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

var (
	guidRE       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	vaultNameRE  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)
	objectNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
)

// fieldErr builds the "path: message" errors of validation.
func fieldErr(path, format string, args ...any) error {
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
}

// Validate checks the configuration and fills defaults; errors name the offending field.
func (c *Config) Validate() error {
	if c.TenantID == "" {
		c.TenantID = DefaultTenantID
	}
	if !guidRE.MatchString(c.TenantID) {
		return fieldErr("tenantId", "%q is not a GUID", c.TenantID)
	}
	c.TenantID = strings.ToLower(c.TenantID)
	if c.TokenLifetime != nil && c.TokenLifetime.Duration < time.Second {
		return fieldErr("tokenLifetime", "must be at least 1s")
	}
	if strings.ContainsAny(c.ManagedIdentityHeader, " \t\r\n") {
		return fieldErr("managedIdentityHeader", "must not contain white space")
	}
	seen := map[string]string{}
	system := ""
	for i := range c.Identities {
		p := fmt.Sprintf("identities[%d]", i)
		if err := validateIdentity(&c.Identities[i], p, c.BaseDir); err != nil {
			return err
		}
		id := &c.Identities[i]
		for _, k := range []string{id.Name, id.ClientID, id.ObjectID} {
			k = strings.ToLower(k)
			if prev, ok := seen[k]; ok {
				return fieldErr(p, "name, clientId or objectId %q already used by %s", k, prev)
			}
			seen[k] = p
		}
		if id.ManagedIdentity != nil && id.ManagedIdentity.Type == admin.SystemAssigned {
			if system != "" {
				return fieldErr(p+".managedIdentity.type", "only one SystemAssigned identity is allowed (also %s)", system)
			}
			system = p
		}
	}
	vaultSeen := map[string]string{}
	for i := range c.Vaults {
		p := fmt.Sprintf("vaults[%d]", i)
		v := &c.Vaults[i]
		if err := validateVault(v, p, c.BaseDir, func(principal string) bool {
			_, ok := seen[strings.ToLower(principal)]
			return ok
		}); err != nil {
			return err
		}
		host := vaultHost(v.Name, v.Cloud)
		if prev, ok := vaultSeen[host]; ok {
			return fieldErr(p+".name", "vault %q already defined by %s", v.Name, prev)
		}
		vaultSeen[host] = p
	}
	subSeen := map[string]string{}
	for i := range c.EventSubscriptions {
		p := fmt.Sprintf("eventSubscriptions[%d]", i)
		if err := validateEventSubscription(&c.EventSubscriptions[i], p, c.BaseDir); err != nil {
			return err
		}
		n := strings.ToLower(c.EventSubscriptions[i].Name)
		if prev, ok := subSeen[n]; ok {
			return fieldErr(p+".name", "already used by %s", prev)
		}
		subSeen[n] = p
	}
	return nil
}

func validateIdentity(id *Identity, p, baseDir string) error {
	if id.Name == "" {
		return fieldErr(p+".name", "required")
	}
	if !guidRE.MatchString(id.ClientID) {
		return fieldErr(p+".clientId", "%q is not a GUID", id.ClientID)
	}
	id.ClientID = strings.ToLower(id.ClientID)
	if id.ObjectID == "" {
		id.ObjectID = derivedGUID("oid:" + id.ClientID)
	}
	if !guidRE.MatchString(id.ObjectID) {
		return fieldErr(p+".objectId", "%q is not a GUID", id.ObjectID)
	}
	id.ObjectID = strings.ToLower(id.ObjectID)
	for j, s := range id.ClientSecrets {
		if s == "" {
			return fieldErr(fmt.Sprintf("%s.clientSecrets[%d]", p, j), "must not be empty")
		}
	}
	for j, cc := range id.Certificates {
		if _, err := parseClientCertificate(cc, baseDir); err != nil {
			return fieldErr(fmt.Sprintf("%s.certificates[%d]", p, j), "%v", err)
		}
	}
	for j := range id.FederatedCredentials {
		if err := validateFederated(&id.FederatedCredentials[j], fmt.Sprintf("%s.federatedCredentials[%d]", p, j), baseDir); err != nil {
			return err
		}
	}
	if mi := id.ManagedIdentity; mi != nil {
		switch mi.Type {
		case "":
			mi.Type = admin.UserAssigned
		case admin.SystemAssigned, admin.UserAssigned:
		default:
			return fieldErr(p+".managedIdentity.type", "unknown type %q (want SystemAssigned or UserAssigned)", mi.Type)
		}
	}
	return nil
}

func parseClientCertificate(cc ClientCertificate, baseDir string) ([]*x509.Certificate, error) {
	if (cc.PEM == "") == (cc.File == "") {
		return nil, errors.New("exactly one of pem or file is required")
	}
	data := []byte(cc.PEM)
	if cc.File != "" {
		b, err := os.ReadFile(resolvePath(baseDir, cc.File))
		if err != nil {
			return nil, fmt.Errorf("file: %w", err)
		}
		data = b
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bad certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

func validateFederated(fc *FederatedCredential, p, baseDir string) error {
	if fc.Issuer == "" {
		return fieldErr(p+".issuer", "required")
	}
	if fc.Subject == "" {
		return fieldErr(p+".subject", "required")
	}
	if fc.Audience == "" {
		fc.Audience = DefaultFederatedAudience
	}
	hasInline := len(fc.JWKS) > 0 && string(fc.JWKS) != "null"
	if hasInline == (fc.JWKSURL != "") {
		return fieldErr(p, "exactly one of jwks or jwksURL is required")
	}
	if hasInline {
		if _, err := parseJWKS(fc.JWKS); err != nil {
			return fieldErr(p+".jwks", "%v", err)
		}
		return nil
	}
	u, err := url.Parse(fc.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fieldErr(p+".jwksURL", "%q is not an http(s) URL", fc.JWKSURL)
	}
	if !isLoopbackHost(u.Hostname()) {
		return fieldErr(p+".jwksURL", "host %q is not loopback; the emulator only fetches from this machine", u.Hostname())
	}
	for _, f := range []struct{ name, v string }{{"caFile", fc.CAFile}, {"bearerTokenFile", fc.BearerTokenFile}} {
		if f.v == "" {
			continue
		}
		if _, err := os.Stat(resolvePath(baseDir, f.v)); err != nil {
			return fieldErr(p+"."+f.name, "%v", err)
		}
	}
	return nil
}

func validateVault(v *Vault, p, baseDir string, principalKnown func(string) bool) error {
	if !vaultNameRE.MatchString(v.Name) {
		return fieldErr(p+".name", "%q is not a valid vault name (3-24 letters, digits and dashes, starting with a letter)", v.Name)
	}
	v.Name = strings.ToLower(v.Name)
	if v.Cloud == "" {
		v.Cloud = admin.CloudPublic
	}
	if _, ok := clouds[v.Cloud]; !ok {
		return fieldErr(p+".cloud", "unknown cloud %q (want AzurePublic, AzureChina or AzureUSGovernment)", v.Cloud)
	}
	for j := range v.RoleAssignments {
		if err := validateRoleAssignment(&v.RoleAssignments[j], fmt.Sprintf("%s.roleAssignments[%d]", p, j), principalKnown); err != nil {
			return err
		}
	}
	names := map[string]bool{}
	for j := range v.Secrets {
		sp := fmt.Sprintf("%s.secrets[%d]", p, j)
		s := &v.Secrets[j]
		if !objectNameRE.MatchString(s.Name) {
			return fieldErr(sp+".name", "%q is not a valid secret name", s.Name)
		}
		if names[strings.ToLower(s.Name)] {
			return fieldErr(sp+".name", "duplicate name %q", s.Name)
		}
		names[strings.ToLower(s.Name)] = true
		if len(s.Versions) > 0 && (s.Value != "" || s.ContentType != "" || s.Tags != nil || s.Enabled != nil) {
			return fieldErr(sp, "give either value (one version) or versions, not both")
		}
		if len(s.Versions) == 0 {
			s.Versions = []SecretVersion{s.SecretVersion}
			s.SecretVersion = SecretVersion{}
		}
	}
	for j := range v.Certificates {
		cp := fmt.Sprintf("%s.certificates[%d]", p, j)
		c := &v.Certificates[j]
		if err := validateCertificate(c, cp, baseDir); err != nil {
			return err
		}
		if names[strings.ToLower(c.Name)] {
			return fieldErr(cp+".name", "name %q already used by a secret or certificate (a certificate owns the secret of its name)", c.Name)
		}
		names[strings.ToLower(c.Name)] = true
	}
	keyNames := map[string]bool{}
	for j := range v.Keys {
		kp := fmt.Sprintf("%s.keys[%d]", p, j)
		k := &v.Keys[j]
		if err := validateKey(k, kp); err != nil {
			return err
		}
		if keyNames[strings.ToLower(k.Name)] {
			return fieldErr(kp+".name", "duplicate name %q", k.Name)
		}
		keyNames[strings.ToLower(k.Name)] = true
	}
	for _, c := range v.Certificates {
		if keyNames[strings.ToLower(c.Name)] {
			return fieldErr(p+".keys", "name %q already used by a certificate (a certificate owns the key of its name)", c.Name)
		}
	}
	if l := v.Limits; l != nil {
		if l.Requests < 0 {
			return fieldErr(p+".limits.requests", "must be positive")
		}
		if l.Window != nil && l.Window.Duration <= 0 {
			return fieldErr(p+".limits.window", "must be positive")
		}
		switch l.Mode {
		case "", "sliding", "fixed":
		default:
			return fieldErr(p+".limits.mode", "unknown mode %q (want sliding or fixed)", l.Mode)
		}
	}
	return nil
}

func validateRoleAssignment(ra *RoleAssignment, p string, principalKnown func(string) bool) error {
	if ra.Principal == "" {
		return fieldErr(p+".principal", "required")
	}
	if principalKnown != nil && !principalKnown(ra.Principal) {
		return fieldErr(p+".principal", "no identity with name, clientId or objectId %q", ra.Principal)
	}
	if _, ok := roles[strings.ToLower(ra.Role)]; !ok {
		return fieldErr(p+".role", "unknown role %q", ra.Role)
	}
	if ra.Scope != "" {
		s := strings.Trim(ra.Scope, "/")
		kind, name, ok := strings.Cut(s, "/")
		if !ok || (kind != "secrets" && kind != "certificates" && kind != "keys") || !objectNameRE.MatchString(name) {
			return fieldErr(p+".scope", "%q is not \"\" or secrets/NAME, certificates/NAME or keys/NAME", ra.Scope)
		}
		ra.Scope = kind + "/" + strings.ToLower(name)
	}
	return nil
}

func validateCertificate(c *Certificate, p, baseDir string) error {
	if !objectNameRE.MatchString(c.Name) {
		return fieldErr(p+".name", "%q is not a valid certificate name", c.Name)
	}
	n := 0
	for _, set := range []bool{c.Generate != nil, c.PEM != "", c.PEMFile != "", c.PFX != "", c.PFXFile != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fieldErr(p, "exactly one of generate, pem, pemFile, pfx or pfxFile is required")
	}
	switch c.ContentType {
	case "":
		c.ContentType = admin.ContentTypePKCS12
	case admin.ContentTypePKCS12, admin.ContentTypePEM:
	default:
		return fieldErr(p+".contentType", "unknown content type %q (want %s or %s)", c.ContentType, admin.ContentTypePKCS12, admin.ContentTypePEM)
	}
	switch c.PFXEncoding {
	case "":
		c.PFXEncoding = admin.PFXModern
	case admin.PFXModern, admin.PFXLegacy:
	default:
		return fieldErr(p+".pfxEncoding", "unknown encoding %q (want modern or legacy)", c.PFXEncoding)
	}
	if g := c.Generate; g != nil {
		switch strings.ToUpper(g.KeyType) {
		case "", "RSA":
			g.KeyType = "RSA"
			if g.KeySize == 0 {
				g.KeySize = 2048
			}
			if g.KeySize != 2048 && g.KeySize != 3072 && g.KeySize != 4096 {
				return fieldErr(p+".generate.keySize", "%d is not 2048, 3072 or 4096", g.KeySize)
			}
		case "EC":
			g.KeyType = "EC"
			if g.Curve == "" {
				g.Curve = "P-256"
			}
			if _, ok := curves[g.Curve]; !ok {
				return fieldErr(p+".generate.curve", "unknown curve %q (want P-256, P-384 or P-521)", g.Curve)
			}
		default:
			return fieldErr(p+".generate.keyType", "unknown key type %q (want RSA or EC)", g.KeyType)
		}
		if g.Validity != nil && g.Validity.Duration <= 0 {
			return fieldErr(p+".generate.validity", "must be positive")
		}
		return nil
	}
	if _, err := loadCertificateMaterial(c, baseDir); err != nil {
		return fieldErr(p, "%v", err)
	}
	return nil
}

func validateKey(k *Key, p string) error {
	if !objectNameRE.MatchString(k.Name) {
		return fieldErr(p+".name", "%q is not a valid key name", k.Name)
	}
	switch strings.ToUpper(k.Kty) {
	case "", "RSA":
		k.Kty = "RSA"
		if k.Size == 0 {
			k.Size = 2048
		}
		if k.Size != 2048 && k.Size != 3072 && k.Size != 4096 {
			return fieldErr(p+".size", "%d is not 2048, 3072 or 4096", k.Size)
		}
	case "EC":
		k.Kty = "EC"
		if k.Curve == "" {
			k.Curve = "P-256"
		}
		if _, ok := curves[k.Curve]; !ok {
			return fieldErr(p+".curve", "unknown curve %q (want P-256, P-384 or P-521)", k.Curve)
		}
	default:
		return fieldErr(p+".kty", "unknown key type %q (want RSA or EC)", k.Kty)
	}
	for j, op := range k.KeyOps {
		if !validKeyOps[op] {
			return fieldErr(fmt.Sprintf("%s.keyOps[%d]", p, j), "unknown key operation %q", op)
		}
	}
	return nil
}

var validKeyOps = map[string]bool{"encrypt": true, "decrypt": true, "sign": true, "verify": true, "wrapKey": true, "unwrapKey": true, "import": true, "export": true}

func resolvePath(baseDir, p string) string {
	if p == "" || filepath.IsAbs(p) || baseDir == "" {
		return p
	}
	return filepath.Join(baseDir, p)
}

// isLoopbackHost reports whether a host name or IP is on this machine.
func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// checkLoopbackAddr refuses listen addresses that are not loopback.
func checkLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("listen address %q is not loopback; the emulator only binds 127.0.0.1, ::1 or localhost", addr)
	}
	return nil
}
