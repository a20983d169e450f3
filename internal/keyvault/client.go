// Package keyvault reads secrets, certificates and keys from Azure Key Vault. It maps every
// failure once to a sentinel error (see Reason and Hint for conditions), shares identical fetches
// between callers (Coalescer) and keeps each vault within a client-side request budget (Budget).
// It knows nothing of Kubernetes.
//
// Wiring, once per process:
//
//	opts := &keyvault.Options{Budget: keyvault.NewBudget(keyvault.BudgetOptions{}),
//		Coalescer: keyvault.NewCoalescer(keyvault.DefaultCoalesceWindow), Observer: metrics}
//	clients := keyvault.NewClientCache(0, opts)
//
// and per reconcile, with a credential from internal/credentials' Cache:
//
//	c, err := clients.Get(vaultURL, cred, credKey.String())
//	s, err := c.GetSecret(ctx, name, version)
//	if err != nil { reason, hint := keyvault.Reason(err), keyvault.Hint(err); retry := keyvault.Retryable(err) }
package keyvault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

// DefaultMaxListItems bounds ListSecrets.
const DefaultMaxListItems = 10000

// Operation names passed to the Observer and used in errors.
const (
	opGetSecret            = "GetSecret"
	opGetCertificateSecret = "GetCertificateSecret"
	opGetKey               = "GetKey"
	opListSecrets          = "ListSecrets"
)

// Observer is told about every HTTP request sent to a vault, SDK retries and challenge round trips
// included (for metrics and audit). statusCode is 0 when no response arrived. It must be fast and
// safe for concurrent use.
type Observer interface {
	ObserveRequest(vaultHost, operation string, statusCode int, dur time.Duration, err error)
}

// Options configures a Client. All fields are optional.
type Options struct {
	// ClientOptions are passed to the SDK clients (transport, retry, cloud, logging).
	ClientOptions azcore.ClientOptions
	// DisableChallengeResourceVerification skips the check that the vault's challenge resource
	// matches the vault host. Only for tests that address a vault by IP.
	DisableChallengeResourceVerification bool
	// Budget, shared by every client of the process, rate-limits requests per vault.
	Budget *Budget
	// Coalescer, shared by every client of the process, shares identical fetches.
	Coalescer *Coalescer
	// Observer sees every HTTP request.
	Observer Observer
	// MaxListItems bounds ListSecrets (default 10,000); beyond it ListSecrets returns ErrTooMany.
	MaxListItems int
}

// Client reads one vault with one identity. It is safe for concurrent use; keep it (see ClientCache)
// so the SDK's token cache is reused.
type Client struct {
	vaultURL  string
	host      string
	identity  string
	secrets   *azsecrets.Client
	keys      *azkeys.Client
	certs     *azcore.Client
	coalescer *Coalescer
	maxList   int
}

// NewClient returns a client for the vault at vaultURL (https://{name}.vault.azure.net) that
// authenticates with cred. identityKey names the identity behind cred (for example the credential
// cache key); it keeps coalesced results of different identities apart and must not be empty.
func NewClient(vaultURL string, cred azcore.TokenCredential, identityKey string, opts *Options) (*Client, error) {
	normalized, host, err := NormalizeVaultURL(vaultURL)
	if err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, errors.New("keyvault: a credential is required")
	}
	if identityKey == "" {
		return nil, errors.New("keyvault: an identity key is required")
	}
	if opts == nil {
		opts = &Options{}
	}
	co := opts.ClientOptions
	co.PerRetryPolicies = append(append([]policy.Policy(nil), co.PerRetryPolicies...),
		&requestPolicy{host: host, budget: opts.Budget, observer: opts.Observer})
	adapter := credentialAdapter{cred: cred}
	secrets, err := azsecrets.NewClient(normalized, adapter, &azsecrets.ClientOptions{
		ClientOptions:                        co,
		DisableChallengeResourceVerification: opts.DisableChallengeResourceVerification,
	})
	if err != nil {
		return nil, fmt.Errorf("keyvault: creating secrets client: %w", err)
	}
	keys, err := azkeys.NewClient(normalized, adapter, &azkeys.ClientOptions{
		ClientOptions:                        co,
		DisableChallengeResourceVerification: opts.DisableChallengeResourceVerification,
	})
	if err != nil {
		return nil, fmt.Errorf("keyvault: creating keys client: %w", err)
	}
	certs, err := newCertificatesClient(adapter, co, !opts.DisableChallengeResourceVerification)
	if err != nil {
		return nil, fmt.Errorf("keyvault: creating certificates client: %w", err)
	}
	maxList := opts.MaxListItems
	if maxList <= 0 {
		maxList = DefaultMaxListItems
	}
	return &Client{
		vaultURL:  normalized,
		host:      host,
		identity:  identityKey,
		secrets:   secrets,
		keys:      keys,
		certs:     certs,
		coalescer: opts.Coalescer,
		maxList:   maxList,
	}, nil
}

