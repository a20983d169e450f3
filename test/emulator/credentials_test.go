package emulator_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/test/emulator"
)

const testIssuer = "https://kubernetes.default.svc.cluster.local"

// readSecret reads secret "probe" of a fresh vault where principal has Secrets User.
func readProbe(t *testing.T, principal string, cred azcore.TokenCredential) error {
	t.Helper()
	vaultName, vaultURL := newVault(t, emulator.RoleAssignment{Principal: principal, Role: "Key Vault Secrets User"})
	if _, err := emu.SetSecret(vaultName, "probe", emulator.SecretVersion{Value: "probe-value"}); err != nil {
		t.Fatal(err)
	}
	got, err := secretsClient(t, vaultURL, cred).GetSecret(ctxT(t), "probe", "", nil)
	if err != nil {
		return err
	}
	if *got.Value != "probe-value" {
		return fmt.Errorf("wrong value")
	}
	return nil
}

func TestClientSecretCredential(t *testing.T) {
	g := NewWithT(t)
	name, clientID, secret := secretIdentity(t)
	emu.ResetLog()
	g.Expect(readProbe(t, name, secretCredential(t, clientID, secret))).To(Succeed())
	g.Expect(emu.Count(emulator.LogFilter{Operation: "Token", Identity: clientID, AuthMethod: "client_secret", Status: 200})).To(Equal(1))
}

// selfSignedCert makes a client certificate.
func selfSignedCert(t *testing.T) (*x509.Certificate, *rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestClientCertificateCredential(t *testing.T) {
	g := NewWithT(t)
	cert, key, certPEM := selfSignedCert(t)
	name, clientID := uniqueName("cert"), guid()
	g.Expect(emu.AddIdentity(emulator.Identity{Name: name, ClientID: clientID, Certificates: []emulator.ClientCertificate{{PEM: certPEM}}})).To(Succeed())
	cred, err := azidentity.NewClientCertificateCredential(emu.TenantID(), clientID, []*x509.Certificate{cert}, key, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readProbe(t, name, cred)).To(Succeed())
	g.Expect(emu.Count(emulator.LogFilter{Operation: "Token", Identity: name, AuthMethod: "client_certificate", Status: 200})).To(Equal(1))

	// with the chain sent (x5c)
	cred2, err := azidentity.NewClientCertificateCredential(emu.TenantID(), clientID, []*x509.Certificate{cert}, key,
		&azidentity.ClientCertificateCredentialOptions{SendCertificateChain: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readProbe(t, name, cred2)).To(Succeed())

	// an unregistered certificate signs the assertion: AADSTS700027
	other, otherKey, _ := selfSignedCert(t)
	bad, err := azidentity.NewClientCertificateCredential(emu.TenantID(), clientID, []*x509.Certificate{other}, otherKey, nil)
	g.Expect(err).NotTo(HaveOccurred())
	err = readProbe(t, name, bad)
	g.Expect(err).To(MatchError(ContainSubstring("AADSTS700027")))

	// the registered thumbprint but signed by a different key (built by hand: azidentity refuses a mismatched pair)
	sum := sha256.Sum256(cert.Raw)
	endpoint := "https://login.microsoftonline.com/" + emu.TenantID() + "/oauth2/v2.0/token"
	tok := jwt.NewWithClaims(jwt.SigningMethodPS256, jwt.MapClaims{"aud": endpoint, "iss": clientID, "sub": clientID,
		"jti": guid(), "nbf": time.Now().Unix(), "exp": time.Now().Add(10 * time.Minute).Unix()})
	tok.Header["x5t#S256"] = base64.StdEncoding.EncodeToString(sum[:])
	forged, err := tok.SignedString(otherKey)
	g.Expect(err).NotTo(HaveOccurred())
	form := url.Values{"client_id": {clientID}, "grant_type": {"client_credentials"}, "scope": {"https://vault.azure.net/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {forged}}
	resp, err := http.PostForm(endpoint, form)
	g.Expect(err).NotTo(HaveOccurred())
	var body map[string]any
	g.Expect(json.NewDecoder(resp.Body).Decode(&body)).To(Succeed())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(401))
	g.Expect(body["error_description"]).To(HavePrefix("AADSTS700027: Client assertion failed signature validation"))
	g.Expect(body["error_codes"]).To(Equal([]any{float64(700027)}))
	g.Expect(body).To(HaveKey("trace_id"))
	g.Expect(body).To(HaveKey("correlation_id"))
	g.Expect(body).To(HaveKey("timestamp"))
}

// saKey signs service account tokens for the federated tests.
type saKey struct {
	key  *rsa.PrivateKey
	kid  string
	jwks string
}

func newSAKey(t *testing.T) saKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid := uniqueName("kid")
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()), "e": "AQAB",
	}}})
	return saKey{key: k, kid: kid, jwks: string(jwks)}
}

