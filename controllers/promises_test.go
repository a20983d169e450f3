package controllers_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/secrets"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// The promises of the README on the paths a real cluster walks besides the
// first sync: a foreign Secret appearing in a race, two VaultSecrets naming
// one Secret, a conflict that clears, a rollout the API refuses for a while,
// a connection that moves to another vault.
var _ = Describe("Promises under races and failures", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("never takes over a Secret that appeared after the cache looked (informer lag)", func() {
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "raced", Labels: map[string]string{"owner": "someone"}},
			Data:       map[string][]byte{"theirs": []byte("their-value")},
		}
		Expect(k8s.Create(ctx, foreign)).To(Succeed())
		// The caller looked before the Secret existed (or its informer has
		// not seen it yet): it passes no existing Secret.
		w := &secrets.Writer{Client: k8s, Exists: func(context.Context, string, string) (bool, error) { return false, nil }}
		owner := secrets.Owner{Namespace: ns, Name: "raced", UID: types.UID("00000000-0000-0000-0000-000000000001"),
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "VaultSecret"}
		_, err := w.Apply(ctx, owner, nil, secrets.Desired{Name: "raced", Type: corev1.SecretTypeOpaque,
			Policy: secrets.PolicyOwner, Data: map[string][]byte{"mine": []byte("x")}})
		Expect(err).To(MatchError(secrets.ErrConflict))

		got := getSecret(ns, "raced")
		Expect(got.OwnerReferences).To(BeEmpty(), "no controller reference: deleting a VaultSecret must never delete it")
		Expect(got.Labels).NotTo(HaveKey(secrets.LabelManaged))
		Expect(got.Data).To(Equal(map[string][]byte{"theirs": []byte("their-value")}))
	})

	It("refuses to Merge into a Secret that another VaultSecret owns", func() {
		setSecret("merge-owner-src", "merge-owner-value")
		setSecret("merge-intruder-src", "merge-intruder-value")
		createVS(ns, "owner", v1alpha1.VaultSecretSpec{Target: v1alpha1.SecretTarget{Name: "shared"},
			Data: []v1alpha1.DataItem{item("password", "merge-owner-src")}})
		expectReady(ns, "owner")
		createVS(ns, "intruder", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{Name: "shared", CreationPolicy: v1alpha1.CreationPolicyMerge},
			Data:   []v1alpha1.DataItem{item("password", "merge-intruder-src")}})
		c := expectNotReady(ns, "intruder", "TargetConflict")
		Expect(c.Message).To(ContainSubstring(ns + "/owner"))
		Consistently(secretValue(ns, "shared", "password"), 2*time.Second, 100*time.Millisecond).Should(Equal("merge-owner-value"))
		Expect(getSecret(ns, "shared").Annotations).NotTo(HaveKey(secrets.AnnotationMergePrefix + "intruder"))
	})

	It("refuses a Merge whose keys another Merge VaultSecret writes", func() {
		setSecret("merge-a-src", "merge-a-value")
		setSecret("merge-b-src", "merge-b-value")
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-config",
			Annotations: map[string]string{secrets.AnnotationMergeAllowed: "*"}},
			Data: map[string][]byte{"user-key": []byte("kept")}})).To(Succeed())
		merge := v1alpha1.SecretTarget{Name: "app-config", CreationPolicy: v1alpha1.CreationPolicyMerge}
		createVS(ns, "merge-a", v1alpha1.VaultSecretSpec{Target: merge, Data: []v1alpha1.DataItem{item("token", "merge-a-src")}})
		expectReady(ns, "merge-a")
		createVS(ns, "merge-b", v1alpha1.VaultSecretSpec{Target: merge, Data: []v1alpha1.DataItem{item("token", "merge-b-src")}})
		c := expectNotReady(ns, "merge-b", "TargetConflict")
		Expect(c.Message).To(ContainSubstring(ns + "/merge-a"))
		Expect(c.Message).To(ContainSubstring(`"token"`))
		Consistently(secretValue(ns, "app-config", "token"), 2*time.Second, 100*time.Millisecond).Should(Equal("merge-a-value"))
		Expect(secretValue(ns, "app-config", "user-key")()).To(Equal("kept"))
	})

	It("merges into a Secret only when the Secret allows it, and picks up the permission by itself", func() {
		setSecret("optin-src", "optin-value")
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "guarded"},
			Data: map[string][]byte{"password": []byte("theirs")}})).To(Succeed())
		createVS(ns, "optin", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{Name: "guarded", CreationPolicy: v1alpha1.CreationPolicyMerge},
			Data:   []v1alpha1.DataItem{item("password", "optin-src")}})
		c := expectNotReady(ns, "optin", "MergeNotAllowed")
		Expect(c.Message).To(ContainSubstring(secrets.AnnotationMergeAllowed))
		Consistently(secretValue(ns, "guarded", "password"), 2*time.Second, 100*time.Millisecond).Should(Equal("theirs"))

		By("the Secret's writer allows this VaultSecret: no change to the VaultSecret is needed")
		s := getSecret(ns, "guarded")
		s.Annotations = map[string]string{secrets.AnnotationMergeAllowed: "someone-else, optin"}
		Expect(k8s.Update(ctx, s)).To(Succeed())
		expectReady(ns, "optin")
		Expect(secretValue(ns, "guarded", "password")()).To(Equal("optin-value"))
	})

	It("sends no credential to a Custom cloud authority host the operator does not trust", func() {
		conn := &v1alpha1.VaultConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "elsewhere"}, Spec: v1alpha1.VaultConnectionSpec{
			URL:         "https://kv.vault.cloud.example/",
			Auth:        v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "app"}},
			Cloud:       v1alpha1.CloudCustom,
			CustomCloud: &v1alpha1.CustomCloud{AuthorityHost: "https://login.cloud.example/", VaultDNSSuffix: "vault.cloud.example"},
		}}
		Expect(k8s.Create(ctx, conn)).To(Succeed())
		createVSExact(ns, "elsewhere", vsVia("", "elsewhere", "v", "anything"))
		c := expectNotReady(ns, "elsewhere", "AuthorityHostNotAllowed")
		Expect(c.Message).To(ContainSubstring("login.cloud.example"))
		Expect(c.Message).To(ContainSubstring("--custom-authority-hosts"))
		expectConnection(conn, "AuthorityHostNotAllowed")
	})

	It("recovers from TargetConflict when the blocking Secret is deleted", func() {
		setSecret("blocked-src", "blocked-value")
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "blocked"},
			Data: map[string][]byte{"other": []byte("x")}})).To(Succeed())
		createVS(ns, "blocked", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{item("v", "blocked-src")}})
		expectNotReady(ns, "blocked", "TargetConflict")
		Expect(k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "blocked"}})).To(Succeed())
		// No spec change, no force-sync: the conflict itself is retried.
		expectReady(ns, "blocked")
		Expect(secretValue(ns, "blocked", "v")()).To(Equal("blocked-value"))
		Expect(getSecret(ns, "blocked").Data).NotTo(HaveKey("other"))
	})

	It("retries a consumer rollout that the API refused until it succeeds", func() {
		setSecret("rollout-retry", "rollout-retry-one")
		newDeployment(ns, "api")
		createVS(ns, "retry", v1alpha1.VaultSecretSpec{
			Data:                  []v1alpha1.DataItem{item("a", "rollout-retry")},
			RolloutRestartTargets: []v1alpha1.RolloutTarget{{Kind: "Deployment", Name: "api"}},
		})
		expectReady(ns, "retry")
		Eventually(replicaSets(ns, "api"), timeout).Should(Equal(1))

		By("refusing every change to Deployments of the namespace")
		deny := denyDeploymentUpdates(ns)
		DeferCleanup(func() { _ = k8s.Delete(ctx, deny[1]); _ = k8s.Delete(ctx, deny[0]) })

		setSecret("rollout-retry", "rollout-retry-two")
		forceSync(ns, "retry", "changed")
		Eventually(secretValue(ns, "retry", "a"), timeout).Should(Equal("rollout-retry-two"))
		Eventually(condition(ns, "retry", v1alpha1.ConditionRolloutComplete), timeout).Should(And(
			Not(BeNil()), HaveField("Status", metav1.ConditionFalse), HaveField("Reason", "RolloutFailed")))
		Expect(replicaSets(ns, "api")()).To(Equal(1), "the refused patch restarted nothing")

		By("lifting the refusal: the rollout is retried without any new change")
		Expect(k8s.Delete(ctx, deny[1])).To(Succeed())
		Expect(k8s.Delete(ctx, deny[0])).To(Succeed())
		Eventually(replicaSets(ns, "api"), 30*time.Second).Should(Equal(2), "the retried rollout restarted the consumer once")
		Eventually(condition(ns, "retry", v1alpha1.ConditionRolloutComplete), timeout).Should(And(
			Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
		Consistently(replicaSets(ns, "api"), 2*time.Second).Should(Equal(2))
	})

	It("does not delete the Secret when a 404 comes from another vault than the one synced", func() {
		setSecret("moved-src", "moved-value")
		createVS(ns, "moved", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{OnSourceDeleted: v1alpha1.SourceDeletedDelete},
			Data:   []v1alpha1.DataItem{item("v", "moved-src")},
		})
		expectReady(ns, "moved")
		By("pointing the VaultSecret at a vault that does not hold the object")
		vs := getVS(ns, "moved")
		patch := client.MergeFrom(vs.DeepCopy())
		vs.Spec.Vault.URL = emu.VaultURL(eventedVault)
		Expect(k8s.Patch(ctx, vs, patch)).To(Succeed())
		expectNotReady(ns, "moved", "SecretNotFound")
		Consistently(secretValue(ns, "moved", "v"), 3*time.Second, 100*time.Millisecond).Should(Equal("moved-value"))
		c := condition(ns, "moved", v1alpha1.ConditionSourceDeleted)()
		if c != nil {
			Expect(c.Reason).NotTo(Equal("SecretDeleted"))
		}
	})

	It("deletes the Secret of a deleted source only after a second read confirms it", func() {
		setSecret("confirm-src", "confirm-value")
		createVS(ns, "confirm", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{OnSourceDeleted: v1alpha1.SourceDeletedDelete},
			Data:   []v1alpha1.DataItem{item("v", "confirm-src")},
		})
		expectReady(ns, "confirm")
		Expect(emu.DeleteSecret(vaultName, "confirm-src", false)).To(Succeed())
		since := time.Now()
		forceSync(ns, "confirm", "gone")
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "confirm"}, &corev1.Secret{}))
		}, timeout).Should(BeTrue())
		deletedAt := time.Now()
		var notFound []time.Time
		for _, e := range emu.Requests(emulator.LogFilter{Service: admin.ServiceVault, Object: "confirm-src", Since: since}) {
			if e.Object == "confirm-src" && e.Status == 404 && e.Time.Before(deletedAt) {
				notFound = append(notFound, e.Time)
			}
		}
		Expect(len(notFound)).To(BeNumerically(">=", 2), "two reads saw the object gone before the Secret was deleted")
		Expect(notFound[len(notFound)-1].Sub(notFound[0])).To(BeNumerically(">=", sourceDeleteConfirm),
			"the confirming read came after the delay")
	})

	It("turns ExpiringSoon true when an expiry enters the warning window, with no sync", func() {
		// The suite warns 30 days ahead (the default); this secret enters
		// that window a few seconds after its first and only sync.
		exp := time.Now().Add(30*24*time.Hour + 4*time.Second).Truncate(time.Second).Add(time.Second)
		rememberValue("nearly-expiring-value")
		_, err := emu.SetSecret(vaultName, "nearly-expiring", emulator.SecretVersion{Value: "nearly-expiring-value", Expires: &exp})
		Expect(err).NotTo(HaveOccurred())
		createVS(ns, "nearly", v1alpha1.VaultSecretSpec{RefreshPolicy: v1alpha1.RefreshOnChange,
			Data: []v1alpha1.DataItem{item("v", "nearly-expiring")}})
		vs := expectReady(ns, "nearly")
		synced := time.Now()
		Expect(vs.Status.Expiries).To(ConsistOf(SatisfyAll(HaveField("Key", "v"), HaveField("Kind", "secret"))))
		Expect(condition(ns, "nearly", v1alpha1.ConditionExpiringSoon)()).To(HaveField("Status", metav1.ConditionFalse))
		Eventually(condition(ns, "nearly", v1alpha1.ConditionExpiringSoon), timeout, 100*time.Millisecond).Should(And(
			Not(BeNil()), HaveField("Status", metav1.ConditionTrue), HaveField("Message", ContainSubstring(`"v" expires`))))
		Expect(azureCalls(emulator.LogFilter{Service: admin.ServiceVault, Object: "nearly-expiring"}, synced)).To(BeZero(),
			"the condition came from status and the clock, not from a read")
		Eventually(func() []string { return eventReasons(ns, "nearly") }, timeout).Should(ContainElement("ExpiringSoon"))
	})
})

