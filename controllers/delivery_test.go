package controllers_test

import (
	"net/url"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/emulator"
)

func item(key, name string) v1alpha1.DataItem {
	return v1alpha1.DataItem{Key: key, Remote: v1alpha1.RemoteRef{Name: name}}
}

func condition(ns, name, typ string) func() *metav1.Condition {
	return func() *metav1.Condition {
		return meta.FindStatusCondition(getVS(ns, name).Status.Conditions, typ)
	}
}

func newDeployment(ns, name string) {
	GinkgoHelper()
	labels := map[string]string{"app": name}
	Expect(k8s.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/app:1"}}},
			},
		},
	})).To(Succeed())
}

func replicaSets(ns, app string) func() int {
	return func() int {
		var list appsv1.ReplicaSetList
		Expect(k8s.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{"app": app})).To(Succeed())
		return len(list.Items)
	}
}

func counter(name string, labels map[string]string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			sum += value(m)
		}
	}
	return sum
}

// delta reads a metric now and returns a function that says how much it grew since: the
// increase an action between the two calls caused (plus whatever ran meanwhile, so a spec that
// asserts on an unlabelled counter asserts "at least what I caused").
func delta(name string, labels map[string]string) func() float64 {
	before := counter(name, labels)
	return func() float64 { return counter(name, labels) - before }
}

