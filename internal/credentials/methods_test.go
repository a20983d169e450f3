package credentials

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	. "github.com/onsi/gomega"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/keyvault/keyvaulttest"
)

func TestResolveCloud(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		name      string
		spec      CloudSpec
		url       string
		env       map[string]string
		authority string
		scope     string
		err       string
	}{
		{name: "public inferred", url: "https://a.vault.azure.net/", authority: "https://login.microsoftonline.com/", scope: "https://vault.azure.net/.default"},
		{name: "private DNS name stays public", url: "https://kv.internal.contoso.com/", authority: "https://login.microsoftonline.com/", scope: "https://vault.azure.net/.default"},
		{name: "china inferred", url: "https://a.vault.azure.cn", authority: "https://login.chinacloudapi.cn/", scope: "https://vault.azure.cn/.default"},
		{name: "government inferred", url: "https://A.VAULT.USGOVCLOUDAPI.NET/", authority: "https://login.microsoftonline.us/", scope: "https://vault.usgovcloudapi.net/.default"},
		{name: "public with authority override", url: "https://a.vault.azure.net/", env: map[string]string{EnvAuthorityHost: "https://login.example"},
			authority: "https://login.example/", scope: "https://vault.azure.net/.default"},
		{name: "override does not apply to china", spec: CloudSpec{Name: CloudAzureChina}, url: "https://a.vault.azure.cn/",
			env: map[string]string{EnvAuthorityHost: "https://login.example"}, authority: "https://login.chinacloudapi.cn/", scope: "https://vault.azure.cn/.default"},
		{name: "custom", spec: CloudSpec{Name: CloudCustom, AuthorityHost: "https://adfs.stack.local/adfs", VaultSuffix: ".Vault.Stack.Local"},
			url: "https://kv.vault.stack.local/", authority: "https://adfs.stack.local/adfs/", scope: "https://vault.stack.local/.default"},
		{name: "explicit cloud, foreign vault", spec: CloudSpec{Name: CloudAzureChina}, url: "https://a.vault.azure.net/", err: "must end with .vault.azure.cn"},
		{name: "explicit public, sovereign vault", spec: CloudSpec{Name: CloudAzurePublic}, url: "https://a.vault.azure.cn/", err: "must end with .vault.azure.net"},
		{name: "custom, foreign vault", spec: CloudSpec{Name: CloudCustom, AuthorityHost: "https://l/", VaultSuffix: "vault.stack.local"}, url: "https://a.vault.azure.net/", err: "must end with .vault.stack.local"},
		{name: "custom without endpoints", spec: CloudSpec{Name: CloudCustom}, url: "https://a.vault.azure.net/", err: "needs customCloud"},
		{name: "custom authority over http", spec: CloudSpec{Name: CloudCustom, AuthorityHost: "http://l/", VaultSuffix: "x.y"}, url: "https://a.x.y/", err: "not an https URL"},
		{name: "unknown cloud", spec: CloudSpec{Name: "AzureGermany"}, url: "https://a.vault.azure.net/", err: "unknown cloud"},
		{name: "http vault", url: "http://a.vault.azure.net/", err: "not an https URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c, err := ResolveCloud(tc.spec, tc.url, env(tc.env))
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(c.AuthorityHost).To(Equal(tc.authority))
			g.Expect(c.KeyVaultScope()).To(Equal(tc.scope))
		})
	}
}

