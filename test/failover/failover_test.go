package failover

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
	"github.com/vaultsync/vaultsync/test/testenv"
)

const (
	wait = 90 * time.Second
	tick = 50 * time.Millisecond
	// demoHost is the emulated vault of hack/demo/emulator.yaml.
	demoHost = "demo.vault.azure.net"
	// leaderLabel is the label the leading replica puts on its Pod (the chart's).
	leaderLabel = "vaultsync.io/leader"
)

var _ = Describe("Restarts and failovers", Ordered, func() {
	var leader *replica
	var svc *service
	expires := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)

	BeforeAll(func() {
		setSecret("failover-rotating", "rotating-value-0", nil)
		setSecret("failover-expiring", "expiring-value", &expires)
		leader = startReplica("a")
		svc = newService()
		svc.add(leader)
		subscribe(svc)
		Eventually(leader.listening, wait, tick).Should(BeTrue(), "the leader serves events")
		Eventually(leader.labelled, wait, tick).Should(BeTrue(), "the leader labels its Pod")
		createVS("onchange", v1alpha1.VaultSecretSpec{RefreshPolicy: v1alpha1.RefreshOnChange,
			Data: []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "failover-rotating"}}}})
		createVS("expiring", v1alpha1.VaultSecretSpec{RefreshPolicy: v1alpha1.RefreshOnChange,
			Data: []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "failover-expiring"}}}})
		waitReady("onchange", "expiring")
	})

	It("routes a Key Vault event to an OnChange VaultSecret after the manager restarts", func() {
		restarted := time.Now()
		prev := leader
		leader = leader.restart()
		svc.replace(prev, leader)
		Eventually(leader.listening, wait, tick).Should(BeTrue(), "the restarted manager serves events")
		Eventually(leader.labelled, wait, tick).Should(BeTrue(), "the restarted leader labels its Pod again")
		Expect(leader.logged("restored the event index")).To(BeTrue())

		By("reading the expiry gauge, restored from status without a sync")
		Expect(scrape(leader, `vaultsync_secret_expiry_timestamp_seconds{vault="`+demoHost+`"}`)).
			To(BeNumerically("==", float64(expires.Unix())))
		Expect(vaultReads("failover-expiring", restarted)).To(BeZero(), "nothing was read to restore it")

		latency := rotateAndWait("onchange", "failover-rotating", "rotating-value-1")
		AddReportEntry("event to Secret after a restart", latency.String())
		GinkgoWriter.Printf("event to Secret after a restart: %s\n", latency)
	})

	It("routes events after a leader failover, and the new leader rewrites no Secret", func() {
		standby := startReplica("b")
		svc.add(standby)
		Eventually(func() bool { return standby.logged("Attempting to acquire leader lease") }, wait, tick).Should(BeTrue())
		Consistently(func() bool { return standby.listening() || standby.labelled() }, 2*time.Second, 200*time.Millisecond).
			Should(BeFalse(), "a standby neither serves events nor carries the leader label")
		Expect(leader.labelled()).To(BeTrue())
		before := secretVersions()

		By("killing the leader (SIGKILL: no lease release, so its Pod keeps the label)")
		Expect(leader.proc.Signal(syscall.SIGKILL)).To(Succeed())
		killed := time.Now()
		Eventually(standby.listening, wait, tick).Should(BeTrue(), "the standby takes over and serves events")
		Eventually(standby.labelled, wait, tick).Should(BeTrue(), "the new leader labels its Pod")
		GinkgoWriter.Printf("takeover after SIGKILL (listening and labelled): %s\n", time.Since(killed).Round(time.Millisecond))
		old := leader
		leader = standby

		By("restarting the killed replica's container: it removes the stale label before anything else")
		restarted := old.restart()
		svc.replace(old, restarted)
		Eventually(restarted.labelled, wait, tick).Should(BeFalse(), "a restarted former leader drops the label")
		Eventually(func() bool { return restarted.logged("Attempting to acquire leader lease") }, wait, tick).
			Should(BeTrue(), "it starts as a standby")
		Expect(restarted.listening()).To(BeFalse())
		restarted.stop()
		Eventually(func() bool { return leader.logged("restored the event index") }, wait, tick).Should(BeTrue())
		Consistently(secretVersions, 2*time.Second, 200*time.Millisecond).Should(Equal(before), "the takeover wrote no Secret")

		latency := rotateAndWait("onchange", "failover-rotating", "rotating-value-2")
		AddReportEntry("event to Secret after a failover", latency.String())
		GinkgoWriter.Printf("event to Secret after a failover: %s\n", latency)
	})

	It("pushes a Secret to Key Vault once across a restart and a failover, and a second pusher cannot take it over", func() {
		const object = "failover-pushed"
		_ = emu.Admin.AddRoleAssignment(ctx, testenv.Vault, admin.RoleAssignment{Principal: "app", Role: "Key Vault Secrets Officer"})
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "push-source"},
			Data: map[string][]byte{"password": []byte("pushed-value-1")}})).To(Succeed())
		createPush("pushed", "push-source", object)
		Eventually(func() string { return pushReason("pushed") }, wait, tick).Should(Equal("True/Pushed"))
		Expect(versionsWritten(object)).To(Equal(1), "the first push writes one version")
		first := pushedVersion("pushed")

		By("restarting the manager: it checks the vault again and writes nothing")
		restarted := time.Now()
		prev := leader
		leader = leader.restart()
		svc.replace(prev, leader)
		confirmed(object, restarted)

		By("failing over to a standby (SIGKILL of the leader): the new leader checks the vault and writes nothing")
		standby := startReplica("push-standby")
		svc.add(standby)
		Eventually(func() bool { return standby.logged("Attempting to acquire leader lease") }, wait, tick).Should(BeTrue())
		Expect(leader.proc.Signal(syscall.SIGKILL)).To(Succeed())
		killed := time.Now()
		old := leader
		leader = standby
		Eventually(leader.listening, wait, tick).Should(BeTrue(), "the standby takes over")
		old.stop()
		confirmed(object, killed)
		Expect(pushedVersion("pushed")).To(Equal(first))

		By("editing the Secret after the failover: exactly one new version")
		s := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "push-source"}, s)).To(Succeed())
		s.Data["password"] = []byte("pushed-value-2")
		Expect(k8s.Update(ctx, s)).To(Succeed())
		Eventually(func() string { return pushedVersion("pushed") }, wait, tick).ShouldNot(Equal(first))
		Consistently(func() int { return versionsWritten(object) }, 2*time.Second, 200*time.Millisecond).Should(Equal(2))

		By("a second VaultPushSecret naming the same object: refused, and the first keeps it")
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "push-rival"},
			Data: map[string][]byte{"password": []byte("rival-value")}})).To(Succeed())
		createPush("pushed-rival", "push-rival", object)
		Eventually(func() string { return pushReason("pushed-rival") }, wait, tick).Should(Equal("False/RemoteConflict"))
		Consistently(func() int { return versionsWritten(object) }, 3*time.Second, 200*time.Millisecond).Should(Equal(2),
			"the rival wrote nothing, and the owner did not write again")
		Expect(pushReason("pushed")).To(Equal("True/Pushed"))
	})

	It("restarts no consumer and rewrites no Secret when the hash key is lost", func() {
		setSecret("failover-consumed", "consumed-value", nil)
		labels := map[string]string{"app": "web"}
		Expect(k8s.Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "web"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/web:1"}}},
				},
			},
		})).To(Succeed())
		createVS("consumed", v1alpha1.VaultSecretSpec{
			Data:                  []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "failover-consumed"}}},
			RolloutRestartTargets: []v1alpha1.RolloutTarget{{Kind: "Deployment", Name: "web"}},
		})
		waitReady("consumed")
		oldHash := getVS("consumed").Status.DataHash
		before := secretVersions()

		By("deleting the hash-key Secret and restarting the manager: it makes a new key")
		Expect(k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Namespace: testenv.OperatorNamespace, Name: "vaultsync-hash-key"}})).To(Succeed())
		prev := leader
		leader = leader.restart()
		svc.replace(prev, leader)
		Eventually(func() string { return getVS("consumed").Status.DataHash }, wait, tick).ShouldNot(Equal(oldHash),
			"the VaultSecret was checked again under the new key")
		Eventually(func() string { return getVS("onchange").Status.DataHash }, wait, tick).ShouldNot(BeEmpty())

		Expect(secretVersions()).To(Equal(before), "no Secret was written: the data did not change")
		dep := &appsv1.Deployment{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "web"}, dep)).To(Succeed())
		Expect(dep.Spec.Template.Annotations).NotTo(HaveKey("vaultsync.io/restartedAt"), "no consumer was restarted")
		Expect(eventReasons("consumed")).NotTo(ContainElement("Updated"))
	})
})

