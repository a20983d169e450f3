package emulatortest_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/vaultsync/vaultsync/internal/credentials"
	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/test/emulator"
)

const (
	readerClientID   = "6a0e2c4b-8d1f-4a3e-9b5c-7d2e4f6a8b01"
	readerSecret     = "reader-test-secret"
	noRoleClientID   = "6a0e2c4b-8d1f-4a3e-9b5c-7d2e4f6a8b02"
	noRoleSecret     = "norole-test-secret"
	federatedClient  = "6a0e2c4b-8d1f-4a3e-9b5c-7d2e4f6a8b03"
	saIssuer         = "https://kubernetes.issuer.test"
	vaultName        = "kvit"
	throttledVault   = "kvitthrottle"
	disabledName     = "disabled-secret"
	throttleRequests = 4
)

var (
	emu       *emulator.Emulator
	issuerKey *rsa.PrivateKey
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "vaultsync-kv-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	opts, err := emulator.PrepareEnv(dir) // HTTPS_PROXY and SSL_CERT_FILE before any client exists
	if err != nil {
		fmt.Fprintln(os.Stderr, "PrepareEnv:", err)
		return 1
	}
	if issuerKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := config()
	if err := cfg.Validate(); err != nil { // fills defaults (tenant, key sizes)
		fmt.Fprintln(os.Stderr, "Validate:", err)
		return 1
	}
	e, err := emulator.Start(context.Background(), cfg, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Start:", err)
		return 1
	}
	defer e.Close()
	emu = e
	return m.Run()
}

func config() *emulator.Config {
	off := false
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "sa-key", "use": "sig", "alg": "RS256",
		"n": b64(issuerKey.N.Bytes()), "e": b64(big.NewInt(int64(issuerKey.E)).Bytes()),
	}}})
	readers := []emulator.RoleAssignment{
		{Principal: "reader", Role: "Key Vault Secrets User"},
		{Principal: "reader", Role: "Key Vault Crypto User"},
		{Principal: "federated", Role: "Key Vault Secrets User"},
	}
	return &emulator.Config{
		Identities: []emulator.Identity{
			{Name: "reader", ClientID: readerClientID, ClientSecrets: []string{readerSecret}},
			{Name: "norole", ClientID: noRoleClientID, ClientSecrets: []string{noRoleSecret}},
			{Name: "federated", ClientID: federatedClient, FederatedCredentials: []emulator.FederatedCredential{{
				Issuer: saIssuer, Subject: "system:serviceaccount:team-a:app", Audience: credentials.TokenAudience, JWKS: jwks,
			}}},
		},
		Vaults: []emulator.Vault{
			{
				Name:            vaultName,
				RoleAssignments: readers,
				Secrets: []emulator.Secret{
					{Name: "db", Versions: []emulator.SecretVersion{{Value: "first"}, {Value: "second", ContentType: "text/plain", Tags: map[string]string{"rotated": "true"}}}},
					{Name: disabledName, SecretVersion: emulator.SecretVersion{Value: "hidden", Enabled: &off}},
				},
				Certificates: []emulator.Certificate{{Name: "tls", Generate: &emulator.GenerateCertificate{Subject: "CN=it.example.test"}}},
				Keys:         []emulator.Key{{Name: "signing", Kty: "EC", Curve: "P-256"}},
			},
			{
				Name:            throttledVault,
				RoleAssignments: readers,
				Secrets:         []emulator.Secret{{Name: "db", SecretVersion: emulator.SecretVersion{Value: "v"}}},
				Limits:          &emulator.Limits{Requests: throttleRequests, Window: &emulator.Duration{Duration: time.Minute}, Mode: "fixed"},
			},
		},
	}
}

func secretCredential(t *testing.T, clientID, secret string) azcore.TokenCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(emu.TenantID(), clientID, secret, nil)
	if err != nil {
		t.Fatalf("NewClientSecretCredential: %v", err)
	}
	return cred
}

func noRetry() *keyvault.Options {
	return &keyvault.Options{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}
}

