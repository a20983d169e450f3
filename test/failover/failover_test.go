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
	"github.com/vaultsync/vaultsync/test/e2e/localenv"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
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
			Namespace: localenv.OperatorNamespace, Name: "vaultsync-hash-key"}})).To(Succeed())
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
		Vaults: []string{localenv.Vault}, MaxAttempts: 10,
	})
	Expect(err).NotTo(HaveOccurred())
}

func setSecret(name, value string, exp *time.Time) {
	GinkgoHelper()
	_, err := emu.Admin.SetSecret(ctx, localenv.Vault, name, admin.SecretVersion{Value: value, Expires: exp})
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
		WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: localenv.ServiceAccount}}}
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
			return localenv.IsReady(vs) && meta.IsStatusConditionTrue(vs.Status.Conditions, v1alpha1.ConditionReady)
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
