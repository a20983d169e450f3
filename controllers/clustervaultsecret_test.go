package controllers_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator"
)

// ClusterVaultSecrets: one VaultSecret per selected namespace, through an administrator's
// ClusterVaultConnection that must allow each namespace.
var _ = Describe("ClusterVaultSecret", func() {
	// platformConnection creates a vault holding secret name=value, a managed identity that may
	// read it, and a ClusterVaultConnection allowing the namespaces labelled allowKey=yes.
	platformConnection := func(prefix, name, value, allowKey string) *v1alpha1.ClusterVaultConnection {
		GinkgoHelper()
		vault := prefix + "-kv"
		Expect(emu.AddVault(emulator.Vault{Name: vault})).To(Succeed())
		mi := addIdentity(emulator.Identity{Name: prefix + "-mi", ManagedIdentity: &emulator.ManagedIdentity{Type: "UserAssigned"}}, vault)
		setVaultSecret(vault, name, value)
		cvc := &v1alpha1.ClusterVaultConnection{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-conn"}, Spec: v1alpha1.ClusterVaultConnectionSpec{
			URL: emu.VaultURL(vault), Auth: v1alpha1.VaultAuth{ManagedIdentity: &v1alpha1.ManagedIdentityAuth{ClientID: mi}},
			AllowedNamespaces: v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{allowKey: "yes"}}},
		}}
		Expect(k8s.Create(ctx, cvc)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, cvc))).To(Succeed()) })
		return cvc
	}
	namespace := func(labels map[string]string) string {
		GinkgoHelper()
		ns := fmt.Sprintf("cvs-%d", nsSeq.Add(1))
		createNamespace(ns, labels)
		return ns
	}
	newCVS := func(name, conn, remote string, namespaces []string, selector map[string]string) *v1alpha1.ClusterVaultSecret {
		GinkgoHelper()
		cvs := &v1alpha1.ClusterVaultSecret{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterVaultSecretSpec{
			Namespaces: namespaces,
			Template: v1alpha1.VaultSecretTemplate{
				Metadata: v1alpha1.TemplateMetadata{Labels: map[string]string{"team": "platform"}},
				Spec:     vsVia(v1alpha1.KindClusterVaultConnection, conn, "value", remote),
			},
		}}
		if selector != nil {
			cvs.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: selector}
		}
		Expect(k8s.Create(ctx, cvs)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, cvs))).To(Succeed()) })
		return cvs
	}
	getCVS := func(name string) *v1alpha1.ClusterVaultSecret {
		GinkgoHelper()
		cvs := &v1alpha1.ClusterVaultSecret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, cvs)).To(Succeed())
		return cvs
	}
	// status returns the status once it reflects the current generation.
	status := func(name string) func() *v1alpha1.ClusterVaultSecretStatus {
		return func() *v1alpha1.ClusterVaultSecretStatus {
			cvs := getCVS(name)
			if cvs.Status.ObservedGeneration != cvs.Generation {
				return nil
			}
			return &cvs.Status
		}
	}
	readyReason := func(name string) func() string {
		return func() string {
			st := status(name)()
			if st == nil {
				return ""
			}
			if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady); c != nil {
				return string(c.Status) + "/" + c.Reason
			}
			return ""
		}
	}
	vsGone := func(ns, name string) func() bool {
		return func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &v1alpha1.VaultSecret{}))
		}
	}
	secretGone := func(ns, name string) func() bool {
		return func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{}))
		}
	}
	// copyReady waits for the copy in ns to exist, then to be Ready.
	copyReady := func(ns, name string) {
		GinkgoHelper()
		Eventually(vsGone(ns, name), timeout, 100*time.Millisecond).Should(BeFalse(), "VaultSecret %s/%s is created", ns, name)
		expectReady(ns, name)
	}
	relabel := func(ns string, edit func(map[string]string)) {
		GinkgoHelper()
		n := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, n)).To(Succeed())
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		edit(n.Labels)
		Expect(k8s.Update(ctx, n)).To(Succeed())
	}

	It("fans out to labelled namespaces, follows relabels, refuses namespaces the connection does not allow and never takes over a tenant's VaultSecret", func() {
		const allow, ingress = "fanout.test/allowed", "fanout.test/ingress"
		cvc := platformConnection("fanout", "wildcard-tls", "fanout-wildcard-value", allow)
		public := map[string]string{ingress: "public", allow: "yes"}
		a, b := namespace(public), namespace(public)
		notAllowed := namespace(map[string]string{ingress: "public"})
		later := namespace(map[string]string{allow: "yes"})
		conflict := namespace(public)
		// A tenant's own VaultSecret of the same name, even carrying the label, is not a copy.
		tenant := vsVia(v1alpha1.KindClusterVaultConnection, cvc.Name, "mine", "wildcard-tls")
		Expect(k8s.Create(ctx, &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: conflict, Name: "wildcard",
			Labels: map[string]string{v1alpha1.LabelClusterVaultSecret: "wildcard"}}, Spec: tenant})).To(Succeed())

		newCVS("wildcard", cvc.Name, "wildcard-tls", nil, map[string]string{ingress: "public"})
		for _, ns := range []string{a, b} {
			copyReady(ns, "wildcard")
			Expect(getSecret(ns, "wildcard").Data["value"]).To(Equal([]byte("fanout-wildcard-value")))
			vs := getVS(ns, "wildcard")
			Expect(vs.Labels).To(HaveKeyWithValue("team", "platform"))
			Expect(metav1.GetControllerOf(vs)).To(HaveField("Kind", "ClusterVaultSecret"))
		}
		Eventually(readyReason("wildcard"), timeout, 100*time.Millisecond).Should(Equal("False/PartiallyProvisioned"))
		st := status("wildcard")()
		Expect(st.ProvisionedNamespaces).To(Equal([]string{a, b}))
		Expect(st.ProvisionedCount).To(BeEquivalentTo(2))
		Expect(st.FailedCount).To(BeEquivalentTo(2))
		Expect(st.FailedNamespaces).To(ConsistOf(
			And(HaveField("Namespace", notAllowed), HaveField("Reason", "NamespaceNotAllowed"), HaveField("Message", ContainSubstring("allowedNamespaces"))),
			And(HaveField("Namespace", conflict), HaveField("Reason", "TargetConflict"), HaveField("Message", ContainSubstring("vaultSecretName"))),
		))
		Expect(vsGone(notAllowed, "wildcard")()).To(BeTrue(), "a namespace the connection does not allow gets no VaultSecret")
		mine := getVS(conflict, "wildcard")
		Expect(metav1.GetControllerOf(mine)).To(BeNil())
		Expect(mine.Spec.Data[0].Key).To(Equal("mine"))

		By("a namespace relabelled in gets its copy")
		relabel(later, func(l map[string]string) { l[ingress] = "public" })
		copyReady(later, "wildcard")

		By("a namespace relabelled out loses its copy and the Secret")
		relabel(a, func(l map[string]string) { delete(l, ingress) })
		Eventually(vsGone(a, "wildcard"), timeout, 100*time.Millisecond).Should(BeTrue())
		Eventually(secretGone(a, "wildcard"), timeout, 100*time.Millisecond).Should(BeTrue())

		By("the administrator allowing the namespace provisions it; the conflict stays reported")
		relabel(notAllowed, func(l map[string]string) { l[allow] = "yes" })
		copyReady(notAllowed, "wildcard")
		Eventually(func() []string { return status("wildcard")().ProvisionedNamespaces }, timeout, 100*time.Millisecond).
			Should(Equal(sortedStrings(b, later, notAllowed)))
		Eventually(readyReason("wildcard"), timeout, 100*time.Millisecond).Should(Equal("False/TargetConflict"))

		By("the tenant removing its VaultSecret lets the copy in, and Ready turns True")
		Expect(k8s.Delete(ctx, mine)).To(Succeed())
		copyReady(conflict, "wildcard")
		Eventually(readyReason("wildcard"), timeout, 100*time.Millisecond).Should(Equal("True/Provisioned"))

		By("deleting the ClusterVaultSecret deletes its copies")
		Expect(k8s.Delete(ctx, getCVS("wildcard"))).To(Succeed())
		for _, ns := range []string{b, later, notAllowed, conflict} {
			Eventually(vsGone(ns, "wildcard"), timeout, 100*time.Millisecond).Should(BeTrue(), ns)
		}
	})

	It("reads Key Vault once for many namespaces, as for one", func() {
		const allow = "getcount.test/allowed"
		cvc := platformConnection("getcount", "shared-cert", "getcount-shared-value", allow)
		gets := func(object string, since time.Time) int {
			// Status 200: the SDK's first, unauthenticated request of a new client (the 401 challenge) is not a read.
			return azureCalls(emulator.LogFilter{Service: "keyvault", Operation: "GetSecret", Object: object, Status: 200}, since)
		}
		run := func(n int, object string) int {
			GinkgoHelper()
			setVaultSecret("getcount-kv", object, "getcount-"+object+"-value")
			var names []string
			for range n {
				names = append(names, namespace(map[string]string{allow: "yes"}))
			}
			since := time.Now()
			newCVS(object, cvc.Name, object, names, nil)
			Eventually(readyReason(object), timeout, 100*time.Millisecond).Should(Equal("True/Provisioned"))
			for _, ns := range names {
				Expect(getSecret(ns, object).Data["value"]).To(Equal([]byte("getcount-" + object + "-value")))
			}
			return gets(object, since)
		}
		one := run(1, "one-namespace")
		many := run(8, "eight-namespaces")
		GinkgoWriter.Printf("Key Vault GETs: 1 namespace: %d, 8 namespaces: %d\n", one, many)
		Expect(one).To(Equal(1))
		Expect(many).To(Equal(one))
	})

	It("updates its copies when the template changes, restores a copy edited in place, and moves them when vaultSecretName changes", func() {
		const allow = "update.test/allowed"
		cvc := platformConnection("update", "api-key", "update-api-key-value", allow)
		setVaultSecret("update-kv", "api-key-2", "update-api-key-2-value")
		a, b := namespace(map[string]string{allow: "yes"}), namespace(map[string]string{allow: "yes"})
		newCVS("api", cvc.Name, "api-key", []string{a, b}, nil)
		Eventually(readyReason("api"), timeout, 100*time.Millisecond).Should(Equal("True/Provisioned"))

		By("a template change reaches every copy")
		// Merge patches, not updates: the controllers write status meanwhile, and an update
		// with a stale resourceVersion would fail on that race, not on anything under test.
		cvs := getCVS("api")
		patch := client.MergeFrom(cvs.DeepCopy())
		cvs.Spec.Template.Spec.Data[0].Remote.Name = "api-key-2"
		cvs.Spec.Template.Metadata.Labels["tier"] = "gold"
		Expect(k8s.Patch(ctx, cvs, patch)).To(Succeed())
		for _, ns := range []string{a, b} {
			Eventually(secretValue(ns, "api", "value"), timeout, 100*time.Millisecond).Should(Equal("update-api-key-2-value"))
			Expect(getVS(ns, "api").Labels).To(HaveKeyWithValue("tier", "gold"))
		}

		By("a copy edited in place is put back")
		vs := getVS(a, "api")
		vsPatch := client.MergeFrom(vs.DeepCopy())
		vs.Spec.Data[0].Remote.Name = "api-key"
		Expect(k8s.Patch(ctx, vs, vsPatch)).To(Succeed())
		Eventually(func() string { return getVS(a, "api").Spec.Data[0].Remote.Name }, timeout, 100*time.Millisecond).Should(Equal("api-key-2"))

		By("a new vaultSecretName replaces the copies")
		cvs = getCVS("api")
		patch = client.MergeFrom(cvs.DeepCopy())
		cvs.Spec.VaultSecretName = "api-renamed"
		Expect(k8s.Patch(ctx, cvs, patch)).To(Succeed())
		for _, ns := range []string{a, b} {
			copyReady(ns, "api-renamed")
			Eventually(vsGone(ns, "api"), timeout, 100*time.Millisecond).Should(BeTrue(), ns)
		}
		Eventually(readyReason("api"), timeout, 100*time.Millisecond).Should(Equal("True/Provisioned"))
	})

	It("refuses at admission every way to read with a tenant's identity or credentials", func() {
		rejected := []struct{ yaml, want string }{
			{`
namespaces: [team-b]
template: {spec: {vault: {url: https://team-a-kv.vault.azure.net/, auth: {workloadIdentity: {serviceAccountName: app}}}, data: [{key: db, remote: {name: db}}]}}`,
				"spec.template.spec.vault is not allowed"},
			{`
namespaces: [team-b]
template: {spec: {connectionRef: {name: team-b-conn}, data: [{key: db, remote: {name: db}}]}}`,
				"must name a ClusterVaultConnection"},
			{`
template: {spec: {connectionRef: {kind: ClusterVaultConnection, name: shared}, data: [{key: db, remote: {name: db}}]}}`,
				"spec.namespaces or spec.namespaceSelector must select"},
			{`
namespaces: [Not_A_Namespace]
template: {spec: {connectionRef: {kind: ClusterVaultConnection, name: shared}, data: [{key: db, remote: {name: db}}]}}`,
				"spec.namespaces"},
			{`
namespaces: [team-b]
vaultSecretName: Bad_Name
template: {spec: {connectionRef: {kind: ClusterVaultConnection, name: shared}, data: [{key: db, remote: {name: db}}]}}`,
				"spec.vaultSecretName must be a DNS-1123 subdomain"},
			{`
namespaces: [team-b]
template: {metadata: {labels: {vaultsync.io/cluster-vault-secret: other}}, spec: {connectionRef: {kind: ClusterVaultConnection, name: shared}, data: [{key: db, remote: {name: db}}]}}`,
				"must not set vaultsync.io/cluster-vault-secret"},
		}
		for _, r := range rejected {
			err := createStrict("", "ClusterVaultSecret", r.yaml)
			Expect(err).To(HaveOccurred(), "accepted:%s", r.yaml)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring(r.want))
		}
		Expect(createStrict("", "ClusterVaultSecret", `
namespaceSelector: {matchLabels: {ingress: public}}
template: {spec: {connectionRef: {kind: ClusterVaultConnection, name: shared}, data: [{key: db, remote: {name: db}}]}}`)).To(Succeed())

		// The sample (wildcard TLS to namespaces labelled ingress=public) is admitted.
		root, err := controlplane.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		raw, err := os.ReadFile(filepath.Join(root, "config", "samples", "cluster", "clustervaultsecret_wildcard_tls.yaml"))
		Expect(err).NotTo(HaveOccurred())
		sample := &unstructured.Unstructured{}
		Expect(yaml.Unmarshal(raw, &sample.Object)).To(Succeed())
		Expect(sample.GetKind()).To(Equal("ClusterVaultSecret"))
		Expect(k8s.Create(ctx, sample, client.FieldValidation("Strict"), client.DryRunAll)).To(Succeed())
	})
})

func sortedStrings(s ...string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
