// Package failover runs the built manager binary, one or two replicas with
// leader election, against the local control plane and the Key Vault
// emulator, and checks the promises that a restart, a leader failover or a
// lost hash key put at risk: events still reach the VaultSecrets that read
// the object, expiry metrics survive, and no Secret is rewritten and no
// consumer restarted for data that did not change.
package failover

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/testenv"
)

const (
	namespace = "promises"
	eventsKey = "failover-suite-events-key"
)

var (
	ctx     context.Context
	cancel  context.CancelFunc
	root    string
	dir     string
	bins    testenv.Binaries
	cp      *controlplane.ControlPlane
	k8s     client.Client
	emu     *testenv.Emulator
	seq     int
	failed  bool
	running []*replica
)

func TestFailover(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "vaultsync restart and failover suite")
}

var _ = BeforeSuite(func() {
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel = context.WithCancel(context.Background())
	var err error
	root, err = testenv.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	dir, err = os.MkdirTemp("", "vaultsync-failover-")
	Expect(err).NotTo(HaveOccurred())

	var ok bool
	bins, ok, err = testenv.BinariesFromEnv()
	Expect(err).NotTo(HaveOccurred())
	if !ok {
		By("building the manager and the emulator into " + dir)
		bins, err = testenv.Build(ctx, root, filepath.Join(dir, "bin"))
		Expect(err).NotTo(HaveOccurred())
	}
	cp, k8s, err = testenv.StartControlPlane(ctx, root, false)
	Expect(err).NotTo(HaveOccurred())
	for _, ns := range []string{testenv.OperatorNamespace, namespace} {
		Expect(testenv.EnsureNamespace(ctx, k8s, ns)).To(Succeed())
	}
	emu, err = testenv.StartEmulator(ctx, testenv.EmulatorOptions{
		Binary:   bins.Emulator,
		Config:   filepath.Join(root, "hack", "demo", "emulator.yaml"),
		StateDir: filepath.Join(dir, "emulator"),
		LogFile:  filepath.Join(dir, "emulator.log"),
	})
	Expect(err).NotTo(HaveOccurred())
	// The samples' ServiceAccount carries the emulated identity's client and tenant ids.
	_, err = testenv.Kubectl(ctx, cp, "apply", "-n", namespace, "-f", filepath.Join(root, "config", "samples", "serviceaccount.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(testenv.Federate(ctx, cp.Config, emu.Admin, testenv.Identity, namespace, testenv.ServiceAccount)).To(Succeed())
	Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testenv.OperatorNamespace, Name: "vaultsync-events"},
		Data:       map[string][]byte{"key": []byte(eventsKey)},
	})).To(Succeed())
})

var _ = AfterEach(func() {
	if !CurrentSpecReport().Failed() {
		return
	}
	failed = true
	for _, r := range running {
		GinkgoWriter.Printf("last lines of %s:\n%s\n", r.log, testenv.Tail(r.log, 30))
	}
})

var _ = AfterSuite(func() {
	for _, r := range running {
		r.stop()
	}
	if emu != nil {
		_ = emu.Stop(10 * time.Second)
	}
	if cp != nil {
		cp.Stop()
	}
	if cancel != nil {
		cancel()
	}
	if dir != "" && !failed && os.Getenv("E2E_KEEP") == "" {
		_ = os.RemoveAll(dir)
	} else if dir != "" {
		GinkgoWriter.Printf("kept %s\n", dir)
	}
})

// replica is one manager process with its own events and metrics ports.
type replica struct {
	name    string
	pod     string // the Pod object the replica labels while it leads
	proc    *testenv.Process
	log     string
	events  string // host:port of the events endpoint
	metrics string // host:port of the (plain HTTP) metrics endpoint
}

// startReplica runs the built manager with leader election, the events
// endpoint and plain-HTTP metrics on loopback ports of its own.
func startReplica(name string) *replica {
	GinkgoHelper()
	seq++
	r := &replica{name: name, pod: "manager-" + name, log: filepath.Join(dir, fmt.Sprintf("manager-%s-%d.log", name, seq)),
		events: freeAddr(), metrics: freeAddr()}
	// The Pod object the replica would run in: nothing runs it here (no
	// kubelet), it only carries the leader label the events Service selects.
	Expect(k8s.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: testenv.OperatorNamespace, Name: r.pod},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "example.invalid/vaultsync:dev"}}},
	})).To(Succeed())
	r.launch()
	Expect(testenv.WaitForLog(ctx, r.proc, r.log, "starting vaultsync", time.Minute)).To(Succeed())
	return r
}

// launch starts the manager process of r.
func (r *replica) launch() {
	GinkgoHelper()
	var err error
	r.proc, err = testenv.StartManager(testenv.ManagerOptions{
		Binary: bins.Manager, Kubeconfig: cp.Kubeconfig, Env: emu.ClientEnv(), LogFile: r.log, Args: r.args(),
	})
	Expect(err).NotTo(HaveOccurred())
	running = append(running, r)
}

func (r *replica) args() []string {
	return []string{
		"--leader-elect", "--leader-election-namespace", testenv.OperatorNamespace,
		"--events-bind-address", r.events,
		"--leader-pod-label", leaderLabel, "--pod-name", r.pod,
		"--metrics-bind-address", r.metrics, "--metrics-secure=false",
		// Pushes on, with a fixed cluster id: every replica writes the same owner tag.
		"--vault-push-secrets", "--cluster-id", "failover-cluster",
		"--zap-log-level=2",
	}
}

// stop ends the replica gracefully (SIGTERM; it releases its lease).
func (r *replica) stop() {
	if r.proc != nil {
		_ = r.proc.Stop(30 * time.Second)
	}
}

// listening reports whether the replica's events endpoint accepts connections.
func (r *replica) listening() bool {
	c, err := net.DialTimeout("tcp", r.events, 200*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// logged reports whether the replica's log holds substr.
func (r *replica) logged(substr string) bool {
	b, _ := os.ReadFile(r.log)
	return strings.Contains(string(b), substr)
}

// labelled reports whether the replica's Pod carries the leader label.
func (r *replica) labelled() bool {
	pod := &corev1.Pod{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: testenv.OperatorNamespace, Name: r.pod}, pod); err != nil {
		return false
	}
	return pod.Labels[leaderLabel] == "true"
}

// service stands for the chart's events Service: one address that forwards
// each connection to a replica whose Pod carries the leader label (what the
// Service's selector does), trying the next labelled one when a dial fails
// (a dead Pod drops out of the endpoints in a cluster), and drops the
// connection when none accepts (Event Grid then retries).
type service struct {
	ln net.Listener

	mu       sync.Mutex
	backends []*replica
}

func newService() *service {
	GinkgoHelper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	s := &service{ln: ln}
	go s.serve()
	DeferCleanup(func() { _ = ln.Close() })
	return s
}

func (s *service) add(r *replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backends = append(s.backends, r)
}

// replace swaps a restarted replica in for its predecessor.
func (s *service) replace(old, next *replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.backends {
		if r == old {
			s.backends[i] = next
		}
	}
}

func (s *service) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.forward(c)
	}
}

func (s *service) forward(c net.Conn) {
	defer func() { _ = c.Close() }()
	s.mu.Lock()
	backends := append([]*replica(nil), s.backends...)
	s.mu.Unlock()
	for _, b := range backends {
		if !b.labelled() {
			continue
		}
		up, err := net.DialTimeout("tcp", b.events, time.Second)
		if err != nil {
			continue
		}
		defer func() { _ = up.Close() }()
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
		go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
		<-done
		return
	}
}

func freeAddr() string {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
