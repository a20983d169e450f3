// Package eventbench measures how fast a new secret version set in Key Vault
// reaches the Kubernetes Secret through the Event Grid path: the emulator
// publishes SecretNewVersionCreated to the operator's receiver, which wakes
// the VaultSecret for a fresh read. Run it with `make bench-events`; it is a
// benchmark, never a timed assertion. With at least minSamples rotations it
// prints a Markdown table (machine, command, sample count, p50/p99/max and a
// verdict computed against each goal) for docs/benchmarks.md.
package eventbench

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/controllers"
	"github.com/vaultsync/vaultsync/internal/events"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/testenv"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

const (
	vault     = "evented"
	key       = "bench-events-shared-secret"
	appClient = "5b1e7c2a-3d4f-4a6b-9c8d-0e1f2a3b4c5d"
)

const (
	// minSamples is the fewest rotations a p99 is computed from: with fewer, the 99th
	// percentile is the largest sample or the one before, and says nothing.
	minSamples = 200
	// goalP99 is the goal of the event path: a new version in the Secret within seconds,
	// where polling takes up to refreshInterval (1h by default).
	goalP99 = 2 * time.Second
)

var (
	emu      *emulator.Emulator
	cs       *kubernetes.Clientset
	k8s      client.Client
	received = &eventCounter{}
	// loadStart is the load average before the control plane started.
	loadStart = testenv.LoadAvg()
	// report is the results table of the last run with enough samples, printed after the
	// benchmarks so that it does not land in the middle of go test's result line.
	report string
)

// eventCounter counts what the receiver did with each delivery (events.Recorder).
type eventCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *eventCounter) ObserveEvent(eventType, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[eventType+" "+result]++
}

func (c *eventCounter) accepted() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[events.TypeSecretNewVersionCreated+" accepted"]
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The control plane without kube-controller-manager, and the emulator
	// with the demo's directory, both in this process.
	var cfg *emulator.Config
	env, err := inprocess.Start(inprocess.Options{EmulatorConfig: func(e *inprocess.Env) (*emulator.Config, error) {
		var err error
		cfg, err = emulator.LoadConfig(filepath.Join(e.Root, "hack", "demo", "emulator.yaml"))
		return cfg, err
	}})
	must(err)
	defer env.Close()
	cp := env.CP
	emu = env.Emu
	cs, err = kubernetes.NewForConfig(cp.Config)
	must(err)
	scheme := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(scheme))
	must(controllers.AddToScheme(scheme))
	k8s, err = client.New(cp.Config, client.Options{Scheme: scheme})
	must(err)
	must(emu.AddVault(emulator.Vault{Name: vault, RoleAssignments: []emulator.RoleAssignment{{Principal: "app", Role: "Key Vault Secrets User"}}}))

	o := controllers.DefaultOptions()
	o.HashKey = []byte("bench-hash-key-bench-hash-key-32")
	o.Events = controllers.NewEventRouter()
	h, err := events.NewHandler(events.Options{Secrets: [][]byte{[]byte(key)}, Sink: o.Events, Metrics: received})
	must(err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, err = emu.AddEventSubscription(ctx, emulator.EventSubscription{Name: "operator", Endpoint: srv.URL + "/events", Secret: key, Vaults: []string{vault}})
	must(err)

	cacheOpts := cache.Options{}
	controllers.RestrictCache(&cacheOpts)
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Cache: cacheOpts})
	must(err)
	must(controllers.Setup(mgr, o))
	go func() { _ = mgr.Start(ctx) }()

	// A namespace whose ServiceAccount is federated with the emulator's "app".
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{})
	must(err)
	_, err = cs.CoreV1().ServiceAccounts("bench").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: map[string]string{
		"azure.workload.identity/client-id": appClient, "azure.workload.identity/tenant-id": cfg.TenantID,
	}}}, metav1.CreateOptions{})
	must(err)
	must(emu.AddFederatedCredential("app", emulator.FederatedCredential{Issuer: env.Issuer,
		Subject: "system:serviceaccount:bench:app", Audience: testenv.WorkloadIdentityAudience, JWKS: env.JWKS}))
	code := m.Run()
	fmt.Print(report)
	return code
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// BenchmarkEventToSecret sets a new version in the emulator and waits for the
// Secret to carry it, b.N times. It reports p50 and the maximum, p99 from
// minSamples rotations on, and then prints the results table.
func BenchmarkEventToSecret(b *testing.B) {
	ctx := context.Background()
	// An object and a VaultSecret of this run only (Go runs the benchmark once with b.N = 1
	// first): each rotation wakes exactly one VaultSecret, whose reads the emulator's log shows.
	suffix := fmt.Sprintf("%d-%d", b.N, time.Now().UnixNano())
	object := "latency-" + suffix
	acceptedBefore := received.accepted()
	if _, err := emu.SetSecret(vault, object, emulator.SecretVersion{Value: "v0"}); err != nil {
		b.Fatal(err)
	}
	vs := &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "latency-" + suffix},
		Spec: v1alpha1.VaultSecretSpec{
			Vault: &v1alpha1.VaultRef{URL: emu.VaultURL(vault), Auth: v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "app"}}},
			Data:  []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: object}}},
		}}
	if err := k8s.Create(ctx, vs); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = k8s.Delete(context.Background(), vs) })
	w, err := watchSecret(ctx, vs.Name)
	if err != nil {
		b.Fatal(err)
	}
	if err := waitFor(w, "v0", time.Now()); err != nil {
		b.Fatal(err)
	}
	w.Stop()
	// The first version's event is delivered asynchronously: let it arrive before counting.
	if err := until(10*time.Second, func() bool { return received.accepted() > acceptedBefore }); err != nil {
		b.Fatalf("the event of the first version was not accepted: %v", err)
	}
	acceptedBefore = received.accepted()
	since := time.Now()

	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := fmt.Sprintf("v%d", i+1)
		// The watch is open before the rotation, so its setup is not part of the sample.
		w, err := watchSecret(ctx, vs.Name)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := emu.SetSecret(vault, object, emulator.SecretVersion{Value: want}); err != nil {
			b.Fatal(err)
		}
		err = waitFor(w, want, start)
		w.Stop()
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(samples)
	p50, maxS := percentile(samples, 0.50), samples[len(samples)-1]
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(maxS), "max-ms")
	if b.N < minSamples {
		b.Logf("%d rotations: p50 %s, max %s; p99 and the table need at least %d (-benchtime %dx)", b.N, p50, maxS, minSamples, minSamples)
		return
	}
	p99 := percentile(samples, 0.99)
	b.ReportMetric(ms(p99), "p99-ms")
	// Every rotation must have come through the receiver, and woken one read of the object.
	_ = until(5*time.Second, func() bool { return received.accepted()-acceptedBefore >= b.N })
	accepted := received.accepted() - acceptedBefore
	reads := emu.Count(emulator.LogFilter{Service: "keyvault", Vault: vault, Operation: "GetSecret", Object: object, Status: 200, Since: since})
	report = table(b.N, p50, p99, maxS, accepted, reads)
}