// ownVault adds a vault that only the calling spec uses (readable by the identity "app"), so that
// metrics labelled by vault host count this spec's requests and nothing else. It returns the
// vault's URL and host.
func ownVault(name string) (string, string) {
	GinkgoHelper()
	Expect(emu.AddVault(emulator.Vault{Name: name, RoleAssignments: []emulator.RoleAssignment{
		{Principal: "app", Role: "Key Vault Secrets User"},
	}})).To(Succeed())
	u, err := url.Parse(emu.VaultURL(name))
	Expect(err).NotTo(HaveOccurred())
	return u.String(), u.Host
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

var _ = Describe("Delivery", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("syncs at once when Key Vault announces a new version, with a 1h refresh interval", func() {
		// Only this spec writes to the evented vault: each SetSecret below publishes exactly one
		// SecretNewVersionCreated, and the receiver must count both as accepted.
		accepted := delta("vaultsync_events_received_total", map[string]string{
			"type": "Microsoft.KeyVault.SecretNewVersionCreated", "result": "accepted"})
		rememberValue("evented-value-one")
		_, err := emu.SetSecret(eventedVault, "pushed", emulator.SecretVersion{Value: "evented-value-one"})
		Expect(err).NotTo(HaveOccurred())
		vault := wiVault()
		vault.URL = emu.VaultURL(eventedVault)
		createVS(ns, "pushed", v1alpha1.VaultSecretSpec{Vault: vault, Data: []v1alpha1.DataItem{item("v", "pushed")}})
		expectReady(ns, "pushed")
		rememberValue("evented-value-two")
		_, err = emu.SetSecret(eventedVault, "pushed", emulator.SecretVersion{Value: "evented-value-two"})
		Expect(err).NotTo(HaveOccurred())
		// No force-sync, and the next refresh is an hour away: only the event can do it.
		Eventually(secretValue(ns, "pushed", "v"), 10*time.Second, 50*time.Millisecond).Should(Equal("evented-value-two"))
		Eventually(accepted, timeout).Should(Equal(2.0), "one accepted event per new version")
		Consistently(accepted, time.Second).Should(Equal(2.0), "and no more")
	})

	It("restarts consumers once per data change, never on the first sync or an unchanged refresh", func() {
		setSecret("rollout-a", "rollout-value-one")
		newDeployment(ns, "web")
		createVS(ns, "roll", v1alpha1.VaultSecretSpec{
			Data:                  []v1alpha1.DataItem{item("a", "rollout-a")},
			RolloutRestartTargets: []v1alpha1.RolloutTarget{{Kind: "Deployment", Name: "web"}, {Kind: "Deployment", Name: "absent"}},
		})
		expectReady(ns, "roll")
		Eventually(replicaSets(ns, "web"), timeout).Should(Equal(1))
		dep := &appsv1.Deployment{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, dep)).To(Succeed())
		Expect(dep.Spec.Template.Annotations).NotTo(HaveKey("vaultsync.io/restartedAt"), "no rollout on the first sync")

		forceSync(ns, "roll", "unchanged")
		Eventually(func() string { return getVS(ns, "roll").Status.LastForceSync }, timeout).Should(Equal("unchanged"))
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, dep)).To(Succeed())
		Expect(dep.Spec.Template.Annotations).NotTo(HaveKey("vaultsync.io/restartedAt"), "no rollout when nothing changed")

		setSecret("rollout-a", "rollout-value-two")
		forceSync(ns, "roll", "changed")
		Eventually(func() map[string]string {
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, dep)).To(Succeed())
			return dep.Spec.Template.Annotations
		}, timeout).Should(HaveKey("vaultsync.io/restartedAt"))
		Eventually(replicaSets(ns, "web"), timeout).Should(Equal(2), "the deployment controller rolled out once")
		Eventually(func() []string { return eventReasons(ns, "roll") }, timeout).Should(ContainElement("RolloutTargetMissing"))
		Consistently(replicaSets(ns, "web"), 2*time.Second).Should(Equal(2))
	})

	It("keeps the Secret when the source is deleted with Retain, and deletes it with Delete", func() {
		setSecret("doomed-retain", "doomed-value-retain")
		setSecret("doomed-delete", "doomed-value-delete")
		createVS(ns, "retain", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{item("v", "doomed-retain")}})
		createVS(ns, "delete", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{OnSourceDeleted: v1alpha1.SourceDeletedDelete},
			Data:   []v1alpha1.DataItem{item("v", "doomed-delete")},
		})
		expectReady(ns, "retain")
		expectReady(ns, "delete")
		Expect(emu.DeleteSecret(vaultName, "doomed-retain", true)).To(Succeed())
		Expect(emu.DeleteSecret(vaultName, "doomed-delete", false)).To(Succeed())
		forceSync(ns, "retain", "gone")
		forceSync(ns, "delete", "gone")

		Eventually(condition(ns, "retain", v1alpha1.ConditionSourceDeleted), timeout).Should(And(
			Not(BeNil()), HaveField("Status", metav1.ConditionTrue), HaveField("Reason", "SourceDeleted")))
		Expect(secretValue(ns, "retain", "v")()).To(Equal("doomed-value-retain"))
		expectNotReady(ns, "retain", "SecretNotFound")

		Eventually(condition(ns, "delete", v1alpha1.ConditionSourceDeleted), timeout).Should(And(
			Not(BeNil()), HaveField("Status", metav1.ConditionTrue), HaveField("Reason", "SecretDeleted")))
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "delete"}, &corev1.Secret{}))
		}, timeout).Should(BeTrue())
	})

	It("reports secrets and certificates that expire soon", func() {
		// A vault of this spec's own: the expiry gauge is per vault, so its value is this
		// secret's expiry and nobody else's.
		vaultURL, host := ownVault("exp-" + ns)
		gauge := func() float64 {
			return counter("vaultsync_secret_expiry_timestamp_seconds", map[string]string{"vault": host})
		}
		Expect(gauge()).To(BeZero(), "no series for a vault nothing was synced from")
		exp := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
		rememberValue("expiring-value")
		_, err := emu.SetSecret("exp-"+ns, "expiring", emulator.SecretVersion{Value: "expiring-value", Expires: &exp})
		Expect(err).NotTo(HaveOccurred())
		vault := wiVault()
		vault.URL = vaultURL
		createVS(ns, "exp", v1alpha1.VaultSecretSpec{Vault: vault, Data: []v1alpha1.DataItem{item("v", "expiring")}})
		vs := expectReady(ns, "exp")
		Expect(vs.Status.ExpiresAt).NotTo(BeNil())
		Expect(vs.Status.ExpiresAt.Time).To(BeTemporally("~", exp, time.Second))
		c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionExpiringSoon)
		Expect(c).NotTo(BeNil())
		Expect(c.Status).To(Equal(metav1.ConditionTrue))
		Expect(c.Message).To(ContainSubstring(`"v" expires`))
		Eventually(func() []string { return eventReasons(ns, "exp") }, timeout).Should(ContainElement("ExpiringSoon"))
		Eventually(gauge, timeout).Should(Equal(float64(exp.Unix())), "the earliest expiry of the vault is this secret's")
	})

	It("honours refreshPolicy OnChange and CreatedOnce", func() {
		setSecret("policy-src", "policy-value-one")
		createVS(ns, "onchange", v1alpha1.VaultSecretSpec{RefreshPolicy: v1alpha1.RefreshOnChange, Data: []v1alpha1.DataItem{item("v", "policy-src")}})
		createVS(ns, "once", v1alpha1.VaultSecretSpec{RefreshPolicy: v1alpha1.RefreshCreatedOnce, Data: []v1alpha1.DataItem{item("v", "policy-src")}})
		Expect(expectReady(ns, "onchange").Status.NextSyncTime).To(BeNil(), "no periodic refresh")
		expectReady(ns, "once")
		setSecret("policy-src", "policy-value-two")
		forceSync(ns, "onchange", "1")
		forceSync(ns, "once", "1")
		Eventually(secretValue(ns, "onchange", "v"), timeout).Should(Equal("policy-value-two"))
		Consistently(secretValue(ns, "once", "v"), 2*time.Second).Should(Equal("policy-value-one"), "written once, never updated")
	})

	It("counts syncs and Key Vault requests in metrics, and writes an audit line per access", func() {
		// Key Vault requests are labelled by vault: a vault of this spec's own makes the
		// count exact, and the emulator's request log is the independent witness.
		vault := "metered-" + ns
		vaultURL, host := ownVault(vault)
		kvRequests := func() float64 {
			return counter("vaultsync_keyvault_requests_total", map[string]string{"vault": host, "operation": "GetSecret"})
		}
		Expect(kvRequests()).To(BeZero())
		// Syncs and Secret updates carry no label that names a VaultSecret (docs/metrics.md), so
		// they are deltas around this spec's own actions: at least what it caused.
		syncs := delta("vaultsync_sync_total", map[string]string{"result": "success"})
		updates := delta("vaultsync_secret_updates_total", nil)
		setVaultSecret(vault, "metered", "metered-value")
		v := wiVault()
		v.URL = vaultURL
		createVS(ns, "metered", v1alpha1.VaultSecretSpec{Vault: v, Data: []v1alpha1.DataItem{item("v", "metered")}})
		expectReady(ns, "metered")
		Eventually(syncs, timeout).Should(BeNumerically(">=", 1), "the first sync")
		Eventually(updates, timeout).Should(BeNumerically(">=", 1), "the Secret was created")
		served := func() float64 {
			return float64(azureCalls(emulator.LogFilter{Service: "keyvault", Vault: vault, Operation: "GetSecret"}, time.Time{}))
		}
		Expect(served()).To(BeNumerically(">=", 1))
		Eventually(func() float64 { return kvRequests() - served() }, timeout).Should(BeZero(),
			"every GetSecret the vault saw, counted once")

		// A new value: one more sync, one more Secret update, and more Key Vault requests.
		readsBefore := kvRequests()
		setVaultSecret(vault, "metered", "metered-value-two")
		forceSync(ns, "metered", "changed")
		Eventually(secretValue(ns, "metered", "v"), timeout).Should(Equal("metered-value-two"))
		Eventually(syncs, timeout).Should(BeNumerically(">=", 2))
		Eventually(updates, timeout).Should(BeNumerically(">=", 2))
		Expect(kvRequests()).To(BeNumerically(">", readsBefore))
		Eventually(func() float64 { return kvRequests() - served() }, timeout).Should(BeZero())
		var line string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "audit") && strings.Contains(l, ns) && strings.Contains(l, "metered") {
				line = l
			}
		}
		Expect(line).NotTo(BeEmpty(), "an audit line names the VaultSecret and the object")
		Expect(line).To(ContainSubstring(appClient))
		Expect(line).NotTo(ContainSubstring("metered-value"))
	})
})
