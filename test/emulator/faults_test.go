package emulator_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/test/emulator"
)

func authFailure(t *testing.T, err error) (int, string) {
	t.Helper()
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) {
		t.Fatalf("want AuthenticationFailedError, got %T: %v", err, err)
	}
	return afe.RawResponse.StatusCode, err.Error()
}

func TestTokenErrors(t *testing.T) {
	g := NewWithT(t)
	name, clientID, _ := secretIdentity(t)

	status, msg := authFailure(t, readProbe(t, name, secretCredential(t, clientID, "wrong-secret")))
	g.Expect(status).To(Equal(401))
	g.Expect(msg).To(ContainSubstring("AADSTS7000215"))

	unknown := guid()
	status, msg = authFailure(t, readProbe(t, name, secretCredential(t, unknown, "x")))
	g.Expect(status).To(Equal(400))
	g.Expect(msg).To(ContainSubstring("AADSTS700016"))
	g.Expect(msg).To(ContainSubstring(unknown))

	other := guid()
	resp, err := http.PostForm("https://login.microsoftonline.com/"+other+"/oauth2/v2.0/token",
		url.Values{"client_id": {clientID}, "grant_type": {"client_credentials"}, "client_secret": {"x"}, "scope": {"https://vault.azure.net/.default"}})
	g.Expect(err).NotTo(HaveOccurred())
	r := rawResponse{status: resp.StatusCode, body: readBody(t, resp)}
	_ = resp.Body.Close()
	g.Expect(r.status).To(Equal(400))
	g.Expect(r.json(t)["error_codes"]).To(Equal([]any{float64(90002)}))
	g.Expect(r.json(t)["error_description"]).To(ContainSubstring(other))
}

// recordingCredential remembers the tokens it handed out.
type recordingCredential struct {
	azcore.TokenCredential
	mu     sync.Mutex
	tokens []string
}

func (r *recordingCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := r.TokenCredential.GetToken(ctx, o)
	if err == nil {
		r.mu.Lock()
		r.tokens = append(r.tokens, tok.Token)
		r.mu.Unlock()
	}
	return tok, err
}

