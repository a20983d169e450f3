package controllers_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/emulator"
)

var _ = Describe("Authentication diagnostics", func() {
	It("turns Entra ID failures into reasons and messages that say what to fix", func() {
		ns := newNamespace()
		// "app" is federated only for the subject system:serviceaccount:<ns>:app.
		createServiceAccount(ns, "unfederated", appClient)
		createServiceAccount(ns, "no-client-id", "")
		secret := "diag-secret-" + ns
		rememberValue(secret)
		known := addIdentity(emulator.Identity{Name: "diag-" + ns, ClientSecrets: []string{secret}}, vaultName)
		createCredentialSecret(ns, "good", map[string][]byte{"secret": []byte(secret)})
		createCredentialSecret(ns, "stale", map[string][]byte{"secret": []byte("not-the-secret-" + ns)})
		rememberValue("not-the-secret-" + ns)
		unknown, unused := newGUID(), newGUID()

		// One identity per federated credential mistake, each federated for a ServiceAccount of ns.
		fic := func(identity, sa string, fc emulator.FederatedCredential) {
			GinkgoHelper()
			clientID := addIdentity(emulator.Identity{Name: identity + "-" + ns})
			createServiceAccount(ns, sa, clientID)
			if fc.Issuer == "" {
				return // no federated credential at all
			}
			fc.Name, fc.JWKS = sa, jwks
			Expect(emu.AddFederatedCredential(identity+"-"+ns, fc)).To(Succeed())
		}
		subjectOf := func(sa string) string { return "system:serviceaccount:" + ns + ":" + sa }
		otherIssuer := "https://other-issuer.example.test"
		fic("wrong-issuer", "wrong-issuer", emulator.FederatedCredential{Issuer: otherIssuer, Subject: subjectOf("wrong-issuer"), Audience: tokenAudience})
		fic("wrong-audience", "wrong-audience", emulator.FederatedCredential{Issuer: issuer, Subject: subjectOf("wrong-audience"), Audience: "api://SomethingElse"})
		fic("subject-case", "subject-case", emulator.FederatedCredential{Issuer: issuer, Subject: subjectOf("Subject-Case"), Audience: tokenAudience})
		fic("no-fic", "no-fic", emulator.FederatedCredential{})

		wi := func(sa string) v1alpha1.VaultAuth {
			return v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: sa}}
		}
		sp := func(client, secretName string) v1alpha1.VaultAuth {
			return v1alpha1.VaultAuth{ServicePrincipal: &v1alpha1.ServicePrincipalAuth{TenantID: tenantID, ClientID: client,
				ClientSecretRef: &v1alpha1.SecretKeyRef{Name: secretName, Key: "secret"}}}
		}
		start := time.Now()
		createVSExact(ns, "mismatch", vsInline(vaultURL, wi("unfederated"), "v", "DbPassword"))
		createVSExact(ns, "no-client-id", vsInline(vaultURL, wi("no-client-id"), "v", "DbPassword"))
		for _, sa := range []string{"wrong-issuer", "wrong-audience", "subject-case", "no-fic"} {
			createVSExact(ns, sa, vsInline(vaultURL, wi(sa), "v", "DbPassword"))
		}
		createVSExact(ns, "unknown-client", vsInline(vaultURL, sp(unknown, "good"), "v", "DbPassword"))
		createVSExact(ns, "wrong-secret", vsInline(vaultURL, sp(known, "stale"), "v", "DbPassword"))
		createVSExact(ns, "missing-key", v1alpha1.VaultSecretSpec{
			Vault: &v1alpha1.VaultRef{URL: vaultURL, Auth: v1alpha1.VaultAuth{ServicePrincipal: &v1alpha1.ServicePrincipalAuth{
				TenantID: tenantID, ClientID: unused, ClientSecretRef: &v1alpha1.SecretKeyRef{Name: "good", Key: "password"}}}},
			Data: []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "DbPassword"}}},
		})

		// Entra ID names the claim that failed; each code reads FederatedCredentialMismatch, and the
		// message quotes Entra (code and claim) and the token, and says how to add the credential.
		mismatch := func(vs, code, entra string, more ...string) {
			GinkgoHelper()
			c := expectNotReady(ns, vs, "FederatedCredentialMismatch")
			Expect(c.Message).To(ContainSubstring("(AADSTS"+code+"): "+entra), "Entra's code and description")
			Expect(c.Message).To(ContainSubstring("az identity federated-credential create"))
			Expect(c.Message).To(ContainSubstring("az ad app federated-credential create"))
			for _, m := range more {
				Expect(c.Message).To(ContainSubstring(m))
			}
		}
		mismatch("mismatch", "700213", fmt.Sprintf("No matching federated identity record found for presented assertion subject '%s'", subjectOf("unfederated")),
			fmt.Sprintf("trusts the issuer %q", issuer), fmt.Sprintf("none has the subject %q", subjectOf("unfederated")),
			`audience "api://AzureADTokenExchange"`)
		mismatch("wrong-issuer", "700211", fmt.Sprintf("No matching federated identity record found for presented assertion issuer '%s'", issuer),
			fmt.Sprintf("no federated credential with the issuer %q", issuer))
		mismatch("wrong-audience", "700212", "No matching federated identity record found for presented assertion audience 'api://AzureADTokenExchange'",
			`do not include "api://AzureADTokenExchange"`)
		mismatch("subject-case", "7002138", fmt.Sprintf("No matching federated identity record found for presented assertion subject '%s'. "+
			"The subject matches with case-insensitive comparison, but not with case-sensitive comparison", subjectOf("subject-case")),
			fmt.Sprintf("differs from the token's subject %q only in letter case", subjectOf("subject-case")))
		mismatch("no-fic", "70021", fmt.Sprintf("No matching federated identity record found for presented assertion. Assertion Issuer: '%s'", issuer),
			fmt.Sprintf("issuer %q, subject %q and audience %q", issuer, subjectOf("no-fic"), tokenAudience))

		c := expectNotReady(ns, "no-client-id", "MissingClientID")
		Expect(c.Message).To(ContainSubstring("azure.workload.identity/client-id"))
		c = expectNotReady(ns, "unknown-client", "ClientNotFound")
		Expect(c.Message).To(ContainSubstring(unknown))
		c = expectNotReady(ns, "wrong-secret", "InvalidClientSecret")
		Expect(c.Message).To(ContainSubstring("update the referenced Kubernetes Secret"))
		c = expectNotReady(ns, "missing-key", "CredentialKeyNotFound")
		Expect(c.Message).To(ContainSubstring(`key "password"`))

		// A failure found in Kubernetes never reaches Azure.
		Expect(tokenRequests(unused, start)).To(BeZero())
		Expect(azureCalls(emulator.LogFilter{Service: "entra", Identity: known, Status: 200}, start)).To(BeZero())
	})

	It("keeps one credential per identity: many VaultSecrets of one ServiceAccount cost one token", func() {
		ns := newNamespace()
		clientID := addIdentity(emulator.Identity{Name: "counted-" + ns}, vaultName)
		createServiceAccount(ns, "counted", clientID)
		federate("counted-"+ns, ns, "counted")
		setVaultSecret(vaultName, "counted-"+ns, "counted-value-"+ns)
		start := time.Now()
		for i := range 5 {
			createVSExact(ns, fmt.Sprintf("c-%d", i), vsInline(vaultURL,
				v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "counted"}}, "v", "counted-"+ns))
		}
		for i := range 5 {
			expectReady(ns, fmt.Sprintf("c-%d", i))
		}
		Expect(tokenRequests(clientID, start)).To(Equal(1))
		forceSync(ns, "c-0", "again")
		Eventually(func() string { return getVS(ns, "c-0").Status.LastForceSync }, timeout).Should(Equal("again"))
		Expect(tokenRequests(clientID, start)).To(Equal(1), "the token is reused until it nears expiry")
	})
})
