package keyvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/keyvault/keyvaulttest"
)

const secretValue = "s3cr3t-value-never-in-errors"

func TestResponseErrorMapping(t *testing.T) {
	type call func(ctx context.Context, c *Client) error
	getSecret := func(ctx context.Context, c *Client) error { _, err := c.GetSecret(ctx, "db", ""); return err }
	getCert := func(ctx context.Context, c *Client) error {
		_, err := c.GetCertificateSecret(ctx, "tls", "")
		return err
	}
	getKey := func(ctx context.Context, c *Client) error { _, err := c.GetKey(ctx, "signing", ""); return err }
	list := func(ctx context.Context, c *Client) error { _, err := c.ListSecrets(ctx); return err }

	cases := []struct {
		name       string
		call       call
		status     int
		code       string
		inner      string
		header     map[string]string
		want       error
		reason     string
		hint       string
		retryAfter time.Duration
	}{
		{name: "secret not found", call: getSecret, status: 404, code: "SecretNotFound", want: ErrNotFound, reason: "SecretNotFound", hint: "name and version"},
		{name: "certificate not found", call: getCert, status: 404, code: "SecretNotFound", want: ErrNotFound, reason: "CertificateNotFound"},
		{name: "key not found", call: getKey, status: 404, code: "KeyNotFound", want: ErrNotFound, reason: "KeyNotFound"},
		{name: "secret disabled", call: getSecret, status: 403, code: "Forbidden", inner: "SecretDisabled", want: ErrDisabled, reason: "SecretDisabled", hint: "enable"},
		{name: "certificate disabled", call: getCert, status: 403, code: "Forbidden", inner: "SecretDisabled", want: ErrDisabled, reason: "CertificateDisabled"},
		{name: "key disabled", call: getKey, status: 403, code: "Forbidden", inner: "KeyDisabled", want: ErrDisabled, reason: "KeyDisabled"},
		{name: "rbac", call: getSecret, status: 403, code: "Forbidden", inner: "ForbiddenByRbac", want: ErrForbidden, reason: "ForbiddenByRbac", hint: "grant the identity the 'Key Vault Secrets User' role on the vault"},
		{name: "rbac key", call: getKey, status: 403, code: "Forbidden", inner: "ForbiddenByRbac", want: ErrForbidden, reason: "ForbiddenByRbac", hint: "Key Vault Crypto User"},
		{name: "rbac list", call: list, status: 403, code: "Forbidden", inner: "ForbiddenByRbac", want: ErrForbidden, reason: "ForbiddenByRbac", hint: "whole vault"},
		{name: "access policy", call: getSecret, status: 403, code: "Forbidden", inner: "ForbiddenByPolicy", want: ErrForbidden, reason: "ForbiddenByPolicy", hint: "access policies"},
		{name: "firewall", call: getSecret, status: 403, code: "Forbidden", inner: "ForbiddenByFirewall", want: ErrForbidden, reason: "ForbiddenByFirewall", hint: "firewall"},
		{name: "other 403", call: getSecret, status: 403, code: "Forbidden", want: ErrForbidden, reason: "AccessDenied", hint: "role assignments"},
		{name: "throttled", call: getSecret, status: 429, code: "Throttled", header: map[string]string{"Retry-After": "7"}, want: ErrThrottled, reason: "Throttled", hint: "throttling", retryAfter: 7 * time.Second},
		{name: "throttled ms", call: getKey, status: 429, code: "Throttled", header: map[string]string{"retry-after-ms": "1500"}, want: ErrThrottled, reason: "Throttled", retryAfter: 1500 * time.Millisecond},
		{name: "internal error", call: getSecret, status: 500, code: "InternalServerError", want: ErrTransient, reason: "KeyVaultUnavailable", hint: "retries"},
		{name: "unavailable", call: list, status: 503, code: "ServiceUnavailable", want: ErrTransient, reason: "KeyVaultUnavailable"},
		{name: "bad request", call: getSecret, status: 400, code: "BadParameter", want: ErrInvalid, reason: "InvalidRequest"},
		{name: "conflict", call: getSecret, status: 409, code: "Conflict", want: ErrUnexpected, reason: "KeyVaultError"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			srv := keyvaulttest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				keyvaulttest.WriteError(w, tc.status, tc.code, tc.inner, "the service says no")
			}))
			defer srv.Close()
			c := newTestClient(t, srv, "id-a", nil)

			err := tc.call(context.Background(), c)
			g.Expect(err).To(MatchError(tc.want))
			var kvErr *Error
			g.Expect(errors.As(err, &kvErr)).To(BeTrue())
			g.Expect(kvErr.Status).To(Equal(tc.status))
			g.Expect(kvErr.Code).To(Equal(tc.code))
			g.Expect(kvErr.InnerCode).To(Equal(tc.inner))
			g.Expect(kvErr.Vault).To(Equal(c.Host()))
			g.Expect(kvErr.Message).To(Equal("the service says no"))
			g.Expect(kvErr.RetryAfter).To(Equal(tc.retryAfter))
			g.Expect(Reason(err)).To(Equal(tc.reason))
			if tc.hint != "" {
				g.Expect(Hint(err)).To(ContainSubstring(tc.hint))
			} else {
				g.Expect(Hint(err)).NotTo(BeEmpty())
			}
			g.Expect(err.Error()).To(ContainSubstring(tc.code))
			g.Expect(err.Error()).NotTo(ContainSubstring(keyvaulttest.DefaultToken))
		})
	}
}