func (s saKey) token(t *testing.T, iss, sub, aud string, exp time.Duration) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": iss, "sub": sub, "aud": []string{aud},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(exp).Unix()})
	tok.Header["kid"] = s.kid
	out, err := tok.SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func federatedIdentity(t *testing.T, fc emulator.FederatedCredential) (string, string) {
	t.Helper()
	name, clientID := uniqueName("wi"), guid()
	if err := emu.AddIdentity(emulator.Identity{Name: name, ClientID: clientID, FederatedCredentials: []emulator.FederatedCredential{fc}}); err != nil {
		t.Fatal(err)
	}
	return name, clientID
}

func TestClientAssertionAndWorkloadIdentity(t *testing.T) {
	g := NewWithT(t)
	sa := newSAKey(t)
	subject := "system:serviceaccount:apps:web"
	name, clientID := federatedIdentity(t, emulator.FederatedCredential{Issuer: testIssuer, Subject: subject, JWKS: json.RawMessage(sa.jwks)})
	assertion := sa.token(t, testIssuer, subject, emulator.DefaultFederatedAudience, time.Hour)

	cred, err := azidentity.NewClientAssertionCredential(emu.TenantID(), clientID, func(context.Context) (string, error) { return assertion, nil }, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readProbe(t, name, cred)).To(Succeed())

	file := filepath.Join(t.TempDir(), "token")
	g.Expect(os.WriteFile(file, []byte(assertion), 0o600)).To(Succeed())
	wi, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{ClientID: clientID, TenantID: emu.TenantID(), TokenFilePath: file})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readProbe(t, name, wi)).To(Succeed())
	g.Expect(emu.Count(emulator.LogFilter{Operation: "Token", Identity: name, AuthMethod: "federated", Status: 200})).To(Equal(2))

	// signed by another key: signature invalid
	forged := newSAKey(t).token(t, testIssuer, subject, emulator.DefaultFederatedAudience, time.Hour)
	c, err := azidentity.NewClientAssertionCredential(emu.TenantID(), clientID, func(context.Context) (string, error) { return forged, nil }, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readProbe(t, name, c)).To(MatchError(ContainSubstring("AADSTS50013")))

	// expired assertion
	expired := sa.token(t, testIssuer, subject, emulator.DefaultFederatedAudience, -time.Hour)
	c, err = azidentity.NewClientAssertionCredential(emu.TenantID(), clientID, func(context.Context) (string, error) { return expired, nil }, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readProbe(t, name, c)).To(MatchError(ContainSubstring("AADSTS700024")))
}