// NormalizeVaultURL checks that raw is an https vault URL without path, query or credentials and
// returns it as https://{lower-case host} together with the host.
func NormalizeVaultURL(raw string) (normalized, host string, err error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", "", &Error{Op: "NewClient", Kind: ErrInvalid, Message: "vault URL does not parse"}
	}
	invalid := func(why string) (string, string, error) {
		return "", "", &Error{Op: "NewClient", Vault: u.Host, Kind: ErrInvalid, Message: "vault URL " + why}
	}
	switch {
	case u.Scheme != "https":
		return invalid("must use https")
	case u.Host == "" || u.Hostname() == "":
		return invalid("has no host")
	case u.User != nil:
		return invalid("must not carry user information")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return invalid("must not have a path, query or fragment")
	}
	host = strings.ToLower(u.Host)
	return "https://" + host, host, nil
}

// VaultURL returns the normalized vault URL.
func (c *Client) VaultURL() string { return c.vaultURL }

// Host returns the vault host.
func (c *Client) Host() string { return c.host }

// IdentityKey returns the identity key the client was built with.
func (c *Client) IdentityKey() string { return c.identity }

var (
	namePattern    = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	versionPattern = regexp.MustCompile(`^[0-9A-Za-z]{0,64}$`)
)

func (c *Client) validate(op string, typ kvtypes.ObjectType, name, version string) error {
	if !namePattern.MatchString(name) {
		return &Error{Op: op, Vault: c.host, Type: typ, Object: name, Version: version, Kind: ErrInvalid,
			Message: "object names are 1-127 letters, digits and dashes"}
	}
	if !versionPattern.MatchString(version) {
		return &Error{Op: op, Vault: c.host, Type: typ, Object: name, Version: version, Kind: ErrInvalid,
			Message: "versions are letters and digits (32 hex characters in Key Vault)"}
	}
	return nil
}

// coalesce runs fn through the Coalescer, if any.
func (c *Client) coalesce(ctx context.Context, typ, name, version string, fn func(context.Context) (any, error)) (any, error) {
	if c.coalescer == nil {
		return fn(ctx)
	}
	key := coalesceKey{vault: c.host, identity: c.identity, typ: typ, name: name, version: version}
	return c.coalescer.do(ctx, key, fn)
}

func (c *Client) getSecret(ctx context.Context, op string, typ kvtypes.ObjectType, name, version string) (*Secret, error) {
	if err := c.validate(op, typ, name, version); err != nil {
		return nil, err
	}
	v, err := c.coalesce(ctx, string(typ), name, version, func(ctx context.Context) (any, error) {
		resp, err := c.secrets.GetSecret(withOp(ctx, op), name, version, nil)
		if err != nil {
			return nil, mapError(op, c.host, typ, name, version, err)
		}
		return convertSecret(resp.Secret), nil
	})
	if err != nil {
		return nil, mapError(op, c.host, typ, name, version, err)
	}
	return v.(*Secret).clone(), nil
}

// GetSecret reads a secret with its value; an empty version means the latest.
func (c *Client) GetSecret(ctx context.Context, name, version string) (*Secret, error) {
	return c.getSecret(ctx, opGetSecret, kvtypes.TypeSecret, name, version)
}

// GetCertificateSecret reads a certificate's private key and chain through the secrets endpoint.
// The value is PFX (ContentType application/x-pkcs12, standard base64) or PEM
// (application/x-pem-file). A secret not managed by a certificate yields ErrNotCertificate.
func (c *Client) GetCertificateSecret(ctx context.Context, name, version string) (*Secret, error) {
	s, err := c.getSecret(ctx, opGetCertificateSecret, kvtypes.TypeCertificate, name, version)
	if err != nil {
		return nil, err
	}
	if !s.Managed {
		return nil, &Error{Op: opGetCertificateSecret, Vault: c.host, Type: kvtypes.TypeCertificate, Object: name,
			Version: version, Kind: ErrNotCertificate, Message: "the secret is not managed by a certificate"}
	}
	return s, nil
}

// GetKey reads the public part of a key; an empty version means the latest.
func (c *Client) GetKey(ctx context.Context, name, version string) (*Key, error) {
	if err := c.validate(opGetKey, kvtypes.TypeKey, name, version); err != nil {
		return nil, err
	}
	v, err := c.coalesce(ctx, string(kvtypes.TypeKey), name, version, func(ctx context.Context) (any, error) {
		resp, err := c.keys.GetKey(withOp(ctx, opGetKey), name, version, nil)
		if err != nil {
			return nil, mapError(opGetKey, c.host, kvtypes.TypeKey, name, version, err)
		}
		return convertKey(resp.KeyBundle), nil
	})
	if err != nil {
		return nil, mapError(opGetKey, c.host, kvtypes.TypeKey, name, version, err)
	}
	return v.(*Key).clone(), nil
}

