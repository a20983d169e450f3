package credentials

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/keyvault/keyvaulttest"
)

const (
	tenantID = keyvaulttest.DefaultTenantID
	clientID = "11111111-2222-3333-4444-555555555555"
)

// fakeRequester mints numbered tokens valid for life, or fails with err.
type fakeRequester struct {
	mu    sync.Mutex
	now   func() time.Time
	life  time.Duration
	err   error
	calls atomic.Int64
	gate  chan struct{} // when set, each request waits on it
	last  struct{ namespace, serviceAccount, audience string }
	exp   time.Duration
}

func (f *fakeRequester) RequestToken(ctx context.Context, ns, sa, aud string, exp time.Duration) (string, time.Time, error) {
	n := f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last.namespace, f.last.serviceAccount, f.last.audience, f.exp = ns, sa, aud, exp
	if f.err != nil {
		return "", time.Time{}, f.err
	}
	return fmt.Sprintf("sa-token-%d", n), f.now().Add(f.life), nil
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var testWI = WorkloadIdentity{Namespace: "team-a", ServiceAccount: "app", TenantID: tenantID, ClientID: clientID}

func TestServiceAccountTokenIsCachedAndRefreshed(t *testing.T) {
	g := NewWithT(t)
	clk := &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	req := &fakeRequester{now: clk.Now, life: time.Hour}
	cred, err := newWorkloadIdentityCredential(req, testWI, nil, clk.Now)
	g.Expect(err).NotTo(HaveOccurred())

	var wg sync.WaitGroup
	toks := make([]string, 50)
	errs := make([]error, 50)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = cred.assertion(context.Background())
		}()
	}
	wg.Wait()
	for i := range toks {
		g.Expect(errs[i]).NotTo(HaveOccurred())
		g.Expect(toks[i]).To(Equal("sa-token-1"))
	}
	g.Expect(req.calls.Load()).To(Equal(int64(1)))
	g.Expect(req.last.audience).To(Equal("api://AzureADTokenExchange"))
	g.Expect(req.last.namespace).To(Equal("team-a"))
	g.Expect(req.last.serviceAccount).To(Equal("app"))
	g.Expect(req.exp).To(Equal(time.Hour))

	clk.Advance(47 * time.Minute) // 13 min left of 60: more than a fifth
	tok, err := cred.assertion(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok).To(Equal("sa-token-1"))
	g.Expect(req.calls.Load()).To(Equal(int64(1)))

	clk.Advance(2 * time.Minute) // 11 min left: renew
	tok, err = cred.assertion(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok).To(Equal("sa-token-2"))
	g.Expect(req.calls.Load()).To(Equal(int64(2)))

	// Concurrent renewals make one request.
	clk.Advance(time.Hour)
	req.gate = make(chan struct{})
	results := make(chan string, 20)
	for i := 0; i < 20; i++ {
		go func() {
			tok, _ := cred.assertion(context.Background())
			results <- tok
		}()
	}
	g.Eventually(req.calls.Load, 10*time.Second, time.Millisecond).Should(Equal(int64(3)))
	close(req.gate)
	for i := 0; i < 20; i++ {
		g.Expect(<-results).To(Equal("sa-token-3"))
	}
	g.Expect(req.calls.Load()).To(Equal(int64(3)))

	// A waiting caller honours its context.
	clk.Advance(time.Hour)
	req.gate = make(chan struct{})
	go func() { _, _ = cred.assertion(context.Background()) }()
	g.Eventually(req.calls.Load, 10*time.Second, time.Millisecond).Should(Equal(int64(4)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = cred.assertion(ctx)
	g.Expect(err).To(MatchError(context.Canceled))
	close(req.gate)
}

func TestServiceAccountTokenErrors(t *testing.T) {
	g := NewWithT(t)
	req := &fakeRequester{now: time.Now, life: time.Hour, err: errors.New("etcd is down")}
	cred, err := newWorkloadIdentityCredential(req, testWI, nil, time.Now)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cred.assertion(context.Background())
	g.Expect(err).To(MatchError(ErrTokenRequest))
	g.Expect(Reason(err)).To(Equal("TokenRequestFailed"))
	// Failures are not cached.
	req.err = nil
	tok, err := cred.assertion(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok).To(Equal("sa-token-2"))

	for _, wi := range []WorkloadIdentity{
		{Namespace: "a", ServiceAccount: "b", TenantID: tenantID},
		{Namespace: "a", ServiceAccount: "b", ClientID: clientID},
		{Namespace: "a", TenantID: tenantID, ClientID: clientID},
	} {
		_, err := NewWorkloadIdentityCredential(req, wi, nil)
		g.Expect(err).To(HaveOccurred())
	}
	_, err = NewWorkloadIdentityCredential(nil, testWI, nil)
	g.Expect(err).To(HaveOccurred())
}

// fakeEntra is a loopback token service: OpenID configuration and the token endpoint.
type fakeEntra struct {
	*httptest.Server
	mu         sync.Mutex
	posts      int
	assertions []string
	fail       string // when set, the token endpoint answers 400 with this AADSTS code
	// desc, when set with fail, is the error_description (after "AADSTSnnn: "), answered with 401
	// like Entra ID's federated credential mismatches.
	desc string
}

func newFakeEntra(t *testing.T) *fakeEntra {
	e := &fakeEntra{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		base := e.URL + "/" + r.PathValue("tenant")
		keyvaulttest.WriteJSON(w, 200, map[string]any{
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/v2.0",
		})
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("token form: %v", err)
		}
		e.mu.Lock()
		e.posts++
		e.assertions = append(e.assertions, r.PostForm.Get("client_assertion"))
		fail, desc := e.fail, e.desc
		e.mu.Unlock()
		if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" ||
			r.PostForm.Get("client_id") != clientID || r.PathValue("tenant") != tenantID {
			t.Errorf("unexpected token request: %v", r.PostForm)
		}
		if fail != "" && desc != "" {
			keyvaulttest.WriteJSON(w, 401, map[string]any{
				"error":             "invalid_client",
				"error_description": "AADSTS" + fail + ": " + desc + " Trace ID: 0b1c Correlation ID: 2d3e Timestamp: 2026-01-01 00:00:00Z",
				"error_codes":       []int{atoi(fail)},
				"timestamp":         "2026-01-01 00:00:00Z", "trace_id": "0b1c", "correlation_id": "2d3e",
			})
			return
		}
		if fail != "" {
			keyvaulttest.WriteJSON(w, 400, map[string]any{
				"error":             "invalid_client",
				"error_description": "AADSTS" + fail + ": No matching federated identity record found for presented assertion.\r\nTrace ID: 1",
				"error_codes":       []int{atoi(fail)},
			})
			return
		}
		keyvaulttest.WriteJSON(w, 200, map[string]any{
			"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": keyvaulttest.DefaultToken,
		})
	})
	e.Server = httptest.NewTLSServer(mux)
	return e
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