func TestExpiredTokenIsRefused(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	name, clientID, secret := secretIdentity(t)
	vaultName, vaultURL := newVault(t, emulator.RoleAssignment{Principal: name, Role: "Key Vault Secrets User"})
	_, err := emu.SetSecret(vaultName, "s", emulator.SecretVersion{Value: "v"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(emu.SetFaults(emulator.Faults{TokenLifetime: emulator.DurationOf(time.Second)})).To(Succeed())
	defer emu.ClearFaults()

	cred := &recordingCredential{TokenCredential: secretCredential(t, clientID, secret)}
	c := secretsClient(t, vaultURL, cred)
	_, err = c.GetSecret(ctx, "s", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cred.tokens).To(HaveLen(1))
	first := cred.tokens[0]

	// once expired, the vault answers 401 with the challenge
	g.Eventually(func() int {
		return raw(t, http.MethodGet, vaultURL+"/secrets/s/?api-version=7.4", first, "").status
	}, 5*time.Second, 100*time.Millisecond).Should(Equal(http.StatusUnauthorized))
	r := raw(t, http.MethodGet, vaultURL+"/secrets/s/?api-version=7.4", first, "")
	g.Expect(r.header.Get("WWW-Authenticate")).To(Equal(`Bearer authorization="https://login.microsoftonline.com/` + emu.TenantID() + `", resource="https://vault.azure.net"`))
	g.Expect(r.json(t)["error"].(map[string]any)["message"]).To(ContainSubstring("TokenExpired"))

	// the client acquires a new token and succeeds
	_, err = c.GetSecret(ctx, "s", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(cred.tokens)).To(BeNumerically(">=", 2))
	g.Expect(cred.tokens[len(cred.tokens)-1]).NotTo(Equal(first))
	g.Expect(emu.Count(emulator.LogFilter{Operation: "Token", Identity: name, Status: 200})).To(Equal(len(cred.tokens)))
}

func TestThrottlingHonoursRetryAfter(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	name, clientID, secret := secretIdentity(t)
	vaultName := uniqueName("th")
	g.Expect(emu.AddVault(emulator.Vault{Name: vaultName,
		RoleAssignments: []emulator.RoleAssignment{{Principal: name, Role: "Key Vault Secrets User"}},
		Secrets:         []emulator.Secret{{Name: "s", SecretVersion: emulator.SecretVersion{Value: "v"}}},
		Limits:          &emulator.Limits{Requests: 3, Window: emulator.DurationOf(time.Second)}})).To(Succeed())
	// default retry policy: azcore honours Retry-After on 429
	c, err := azsecrets.NewClient(emu.VaultURL(vaultName), secretCredential(t, clientID, secret), nil)
	g.Expect(err).NotTo(HaveOccurred())
	for range 3 { // challenge + 3 GETs: the budget of 3 per second runs out
		_, err := c.GetSecret(ctx, "s", "", nil)
		g.Expect(err).NotTo(HaveOccurred())
	}
	log := emu.Requests(emulator.LogFilter{Vault: vaultName})
	var throttled, after *emulator.LogEntry
	for i := range log {
		if log[i].Status == 429 && throttled == nil {
			throttled = &log[i]
		} else if throttled != nil && log[i].Status == 200 && after == nil {
			after = &log[i]
		}
	}
	g.Expect(throttled).NotTo(BeNil(), "no 429 in %v", log)
	g.Expect(throttled.ErrorCode).To(Equal("Throttled"))
	g.Expect(after).NotTo(BeNil())
	g.Expect(after.Time.Sub(throttled.Time)).To(BeNumerically(">=", 900*time.Millisecond))

	r := raw(t, http.MethodGet, emu.VaultURL(vaultName)+"/secrets/s/?api-version=7.4", "", "")
	for r.status != 429 {
		r = raw(t, http.MethodGet, emu.VaultURL(vaultName)+"/secrets/s/?api-version=7.4", "", "")
	}
	g.Expect(r.header.Get("Retry-After")).To(MatchRegexp(`^[1-9][0-9]*$`))
	g.Expect(r.json(t)["error"].(map[string]any)["message"]).To(ContainSubstring("VaultRequestTypeLimitReached"))
}

func TestInjectedVaultFaults(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	name, clientID, secret := secretIdentity(t)
	vaultName, vaultURL := newVault(t, emulator.RoleAssignment{Principal: name, Role: "Key Vault Secrets Officer"})
	_, err := emu.SetSecret(vaultName, "s", emulator.SecretVersion{Value: "v"})
	g.Expect(err).NotTo(HaveOccurred())
	c := secretsClient(t, vaultURL, secretCredential(t, clientID, secret))
	_, err = c.GetSecret(ctx, "s", "", nil) // warm up the token
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(emu.SetFaults(emulator.Faults{Vaults: []emulator.VaultFault{
		{Vault: vaultName, Operation: "GetSecret", Status: 503, Count: 2},
		{Vault: vaultName, Operation: "GetSecrets", Latency: emulator.DurationOf(300 * time.Millisecond)},
	}})).To(Succeed())
	defer emu.ClearFaults()
	_, err = c.GetSecret(ctx, "s", "", nil)
	var re *azcore.ResponseError
	g.Expect(errors.As(err, &re)).To(BeTrue())
	g.Expect(re.StatusCode).To(Equal(503))
	_, err = c.GetSecret(ctx, "s", "", nil)
	g.Expect(err).To(HaveOccurred())
	_, err = c.GetSecret(ctx, "s", "", nil) // the fault is used up
	g.Expect(err).NotTo(HaveOccurred())
	start := time.Now()
	_, err = c.NewListSecretPropertiesPager(nil).NextPage(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(time.Since(start)).To(BeNumerically(">=", 300*time.Millisecond))
	_, err = c.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: ptr("w")}, nil) // other operations unaffected
	g.Expect(err).NotTo(HaveOccurred())
}

func TestTokenServiceDown(t *testing.T) {
	g := NewWithT(t)
	name, clientID, secret := secretIdentity(t)
	noRetryCred := func() azcore.TokenCredential {
		c, err := azidentity.NewClientSecretCredential(emu.TenantID(), clientID, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: azcore.ClientOptions{Retry: noRetry()}})
		g.Expect(err).NotTo(HaveOccurred())
		return c
	}
	g.Expect(emu.SetFaults(emulator.Faults{TokenService: &emulator.TokenServiceFault{Down: true}})).To(Succeed())
	defer emu.ClearFaults()
	err := readProbe(t, name, noRetryCred())
	g.Expect(err).To(HaveOccurred())
	g.Expect(emu.Count(emulator.LogFilter{Service: "entra", Status: 503})).To(BeNumerically(">=", 1))

	g.Expect(emu.SetFaults(emulator.Faults{TokenService: &emulator.TokenServiceFault{Down: true, Mode: "reset"}})).To(Succeed())
	err = readProbe(t, name, noRetryCred())
	g.Expect(err).To(HaveOccurred())

	emu.ClearFaults()
	g.Expect(readProbe(t, name, noRetryCred())).To(Succeed())
}

func TestProxyRefusesWhatItDoesNotEmulate(t *testing.T) {
	g := NewWithT(t)
	proxy, err := url.Parse(emu.ProxyURL())
	g.Expect(err).NotTo(HaveOccurred())
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}, Timeout: 10 * time.Second}
	_, err = client.Get("https://example.com/") //nolint:bodyclose // the proxy refuses the CONNECT: Get returns an error and no response
	g.Expect(err).To(MatchError(ContainSubstring("Forbidden")))
	_, err = client.Get("https://nosuchvault.vault.azure.net/secrets?api-version=7.4") //nolint:bodyclose // the proxy refuses the CONNECT: Get returns an error and no response
	g.Expect(err).To(MatchError(ContainSubstring("Bad Gateway")))
	resp, err := client.Get("http://example.com/")
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusForbidden))
	g.Expect(emu.Count(emulator.LogFilter{Service: "proxy", Status: 403})).To(BeNumerically(">=", 2))
}
