package emulator_test

import (
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// TestAdminAPI drives the emulator the way an out-of-process user does.
func TestAdminAPI(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	g.Expect(os.Getenv("KV_EMULATOR_ADMIN")).To(Equal(emu.AdminURL()))
	ac := admin.NewClient(os.Getenv("KV_EMULATOR_ADMIN"))

	env, err := ac.Env(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(env).To(Equal(emu.Env()))
	g.Expect(env["HTTPS_PROXY"]).To(Equal(os.Getenv("HTTPS_PROXY")))

	appName, clientID, secret := uniqueName("adm"), guid(), "admin-secret"
	g.Expect(ac.AddIdentity(ctx, admin.Identity{Name: appName, ClientID: clientID, ClientSecrets: []string{secret}})).To(Succeed())
	vaultName := uniqueName("ad")
	g.Expect(ac.AddVault(ctx, admin.Vault{Name: vaultName})).To(Succeed())
	vi, err := ac.SetSecret(ctx, vaultName, "pw", admin.SecretVersion{Value: "one", Tags: map[string]string{"a": "b"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(vi.Version).To(MatchRegexp(versionRE.String()))

	cred, err := azidentity.NewClientSecretCredential(emu.TenantID(), clientID, secret, nil)
	g.Expect(err).NotTo(HaveOccurred())
	c := secretsClient(t, "https://"+vaultName+".vault.azure.net", cred)
	_, err = c.GetSecret(ctx, "pw", "", nil)
	_, inner, _ := innerCode(t, err)
	g.Expect(inner).To(Equal("ForbiddenByRbac"))

	g.Expect(ac.AddRoleAssignment(ctx, vaultName, admin.RoleAssignment{Principal: appName, Role: "Key Vault Secrets User"})).To(Succeed())
	got, err := c.GetSecret(ctx, "pw", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*got.Value).To(Equal("one"))

	// rotate, disable
	vi2, err := ac.SetSecret(ctx, vaultName, "pw", admin.SecretVersion{Value: "two"})
	g.Expect(err).NotTo(HaveOccurred())
	got, err = c.GetSecret(ctx, "pw", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.ID.Version()).To(Equal(vi2.Version))
	g.Expect(ac.SetSecretEnabled(ctx, vaultName, "pw", "", false)).To(Succeed())
	_, err = c.GetSecret(ctx, "pw", "", nil)
	_, inner, _ = innerCode(t, err)
	g.Expect(inner).To(Equal("SecretDisabled"))

	// certificates and keys
	cvi, err := ac.ImportCertificate(ctx, vaultName, admin.Certificate{Name: "tls", Generate: &admin.GenerateCertificate{KeyType: "EC"}, PFXEncoding: "legacy"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cvi.X5t).NotTo(BeEmpty())
	_, err = ac.CreateKey(ctx, vaultName, admin.Key{Name: "k", Kty: "EC"})
	g.Expect(err).NotTo(HaveOccurred())

	// log and counters
	log, err := ac.Log(ctx, admin.LogFilter{Vault: vaultName, Operation: "GetSecret", Identity: clientID})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(log).To(HaveLen(4))
	g.Expect(log[0].AppID).To(Equal(clientID))
	counters, err := ac.Counters(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(counters).To(ContainElement(admin.Counter{Service: "keyvault", Vault: vaultName, Operation: "GetSecret", Identity: appName, Status: 200, Count: 2}))
	g.Expect(counters).To(ContainElement(admin.Counter{Service: "entra", Operation: "Token", Identity: appName, AuthMethod: "client_secret", Status: 200, Count: 1}))

	// faults
	g.Expect(ac.SetFaults(ctx, admin.Faults{Vaults: []admin.VaultFault{{Vault: vaultName, Status: 500, Count: 1}}})).To(Succeed())
	f, err := ac.Faults(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.Vaults).To(HaveLen(1))
	g.Expect(ac.SetFaults(ctx, admin.Faults{Vaults: []admin.VaultFault{{Status: 200}}})).To(MatchError(ContainSubstring("status")))
	g.Expect(ac.ClearFaults(ctx)).To(Succeed())

	// minted token works with curl-like clients
	tok, err := ac.MintToken(ctx, admin.TokenRequest{Principal: appName, Lifetime: admin.DurationOf(time.Minute)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok.ExpiresOn).To(BeNumerically("~", time.Now().Add(time.Minute).Unix(), 2))
	g.Expect(raw(t, http.MethodGet, "https://"+vaultName+".vault.azure.net/secrets?api-version=7.4", tok.AccessToken, "").status).To(Equal(200))

	// errors
	_, err = ac.SetSecret(ctx, "no-such-vault", "x", admin.SecretVersion{Value: "v"})
	var apiErr *admin.APIError
	g.Expect(errors.As(err, &apiErr)).To(BeTrue())
	g.Expect(apiErr.Status).To(Equal(404))
	g.Expect(ac.AddRoleAssignment(ctx, vaultName, admin.RoleAssignment{Principal: appName, Role: "Key Vault Foo"})).To(MatchError(ContainSubstring(`unknown role "Key Vault Foo"`)))

	g.Expect(ac.ResetLog(ctx)).To(Succeed())
	g.Expect(emu.Count(emulator.LogFilter{Vault: vaultName})).To(Equal(0))
}

func TestSovereignClouds(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	name, clientID, secret := secretIdentity(t)
	for _, tc := range []struct{ cloud, host, login, resource string }{
		{"AzureChina", "vault.azure.cn", "login.chinacloudapi.cn", "https://vault.azure.cn"},
		{"AzureUSGovernment", "vault.usgovcloudapi.net", "login.microsoftonline.us", "https://vault.usgovcloudapi.net"},
	} {
		vaultName := uniqueName("sov")
		g.Expect(emu.AddVault(emulator.Vault{Name: vaultName, Cloud: tc.cloud, RoleAssignments: []emulator.RoleAssignment{{Principal: name, Role: "Key Vault Secrets User"}},
			Secrets: []emulator.Secret{{Name: "s", SecretVersion: emulator.SecretVersion{Value: "v"}}}})).To(Succeed())
		vaultURL := "https://" + vaultName + "." + tc.host
		g.Expect(emu.VaultURL(vaultName)).To(Equal(vaultURL))
		r := raw(t, http.MethodGet, vaultURL+"/secrets/s/?api-version=7.4", "", "")
		g.Expect(r.header.Get("WWW-Authenticate")).To(Equal(`Bearer authorization="https://` + tc.login + `/` + emu.TenantID() + `", resource="` + tc.resource + `"`))
		cred, err := azidentity.NewClientSecretCredential(emu.TenantID(), clientID, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: azcoreCloud(tc.login)})
		g.Expect(err).NotTo(HaveOccurred())
		got, err := secretsClient(t, vaultURL, cred).GetSecret(ctx, "s", "", nil)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(*got.Value).To(Equal("v"))
		// a public-cloud token is refused by a sovereign vault
		r = raw(t, http.MethodGet, vaultURL+"/secrets/s/?api-version=7.4", mint(t, name), "")
		g.Expect(r.status).To(Equal(401))
		g.Expect(r.json(t)["error"].(map[string]any)["message"]).To(ContainSubstring("Invalid audience"))
	}
}