func newClient(t *testing.T, vault string, cred azcore.TokenCredential, identity string, opts *keyvault.Options) *keyvault.Client {
	t.Helper()
	c, err := keyvault.NewClient(emu.VaultURL(vault), cred, identity, opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func TestReadsThroughEmulator(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := newClient(t, vaultName, secretCredential(t, readerClientID, readerSecret), "reader", noRetry())

	s, err := c.GetSecret(ctx, "db", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Value).To(Equal("second"))
	g.Expect(s.ContentType).To(Equal("text/plain"))
	g.Expect(s.Tags).To(HaveKeyWithValue("rotated", "true"))
	g.Expect(s.Version).To(MatchRegexp(`^[0-9a-f]{32}$`))
	g.Expect(s.Enabled).To(BeTrue())

	versions, err := c.ListSecrets(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	names := map[string]keyvault.SecretInfo{}
	for _, it := range versions {
		names[it.Name] = it
	}
	g.Expect(names).To(HaveKey("db"))
	g.Expect(names).To(HaveKey(disabledName))
	g.Expect(names[disabledName].Enabled).To(BeFalse())
	g.Expect(names).To(HaveKey("tls"))
	g.Expect(names["tls"].Managed).To(BeTrue())

	same, err := c.GetSecret(ctx, "db", s.Version)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(same.Value).To(Equal("second"))

	cert, err := c.GetCertificateSecret(ctx, "tls", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cert.Managed).To(BeTrue())
	g.Expect(cert.KeyID).To(ContainSubstring("/keys/tls/"))
	g.Expect(cert.ContentType).To(Equal("application/x-pkcs12"))
	pfx, err := base64.StdEncoding.DecodeString(cert.Value)
	g.Expect(err).NotTo(HaveOccurred())
	key, leaf, _, err := pkcs12.DecodeChain(pfx, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(key).NotTo(BeNil())
	g.Expect(leaf.Subject.CommonName).To(Equal("it.example.test"))

	_, err = c.GetCertificateSecret(ctx, "db", "")
	g.Expect(err).To(MatchError(keyvault.ErrNotCertificate))

	k, err := c.GetKey(ctx, "signing", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k.Kty).To(Equal("EC"))
	g.Expect(k.Crv).To(Equal("P-256"))
	g.Expect(k.X).To(HaveLen(32))
	g.Expect(k.Y).To(HaveLen(32))
}

func TestSentinelsFromEmulator(t *testing.T) {
	ctx := context.Background()
	reader := newClient(t, vaultName, secretCredential(t, readerClientID, readerSecret), "reader", noRetry())
	norole := newClient(t, vaultName, secretCredential(t, noRoleClientID, noRoleSecret), "norole", noRetry())
	badSecret := newClient(t, vaultName, secretCredential(t, readerClientID, "wrong"), "reader-wrong", noRetry())
	unknown := newClient(t, vaultName, secretCredential(t, "6a0e2c4b-8d1f-4a3e-9b5c-7d2e4f6a8bff", "x"), "unknown", noRetry())
	// The vault's challenge names the emulator's tenant; a credential for another tenant refuses it.
	otherTenant, err := azidentity.NewClientSecretCredential("7a0e2c4b-8d1f-4a3e-9b5c-7d2e4f6a8b00", readerClientID, readerSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	wrongTenant := newClient(t, vaultName, otherTenant, "other-tenant", noRetry())

	cases := []struct {
		name   string
		call   func() error
		want   error
		reason string
	}{
		{"secret not found", func() error { _, err := reader.GetSecret(ctx, "missing", ""); return err }, keyvault.ErrNotFound, "SecretNotFound"},
		{"version not found", func() error {
			_, err := reader.GetSecret(ctx, "db", "ffffffffffffffffffffffffffffffff")
			return err
		}, keyvault.ErrNotFound, "SecretNotFound"},
		{"certificate not found", func() error { _, err := reader.GetCertificateSecret(ctx, "missing", ""); return err }, keyvault.ErrNotFound, "CertificateNotFound"},
		{"key not found", func() error { _, err := reader.GetKey(ctx, "missing", ""); return err }, keyvault.ErrNotFound, "KeyNotFound"},
		{"disabled", func() error { _, err := reader.GetSecret(ctx, disabledName, ""); return err }, keyvault.ErrDisabled, "SecretDisabled"},
		{"rbac", func() error { _, err := norole.GetSecret(ctx, "db", ""); return err }, keyvault.ErrForbidden, "ForbiddenByRbac"},
		{"rbac list", func() error { _, err := norole.ListSecrets(ctx); return err }, keyvault.ErrForbidden, "ForbiddenByRbac"},
		{"bad client secret", func() error { _, err := badSecret.GetSecret(ctx, "db", ""); return err }, keyvault.ErrAuth, "InvalidClientSecret"},
		{"unknown client", func() error { _, err := unknown.GetSecret(ctx, "db", ""); return err }, keyvault.ErrAuth, "ClientNotFound"},
		{"tenant mismatch", func() error { _, err := wrongTenant.GetSecret(ctx, "db", ""); return err }, keyvault.ErrAuth, "TenantMismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := tc.call()
			t.Logf("%v (hint: %s)", err, keyvault.Hint(err))
			g.Expect(err).To(MatchError(tc.want))
			g.Expect(keyvault.Reason(err)).To(Equal(tc.reason), "%v", err)
			g.Expect(keyvault.Hint(err)).NotTo(BeEmpty())
			g.Expect(err.Error()).NotTo(ContainSubstring("hidden"))
			g.Expect(err.Error()).NotTo(ContainSubstring(readerSecret))
		})
	}
}

func TestThrottlingFromEmulator(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	budget := keyvault.NewBudget(keyvault.BudgetOptions{})
	opts := noRetry()
	opts.Budget = budget
	c := newClient(t, throttledVault, secretCredential(t, readerClientID, readerSecret), "reader", opts)

	var err error
	for i := 0; i < throttleRequests+1 && err == nil; i++ {
		_, err = c.GetSecret(ctx, "db", "")
	}
	g.Expect(err).To(MatchError(keyvault.ErrThrottled))
	g.Expect(keyvault.Reason(err)).To(Equal("Throttled"))
	var kvErr *keyvault.Error
	g.Expect(err).To(BeAssignableToTypeOf(kvErr))
	kvErr = err.(*keyvault.Error) //nolint:errorlint // the test asserts just above that the concrete type comes back unwrapped
	g.Expect(kvErr.RetryAfter).To(BeNumerically(">", 0))
	g.Expect(budget.Stats(c.Host()).Throttled).To(Equal(int64(1)))
	g.Expect(budget.PausedFor(c.Host())).To(BeNumerically(">", 0))

	// While paused, requests wait on the client side instead of hitting the vault.
	before := emu.Count(emulator.LogFilter{Vault: throttledVault})
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = c.GetSecret(short, "db", "")
	g.Expect(err).To(MatchError(keyvault.ErrTransient))
	g.Expect(emu.Count(emulator.LogFilter{Vault: throttledVault})).To(Equal(before))
}

func TestCoalescingAgainstEmulator(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	opts := noRetry()
	opts.Coalescer = keyvault.NewCoalescer(keyvault.DefaultCoalesceWindow)
	cred := secretCredential(t, readerClientID, readerSecret)
	a := newClient(t, vaultName, cred, "ns-a", opts)
	b := newClient(t, vaultName, cred, "ns-b", opts)
	// Warm up the challenge and the token so the concurrent calls are plain GETs.
	_, err := a.GetKey(ctx, "signing", "")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = b.GetKey(ctx, "signing", "")
	g.Expect(err).NotTo(HaveOccurred())
	emu.ResetLog()

	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); _, errs[2*i] = a.GetSecret(ctx, "db", "") }()
		go func() { defer wg.Done(); _, errs[2*i+1] = b.GetSecret(ctx, "db", "") }()
	}
	wg.Wait()
	for _, err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	got := emu.Count(emulator.LogFilter{Vault: vaultName, Operation: "GetSecret", Object: "db", Status: 200})
	// One fetch per identity (a second one only if a caller arrived after the first result expired).
	g.Expect(got).To(BeNumerically(">=", 2))
	g.Expect(got).To(BeNumerically("<=", 4))
}

// saRequester mints service-account-like JWTs signed by the test issuer.
type saRequester struct {
	mu    sync.Mutex
	calls int
}

func (r *saRequester) RequestToken(_ context.Context, ns, sa, aud string, exp time.Duration) (string, time.Time, error) {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": saIssuer, "sub": "system:serviceaccount:" + ns + ":" + sa, "aud": []string{aud},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(exp).Unix(),
	})
	tok.Header["kid"] = "sa-key"
	s, err := tok.SignedString(issuerKey)
	return s, now.Add(exp), err
}