func selfSigned(t *testing.T, key any, pub any) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestParseClientCertificate(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert := selfSigned(t, rsaKey, &rsaKey.PublicKey)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	modern, err := pkcs12.Modern.Encode(rsaKey, cert, nil, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := pkcs12.LegacyDES.Encode(rsaKey, cert, nil, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecCert := selfSigned(t, ecKey, &ecKey.PublicKey)
	ecPFX, _ := pkcs12.Modern.Encode(ecKey, ecCert, nil, "")

	cases := []struct {
		name     string
		data     []byte
		password string
		err      string
	}{
		{name: "PEM, certificate first", data: append(append([]byte{}, certPEM...), keyPEM...)},
		{name: "PEM, key first, with surrounding space", data: append(append([]byte("\n"), keyPEM...), certPEM...)},
		{name: "PFX modern with password", data: modern, password: "s3cret"},
		{name: "PFX legacy with password", data: legacy, password: "s3cret"},
		{name: "PFX in base64", data: []byte(base64.StdEncoding.EncodeToString(modern)), password: "s3cret"},
		{name: "PFX without its password", data: modern, err: "protected by a password"},
		{name: "PFX with a wrong password", data: modern, password: "nope", err: "does not open"},
		{name: "PEM without key", data: certPEM, err: "no private key"},
		{name: "EC key", data: ecPFX, err: "not an RSA key"},
		{name: "garbage", data: []byte("not a certificate"), err: "PKCS#12"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			certs, key, err := ParseClientCertificate(tc.data, tc.password)
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
				g.Expect(err.Error()).NotTo(ContainSubstring("s3cret"))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(key.Equal(rsaKey)).To(BeTrue())
			g.Expect(certs).NotTo(BeEmpty())
			g.Expect(certs[0].Equal(cert)).To(BeTrue(), "the leaf comes first")
		})
	}
}

func TestServicePrincipalKeyAndErrors(t *testing.T) {
	g := NewWithT(t)
	sp := ServicePrincipal{TenantID: tenantID, ClientID: clientID, Namespace: "team-a",
		ClientSecret: []byte("one"), ClientSecretFrom: SecretKey{Name: "sp", Key: "secret"}}
	k1 := sp.Key()
	g.Expect(k1.Secrets).To(Equal("sp"))
	g.Expect(k1.UsesSecret("team-a", "sp")).To(BeTrue())
	g.Expect(k1.UsesSecret("team-b", "sp")).To(BeFalse())
	g.Expect(k1.String()).NotTo(ContainSubstring("one"))
	sp.ClientSecret = []byte("two")
	g.Expect(sp.Key()).NotTo(Equal(k1), "new material, new credential")

	cert := ServicePrincipal{TenantID: tenantID, ClientID: clientID, Namespace: "team-a",
		Certificate: []byte("junk"), CertificateFrom: SecretKey{Name: "cert", Key: "tls.pem"},
		Password: []byte("pw"), PasswordFrom: SecretKey{Name: "pfx-password", Key: "password"}}
	g.Expect(cert.Key().Secrets).To(Equal("cert,pfx-password"))
	g.Expect(cert.Key().UsesSecret("team-a", "pfx-password")).To(BeTrue())
	_, err := NewServicePrincipalCredential(cert, nil)
	g.Expect(err).To(MatchError(ErrInvalidCertificate))
	g.Expect(Reason(err)).To(Equal("ClientCertificateUnusable"))
	g.Expect(err.Error()).To(ContainSubstring(`Secret team-a/cert, key "tls.pem"`))

	_, err = NewServicePrincipalCredential(ServicePrincipal{TenantID: tenantID, ClientID: clientID}, nil)
	g.Expect(err).To(HaveOccurred())
	cred, err := NewServicePrincipalCredential(sp, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cred).NotTo(BeNil())
}

func TestOperatorIdentityFromEnv(t *testing.T) {
	g := NewWithT(t)
	env := map[string]string{EnvClientID: clientID, EnvTenantID: tenantID, EnvFederatedTokenFile: "/var/run/secrets/azure/tokens/azure-identity-token"}
	o, err := OperatorIdentityFromEnv(func(k string) string { return env[k] })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(o.ClientID).To(Equal(clientID))
	g.Expect(o.Key().Method).To(Equal(MethodOperatorIdentity))

	delete(env, EnvTenantID)
	delete(env, EnvFederatedTokenFile)
	_, err = OperatorIdentityFromEnv(func(k string) string { return env[k] })
	g.Expect(err).To(MatchError(ErrOperatorIdentityUnavailable))
	g.Expect(err.Error()).To(ContainSubstring("AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID"))
	g.Expect(Reason(err)).To(Equal("OperatorIdentityNotConfigured"))
	g.Expect(Hint(err)).To(ContainSubstring("azure.workload.identity/use"))
}

func TestNotAllowed(t *testing.T) {
	g := NewWithT(t)
	err := NotAllowed("azureCLI", "only with --dev")
	g.Expect(err).To(MatchError(ErrMethodNotAllowed))
	g.Expect(Reason(err)).To(Equal("AuthMethodNotAllowed"))
	g.Expect(err.Error()).To(ContainSubstring("(azureCLI): only with --dev"))
	g.Expect(IsSecretMaterialError(err)).To(BeFalse())
	g.Expect(IsSecretMaterialError(&Error{Kind: ErrSecretKeyNotFound, Namespace: "a", Secret: "s", Key: "k"})).To(BeTrue())
	g.Expect(Hint(&Error{Kind: ErrSecretNotFound, Namespace: "a", Secret: "s"})).To(ContainSubstring(`create the Secret "s" in namespace "a"`))
}

// unsignedJWT is a token with the given claims, for the diagnostics of a federated assertion.
func unsignedJWT(claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "none"}) + "." + enc(claims) + ".c2ln"
}

