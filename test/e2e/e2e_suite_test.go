package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
	"github.com/vaultsync/vaultsync/test/testenv"
)

// namespace receives the samples in every environment.
const namespace = "e2e"

// environment is where the specs run: the operator and the emulator are
// processes here (local) or pods of a cluster (kind).
type environment interface {
	// ControlPlane is the cluster's API (local or borrowed).
	ControlPlane() *controlplane.ControlPlane
	// Admin drives the emulator.
	Admin() *admin.Client
	// OperatorLog is everything the operator logged so far.
	OperatorLog(ctx context.Context) (string, error)
	// RestartOperator stops the operator gracefully (SIGTERM) and starts it
	// again, returning once its controller runs.
	RestartOperator(ctx context.Context) error
	// Stop removes everything the environment started.
	Stop()
}

var (
	ctx    context.Context
	cancel context.CancelFunc
	root   string
	env    environment
	k8s    client.Client
	// seed is the emulator configuration the vault was seeded from.
	seed *emulator.Config
	// anyFailed keeps the logs of a failed run.
	anyFailed bool
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "vaultsync end-to-end suite")
}

var _ = BeforeSuite(func() {
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel = context.WithCancel(context.Background())
	var err error
	root, err = testenv.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	seed, err = emulator.LoadConfig(filepath.Join(root, "hack", "demo", "emulator.yaml"))
	Expect(err).NotTo(HaveOccurred())

	setupCtx, setupCancel := context.WithTimeout(ctx, 8*time.Minute) // a cold build of both binaries included
	defer setupCancel()
	if os.Getenv("E2E_CLUSTER") == "kind" {
		env, err = startKind(setupCtx)
	} else {
		env, err = startLocal(setupCtx)
	}
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(env.ControlPlane().Config, client.Options{Scheme: testenv.Scheme()})
	Expect(err).NotTo(HaveOccurred())

	Expect(testenv.EnsureNamespace(ctx, k8s, namespace)).To(Succeed())
	Expect(testenv.ApplySamples(ctx, env.ControlPlane(), root, namespace)).To(Succeed())
})

var _ = AfterEach(func() {
	if !CurrentSpecReport().Failed() {
		return
	}
	anyFailed = true
	if log, err := env.OperatorLog(ctx); err == nil {
		lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
		GinkgoWriter.Printf("last lines of the operator log:\n%s\n", strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
})

var _ = AfterSuite(func() {
	if env != nil {
		env.Stop()
	}
	if cancel != nil {
		cancel()
	}
})
