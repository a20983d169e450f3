// Package eventbench measures how fast a new secret version set in Key Vault
// reaches the Kubernetes Secret through the Event Grid path: the emulator
// publishes SecretNewVersionCreated to the operator's receiver, which wakes
// the VaultSecret for a fresh read. Run it with `make bench-events`; it is a
// benchmark, never a timed assertion.
package eventbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/controllers"
	"github.com/vaultsync/vaultsync/internal/events"
	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator"
)

const (
	vault     = "evented"
	key       = "bench-events-shared-secret"
	appClient = "5b1e7c2a-3d4f-4a6b-9c8d-0e1f2a3b4c5d"
)

var (
	emu *emulator.Emulator
	cs  *kubernetes.Clientset
	k8s client.Client
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tmp, err := os.MkdirTemp("", "vaultsync-eventbench-")
	must(err)
	defer os.RemoveAll(tmp)
	opts, err := emulator.PrepareEnv(filepath.Join(tmp, "emulator"))
	must(err)
	root, err := controlplane.RepoRoot()
	must(err)
	cp, err := controlplane.Start(ctx, controlplane.Options{CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases")}})
	must(err)
	defer cp.Stop()
	cs, err = kubernetes.NewForConfig(cp.Config)
	must(err)
	scheme := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(scheme))
	must(controllers.AddToScheme(scheme))
	k8s, err = client.New(cp.Config, client.Options{Scheme: scheme})
	must(err)

	cfg, err := emulator.LoadConfig(filepath.Join(root, "hack", "demo", "emulator.yaml"))
	must(err)
	emu, err = emulator.Start(ctx, cfg, opts)
	must(err)
	defer emu.Close()
	must(emu.AddVault(emulator.Vault{Name: vault, RoleAssignments: []emulator.RoleAssignment{{Principal: "app", Role: "Key Vault Secrets User"}}}))

	o := controllers.DefaultOptions()
	o.HashKey = []byte("bench-hash-key-bench-hash-key-32")
	o.Events = controllers.NewEventRouter()
	h, err := events.NewHandler(events.Options{Secrets: [][]byte{[]byte(key)}, Sink: o.Events})
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
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	must(err)
	var doc struct{ Issuer string }
	must(json.Unmarshal(raw, &doc))
	issuer := doc.Issuer
	jwks, err := cs.Discovery().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	must(err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{})
	must(err)
	_, err = cs.CoreV1().ServiceAccounts("bench").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: map[string]string{
		"azure.workload.identity/client-id": appClient, "azure.workload.identity/tenant-id": cfg.TenantID,
	}}}, metav1.CreateOptions{})
	must(err)
	must(emu.AddFederatedCredential("app", emulator.FederatedCredential{Issuer: issuer,
		Subject: "system:serviceaccount:bench:app", Audience: "api://AzureADTokenExchange", JWKS: jwks}))
	return m.Run()
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// BenchmarkEventToSecret sets a new version in the emulator and waits for the
// Secret to carry it, b.N times; it reports p50, p99 and the maximum.
func BenchmarkEventToSecret(b *testing.B) {
	ctx := context.Background()
	if _, err := emu.SetSecret(vault, "latency", emulator.SecretVersion{Value: "v0"}); err != nil {
		b.Fatal(err)
	}
	vs := &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("latency-%d", time.Now().UnixNano())},
		Spec: v1alpha1.VaultSecretSpec{
			Vault: &v1alpha1.VaultRef{URL: emu.VaultURL(vault), Auth: v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "app"}}},
			Data:  []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "latency"}}},
		}}
	if err := k8s.Create(ctx, vs); err != nil {
		b.Fatal(err)
	}
	if err := waitFor(ctx, vs.Name, "v0", time.Now()); err != nil {
		b.Fatal(err)
	}
	var samples []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := fmt.Sprintf("v%d", i+1)
		start := time.Now()
		if _, err := emu.SetSecret(vault, "latency", emulator.SecretVersion{Value: want}); err != nil {
			b.Fatal(err)
		}
		if err := waitFor(ctx, vs.Name, want, start); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(samples)
	pct := func(p float64) time.Duration { return samples[int(float64(len(samples)-1)*p)] }
	b.ReportMetric(float64(pct(0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pct(0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(float64(samples[len(samples)-1].Milliseconds()), "max-ms")
}

// waitFor watches the Secret until key "v" holds want (10 s at most).
func waitFor(ctx context.Context, name, want string, since time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, err := cs.CoreV1().Secrets("bench").Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		return err
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if ev.Type == watch.Added || ev.Type == watch.Modified {
			if s, ok := ev.Object.(*corev1.Secret); ok && string(s.Data["v"]) == want {
				return nil
			}
		}
	}
	return fmt.Errorf("the Secret did not get %q within 10s of the rotation at %s", want, since.Format(time.RFC3339Nano))
}
