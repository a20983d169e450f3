package keyvault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

// Operations that write to a vault, or read an object's properties before a write (for
// VaultPushSecret). Reads made here are never coalesced: a decision to overwrite an object must
// rest on what the vault holds now.
const (
	opGetSecretInfo      = "GetSecretProperties"
	opSetSecret          = "SetSecret"
	opDeleteSecret       = "DeleteSecret"
	opGetCertificateInfo = "GetCertificate"
	opImportCertificate  = "ImportCertificate"
	opDeleteCertificate  = "DeleteCertificate"
)

// certificatesAPIVersion is the Key Vault REST version of the certificate operations below
// (the newest stable one; see the REST reference of ImportCertificate).
const certificatesAPIVersion = "2025-07-01"

// ContentTypePEM is the content type of a certificate imported as PEM.
const ContentTypePEM = "application/x-pem-file"

// ObjectInfo is the latest version of an object as a writer needs it: never a value.
type ObjectInfo struct {
	Name    string
	Version string
	Tags    map[string]string
	// ContentType of a secret; Managed is true for a secret that belongs to a certificate.
	ContentType string
	Managed     bool
	Enabled     bool
}

// GetSecretInfo reads the properties of a secret's latest version. The value the vault sends
// with them is dropped at once. A missing secret is ErrNotFound; a soft-deleted one too.
func (c *Client) GetSecretInfo(ctx context.Context, name string) (*ObjectInfo, error) {
	if err := c.validate(opGetSecretInfo, kvtypes.TypeSecret, name, ""); err != nil {
		return nil, err
	}
	resp, err := c.secrets.GetSecret(withOp(ctx, opGetSecretInfo), name, "", nil)
	if err != nil {
		return nil, mapError(opGetSecretInfo, c.host, kvtypes.TypeSecret, name, "", err)
	}
	s := convertSecret(resp.Secret)
	return &ObjectInfo{Name: s.Name, Version: s.Version, Tags: s.Tags, ContentType: s.ContentType, Managed: s.Managed, Enabled: s.Enabled}, nil
}

// SetSecret writes a new version of a secret with a content type and tags, and returns the
// properties of that version.
func (c *Client) SetSecret(ctx context.Context, name, value, contentType string, tags map[string]string) (*ObjectInfo, error) {
	if err := c.validate(opSetSecret, kvtypes.TypeSecret, name, ""); err != nil {
		return nil, err
	}
	params := azsecrets.SetSecretParameters{Value: &value, Tags: stringPtrs(tags)}
	if contentType != "" {
		params.ContentType = &contentType
	}
	resp, err := c.secrets.SetSecret(withOp(ctx, opSetSecret), name, params, nil)
	if err != nil {
		return nil, mapError(opSetSecret, c.host, kvtypes.TypeSecret, name, "", err)
	}
	s := convertSecret(resp.Secret)
	return &ObjectInfo{Name: s.Name, Version: s.Version, Tags: s.Tags, ContentType: s.ContentType, Enabled: s.Enabled}, nil
}

// DeleteSecret soft-deletes a secret (all its versions). It never purges.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	if err := c.validate(opDeleteSecret, kvtypes.TypeSecret, name, ""); err != nil {
		return err
	}
	if _, err := c.secrets.DeleteSecret(withOp(ctx, opDeleteSecret), name, nil); err != nil {
		return mapError(opDeleteSecret, c.host, kvtypes.TypeSecret, name, "", err)
	}
	return nil
}

// certificateBundle is the part of a CertificateBundle a writer reads.
type certificateBundle struct {
	ID         string            `json:"id"`
	Tags       map[string]string `json:"tags"`
	Attributes *struct {
		Enabled *bool `json:"enabled"`
	} `json:"attributes"`
}

// GetCertificateInfo reads the id and tags of a certificate's latest version (no private key).
func (c *Client) GetCertificateInfo(ctx context.Context, name string) (*ObjectInfo, error) {
	if err := c.validate(opGetCertificateInfo, kvtypes.TypeCertificate, name, ""); err != nil {
		return nil, err
	}
	var b certificateBundle
	if err := c.certRequest(ctx, opGetCertificateInfo, http.MethodGet, "/certificates/"+url.PathEscape(name)+"/", nil, &b); err != nil {
		return nil, mapError(opGetCertificateInfo, c.host, kvtypes.TypeCertificate, name, "", err)
	}
	return b.info(name), nil
}