// ListSecrets lists the properties (never values) of every secret in the vault, certificate-backed
// ones included (Managed), reading all pages. More than MaxListItems items yield ErrTooMany.
func (c *Client) ListSecrets(ctx context.Context) ([]SecretInfo, error) {
	v, err := c.coalesce(ctx, "secret-list", "", "", func(ctx context.Context) (any, error) {
		ctx = withOp(ctx, opListSecrets)
		var out []SecretInfo
		pager := c.secrets.NewListSecretPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, mapError(opListSecrets, c.host, kvtypes.TypeSecret, "", "", err)
			}
			for _, p := range page.Value {
				if p == nil {
					continue
				}
				if len(out) >= c.maxList {
					return nil, &Error{Op: opListSecrets, Vault: c.host, Type: kvtypes.TypeSecret, Kind: ErrTooMany,
						Message: fmt.Sprintf("the vault holds more than %d secrets", c.maxList)}
				}
				out = append(out, convertSecretInfo(p))
			}
		}
		return out, nil
	})
	if err != nil {
		return nil, mapError(opListSecrets, c.host, kvtypes.TypeSecret, "", "", err)
	}
	return cloneInfos(v.([]SecretInfo)), nil
}

func convertSecret(s azsecrets.Secret) *Secret {
	out := &Secret{Value: deref(s.Value), ContentType: deref(s.ContentType), Tags: convertTags(s.Tags),
		Managed: s.Managed != nil && *s.Managed, Enabled: true}
	if s.ID != nil {
		out.ID, out.Name, out.Version = string(*s.ID), s.ID.Name(), s.ID.Version()
	}
	if s.KID != nil {
		out.KeyID = string(*s.KID)
	}
	if a := s.Attributes; a != nil {
		if a.Enabled != nil {
			out.Enabled = *a.Enabled
		}
		out.NotBefore, out.Expires = cloneTime(a.NotBefore), cloneTime(a.Expires)
		out.Created, out.Updated = cloneTime(a.Created), cloneTime(a.Updated)
	}
	return out
}

func convertSecretInfo(p *azsecrets.SecretProperties) SecretInfo {
	out := SecretInfo{ContentType: deref(p.ContentType), Tags: convertTags(p.Tags),
		Managed: p.Managed != nil && *p.Managed, Enabled: true}
	if p.ID != nil {
		out.Name, out.Version = p.ID.Name(), p.ID.Version()
	}
	if a := p.Attributes; a != nil {
		if a.Enabled != nil {
			out.Enabled = *a.Enabled
		}
		out.Expires, out.Updated = cloneTime(a.Expires), cloneTime(a.Updated)
	}
	return out
}

func convertKey(b azkeys.KeyBundle) *Key {
	out := &Key{Tags: convertTags(b.Tags), Managed: b.Managed != nil && *b.Managed, Enabled: true}
	if k := b.Key; k != nil {
		if k.KID != nil {
			out.ID, out.Name, out.Version = string(*k.KID), k.KID.Name(), k.KID.Version()
		}
		if k.Kty != nil {
			out.Kty = string(*k.Kty)
		}
		if k.Crv != nil {
			out.Crv = string(*k.Crv)
		}
		out.N, out.E, out.X, out.Y = cloneBytes(k.N), cloneBytes(k.E), cloneBytes(k.X), cloneBytes(k.Y)
		for _, op := range k.KeyOps {
			if op != nil {
				out.KeyOps = append(out.KeyOps, string(*op))
			}
		}
	}
	if a := b.Attributes; a != nil {
		if a.Enabled != nil {
			out.Enabled = *a.Enabled
		}
		out.NotBefore, out.Expires = cloneTime(a.NotBefore), cloneTime(a.Expires)
		out.Created, out.Updated = cloneTime(a.Created), cloneTime(a.Updated)
	}
	return out
}

func convertTags(in map[string]*string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = deref(v)
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// credentialAdapter marks the credential's errors so they map to ErrAuth, and notes whether the
// request's time had run out when the credential failed.
type credentialAdapter struct{ cred azcore.TokenCredential }

func (a credentialAdapter) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := a.cred.GetToken(ctx, opts)
	if err != nil {
		return tok, &credentialError{err: err, ctxErr: ctx.Err()}
	}
	return tok, nil
}

type opKey struct{}

func withOp(ctx context.Context, op string) context.Context {
	return context.WithValue(ctx, opKey{}, op)
}

// requestPolicy waits on the vault's budget and reports each request to the Observer.
type requestPolicy struct {
	host     string
	budget   *Budget
	observer Observer
}

func (p *requestPolicy) Do(req *policy.Request) (*http.Response, error) {
	ctx := req.Raw().Context()
	var release func(*http.Response)
	if p.budget != nil {
		var err error
		if release, err = p.budget.Wait(ctx, req.Raw().URL.Host); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	resp, err := req.Next()
	if release != nil {
		release(resp)
	}
	if p.observer != nil {
		observe(p.observer, p.host, req, resp, err, time.Since(start))
	}
	return resp, err
}