type jwtRequester struct{ token string }

func (j jwtRequester) RequestToken(context.Context, string, string, string, time.Duration) (string, time.Time, error) {
	return j.token, time.Now().Add(time.Hour), nil
}

func TestFederatedCredentialMismatchCarriesTheClaims(t *testing.T) {
	g := NewWithT(t)
	entra := newFakeEntra(t)
	defer entra.Close()
	entra.fail = "70021"
	tok := unsignedJWT(map[string]any{"iss": "https://oidc.example/cluster", "sub": "system:serviceaccount:team-a:app", "aud": []string{TokenAudience}})
	wi := testWI
	wi.AuthorityHost = entra.URL + "/"
	cred, err := NewWorkloadIdentityCredential(jwtRequester{token: tok}, wi, entraOptions(entra))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	g.Expect(err).To(MatchError(ErrFederatedCredentialMismatch))
	g.Expect(Reason(err)).To(Equal("FederatedCredentialMismatch"))
	hint := Hint(err)
	g.Expect(hint).To(ContainSubstring(`issuer "https://oidc.example/cluster"`))
	g.Expect(hint).To(ContainSubstring(`subject "system:serviceaccount:team-a:app"`))
	g.Expect(hint).To(ContainSubstring(`audience "api://AzureADTokenExchange"`))
	g.Expect(hint).To(ContainSubstring(clientID))
	g.Expect(hint + err.Error()).NotTo(ContainSubstring(tok))

	// Through a vault request the reason and the claims survive keyvault's mapping.
	vault := keyvaulttest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keyvaulttest.WriteJSON(w, 200, keyvaulttest.SecretJSON("https://"+r.Host, "db", "0123456789abcdef0123456789abcdef", "value", "", true, false))
	}))
	defer vault.Close()
	c, err := keyvault.NewClient(vault.URL, cred, wi.Key().String(), &keyvault.Options{
		ClientOptions:                        azcore.ClientOptions{Transport: vault.Transport(), Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
	})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetSecret(context.Background(), "db", "")
	g.Expect(keyvault.Reason(err)).To(Equal("FederatedCredentialMismatch"))
	g.Expect(Reason(err)).To(Equal("FederatedCredentialMismatch"))
	g.Expect(Hint(err)).To(ContainSubstring("system:serviceaccount:team-a:app"))
}