// federatedFailure requests a token with assertion for clientID straight from the token endpoint and
// returns the status and the decoded error body.
func federatedFailure(t *testing.T, clientID, assertion string) (int, map[string]any) {
	t.Helper()
	endpoint := "https://login.microsoftonline.com/" + emu.TenantID() + "/oauth2/v2.0/token"
	form := url.Values{"client_id": {clientID}, "grant_type": {"client_credentials"}, "scope": {"https://vault.azure.net/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}, "client_info": {"1"}}
	resp, err := http.PostForm(endpoint, form)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// Entra answers a federated assertion that matches no federated credential with a code that says which
// claim failed: the issuer (700211), the subject (700213, or 7002138 when only the letter case differs),
// the audience (700212); 70021 remains for an identity without any federated credential.
func TestFederatedMismatchCodes(t *testing.T) {
	sa := newSAKey(t)
	subject := "system:serviceaccount:apps:web"
	name, clientID := federatedIdentity(t, emulator.FederatedCredential{Issuer: testIssuer, Subject: subject, JWKS: json.RawMessage(sa.jwks)})
	bare, bareID := uniqueName("nofic"), guid()
	if err := emu.AddIdentity(emulator.Identity{Name: bare, ClientID: bareID}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, client, iss, sub, aud string
		code                        int
		text                        string
	}{
		{"wrong issuer", clientID, "https://other-issuer.example", subject, emulator.DefaultFederatedAudience, 700211,
			"No matching federated identity record found for presented assertion issuer 'https://other-issuer.example'."},
		{"issuer with a trailing slash", clientID, testIssuer + "/", subject, emulator.DefaultFederatedAudience, 700211,
			"presented assertion issuer '" + testIssuer + "/'."},
		{"wrong subject", clientID, testIssuer, "system:serviceaccount:apps:other", emulator.DefaultFederatedAudience, 700213,
			"No matching federated identity record found for presented assertion subject 'system:serviceaccount:apps:other'."},
		{"subject differs in case", clientID, testIssuer, "system:serviceaccount:apps:Web", emulator.DefaultFederatedAudience, 7002138,
			"The subject matches with case-insensitive comparison, but not with case-sensitive comparison."},
		{"wrong audience", clientID, testIssuer, subject, "api://SomethingElse", 700212,
			"No matching federated identity record found for presented assertion audience 'api://SomethingElse'."},
		{"no federated credential", bareID, testIssuer, subject, emulator.DefaultFederatedAudience, 70021,
			"No matching federated identity record found for presented assertion. Assertion Issuer: '" + testIssuer +
				"'. Assertion Subject: '" + subject + "'. Assertion Audience: '" + emulator.DefaultFederatedAudience + "'."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			bad := sa.token(t, tc.iss, tc.sub, tc.aud, time.Hour)
			status, body := federatedFailure(t, tc.client, bad)
			prefix := fmt.Sprintf("AADSTS%d: ", tc.code)
			g.Expect(body).To(HaveKeyWithValue("error_codes", []any{float64(tc.code)}))
			g.Expect(status).To(Equal(http.StatusUnauthorized))
			g.Expect(body).To(HaveKeyWithValue("error", "invalid_client"))
			g.Expect(body["error_description"]).To(HavePrefix(prefix + "No matching federated identity record found for presented assertion"))
			g.Expect(body["error_description"]).To(ContainSubstring(tc.text))
			g.Expect(body["error_description"]).To(MatchRegexp(` Trace ID: [0-9a-f-]{36} Correlation ID: [0-9a-f-]{36} Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$`))
			for _, k := range []string{"trace_id", "correlation_id", "timestamp"} {
				g.Expect(body).To(HaveKeyWithValue(k, Not(BeEmpty())))
			}

			// The SDK surfaces the same answer.
			c, err := azidentity.NewClientAssertionCredential(emu.TenantID(), tc.client, func(context.Context) (string, error) { return bad, nil }, nil)
			g.Expect(err).NotTo(HaveOccurred())
			err = readProbe(t, name, c)
			var afe *azidentity.AuthenticationFailedError
			g.Expect(errors.As(err, &afe)).To(BeTrue(), "%v", err)
			g.Expect(afe.RawResponse.StatusCode).To(Equal(http.StatusUnauthorized))
			g.Expect(err.Error()).To(ContainSubstring(prefix))
		})
	}
	g := NewWithT(t)
	g.Expect(emu.Count(emulator.LogFilter{Operation: "Token", Identity: name, AuthMethod: "federated", Status: 200})).To(BeZero())
	g.Expect(emu.Count(emulator.LogFilter{Operation: "Token", Identity: name, AuthMethod: "federated", Status: http.StatusUnauthorized})).To(Equal(10))
}

func TestFederatedJWKSFromURL(t *testing.T) {
	g := NewWithT(t)
	sa := newSAKey(t)
	bearer := "kube-bearer-" + guid()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/openid/v1/jwks" || r.Header.Get("Authorization") != "Bearer "+bearer {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(sa.jwks))
	}))
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	srv.Listener = ln
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	caFile, tokenFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token")
	g.Expect(os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(tokenFile, []byte(bearer+"\n"), 0o600)).To(Succeed())

	subject := "system:serviceaccount:team:api"
	name, clientID := federatedIdentity(t, emulator.FederatedCredential{Issuer: testIssuer, Subject: subject,
		JWKSURL: srv.URL + "/openid/v1/jwks", CAFile: caFile, BearerTokenFile: tokenFile})
	assertion := sa.token(t, testIssuer, subject, emulator.DefaultFederatedAudience, time.Hour)
	cred, err := azidentity.NewClientAssertionCredential(emu.TenantID(), clientID, func(context.Context) (string, error) { return assertion, nil }, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readProbe(t, name, cred)).To(Succeed())

	// a non-loopback JWKS URL is refused
	err = emu.AddFederatedCredential(name, emulator.FederatedCredential{Issuer: "https://x", Subject: "s", JWKSURL: "https://example.com/jwks"})
	g.Expect(err).To(MatchError(ContainSubstring("not loopback")))
}