// ImportCertificate imports a certificate from PEM (a PKCS#8 or PKCS#1/SEC 1 private key and the
// chain, leaf first) as a new version, with tags, and returns that version's properties.
func (c *Client) ImportCertificate(ctx context.Context, name, pemBundle string, tags map[string]string) (*ObjectInfo, error) {
	if err := c.validate(opImportCertificate, kvtypes.TypeCertificate, name, ""); err != nil {
		return nil, err
	}
	body := map[string]any{
		"value":  pemBundle,
		"policy": map[string]any{"secret_props": map[string]string{"contentType": ContentTypePEM}},
		"tags":   tags,
	}
	var b certificateBundle
	if err := c.certRequest(ctx, opImportCertificate, http.MethodPost, "/certificates/"+url.PathEscape(name)+"/import", body, &b); err != nil {
		return nil, mapError(opImportCertificate, c.host, kvtypes.TypeCertificate, name, "", err)
	}
	return b.info(name), nil
}

// DeleteCertificate soft-deletes a certificate with its key and secret. It never purges.
func (c *Client) DeleteCertificate(ctx context.Context, name string) error {
	if err := c.validate(opDeleteCertificate, kvtypes.TypeCertificate, name, ""); err != nil {
		return err
	}
	if err := c.certRequest(ctx, opDeleteCertificate, http.MethodDelete, "/certificates/"+url.PathEscape(name), nil, nil); err != nil {
		return mapError(opDeleteCertificate, c.host, kvtypes.TypeCertificate, name, "", err)
	}
	return nil
}

func (b *certificateBundle) info(name string) *ObjectInfo {
	out := &ObjectInfo{Name: name, Tags: b.Tags, Enabled: true, ContentType: ""}
	if b.ID != "" {
		// https://{vault}/certificates/{name}/{version}
		parts := strings.Split(strings.TrimSuffix(b.ID, "/"), "/")
		if len(parts) >= 6 {
			out.Name, out.Version = parts[4], parts[5]
		}
	}
	if b.Attributes != nil && b.Attributes.Enabled != nil {
		out.Enabled = *b.Attributes.Enabled
	}
	return out
}

// certRequest sends one certificate operation through the client's own pipeline (the same
// budget, observer, retries and challenge authentication as the SDK clients) and decodes a
// successful JSON answer into out.
func (c *Client) certRequest(ctx context.Context, op, method, path string, body, out any) error {
	if c.certs == nil {
		return errors.New("keyvault: this client cannot write certificates")
	}
	req, err := runtime.NewRequest(withOp(ctx, op), method, c.vaultURL+path)
	if err != nil {
		return err
	}
	q := req.Raw().URL.Query()
	q.Set("api-version", certificatesAPIVersion)
	req.Raw().URL.RawQuery = q.Encode()
	req.Raw().Header.Set("Accept", "application/json")
	if body != nil {
		if err := runtime.MarshalAsJSON(req, body); err != nil {
			return err
		}
	}
	resp, err := c.certs.Pipeline().Do(req)
	if err != nil {
		return err
	}
	if !runtime.HasStatusCode(resp, http.StatusOK) {
		return runtime.NewResponseError(resp)
	}
	if out == nil {
		_ = resp.Body.Close()
		return nil
	}
	return runtime.UnmarshalAsJSON(resp, out)
}

// newCertificatesClient builds the azcore client of the certificate operations: there is no
// certificates SDK among this module's dependencies, so the Key Vault challenge authentication
// the SDK clients do is done by challengeAuthorizer below.
func newCertificatesClient(cred azcore.TokenCredential, co azcore.ClientOptions, verifyResource bool) (*azcore.Client, error) {
	a := &challengeAuthorizer{verify: verifyResource}
	bearer := runtime.NewBearerTokenPolicy(cred, nil, &policy.BearerTokenOptions{
		AuthorizationHandler: policy.AuthorizationHandler{OnRequest: a.onRequest, OnChallenge: a.onChallenge},
	})
	return azcore.NewClient("vaultsync.keyvault.certificates", "v1.0.0", runtime.PipelineOptions{PerRetry: []policy.Policy{bearer}}, &co)
}