// percentile returns the nearest-rank p-th percentile of sorted samples: the smallest sample
// that at least p of all samples do not exceed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fmtMS(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", ms(d))
	}
	return fmt.Sprintf("%.0f ms", ms(d))
}

// table returns the results as Markdown: every verdict is a measurement against its goal.
func table(n int, p50, p99, maxS time.Duration, accepted, reads int) string {
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "GAP"
	}
	command := "go test -run '^$' -bench EventToSecret"
	if f := flag.Lookup("test.benchtime"); f != nil {
		command += " -benchtime " + f.Value.String()
	}
	command += " ./test/eventbench/"
	var b strings.Builder
	fmt.Fprintf(&b, "\nMachine: %s\n\nCommand: `%s` (`make bench-events`)\n\n", testenv.Machine(), command)
	fmt.Fprintf(&b, "Run: %s; load average (1, 5, 15 min) %s before the control plane started, %s at the end\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), loadStart, testenv.LoadAvg())
	fmt.Fprintln(&b, "| figure | measured | target | result |")
	fmt.Fprintln(&b, "|---|---|---|---|")
	fmt.Fprintf(&b, "| rotations (samples) | %d | ≥ %d | %s |\n", n, minSamples, verdict(n >= minSamples))
	fmt.Fprintf(&b, "| SecretNewVersionCreated events accepted by the receiver | %d | %d (one per rotation) | %s |\n", accepted, n, verdict(accepted == n))
	fmt.Fprintf(&b, "| Key Vault reads of the object (200) | %d (%.2f per rotation) | %d (one per event) | %s |\n", reads, float64(reads)/float64(n), n, verdict(reads == n))
	fmt.Fprintf(&b, "| event to Secret, p50 | %s | - | INFO |\n", fmtMS(p50))
	fmt.Fprintf(&b, "| event to Secret, p99 | %s | ≤ %.0f s | %s |\n", fmtMS(p99), goalP99.Seconds(), verdict(p99 <= goalP99))
	fmt.Fprintf(&b, "| event to Secret, max | %s | - | INFO |\n", fmtMS(maxS))
	return b.String()
}

// until polls cond every 10 ms for at most timeout.
func until(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// watchSecret opens a watch on the Secret name of the namespace "bench" (10 s at most).
func watchSecret(ctx context.Context, name string) (watch.Interface, error) {
	return cs.CoreV1().Secrets("bench").Watch(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), TimeoutSeconds: ptr.To[int64](10)})
}

// waitFor reads the watch until key "v" holds want (10 s at most).
func waitFor(w watch.Interface, want string, since time.Time) error {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return fmt.Errorf("the watch ended before the Secret got %q (rotation at %s)", want, since.Format(time.RFC3339Nano))
			}
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				if s, ok := ev.Object.(*corev1.Secret); ok && string(s.Data["v"]) == want {
					return nil
				}
			}
		case <-timeout:
			return fmt.Errorf("the Secret did not get %q within 10s of the rotation at %s", want, since.Format(time.RFC3339Nano))
		}
	}
}