func TestUnauthorizedAfterToken(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(nil)
	defer srv.Close()
	srv.Token = "another-token" // the server rejects what the credential hands out
	c := newTestClient(t, srv, "id-a", nil)
	_, err := c.GetSecret(context.Background(), "db", "")
	g.Expect(err).To(MatchError(ErrUnauthorized))
	g.Expect(Reason(err)).To(Equal("Unauthorized"))
	g.Expect(Hint(err)).To(ContainSubstring("tenant"))
	g.Expect(err.Error()).NotTo(ContainSubstring(keyvaulttest.DefaultToken))
}

func TestTransportErrorsAreTransient(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(nil)
	opts := testOptions(srv)
	url := srv.URL
	srv.Close() // nothing listens any more
	c, err := NewClient(url, &keyvaulttest.Credential{}, "id-a", opts)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetSecret(context.Background(), "db", "")
	g.Expect(err).To(MatchError(ErrTransient))
	g.Expect(Reason(err)).To(Equal("KeyVaultUnavailable"))
}

func TestUntrustedTLSIsNotTransient(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(nil)
	defer srv.Close()
	opts := testOptions(srv)
	opts.ClientOptions.Transport = &http.Client{} // system roots do not include the test CA
	c, err := NewClient(srv.URL, &keyvaulttest.Credential{}, "id-a", opts)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetSecret(context.Background(), "db", "")
	g.Expect(err).To(MatchError(ErrUnexpected))
	g.Expect(Reason(err)).To(Equal("TLSVerificationFailed"))
}