// challengeAuthorizer implements Key Vault's challenge authentication: the first request goes
// out without a token and without its body (a certificate import carries a private key, which
// must not travel unauthenticated); the 401's WWW-Authenticate names the resource and tenant to
// ask a token for; the request is then repeated with its body and the token.
type challengeAuthorizer struct {
	verify bool
	mu     sync.Mutex
	tro    policy.TokenRequestOptions
}

type strippedBody struct {
	body        io.ReadSeekCloser
	contentType string
}

func (a *challengeAuthorizer) current() policy.TokenRequestOptions {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tro
}

func (a *challengeAuthorizer) onRequest(req *policy.Request, authorize func(policy.TokenRequestOptions) error) error {
	tro := a.current()
	if len(tro.Scopes) > 0 {
		return authorize(tro)
	}
	if b := req.Body(); b != nil {
		req.SetOperationValue(strippedBody{body: b, contentType: req.Raw().Header.Get("Content-Type")})
		return req.SetBody(nil, "")
	}
	return nil
}

func (a *challengeAuthorizer) onChallenge(req *policy.Request, resp *http.Response, authorize func(policy.TokenRequestOptions) error) error {
	tro, err := parseChallenge(resp.Header.Get("WWW-Authenticate"), req.Raw().URL.Host, a.verify)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.tro = tro
	a.mu.Unlock()
	var sb strippedBody
	if req.OperationValue(&sb) {
		if err := req.SetBody(sb.body, sb.contentType); err != nil {
			return err
		}
	}
	return authorize(tro)
}

// parseChallenge reads `Bearer authorization="https://login.../{tenant}", resource="https://vault.azure.net"`
// (or scope=...) into token request options. With verify, the vault host must lie under the
// resource's host, so a vault cannot obtain a token for another service.
func parseChallenge(header, host string, verify bool) (policy.TokenRequestOptions, error) {
	if header == "" {
		return policy.TokenRequestOptions{}, errors.New("keyvault: 401 without a WWW-Authenticate challenge")
	}
	vals := map[string]string{}
	for _, part := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(header), "Bearer")) {
		k, v, ok := strings.Cut(strings.TrimSuffix(part, ","), "=")
		if ok {
			vals[k] = strings.Trim(v, `"`)
		}
	}
	scope := vals["scope"]
	if scope == "" {
		scope = vals["resource"]
	}
	if scope == "" {
		return policy.TokenRequestOptions{}, errors.New("keyvault: the challenge names no resource")
	}
	if verify {
		u, err := url.Parse(scope)
		if err != nil || u.Host == "" || !strings.HasSuffix(strings.ToLower(hostOnly(host)), "."+strings.ToLower(u.Host)) {
			return policy.TokenRequestOptions{}, fmt.Errorf("keyvault: challenge resource %q does not match the vault %q", scope, host)
		}
	}
	if !strings.HasSuffix(scope, "/.default") {
		scope = strings.TrimSuffix(scope, "/") + "/.default"
	}
	tenant := ""
	if auth := vals["authorization"]; auth != "" {
		if u, err := url.Parse(auth); err == nil {
			tenant = strings.Trim(u.Path, "/")
			if i := strings.Index(tenant, "/"); i >= 0 {
				tenant = tenant[:i]
			}
		}
	}
	return policy.TokenRequestOptions{Scopes: []string{scope}, TenantID: tenant, EnableCAE: true}, nil
}

func hostOnly(hostport string) string {
	if h, _, ok := strings.Cut(hostport, ":"); ok {
		return h
	}
	return hostport
}

func stringPtrs(m map[string]string) map[string]*string {
	if m == nil {
		return nil
	}
	out := make(map[string]*string, len(m))
	for k, v := range m {
		out[k] = &v
	}
	return out
}
