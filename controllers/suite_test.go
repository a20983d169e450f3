package controllers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/vaultsync/vaultsync/controllers"
	kvevents "github.com/vaultsync/vaultsync/internal/events"
	"github.com/vaultsync/vaultsync/internal/metrics"
	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

// The suite runs the real manager against the real kube-apiserver (with the
// garbage collector of kube-controller-manager) and the Key Vault emulator,
// reached through its proxy exactly as production reaches Azure.

const (
	eventsKey    = "suite-events-shared-secret"
	eventedVault = "evented"
	vaultName    = "demo"
	pushVault    = "pushed"
	appClient    = "5b1e7c2a-3d4f-4a6b-9c8d-0e1f2a3b4c5d" // identity "app" of hack/demo/emulator.yaml
	// sourceDeleteConfirm is the suite's delay before a deleted source's
	// Secret is deleted (the default is 30 s).
	sourceDeleteConfirm = time.Second
)

var (
	ctx          context.Context
	cancel       context.CancelFunc
	env          *inprocess.Env
	cp           *controlplane.ControlPlane
	emu          *emulator.Emulator
	k8s          client.Client
	scheme       = runtime.NewScheme()
	issuer       string
	jwks         json.RawMessage
	tenantID     string
	vaultURL     string
	logs         = &syncBuffer{}
	eventsServer *httptest.Server
	nsSeq        atomic.Int64
)

// syncBuffer collects every log line of the manager, for the leak test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "VaultSecret controller suite")
}

var _ = BeforeSuite(func() {
	ctx, cancel = context.WithCancel(context.Background())
	// The control plane with the CRDs and kube-controller-manager, and the
	// emulator with the demo's directory, both in this process. The proxy
	// and CA environment is in place before any HTTP client of this process
	// exists (Go reads it once).
	var err error
	env, err = inprocess.Start(inprocess.Options{ControllerManager: true, EmulatorConfig: func(e *inprocess.Env) (*emulator.Config, error) {
		cfg, err := emulator.LoadConfig(filepath.Join(e.Root, "hack", "demo", "emulator.yaml"))
		if err == nil {
			tenantID = cfg.TenantID
		}
		return cfg, err
	}})
	Expect(err).NotTo(HaveOccurred())
	cp, emu = env.CP, env.Emu
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(controllers.AddToScheme(scheme)).To(Succeed())
	k8s, err = client.New(cp.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	// The service-account issuer and its keys, for the federated credentials.
	issuer, jwks = env.Issuer, env.JWKS

	vaultURL = emu.VaultURL(vaultName)
	Expect(emu.AddVault(emulator.Vault{Name: "locked"})).To(Succeed()) // no role for anyone

	ctrl.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(logs, GinkgoWriter)), zap.UseDevMode(true), zap.Level(zapcore.Level(-5))))
	cacheOpts := cache.Options{}
	controllers.RestrictCache(&cacheOpts)
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cacheOpts,
	})
	Expect(err).NotTo(HaveOccurred())
	o := controllers.DefaultOptions()
	o.NamespaceSelectors = true // the isolation specs admit namespaces by label
	o.ClusterVaultSecrets = true
	o.VaultPushSecrets = true // cluster id: the kube-system namespace's UID
	o.HashKey = []byte("suite-hash-key-suite-hash-key-32")
	o.BackoffMin, o.BackoffMax = 200*time.Millisecond, 2*time.Second
	o.SourceDeleteConfirm = sourceDeleteConfirm
	// Key Vault events: the emulator delivers to a loopback endpoint served
	// by the same handler the operator runs with --events-bind-address.
	o.Events = controllers.NewEventRouter()
	handler, err := kvevents.NewHandler(kvevents.Options{Secrets: [][]byte{[]byte(eventsKey)}, Sink: o.Events, Metrics: metrics.Shared()})
	Expect(err).NotTo(HaveOccurred())
	eventsServer = httptest.NewServer(handler)
	// Only the "evented" vault publishes events, so the other specs see
	// pure polling and force-sync behaviour.
	Expect(emu.AddVault(emulator.Vault{Name: eventedVault, RoleAssignments: []emulator.RoleAssignment{
		{Principal: "app", Role: "Key Vault Secrets User"},
	}})).To(Succeed())
	_, err = emu.AddEventSubscription(ctx, emulator.EventSubscription{
		Name: "operator", Endpoint: eventsServer.URL + "/events", Secret: eventsKey, Vaults: []string{eventedVault},
	})
	Expect(err).NotTo(HaveOccurred())
	// VaultPushSecrets write to "pushed": identity "app" may write secrets and certificates there.
	Expect(emu.AddVault(emulator.Vault{Name: pushVault, RoleAssignments: []emulator.RoleAssignment{
		{Principal: "app", Role: "Key Vault Secrets Officer"},
		{Principal: "app", Role: "Key Vault Certificates Officer"},
	}})).To(Succeed())
	Expect(controllers.Setup(mgr, o)).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	// Stop everything even when the leak check fails.
	defer func() {
		if cancel != nil {
			cancel()
		}
		if eventsServer != nil {
			eventsServer.Close()
		}
		if env != nil {
			env.Close() // the emulator, then the control plane
		}
	}()
	if emu != nil && cp != nil {
		checkNoLeaks() // while the control plane still runs
	}
})

// newNamespace creates a namespace with a ServiceAccount "app" federated
// with the emulator's identity "app".
func newNamespace() string {
	ns := fmt.Sprintf("vs-%d", nsSeq.Add(1))
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: "app",
		Annotations: map[string]string{
			"azure.workload.identity/client-id": appClient,
			"azure.workload.identity/tenant-id": tenantID,
		},
	}})).To(Succeed())
	Expect(emu.AddFederatedCredential("app", emulator.FederatedCredential{
		Name: ns, Issuer: issuer, Subject: "system:serviceaccount:" + ns + ":app",
		Audience: "api://AzureADTokenExchange", JWKS: jwks,
	})).To(Succeed())
	return ns
}