func (e *fakeEntra) stats() (int, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.posts, append([]string(nil), e.assertions...)
}

func entraOptions(e *fakeEntra) *Options {
	return &Options{
		ClientOptions:            azcore.ClientOptions{Transport: e.Client(), Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableInstanceDiscovery: true,
	}
}

func TestWorkloadIdentityCredentialExchangesOnce(t *testing.T) {
	g := NewWithT(t)
	entra := newFakeEntra(t)
	defer entra.Close()
	req := &fakeRequester{now: time.Now, life: time.Hour}
	wi := testWI
	wi.AuthorityHost = entra.URL + "/"
	cred, err := NewWorkloadIdentityCredential(req, wi, entraOptions(entra))
	g.Expect(err).NotTo(HaveOccurred())

	var wg sync.WaitGroup
	toks := make([]azcore.AccessToken, 20)
	errs := make([]error, 20)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
		}()
	}
	wg.Wait()
	for i := range toks {
		g.Expect(errs[i]).NotTo(HaveOccurred())
		g.Expect(toks[i].Token).To(Equal(keyvaulttest.DefaultToken))
	}
	posts, assertions := entra.stats()
	g.Expect(posts).To(Equal(1))
	g.Expect(assertions).To(Equal([]string{"sa-token-1"}))
	g.Expect(req.calls.Load()).To(Equal(int64(1)))
}