// restart stops the replica gracefully and starts it again on the same ports.
func (r *replica) restart() *replica {
	GinkgoHelper()
	r.stop()
	seq++
	next := &replica{name: r.name, pod: r.pod, events: r.events, metrics: r.metrics,
		log: strings.Replace(r.log, fmt.Sprintf("-%s-", r.name), fmt.Sprintf("-%s-r%d-", r.name, seq), 1)}
	next.launch()
	return next
}

// subscribe makes the emulator deliver the demo vault's events to the service.
func subscribe(s *service) {
	GinkgoHelper()
	_, err := emu.Admin.AddEventSubscription(ctx, admin.EventSubscription{
		Name: "operator", Endpoint: "http://" + s.ln.Addr().String() + "/events", Secret: eventsKey,
		Vaults: []string{testenv.Vault}, MaxAttempts: 10,
	})
	Expect(err).NotTo(HaveOccurred())
}

func setSecret(name, value string, exp *time.Time) {
	GinkgoHelper()
	_, err := emu.Admin.SetSecret(ctx, testenv.Vault, name, admin.SecretVersion{Value: value, Expires: exp})
	Expect(err).NotTo(HaveOccurred())
}

// rotateAndWait sets a new value and waits for the Secret of vs to hold it,
// with no force-sync and no refresh: only the event can bring it.
func rotateAndWait(vs, object, value string) time.Duration {
	GinkgoHelper()
	start := time.Now()
	setSecret(object, value, nil)
	Eventually(func() string {
		s := &corev1.Secret{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: vs}, s); err != nil {
			return ""
		}
		return string(s.Data["v"])
	}, 15*time.Second, 10*time.Millisecond).Should(Equal(value), "the event reached VaultSecret %s", vs)
	return time.Since(start).Round(time.Millisecond)
}