func TestWorkloadIdentityAgainstEmulator(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	req := &saRequester{}
	wi := credentials.WorkloadIdentity{Namespace: "team-a", ServiceAccount: "app", TenantID: emu.TenantID(), ClientID: federatedClient}
	cred, err := credentials.NewWorkloadIdentityCredential(req, wi, nil)
	g.Expect(err).NotTo(HaveOccurred())
	c := newClient(t, vaultName, cred, wi.Key().String(), noRetry())
	for i := 0; i < 5; i++ {
		s, err := c.GetSecret(ctx, "db", "")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.Value).To(Equal("second"))
	}
	g.Expect(req.calls).To(Equal(1))
	g.Expect(emu.Count(emulator.LogFilter{Service: "entra", Operation: "Token", AuthMethod: "federated", Identity: federatedClient, Status: 200})).To(Equal(1))

	// Another service account has no federated credential.
	other := wi
	other.ServiceAccount = "intruder"
	cred2, err := credentials.NewWorkloadIdentityCredential(req, other, nil)
	g.Expect(err).NotTo(HaveOccurred())
	c2 := newClient(t, vaultName, cred2, other.Key().String(), noRetry())
	_, err = c2.GetSecret(ctx, "db", "")
	g.Expect(err).To(MatchError(keyvault.ErrAuth))
	g.Expect(keyvault.Reason(err)).To(Equal("FederatedCredentialMismatch"))
	g.Expect(err.Error()).To(ContainSubstring("(AADSTS700213): No matching federated identity record found for presented assertion subject 'system:serviceaccount:team-a:intruder'"))
}