func TestWorkloadIdentityThroughKeyVault(t *testing.T) {
	entra := newFakeEntra(t)
	defer entra.Close()
	vault := keyvaulttest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keyvaulttest.WriteJSON(w, 200, keyvaulttest.SecretJSON("https://"+r.Host, "db", "0123456789abcdef0123456789abcdef", "value", "", true, false))
	}))
	defer vault.Close()
	wi := testWI
	wi.AuthorityHost = entra.URL + "/"
	kvOpts := &keyvault.Options{
		ClientOptions:                        azcore.ClientOptions{Transport: vault.Transport(), Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
	}

	cases := []struct {
		name    string
		reqErr  error
		fail    string
		want    error
		reason  string
		hint    string
		noToken bool
	}{
		{name: "ok"},
		{name: "service account missing", reqErr: &Error{Kind: ErrServiceAccountNotFound, Namespace: "team-a", ServiceAccount: "app"},
			want: ErrServiceAccountNotFound, reason: "ServiceAccountNotFound", hint: `create the ServiceAccount "app" in namespace "team-a"`},
		{name: "token request forbidden", reqErr: &Error{Kind: ErrTokenRequestForbidden, Namespace: "team-a", ServiceAccount: "app"},
			want: ErrTokenRequestForbidden, reason: "TokenRequestForbidden", hint: "serviceaccounts/token"},
		{name: "no federated credential", fail: "70021", want: keyvault.ErrAuth, reason: "FederatedCredentialMismatch", hint: "system:serviceaccount"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			entra.mu.Lock()
			entra.fail = tc.fail
			entra.mu.Unlock()
			cred, err := NewWorkloadIdentityCredential(&fakeRequester{now: time.Now, life: time.Hour, err: tc.reqErr}, wi, entraOptions(entra))
			g.Expect(err).NotTo(HaveOccurred())
			c, err := keyvault.NewClient(vault.URL, cred, wi.Key().String(), kvOpts)
			g.Expect(err).NotTo(HaveOccurred())
			s, err := c.GetSecret(context.Background(), "db", "")
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(s.Value).To(Equal("value"))
				return
			}
			g.Expect(err).To(MatchError(keyvault.ErrAuth))
			g.Expect(err).To(MatchError(tc.want))
			g.Expect(keyvault.Reason(err)).To(Equal(tc.reason))
			g.Expect(keyvault.Hint(err)).To(ContainSubstring(tc.hint))
			g.Expect(err.Error()).NotTo(ContainSubstring("sa-token"))
		})
	}
}

func TestResolveWorkloadIdentity(t *testing.T) {
	sa := func(ann map[string]string) *corev1.ServiceAccount {
		return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "sa", Annotations: ann}}
	}
	both := map[string]string{AnnotationClientID: "ann-client", AnnotationTenantID: "ann-tenant"}
	cases := []struct {
		name           string
		sa             *corev1.ServiceAccount
		client, tenant string
		want           WorkloadIdentity
		err            error
	}{
		{"annotations", sa(both), "", "", WorkloadIdentity{Namespace: "ns", ServiceAccount: "sa", ClientID: "ann-client", TenantID: "ann-tenant"}, nil},
		{"spec wins", sa(both), "spec-client", "spec-tenant", WorkloadIdentity{Namespace: "ns", ServiceAccount: "sa", ClientID: "spec-client", TenantID: "spec-tenant"}, nil},
		{"mixed", sa(map[string]string{AnnotationClientID: "ann-client"}), "", "spec-tenant", WorkloadIdentity{Namespace: "ns", ServiceAccount: "sa", ClientID: "ann-client", TenantID: "spec-tenant"}, nil},
		{"no client", sa(map[string]string{AnnotationTenantID: "t"}), "", "", WorkloadIdentity{}, ErrMissingClientID},
		{"no tenant", sa(map[string]string{AnnotationClientID: "c"}), "", "", WorkloadIdentity{}, ErrMissingTenantID},
		{"blank annotation", sa(map[string]string{AnnotationClientID: "  ", AnnotationTenantID: "t"}), "", "", WorkloadIdentity{}, ErrMissingClientID},
		{"no service account", nil, "c", "t", WorkloadIdentity{}, ErrServiceAccountNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			wi, err := ResolveWorkloadIdentity(tc.sa, tc.client, tc.tenant)
			if tc.err != nil {
				g.Expect(err).To(MatchError(tc.err))
				g.Expect(Reason(err)).NotTo(BeEmpty())
				g.Expect(Hint(err)).NotTo(BeEmpty())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(wi).To(Equal(tc.want))
		})
	}
	g := NewWithT(t)
	g.Expect(Reason(errors.New("x"))).To(BeEmpty())
	g.Expect(strings.Contains(Hint(&Error{Kind: ErrMissingTenantID}), AnnotationTenantID)).To(BeTrue())
}
