package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
	"github.com/vaultsync/vaultsync/test/testenv"
)

// localEnv runs the built binaries as subprocesses next to the local
// control plane.
type localEnv struct {
	env  *testenv.Env
	dir  string
	logs []string
}

// startLocal uses the binaries of make build and make emulator when
// E2E_MANAGER_BIN and E2E_EMULATOR_BIN name them (make test-e2e), and
// builds them into a temporary folder otherwise (go test ./...).
func startLocal(ctx context.Context) (environment, error) {
	dir, err := os.MkdirTemp("", "vaultsync-e2e-")
	if err != nil {
		return nil, err
	}
	bins, ok, err := testenv.BinariesFromEnv()
	if err != nil {
		return nil, err
	}
	if !ok {
		By("building bin/manager and bin/kv-emulator into " + dir)
		if bins, err = testenv.Build(ctx, root, filepath.Join(dir, "bin")); err != nil {
			return nil, err
		}
	}
	By("starting the control plane, the emulator and the operator")
	e, err := testenv.Up(testenv.Options{
		Root:      root,
		StateDir:  filepath.Join(dir, "state"),
		Namespace: namespace,
		Binaries:  bins,
		// Verbose, so that the leak spec sees as much as possible.
		ManagerArgs: []string{"--zap-log-level=" + logLevel()},
		SkipSamples: true,
	}, testenv.RunStep(ctx))
	l := &localEnv{env: e, dir: dir, logs: []string{e.ManagerLog}}
	if err != nil {
		l.Stop()
		return nil, err
	}
	GinkgoWriter.Printf("operator log: %s\n", e.ManagerLog)
	return l, nil
}

// logLevel is the operator's --zap-log-level: E2E_LOG_LEVEL, default 10,
// the most verbose there is. The operator caps itself below V(8), where
// client-go would dump the bodies of its requests (Secrets included); the
// leak spec proves the cap holds.
func logLevel() string { return envOr("E2E_LOG_LEVEL", "10") }

func (l *localEnv) ControlPlane() *controlplane.ControlPlane { return l.env.CP }

func (l *localEnv) Admin() *admin.Client { return l.env.Emulator.Admin }

func (l *localEnv) OperatorLog(context.Context) (string, error) {
	var b strings.Builder
	for _, f := range l.logs {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		b.Write(data)
	}
	return b.String(), nil
}

func (l *localEnv) RestartOperator(ctx context.Context) error {
	if err := l.env.Manager.Stop(30 * time.Second); err != nil {
		return fmt.Errorf("the operator did not exit cleanly on SIGTERM: %w", err)
	}
	next := filepath.Join(l.env.StateDir, fmt.Sprintf("manager-%d.log", len(l.logs)+1))
	l.logs = append(l.logs, next)
	return l.env.StartOperator(ctx, next, false)
}

func (l *localEnv) Stop() {
	l.env.Down()
	if anyFailed || os.Getenv("E2E_KEEP") != "" {
		GinkgoWriter.Printf("kept %s\n", l.dir)
		return
	}
	_ = os.RemoveAll(l.dir)
}