func TestTokenServiceDownIsRetryable(t *testing.T) {
	g := NewWithT(t)
	g.Expect(emu.SetFaults(emulator.Faults{TokenService: &emulator.TokenServiceFault{Down: true, Mode: "unavailable"}})).To(Succeed())
	defer emu.ClearFaults()
	cred, err := azidentity.NewClientSecretCredential(emu.TenantID(), readerClientID, readerSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}})
	g.Expect(err).NotTo(HaveOccurred())
	c := newClient(t, vaultName, cred, "reader-down", noRetry())
	_, err = c.GetSecret(context.Background(), "db", "")
	g.Expect(err).To(MatchError(keyvault.ErrAuth))
	g.Expect(keyvault.Reason(err)).To(Equal("TokenServiceUnavailable"))
	g.Expect(keyvault.Retryable(err)).To(BeTrue())
}

// With Entra ID down, azidentity fails while resolving the authority: the SDK retries the 503 of
// the OpenID configuration until the vault request's try timeout ends it, or the connection drops.
// Either way no Entra answer survives in the error, and it is still the token service's outage.
func TestTokenServiceDownDuringAuthorityDiscovery(t *testing.T) {
	for _, mode := range []string{"unavailable", "reset"} {
		t.Run(mode, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(emu.SetFaults(emulator.Faults{TokenService: &emulator.TokenServiceFault{Down: true, Mode: mode}})).To(Succeed())
			defer emu.ClearFaults()
			co := azcore.ClientOptions{Retry: policy.RetryOptions{TryTimeout: time.Second}}
			wi := credentials.WorkloadIdentity{Namespace: "team-a", ServiceAccount: "app", TenantID: emu.TenantID(), ClientID: federatedClient}
			cred, err := credentials.NewWorkloadIdentityCredential(&saRequester{}, wi, &credentials.Options{ClientOptions: co})
			g.Expect(err).NotTo(HaveOccurred())
			c := newClient(t, vaultName, cred, wi.Key().String()+"-down-"+mode, &keyvault.Options{ClientOptions: co})
			_, err = c.GetSecret(context.Background(), "db", "")
			g.Expect(err).To(MatchError(ContainSubstring("unable to resolve an endpoint")))
			g.Expect(keyvault.Reason(err)).To(Equal("TokenServiceUnavailable"))
			g.Expect(keyvault.Retryable(err)).To(BeTrue())
		})
	}
}