func TestManagedIdentityCredential(t *testing.T) {
	g := NewWithT(t)
	endpoint := os.Getenv("IDENTITY_ENDPOINT")
	u, err := url.Parse(endpoint)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(net.ParseIP(u.Hostname()).IsLoopback()).To(BeTrue(), "IDENTITY_ENDPOINT %q must be loopback", endpoint)
	g.Expect(os.Getenv("IDENTITY_HEADER")).NotTo(BeEmpty())

	// system-assigned: app-service of config.example.yaml
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readProbe(t, "app-service", cred)).To(Succeed())
	g.Expect(emu.Count(emulator.LogFilter{Service: "managedidentity", Identity: "app-service", Status: 200})).To(BeNumerically(">=", 1))

	// user-assigned by client id and by resource id
	name, clientID := uniqueName("uami"), guid()
	resID := "/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
	g.Expect(emu.AddIdentity(emulator.Identity{Name: name, ClientID: clientID, ManagedIdentity: &emulator.ManagedIdentity{Type: "UserAssigned", ResourceID: resID}})).To(Succeed())
	byClient, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(clientID)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readProbe(t, name, byClient)).To(Succeed())
	byRes, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ResourceID(resID)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readProbe(t, name, byRes)).To(Succeed())
	g.Expect(emu.Count(emulator.LogFilter{Service: "managedidentity", Identity: name, Status: 200})).To(Equal(2))

	// wrong or missing header
	req, _ := http.NewRequest(http.MethodGet, endpoint+"?api-version=2019-08-01&resource=https://vault.azure.net", nil)
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(400))
	req.Header.Set("X-IDENTITY-HEADER", "wrong")
	resp, err = http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(401))
	req.Header.Set("X-IDENTITY-HEADER", os.Getenv("IDENTITY_HEADER"))
	resp, err = http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	var body map[string]any
	g.Expect(json.NewDecoder(resp.Body).Decode(&body)).To(Succeed())
	_ = resp.Body.Close()
	g.Expect(body).To(HaveKey("access_token"))
	g.Expect(body["expires_on"]).To(BeAssignableToTypeOf(""))
	g.Expect(body["resource"]).To(Equal("https://vault.azure.net"))
	g.Expect(body["token_type"]).To(Equal("Bearer"))
}

func TestAzureCLICredential(t *testing.T) {
	g := NewWithT(t)
	name, _, _ := secretIdentity(t)
	tok, err := emu.MintToken(emulator.TokenRequest{Principal: name})
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" > %q\ncat <<'EOF'\n{\"accessToken\":%q,\"expires_on\":%d,\"tokenType\":\"Bearer\"}\nEOF\n", argsFile, tok.AccessToken, tok.ExpiresOn)
	g.Expect(os.WriteFile(filepath.Join(dir, "az"), []byte(script), 0o755)).To(Succeed())
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cred, err := azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: emu.TenantID()})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readProbe(t, name, cred)).To(Succeed())
	args, err := os.ReadFile(argsFile)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Fields(string(args))).To(ContainElements("get-access-token", "--resource", "https://vault.azure.net", "--tenant", emu.TenantID()))
}