// Entra ID names the claim that matched no federated credential: every such code is
// FederatedCredentialMismatch, and the hint says what the token carried, what to fix and how.
func TestFederatedCredentialMismatchPerCode(t *testing.T) {
	const (
		iss     = "https://oidc.example/cluster/"
		sub     = "system:serviceaccount:team-a:app"
		check   = "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
		mi      = "az identity federated-credential create"
		app     = "az ad app federated-credential create --id " + clientID
		withAll = `--issuer ` + iss + ` --subject ` + sub + ` --audiences ` + TokenAudience
	)
	cases := []struct {
		code, desc string
		hint       []string
	}{
		{"70021", "No matching federated identity record found for presented assertion. Assertion Issuer: '" + iss + "'. Assertion Subject: '" + sub + "'. Assertion Audience: '" + TokenAudience + "'.",
			[]string{`issuer "` + iss + `", subject "` + sub + `" and audience "` + TokenAudience + `"`, "matches all three"}},
		{"700211", "No matching federated identity record found for presented assertion issuer '" + iss + "'. " + check,
			[]string{`no federated credential with the issuer "` + iss + `"`, "trailing"}},
		{"700213", "No matching federated identity record found for presented assertion subject '" + sub + "'. " + check,
			[]string{`none has the subject "` + sub + `"`, "system:serviceaccount:<namespace>:<name>"}},
		{"7002138", "No matching federated identity record found for presented assertion subject '" + sub + "'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison.",
			[]string{`differs from the token's subject "` + sub + `" only in letter case`, "case-sensitively", `set its subject to exactly "` + sub + `"`}},
		{"700212", "No matching federated identity record found for presented assertion audience '" + TokenAudience + "'. " + check,
			[]string{`matches the issuer "` + iss + `" and subject "` + sub + `"`, `do not include "` + TokenAudience + `"`}},
	}
	entra := newFakeEntra(t)
	defer entra.Close()
	tok := unsignedJWT(map[string]any{"iss": iss, "sub": sub, "aud": []string{TokenAudience}})
	wi := testWI
	wi.AuthorityHost = entra.URL + "/"
	for _, tc := range cases {
		t.Run("AADSTS"+tc.code, func(t *testing.T) {
			g := NewWithT(t)
			entra.mu.Lock()
			entra.fail, entra.desc = tc.code, tc.desc
			entra.mu.Unlock()
			cred, err := NewWorkloadIdentityCredential(jwtRequester{token: tok}, wi, entraOptions(entra))
			g.Expect(err).NotTo(HaveOccurred())
			_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
			g.Expect(err).To(MatchError(ErrFederatedCredentialMismatch))
			g.Expect(Reason(err)).To(Equal("FederatedCredentialMismatch"))
			var ce *Error
			g.Expect(errors.As(err, &ce)).To(BeTrue())
			g.Expect(ce.AADSTS).To(Equal(tc.code))
			g.Expect(err.Error()).To(ContainSubstring("(AADSTS" + tc.code + ": "))
			g.Expect(err.Error()).NotTo(ContainSubstring("Trace ID"))
			hint := Hint(err)
			for _, want := range tc.hint {
				g.Expect(hint).To(ContainSubstring(want))
			}
			g.Expect(hint).To(ContainSubstring(mi + " --name <name> --identity-name <identity> --resource-group <group> " + withAll))
			g.Expect(hint).To(ContainSubstring(app))
			g.Expect(hint).To(ContainSubstring(`"subject":"` + sub + `"`))
			g.Expect(hint + err.Error()).NotTo(ContainSubstring(tok))
		})
	}

	// Without the presented token's claims the hint still names the case and the commands.
	g := NewWithT(t)
	e := &Error{Kind: ErrFederatedCredentialMismatch, AADSTS: "7002138", ClientID: clientID}
	g.Expect(e.AuthHint()).To(ContainSubstring("only in letter case"))
	g.Expect(e.AuthHint()).To(ContainSubstring(mi))
	g.Expect(e.AuthHint()).To(ContainSubstring(app))
}

func TestEntraFailure(t *testing.T) {
	g := NewWithT(t)
	entra := newFakeEntra(t)
	defer entra.Close()
	entra.fail = "7000215"
	wi := testWI
	wi.AuthorityHost = entra.URL + "/"
	cred, err := NewWorkloadIdentityCredential(&fakeRequester{now: time.Now, life: time.Hour}, wi, entraOptions(entra))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	g.Expect(err).To(HaveOccurred())
	code, status, msg := EntraFailure(err)
	g.Expect(code).To(Equal("7000215"))
	g.Expect(status).To(Equal(400))
	g.Expect(msg).NotTo(ContainSubstring("Trace ID"))
	g.Expect(msg).NotTo(HavePrefix("AADSTS"))

	code, status, msg = EntraFailure(errors.New("AADSTS90002: Tenant not found.\nmore"))
	g.Expect([]any{code, status, msg}).To(Equal([]any{"90002", 0, "AADSTS90002: Tenant not found."}))
	code, _, _ = EntraFailure(nil)
	g.Expect(code).To(BeEmpty())
	g.Expect(claimsOf("not-a-jwt")).To(BeNil())
	g.Expect(claimsOf(unsignedJWT(map[string]any{"iss": "i", "sub": "s", "aud": "a"}))).To(Equal(&Claims{Issuer: "i", Subject: "s", Audience: "a"}))
}

// countingCredential counts token requests and answers after a delay.
type countingCredential struct {
	calls atomic.Int64
	delay time.Duration
	err   error
}

