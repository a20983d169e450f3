package keyvault

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/keyvault/keyvaulttest"
)

// entraOutage is a token service whose every endpoint fails the way an outage does.
func entraOutage(t *testing.T, fail func(w http.ResponseWriter)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		fail(w)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// cloudAt is a cloud whose Entra ID is the test server at u.
func cloudAt(u string) cloud.Configuration {
	return cloud.Configuration{ActiveDirectoryAuthorityHost: u + "/"}
}

func unavailable(w http.ResponseWriter) {
	keyvaulttest.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{
		"error": "temporarily_unavailable", "error_description": "AADSTS90033: A transient error has occurred. Please try again.", "error_codes": []int{90033},
	})
}

func dropConnection(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// An Entra ID outage while azidentity resolves the authority (OpenID configuration) surfaces as an
// AuthenticationFailedError without a response: "unable to resolve an endpoint: server response
// error: context deadline exceeded" when the SDK's retries of the 503 outlast the vault request's
// try timeout, or "... server response error: EOF" when the connection drops. Both are an outage
// of the token service, not a configuration error.
func TestEntraOutageDuringAuthorityDiscovery(t *testing.T) {
	vault := keyvaulttest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("no authorized request expected")
	}))
	defer vault.Close()
	cases := []struct {
		name     string
		fail     func(http.ResponseWriter)
		retries  int32
		want     string
		shape    string
		deadline bool
	}{
		{name: "503 outlasting the try timeout", fail: unavailable, retries: 3, want: ReasonTokenServiceUnavailable,
			shape: "unable to resolve an endpoint: server response error", deadline: true},
		{name: "connection dropped", fail: dropConnection, retries: -1, want: ReasonTokenServiceUnavailable,
			shape: "unable to resolve an endpoint: server response error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			entra, calls := entraOutage(t, tc.fail)
			cred, err := azidentity.NewClientSecretCredential(keyvaulttest.DefaultTenantID, "11111111-2222-3333-4444-555555555555", "secret",
				&azidentity.ClientSecretCredentialOptions{
					ClientOptions: azcore.ClientOptions{Transport: entra.Client(), Retry: policy.RetryOptions{MaxRetries: tc.retries},
						Cloud: cloudAt(entra.URL)},
					DisableInstanceDiscovery: true,
				})
			g.Expect(err).NotTo(HaveOccurred())
			opts := testOptions(vault)
			opts.ClientOptions.Retry.TryTimeout = time.Second
			c, err := NewClient(vault.URL, cred, "outage-"+tc.name, opts)
			g.Expect(err).NotTo(HaveOccurred())

			_, err = c.GetSecret(context.Background(), "db", "")
			g.Expect(calls.Load()).To(BeNumerically(">=", 1), "the token service was asked")
			var afe *azidentity.AuthenticationFailedError
			g.Expect(errors.As(err, &afe)).To(BeTrue(), "%v", err)
			g.Expect(afe.RawResponse).To(BeNil(), "the SDK keeps no response: this is the shape under test")
			g.Expect(afe.Error()).To(ContainSubstring(tc.shape))
			if tc.deadline {
				g.Expect(afe.Error()).To(ContainSubstring("context deadline exceeded"))
			}

			g.Expect(err).To(MatchError(ErrAuth))
			g.Expect(Reason(err)).To(Equal(tc.want))
			g.Expect(Retryable(err)).To(BeTrue())
			g.Expect(Hint(err)).To(ContainSubstring("retries with backoff"))
			g.Expect(err.Error()).To(ContainSubstring("token request failed"))
			g.Expect(err.Error()).To(ContainSubstring(tc.shape), "the cause is not cut at the SDK's line break")
			g.Expect(err.Error()).NotTo(ContainSubstring("\n"))
		})
	}
}

// A token service that cannot be verified is a configuration problem, not an outage.
func TestUntrustedTokenServiceIsNotAnOutage(t *testing.T) {
	g := NewWithT(t)
	vault := keyvaulttest.NewServer(nil)
	defer vault.Close()
	entra, _ := entraOutage(t, unavailable)
	cred, err := azidentity.NewClientSecretCredential(keyvaulttest.DefaultTenantID, "11111111-2222-3333-4444-555555555555", "secret",
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Transport: &http.Client{}, Retry: policy.RetryOptions{MaxRetries: -1}, Cloud: cloudAt(entra.URL)},
			DisableInstanceDiscovery: true,
		})
	g.Expect(err).NotTo(HaveOccurred())
	c, err := NewClient(vault.URL, cred, "untrusted-entra", testOptions(vault))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetSecret(context.Background(), "db", "")
	g.Expect(err).To(MatchError(ErrAuth))
	g.Expect(Reason(err)).To(Equal(ReasonAuthenticationFailed))
	g.Expect(Retryable(err)).To(BeFalse())
}

// A caller that waits for another caller's token request (internal/credentials serializes them)
// and runs out of time sees its context's error: still the token service, not the vault.
func TestCredentialContextErrorIsTheTokenService(t *testing.T) {
	g := NewWithT(t)
	vault := keyvaulttest.NewServer(nil)
	defer vault.Close()
	c, err := NewClient(vault.URL, &keyvaulttest.Credential{Err: context.DeadlineExceeded}, "waiting", testOptions(vault))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetSecret(context.Background(), "db", "")
	g.Expect(err).To(MatchError(ErrAuth))
	g.Expect(Reason(err)).To(Equal(ReasonTokenServiceUnavailable))
	g.Expect(Retryable(err)).To(BeTrue())
}
