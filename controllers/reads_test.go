package controllers_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/connector"
	"github.com/vaultsync/vaultsync/internal/secrets"
	"github.com/vaultsync/vaultsync/test/emulator"
)

// Reads of Key Vault shared between VaultSecrets, and what the operator
// watches of Secrets (issue 13, parts 4 and 5).
var _ = Describe("Shared reads and small watches", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("shares one Key Vault GET between VaultSecrets created together that read the same object", func() {
		name := "together-" + ns
		setSecret(name, "together-value")
		start := time.Now()
		const n = 20
		for i := range n {
			createVS(ns, fmt.Sprintf("t-%d", i), v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{item("v", name)}})
		}
		for i := range n {
			expectReady(ns, fmt.Sprintf("t-%d", i))
			Expect(secretValue(ns, fmt.Sprintf("t-%d", i), "v")()).To(Equal("together-value"))
		}
		Expect(azureCalls(emulator.LogFilter{Service: "keyvault", Operation: "GetSecret", Object: name, Status: 200}, start)).
			To(Equal(1), "%d first syncs with one identity, in flight together or within the window: one read", n)
	})

	It("never hands a read made with one identity to a VaultSecret of another, even when both ask together", func() {
		name := "per-identity-" + ns
		setSecret(name, "per-identity-value")
		// The second namespace's ServiceAccount is federated with an identity that has no
		// role on the vault: its read must fail, however fresh the other identity's read is.
		other := ns + "-other"
		createNamespace(other, nil)
		noRole := addIdentity(emulator.Identity{Name: "no-role-" + ns})
		createServiceAccount(other, "app", noRole)
		federate("no-role-"+ns, other, "app")
		start := time.Now()
		for i := range 5 {
			createVS(ns, fmt.Sprintf("a-%d", i), v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{item("v", name)}})
			createVS(other, fmt.Sprintf("b-%d", i), v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{item("v", name)}})
		}
		for i := range 5 {
			expectReady(ns, fmt.Sprintf("a-%d", i))
			expectNotReady(other, fmt.Sprintf("b-%d", i), "ForbiddenByRbac")
			err := k8s.Get(ctx, client.ObjectKey{Namespace: other, Name: fmt.Sprintf("b-%d", i)}, &corev1.Secret{})
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no Secret for the identity without a role")
		}
		Expect(azureCalls(emulator.LogFilter{Service: "keyvault", Operation: "GetSecret", Object: name, Status: 200}, start)).To(Equal(1))
		Expect(azureCalls(emulator.LogFilter{Service: "keyvault", Operation: "GetSecret", Object: name, Status: 403}, start)).
			To(BeNumerically(">=", 1), "the other identity asked the vault itself")
	})

	It("restores a target Secret whose managed label was removed by hand", func() {
		name := "unlabelled-" + ns
		setSecret(name, "unlabelled-value")
		createVS(ns, "unlabelled", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{item("v", name)}})
		expectReady(ns, "unlabelled")

		// Out of the label-filtered cache, and edited: the owner annotation and the controller
		// reference still say whose it is, so it is restored, label and data.
		s := getSecret(ns, "unlabelled")
		delete(s.Labels, secrets.LabelManaged)
		s.Data["v"] = []byte("edited by hand")
		Expect(k8s.Update(ctx, s)).To(Succeed())
		Eventually(func() map[string]string { return getSecret(ns, "unlabelled").Labels }, timeout, 100*time.Millisecond).
			Should(HaveKeyWithValue(secrets.LabelManaged, "true"))
		Eventually(secretValue(ns, "unlabelled", "v"), timeout, 100*time.Millisecond).Should(Equal("unlabelled-value"))
		expectReady(ns, "unlabelled")

		// An Orphan Secret carries no controller reference: without the label, the annotation
		// alone does not prove it is ours, and it is left alone.
		createVS(ns, "orphan", v1alpha1.VaultSecretSpec{Target: v1alpha1.SecretTarget{CreationPolicy: v1alpha1.CreationPolicyOrphan},
			Data: []v1alpha1.DataItem{item("v", name)}})
		expectReady(ns, "orphan")
		s = getSecret(ns, "orphan")
		delete(s.Labels, secrets.LabelManaged)
		Expect(k8s.Update(ctx, s)).To(Succeed())
		c := expectNotReady(ns, "orphan", "TargetConflict")
		Expect(c.Message).To(ContainSubstring("not managed by vaultsync"))
		Expect(getSecret(ns, "orphan").Labels).NotTo(HaveKey(secrets.LabelManaged))
	})

	It("watches only the credential Secrets it is asked about, and sees their rotation, deletion and return", func() {
		mc, err := metadata.NewForConfig(cp.Config)
		Expect(err).NotTo(HaveOccurred())
		w := connector.NewCredentialWatches(mc)
		wctx, stop := context.WithCancel(ctx)
		DeferCleanup(stop)
		go func() { _ = w.Start(wctx) }()
		for i := range 20 {
			Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("unrelated-%d", i)},
				Data: map[string][]byte{"blob": []byte("not the operator's business")}})).To(Succeed())
		}
		cred := createCredentialSecret(ns, "sp-cred", map[string][]byte{"client-secret": []byte("one")})
		key := types.NamespacedName{Namespace: ns, Name: "sp-cred"}
		meta := func() (string, error) {
			m := &metav1.PartialObjectMetadata{}
			err := w.Get(ctx, key, m)
			return m.ResourceVersion, err
		}
		rv, err := meta()
		Expect(err).NotTo(HaveOccurred())
		Expect(rv).To(Equal(cred.ResourceVersion))
		Expect(w.Watching(key)).To(BeTrue())
		Expect(w.Watching(types.NamespacedName{Namespace: ns, Name: "unrelated-0"})).To(BeFalse())
		Consistently(w.Held, time.Second, 100*time.Millisecond).Should(Equal(1), "the unrelated Secrets of the namespace are not held")

		updateCredentialSecret(ns, "sp-cred", map[string][]byte{"client-secret": []byte("two")})
		rotated := getSecret(ns, "sp-cred").ResourceVersion
		Eventually(meta, timeout, 50*time.Millisecond).Should(Equal(rotated))

		Expect(k8s.Delete(ctx, getSecret(ns, "sp-cred"))).To(Succeed())
		Eventually(func() bool { _, err := meta(); return apierrors.IsNotFound(err) }, timeout, 50*time.Millisecond).Should(BeTrue())
		back := createCredentialSecret(ns, "sp-cred", map[string][]byte{"client-secret": []byte("three")})
		Eventually(meta, timeout, 50*time.Millisecond).Should(Equal(back.ResourceVersion))
		Expect(w.Held()).To(Equal(1))
	})
})