func TestContextCanceled(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(nil)
	defer srv.Close()
	c := newTestClient(t, srv, "id-a", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.GetSecret(ctx, "db", "")
	g.Expect(err).To(MatchError(ErrTransient))
	g.Expect(errors.Is(err, context.Canceled)).To(BeTrue())
}

func entraFailure(status int, body string) error {
	return &azidentity.AuthenticationFailedError{RawResponse: &http.Response{
		StatusCode: status,
		Status:     http.StatusText(status),
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}}
}

// fedBody is an Entra ID answer to a federated assertion that matched no federated credential.
func fedBody(code int, desc string) string {
	b, _ := json.Marshal(map[string]any{
		"error":             "invalid_client",
		"error_description": fmt.Sprintf("AADSTS%d: %s https://learn.microsoft.com/entra/workload-id/workload-identity-federation Trace ID: 5f0e Correlation ID: 7a1b Timestamp: 2026-01-01 00:00:00Z", code, desc),
		"error_codes":       []int{code},
		"timestamp":         "2026-01-01 00:00:00Z", "trace_id": "5f0e", "correlation_id": "7a1b",
	})
	return string(b)
}

type reasonedError struct{}

func (reasonedError) Error() string      { return "service account token missing" }
func (reasonedError) AuthReason() string { return "ServiceAccountNotFound" }
func (reasonedError) AuthHint() string   { return "create the service account" }

func TestAuthErrorMapping(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		aadsts string
		reason string
		hint   string
	}{
		{"federated mismatch", entraFailure(400, `{"error":"invalid_client","error_description":"AADSTS70021: No matching federated identity record found for presented assertion. Trace ID: x Correlation ID: y","error_codes":[70021]}`), "70021", "FederatedCredentialMismatch", "api://AzureADTokenExchange"},
		{"federated issuer", entraFailure(401, fedBody(700211, "No matching federated identity record found for presented assertion issuer 'https://oidc.example/'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.")), "700211", "FederatedCredentialMismatch", "az ad app federated-credential create"},
		{"federated audience", entraFailure(401, fedBody(700212, "No matching federated identity record found for presented assertion audience 'api://Other'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.")), "700212", "FederatedCredentialMismatch", "az identity federated-credential create"},
		{"federated subject", entraFailure(401, fedBody(700213, "No matching federated identity record found for presented assertion subject 'system:serviceaccount:a:b'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.")), "700213", "FederatedCredentialMismatch", "system:serviceaccount:<namespace>:<name>"},
		{"federated subject case", entraFailure(401, fedBody(7002138, "No matching federated identity record found for presented assertion subject 'system:serviceaccount:a:B'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison.")), "7002138", "FederatedCredentialMismatch", "only in letter case"},
		{"client not found", entraFailure(400, `{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier 'x' was not found in the directory."}`), "700016", "ClientNotFound", "client id"},
		{"bad secret", entraFailure(401, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}`), "7000215", "InvalidClientSecret", "client secret"},
		{"bad certificate", entraFailure(401, `{"error":"invalid_client","error_description":"AADSTS700027: Client assertion failed signature validation.","error_codes":[700027]}`), "700027", "InvalidClientCertificate", "certificate"},
		{"tenant not found", entraFailure(400, `{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found.","error_codes":[90002]}`), "90002", "TenantNotFound", "tenant id"},
		{"other aadsts", entraFailure(400, `{"error":"invalid_request","error_description":"AADSTS50011: something else","error_codes":[50011]}`), "50011", "AuthenticationFailed", "client id"},
		{"message only", errors.New("ClientSecretCredential: AADSTS7000215: Invalid client secret provided"), "7000215", "InvalidClientSecret", "client secret"},
		{"credential reason", reasonedError{}, "", "ServiceAccountNotFound", "create the service account"},
		{"token service down", entraFailure(503, `{"error":"temporarily_unavailable","error_description":"AADSTS90033: A transient error has occurred.","error_codes":[90033]}`), "90033", "TokenServiceUnavailable", "retries"},
		{"tenant mismatch", errors.New(`ClientSecretCredential isn't configured to acquire tokens for tenant "x"`), "", "TenantMismatch", "tenant id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			srv := keyvaulttest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				t.Error("no authorized request expected")
			}))
			defer srv.Close()
			c, err := NewClient(srv.URL, &keyvaulttest.Credential{Err: tc.err}, "id-a", testOptions(srv))
			g.Expect(err).NotTo(HaveOccurred())
			_, err = c.GetSecret(context.Background(), "db", "")
			g.Expect(err).To(MatchError(ErrAuth))
			var kvErr *Error
			g.Expect(errors.As(err, &kvErr)).To(BeTrue())
			g.Expect(kvErr.AADSTS).To(Equal(tc.aadsts))
			g.Expect(kvErr.Status).To(BeZero())
			g.Expect(Reason(err)).To(Equal(tc.reason))
			g.Expect(Hint(err)).To(ContainSubstring(tc.hint))
			g.Expect(err.Error()).NotTo(ContainSubstring("\n"))
			g.Expect(kvErr.Message).NotTo(ContainSubstring("Trace ID"))
			g.Expect(kvErr.Message).NotTo(HavePrefix("AADSTS"))
			if tc.aadsts != "" {
				g.Expect(err.Error()).To(ContainSubstring("AADSTS" + tc.aadsts))
			}
		})
	}
}