func (c *countingCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	n := c.calls.Add(1)
	select {
	case <-time.After(c.delay):
	case <-ctx.Done():
		return azcore.AccessToken{}, ctx.Err()
	}
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	return azcore.AccessToken{Token: "t" + strings.Repeat("x", int(n)), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestCachingCredentialAndSerialization(t *testing.T) {
	g := NewWithT(t)
	inner := &countingCredential{delay: 20 * time.Millisecond}
	clk := &testClock{now: time.Now()}
	cc := &cachingCredential{inner: inner, now: clk.Now, tokens: map[string]azcore.AccessToken{}}

	// The cache serializes concurrent callers behind one token request (serialCredential).
	cache := NewCache(10)
	cred, err := cache.GetOrCreate(AzureCLI{}.Key(), func() (azcore.TokenCredential, error) { return cc, nil })
	g.Expect(err).NotTo(HaveOccurred())
	var wg sync.WaitGroup
	opts := policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}}
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cred.GetToken(context.Background(), opts)
			g.Expect(err).NotTo(HaveOccurred())
		}()
	}
	wg.Wait()
	g.Expect(inner.calls.Load()).To(Equal(int64(1)))

	clk.Advance(54 * time.Minute) // 6 minutes left: still good
	_, _ = cred.GetToken(context.Background(), opts)
	g.Expect(inner.calls.Load()).To(Equal(int64(1)))
	clk.Advance(2 * time.Minute) // 4 minutes left: renew
	_, _ = cred.GetToken(context.Background(), opts)
	g.Expect(inner.calls.Load()).To(Equal(int64(2)))
	_, _ = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.cn/.default"}})
	g.Expect(inner.calls.Load()).To(Equal(int64(3)), "another scope, another token")

	// A waiting caller honours its context.
	slow := &countingCredential{delay: time.Hour}
	sc, _ := cache.GetOrCreate(ManagedIdentity{ClientID: clientID}.Key(), func() (azcore.TokenCredential, error) { return slow, nil })
	go func() { _, _ = sc.GetToken(context.Background(), opts) }()
	g.Eventually(slow.calls.Load).Should(Equal(int64(1)))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = sc.GetToken(ctx, opts)
	g.Expect(err).To(MatchError(context.DeadlineExceeded))

	// Failures are not cached.
	failing := &cachingCredential{inner: &countingCredential{err: errors.New("az: not logged in")}, now: time.Now, tokens: map[string]azcore.AccessToken{}}
	_, err = failing.GetToken(context.Background(), opts)
	g.Expect(err).To(HaveOccurred())
	g.Expect(failing.tokens).To(BeEmpty())

	// DropWhere returns what it dropped.
	dropped := cache.DropWhere(func(k Key) bool { return k.Method == MethodManagedIdentity })
	g.Expect(dropped).To(ConsistOf(ManagedIdentity{ClientID: clientID}.Key()))
	g.Expect(cache.Len()).To(Equal(1))
}

func TestManagedIdentityKeys(t *testing.T) {
	g := NewWithT(t)
	g.Expect(ManagedIdentity{}.Key()).NotTo(Equal(ManagedIdentity{ClientID: clientID}.Key()))
	g.Expect(ManagedIdentity{ResourceID: "/subscriptions/x"}.Key().String()).To(ContainSubstring("%2Fsubscriptions%2Fx"))
	g.Expect(AzureCLI{TenantID: tenantID}.Key()).NotTo(Equal(AzureCLI{}.Key()))
}

// A Custom cloud may name only an authority host the operator trusts: the
// Azure clouds' own, or one listed by its administrator.
func TestCheckAuthority(t *testing.T) {
	g := NewWithT(t)
	custom := func(h string) Cloud { return Cloud{Name: CloudCustom, AuthorityHost: h, VaultSuffix: "vault.example"} }
	g.Expect(CheckAuthority(custom("https://login.microsoftonline.us/"), nil)).To(Succeed())
	g.Expect(CheckAuthority(custom("https://LOGIN.chinacloudapi.cn/"), nil)).To(Succeed())
	err := CheckAuthority(custom("https://login.attacker.example/"), nil)
	g.Expect(err).To(MatchError(ErrAuthorityNotAllowed))
	g.Expect(Reason(err)).To(Equal(ReasonAuthorityHostNotAllowed))
	g.Expect(Hint(err)).To(ContainSubstring("--custom-authority-hosts"))
	g.Expect(CheckAuthority(custom("https://login.attacker.example/"), []string{"adfs.corp.example", "Login.Attacker.Example"})).To(Succeed())
	g.Expect(CheckAuthority(knownClouds[CloudAzurePublic], nil)).To(Succeed(), "only Custom clouds are checked")
}