// denyDeploymentUpdates installs a ValidatingAdmissionPolicy that refuses
// every update of a Deployment in ns, and waits until it is in force.
func denyDeploymentUpdates(ns string) [2]client.Object {
	GinkgoHelper()
	name := "deny-deploy-" + ns
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule: admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"},
						Resources: []string{"deployments"}},
				},
			}}},
			MatchConditions: []admissionv1.MatchCondition{{Name: "ns", Expression: fmt.Sprintf("request.namespace == %q", ns)}},
			Validations:     []admissionv1.Validation{{Expression: "false", Message: "deployments are frozen by the test"}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny}},
	}
	Expect(k8s.Create(ctx, policy)).To(Succeed())
	Expect(k8s.Create(ctx, binding)).To(Succeed())
	Eventually(func() bool {
		var list appsv1.DeploymentList
		Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		if len(list.Items) == 0 {
			return false
		}
		d := list.Items[0].DeepCopy()
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations["probe"] = time.Now().String()
		return apierrors.IsInvalid(k8s.Update(ctx, d, client.DryRunAll)) || apierrors.IsForbidden(k8s.Update(ctx, d, client.DryRunAll))
	}, timeout, 200*time.Millisecond).Should(BeTrue(), "the policy is in force")
	return [2]client.Object{policy, binding}
}
