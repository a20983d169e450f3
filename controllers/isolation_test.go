package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/emulator"
)

// The isolation matrix: two teams, each with its own identity and vault. Nothing team-b can
// write lets it use team-a's ServiceAccount, Secret, VaultConnection or a ClusterVaultConnection
// that does not allow it, nor the node's, the operator's or a developer's identity, and nothing
// is sent to Azure for what is refused.
var _ = Describe("Tenant isolation", func() {
	It("keeps team-b away from team-a's identities, Secrets and connections", func() {
		const a, b = "team-a", "team-b"
		createNamespace(a, nil)
		createNamespace(b, nil)
		for _, team := range []string{a, b} {
			Expect(emu.AddVault(emulator.Vault{Name: team + "-kv"})).To(Succeed())
		}
		aClient := addIdentity(emulator.Identity{Name: a}, "team-a-kv")
		bClient := addIdentity(emulator.Identity{Name: b}, "team-b-kv")
		createServiceAccount(a, "app", aClient)
		createServiceAccount(a, "payments", aClient)
		createServiceAccount(b, "app", bClient)
		federate(a, a, "app")
		federate(a, a, "payments")
		federate(b, b, "app")
		spSecret := "team-a-sp-secret"
		rememberValue(spSecret)
		spClient := addIdentity(emulator.Identity{Name: "team-a-sp", ClientSecrets: []string{spSecret}}, "team-a-kv")
		createCredentialSecret(a, "team-a-sp", map[string][]byte{"client-secret": []byte(spSecret)})
		platform := addIdentity(emulator.Identity{Name: "platform-mi", ManagedIdentity: &emulator.ManagedIdentity{Type: "UserAssigned"}}, "team-a-kv")
		setVaultSecret("team-a-kv", "db", "team-a-db-password")
		setVaultSecret("team-b-kv", "db", "team-b-db-password")
		aURL, bURL := emu.VaultURL("team-a-kv"), emu.VaultURL("team-b-kv")
		wi := func(sa string) v1alpha1.VaultAuth {
			return v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: sa}}
		}
		spAuth := v1alpha1.VaultAuth{ServicePrincipal: &v1alpha1.ServicePrincipalAuth{TenantID: tenantID, ClientID: spClient,
			ClientSecretRef: &v1alpha1.SecretKeyRef{Name: "team-a-sp", Key: "client-secret"}}}

		// Each team reaches its own vault; team-a also through its VaultConnection and a
		// ClusterVaultConnection offered to it alone.
		Expect(k8s.Create(ctx, &v1alpha1.VaultConnection{ObjectMeta: metav1.ObjectMeta{Namespace: a, Name: "team-a-conn"},
			Spec: v1alpha1.VaultConnectionSpec{URL: aURL, Auth: spAuth}})).To(Succeed())
		onlyA := &v1alpha1.ClusterVaultConnection{ObjectMeta: metav1.ObjectMeta{Name: "team-a-only"}, Spec: v1alpha1.ClusterVaultConnectionSpec{
			URL: aURL, Auth: v1alpha1.VaultAuth{ManagedIdentity: &v1alpha1.ManagedIdentityAuth{ClientID: platform}},
			AllowedNamespaces: v1alpha1.AllowedNamespaces{Names: []string{a}},
		}}
		Expect(k8s.Create(ctx, onlyA)).To(Succeed())
		DeferCleanup(func() { Expect(k8s.Delete(ctx, onlyA)).To(Succeed()) })
		createVSExact(a, "own", vsInline(aURL, wi("app"), "db", "db"))
		createVSExact(a, "via-conn", vsVia(v1alpha1.KindVaultConnection, "team-a-conn", "db", "db"))
		createVSExact(a, "via-cluster", vsVia(v1alpha1.KindClusterVaultConnection, "team-a-only", "db", "db"))
		createVSExact(b, "own", vsInline(bURL, wi("app"), "db", "db"))
		for _, nn := range [][2]string{{a, "own"}, {a, "via-conn"}, {a, "via-cluster"}, {b, "own"}} {
			expectReady(nn[0], nn[1])
		}
		Expect(getSecret(b, "own").Data["db"]).To(Equal([]byte("team-b-db-password")))
		// team-b's own identity has no role on team-a's vault: the vault says so.
		createVSExact(b, "other-vault", vsInline(aURL, wi("app"), "db", "db"))
		expectNotReady(b, "other-vault", "ForbiddenByRbac")
		DeferCleanup(func() { Expect(k8s.Delete(ctx, getVS(b, "other-vault"))).To(Succeed()) })

		// From here on, nothing team-b does may reach Azure as anyone of team-a or the platform.
		since := time.Now()
		refused := map[string]string{
			// team-a's ServiceAccount name, team-a's Secret, team-a's VaultConnection: all looked
			// up in team-b, where they do not exist.
			"borrow-sa":     "ServiceAccountNotFound",
			"borrow-secret": "CredentialSecretNotFound",
			"borrow-conn":   "ConnectionNotFound",
			// A ClusterVaultConnection that does not allow team-b.
			"borrow-cluster": "NamespaceNotAllowed",
			// A developer's Azure CLI login: the operator does not run with --dev.
			"borrow-cli": "AuthMethodNotAllowed",
		}
		createVSExact(b, "borrow-sa", vsInline(aURL, wi("payments"), "db", "db"))
		createVSExact(b, "borrow-secret", vsInline(aURL, spAuth, "db", "db"))
		createVSExact(b, "borrow-conn", vsVia(v1alpha1.KindVaultConnection, "team-a-conn", "db", "db"))
		createVSExact(b, "borrow-cluster", vsVia(v1alpha1.KindClusterVaultConnection, "team-a-only", "db", "db"))
		createVSExact(b, "borrow-cli", vsInline(aURL, v1alpha1.VaultAuth{AzureCLI: &v1alpha1.AzureCLIAuth{}}, "db", "db"))
		for name, reason := range refused {
			c := expectNotReady(b, name, reason)
			Expect(c.Message).NotTo(BeEmpty())
		}
		Expect(expectNotReady(b, "borrow-cluster", "NamespaceNotAllowed").Message).To(ContainSubstring("allowedNamespaces"))

		// Admission refuses every way to name another namespace or a platform identity.
		rejected := []struct{ kind, yaml, want string }{
			{"VaultSecret", `
vault: {url: https://team-a-kv.vault.azure.net/, auth: {workloadIdentity: {serviceAccountName: app, serviceAccountNamespace: team-a}}}
data: [{key: db, remote: {name: db}}]`, "can only use ServiceAccounts of its own namespace"},
			{"VaultSecret", `
vault: {url: https://team-a-kv.vault.azure.net/, auth: {servicePrincipal: {tenantID: 72f9a8b1-6c3d-4e5f-8a9b-0c1d2e3f4a5b, clientID: 72f9a8b1-6c3d-4e5f-8a9b-0c1d2e3f4a5b, clientSecretRef: {name: team-a-sp, key: client-secret, namespace: team-a}}}}
data: [{key: db, remote: {name: db}}]`, `unknown field "spec.vault.auth.servicePrincipal.clientSecretRef.namespace"`},
			{"VaultSecret", `
connectionRef: {name: team-a-conn, namespace: team-a}
data: [{key: db, remote: {name: db}}]`, `unknown field "spec.connectionRef.namespace"`},
			{"VaultSecret", `
vault: {url: https://team-a-kv.vault.azure.net/, auth: {managedIdentity: {}}}
data: [{key: db, remote: {name: db}}]`, "managedIdentity is only allowed in a ClusterVaultConnection"},
			{"VaultSecret", `
vault: {url: https://team-a-kv.vault.azure.net/, auth: {operatorIdentity: {}}}
data: [{key: db, remote: {name: db}}]`, "operatorIdentity is only allowed in a ClusterVaultConnection"},
			{"VaultConnection", `
url: https://team-a-kv.vault.azure.net/
auth: {managedIdentity: {clientID: 72f9a8b1-6c3d-4e5f-8a9b-0c1d2e3f4a5b}}`, "managedIdentity is only allowed in a ClusterVaultConnection"},
			{"VaultConnection", `
url: https://team-a-kv.vault.azure.net/
auth: {workloadIdentity: {serviceAccountName: app, serviceAccountNamespace: team-a}}`, "can only use ServiceAccounts of its own namespace"},
		}
		for _, r := range rejected {
			err := createStrict(b, r.kind, r.yaml)
			Expect(err).To(HaveOccurred(), "%s accepted:%s", r.kind, r.yaml)
			Expect(apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring(r.want))
		}

		// The request log proves it: no token request and no vault call for anything refused.
		Expect(tokenRequests(aClient, since)).To(BeZero(), "team-a's workload identity")
		Expect(tokenRequests(spClient, since)).To(BeZero(), "team-a's service principal")
		Expect(azureCalls(emulator.LogFilter{Service: "managedidentity"}, since)).To(BeZero(), "the platform's managed identity")
		// (team-b's "other-vault" keeps retrying with its own identity, and keeps being refused.)
		for _, e := range emu.Requests(emulator.LogFilter{Service: "keyvault", Vault: "team-a-kv", Since: since}) {
			Expect(e.AppID).To(Equal(bClient), "a call to team-a's vault after the refusals: %+v", e)
			Expect(e.Status).To(Equal(403))
		}
		Expect(azureCalls(emulator.LogFilter{Service: "entra", Operation: "MintToken"}, since)).To(BeZero())

		// An administrator's decision is what opens a ClusterVaultConnection to team-b.
		patch := client.MergeFrom(onlyA.DeepCopy())
		onlyA.Spec.AllowedNamespaces.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"vaultsync.io/tier": "gold"}}
		Expect(k8s.Patch(ctx, onlyA, patch)).To(Succeed())
		Consistently(func() string {
			if c := readyCondition(b, "borrow-cluster")(); c != nil {
				return c.Reason
			}
			return ""
		}, 500*time.Millisecond).Should(Equal("NamespaceNotAllowed"))
		nsB := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: b}, nsB)).To(Succeed())
		nsB.Labels["vaultsync.io/tier"] = "gold"
		Expect(k8s.Update(ctx, nsB)).To(Succeed())
		expectReady(b, "borrow-cluster")
		Expect(getSecret(b, "borrow-cluster").Data["db"]).To(Equal([]byte("team-a-db-password")))
	})
})

// createStrict creates an object of kind from the YAML of its spec, with strict field validation
// (kubectl's default), so unknown fields are refused rather than dropped.
func createStrict(ns, kind, specYAML string) error {
	GinkgoHelper()
	spec := map[string]any{}
	Expect(yaml.Unmarshal([]byte(specYAML), &spec)).To(Succeed())
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
	u.SetNamespace(ns)
	u.SetGenerateName("refused-")
	return k8s.Create(ctx, u, client.FieldValidation("Strict"), client.DryRunAll)
}