func TestClientSideErrors(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keyvaulttest.WriteJSON(w, 200, keyvaulttest.SecretJSON("https://"+r.Host, "plain", "0123456789abcdef0123456789abcdef", secretValue, "", true, false))
	}))
	defer srv.Close()
	c := newTestClient(t, srv, "id-a", nil)

	_, err := c.GetCertificateSecret(context.Background(), "plain", "")
	g.Expect(err).To(MatchError(ErrNotCertificate))
	g.Expect(Reason(err)).To(Equal("NotACertificate"))
	g.Expect(Hint(err)).To(ContainSubstring("type secret"))
	g.Expect(err.Error()).NotTo(ContainSubstring(secretValue))

	for _, bad := range []struct{ name, version string }{{"", ""}, {"a/b", ""}, {"../x", ""}, {strings.Repeat("a", 128), ""}, {"ok", "v/1"}, {"ok", "?x"}} {
		_, err = c.GetSecret(context.Background(), bad.name, bad.version)
		g.Expect(err).To(MatchError(ErrInvalid), "name %q version %q", bad.name, bad.version)
		g.Expect(Reason(err)).To(Equal("InvalidRequest"))
	}
	g.Expect(srv.Count("/secrets/ok/v/1")).To(BeZero())

	for _, u := range []string{"http://demo.vault.azure.net", "https://", "https://demo.vault.azure.net/secrets", "https://u:p@demo.vault.azure.net", "https://demo.vault.azure.net?x=1"} {
		_, err := NewClient(u, &keyvaulttest.Credential{}, "id-a", nil)
		g.Expect(err).To(MatchError(ErrInvalid), u)
	}
	_, err = NewClient("https://demo.vault.azure.net", &keyvaulttest.Credential{}, "", nil)
	g.Expect(err).To(HaveOccurred())
	_, err = NewClient("https://demo.vault.azure.net", nil, "id", nil)
	g.Expect(err).To(HaveOccurred())
}

func TestReasonOfForeignErrors(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Reason(nil)).To(BeEmpty())
	g.Expect(Hint(nil)).To(BeEmpty())
	g.Expect(Reason(errors.New("boom"))).To(Equal("KeyVaultError"))
}

func TestRetryAfterParsing(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	g.Expect(retryAfter(h(), now)).To(BeZero())
	g.Expect(retryAfter(h("Retry-After", "3"), now)).To(Equal(3 * time.Second))
	g.Expect(retryAfter(h("Retry-After", "0"), now)).To(BeZero())
	g.Expect(retryAfter(h("Retry-After", "junk"), now)).To(BeZero())
	g.Expect(retryAfter(h("Retry-After", now.Add(10*time.Second).Format(http.TimeFormat)), now)).To(Equal(10 * time.Second))
	g.Expect(retryAfter(h("x-ms-retry-after-ms", "250", "Retry-After", "9"), now)).To(Equal(250 * time.Millisecond))
	g.Expect(retryAfter(h("retry-after-ms", "100", "x-ms-retry-after-ms", "250"), now)).To(Equal(100 * time.Millisecond))
}

func TestRetryable(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Retryable(nil)).To(BeFalse())
	g.Expect(Retryable(errors.New("x"))).To(BeTrue())
	for kind, want := range map[error]bool{
		ErrNotFound: false, ErrDisabled: false, ErrForbidden: false, ErrUnauthorized: false, ErrAuth: false,
		ErrNotCertificate: false, ErrTooMany: false, ErrInvalid: false,
		ErrTransient: true, ErrThrottled: true, ErrUnexpected: true,
	} {
		g.Expect(Retryable(&Error{Kind: kind})).To(Equal(want), "%v", kind)
	}
	g.Expect(Retryable(&Error{Kind: ErrAuth, TokenStatus: 503})).To(BeTrue())
	g.Expect(Retryable(&Error{Kind: ErrAuth, TokenStatus: 429})).To(BeTrue())
	g.Expect(Retryable(&Error{Kind: ErrAuth, TokenStatus: 400})).To(BeFalse())
}