func createVS(name string, spec v1alpha1.VaultSecretSpec) {
	GinkgoHelper()
	spec.Vault = &v1alpha1.VaultRef{URL: "https://" + demoHost + "/", Auth: v1alpha1.VaultAuth{
		WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: testenv.ServiceAccount}}}
	Expect(k8s.Create(ctx, &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: spec})).To(Succeed())
}

func getVS(name string) *v1alpha1.VaultSecret {
	GinkgoHelper()
	vs := &v1alpha1.VaultSecret{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, vs)).To(Succeed())
	return vs
}

func waitReady(names ...string) {
	GinkgoHelper()
	for _, n := range names {
		Eventually(func() bool {
			vs := getVS(n)
			return testenv.IsReady(vs) && meta.IsStatusConditionTrue(vs.Status.Conditions, v1alpha1.ConditionReady)
		}, wait, 100*time.Millisecond).Should(BeTrue(), "VaultSecret %s becomes Ready", n)
	}
}

// secretVersions maps each managed Secret of the namespace to its resourceVersion.
func secretVersions() map[string]string {
	var list corev1.SecretList
	Expect(k8s.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{"vaultsync.io/managed": "true"})).To(Succeed())
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.Name] = s.ResourceVersion
	}
	return out
}

func eventReasons(name string) []string {
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(namespace))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "VaultSecret" && e.Regarding.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

// vaultReads counts the emulator's reads of object since t.
func vaultReads(object string, since time.Time) int {
	entries, err := emu.Admin.Log(ctx, admin.LogFilter{Service: admin.ServiceVault, Object: object, Since: since})
	Expect(err).NotTo(HaveOccurred())
	return len(entries)
}

// scrape returns the value of one series of the replica's /metrics.
func scrape(r *replica, series string) float64 {
	GinkgoHelper()
	resp, err := http.Get("http://" + r.metrics + "/metrics")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			Expect(err).NotTo(HaveOccurred())
			return f
		}
	}
	Fail("no series " + series + " in /metrics")
	return 0
}

// createPush makes a VaultPushSecret that pushes key "password" of Secret
// source to Key Vault secret object, with the namespace's workload identity.
func createPush(name, source, object string) {
	GinkgoHelper()
	Expect(k8s.Create(ctx, &v1alpha1.VaultPushSecret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: v1alpha1.VaultPushSecretSpec{
			SecretRef: v1alpha1.PushSecretRef{Name: source},
			Vault: &v1alpha1.VaultRef{URL: "https://" + demoHost + "/", Auth: v1alpha1.VaultAuth{
				WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: testenv.ServiceAccount}}},
			Data: []v1alpha1.PushDataItem{{SecretKey: "password", Remote: v1alpha1.PushRemoteRef{Name: object}}},
		},
	})).To(Succeed())
}

// pushReason is "<Ready status>/<reason>" of a VaultPushSecret.
func pushReason(name string) string {
	ps := &v1alpha1.VaultPushSecret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, ps); err != nil {
		return err.Error()
	}
	c := meta.FindStatusCondition(ps.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil {
		return ""
	}
	return string(c.Status) + "/" + c.Reason
}

// pushedVersion is the Key Vault version status.objects records for the
// first object of VaultPushSecret name ("" before a push).
func pushedVersion(name string) string {
	ps := &v1alpha1.VaultPushSecret{}
	if k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, ps) != nil || len(ps.Status.Objects) == 0 {
		return ""
	}
	return ps.Status.Objects[0].Version
}

// confirmed waits until a manager has read the properties of Key Vault
// secret object after since (a push always compares before it writes), and
// then checks that no version was written: the object still has one. (The
// emulator names every GET of a secret GetSecret.)
func confirmed(object string, since time.Time) {
	GinkgoHelper()
	Eventually(func() int {
		entries, err := emu.Admin.Log(ctx, admin.LogFilter{Service: admin.ServiceVault, Operation: "GetSecret", Object: object, Since: since})
		Expect(err).NotTo(HaveOccurred())
		return len(entries)
	}, wait, tick).ShouldNot(BeZero(), "a manager checked %s after %s", object, since)
	Consistently(func() int { return versionsWritten(object) }, 2*time.Second, 200*time.Millisecond).Should(Equal(1),
		"the vault was up to date: nothing is written")
}

// versionsWritten counts the versions of Key Vault secret object that the
// emulator's log shows written (SetSecret answered 200).
func versionsWritten(object string) int {
	GinkgoHelper()
	entries, err := emu.Admin.Log(ctx, admin.LogFilter{Service: admin.ServiceVault, Operation: "SetSecret", Object: object, Status: http.StatusOK})
	Expect(err).NotTo(HaveOccurred())
	return len(entries)
}
