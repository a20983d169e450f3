package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/controlplane"
)

// Options configure Up.
type Options struct {
	// Root is the repository root.
	Root string
	// StateDir holds the emulator's state (StateDir/emulator) and the logs
	// (StateDir/manager.log, StateDir/emulator.log).
	StateDir string
	// Namespace receives the samples and the federated ServiceAccount.
	Namespace string
	// Binaries are the manager and emulator to run.
	Binaries Binaries
	// ManagerArgs are added to the manager's default flags.
	ManagerArgs []string
	// SkipSamples leaves config/samples unapplied.
	SkipSamples bool
	// NoGarbageCollector starts the control plane without
	// kube-controller-manager, for runs that delete nothing (the demo): it
	// need not be built, and starts a few seconds sooner. Deleting a
	// VaultSecret then leaves its Secret behind.
	NoGarbageCollector bool
	// EndpointSlices runs kube-controller-manager's endpointslice
	// controller too (for a test/node agent's Services).
	EndpointSlices bool
}

// Step runs one named step of Up; a caller prints progress around it. fn
// returns a short detail for the progress line.
type Step func(title string, fn func(context.Context) (string, error)) error

// RunStep is a Step that prints nothing.
func RunStep(ctx context.Context) Step {
	return func(_ string, fn func(context.Context) (string, error)) error {
		_, err := fn(ctx)
		return err
	}
}

// Env is a running local environment: control plane, emulator, operator.
type Env struct {
	Options
	// CP is the control plane; K8s an admin client of it.
	CP  *controlplane.ControlPlane
	K8s client.Client
	// Emulator is the kv-emulator process.
	Emulator *Emulator
	// Manager is the operator process; ManagerLog its log file.
	Manager    *Process
	ManagerLog string
	// Synced is the number of VaultSecrets that became Ready.
	Synced int
}

// Up starts the environment step by step: control plane with the CRD,
// emulator, workload identity for Namespace/app, the operator, the samples,
// and waits until they are Ready. On error the returned Env holds what was
// started; call Down in every case.
func Up(o Options, step Step) (*Env, error) {
	e := &Env{Options: o, ManagerLog: filepath.Join(o.StateDir, "manager.log")}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return e, err
	}
	controlPlane := "etcd, kube-apiserver, kube-controller-manager"
	if o.NoGarbageCollector {
		controlPlane = "etcd, kube-apiserver"
	}
	steps := []struct {
		title string
		fn    func(context.Context) (string, error)
	}{
		{"starting the control plane (" + controlPlane + ") with the VaultSecret CRD", e.startControlPlane},
		{"starting the Key Vault emulator (vault https://demo.vault.azure.net, Entra ID)", e.startEmulator},
		{"configuring workload identity: ServiceAccount " + o.Namespace + "/" + ServiceAccount +
			" -> Entra application \"" + Identity + "\" (federated credential, admin API)", e.federate},
		{"starting the operator (" + e.Rel(o.Binaries.Manager) + ", log " + e.Rel(e.ManagerLog) + ")", e.startOperator},
	}
	if !o.SkipSamples {
		steps = append(steps, []struct {
			title string
			fn    func(context.Context) (string, error)
		}{
			{"applying config/samples to namespace " + o.Namespace + " (kubectl apply)", e.applySamples},
			{"waiting for the VaultSecrets to be Ready", e.waitReady},
		}...)
	}
	for _, s := range steps {
		if err := step(s.title, s.fn); err != nil {
			return e, err
		}
	}
	return e, nil
}

func (e *Env) startControlPlane(ctx context.Context) (string, error) {
	var err error
	e.CP, e.K8s, err = startControlPlane(ctx, e.Root, false, !e.NoGarbageCollector, e.EndpointSlices)
	if err != nil {
		return "", err
	}
	for _, ns := range []string{OperatorNamespace, e.Namespace} {
		if err := EnsureNamespace(ctx, e.K8s, ns); err != nil {
			return "", err
		}
	}
	return "API server " + e.CP.Config.Host, nil
}

func (e *Env) startEmulator(ctx context.Context) (string, error) {
	var err error
	e.Emulator, err = StartEmulator(ctx, EmulatorOptions{
		Binary:   e.Binaries.Emulator,
		Config:   filepath.Join(e.Root, "hack", "demo", "emulator.yaml"),
		StateDir: filepath.Join(e.StateDir, "emulator"),
		LogFile:  filepath.Join(e.StateDir, "emulator.log"),
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("pid %d, proxy %s", e.Emulator.Pid(), e.Emulator.ProxyURL), nil
}

func (e *Env) federate(ctx context.Context) (string, error) {
	issuer, _, err := Issuer(ctx, e.CP.Config)
	if err != nil {
		return "", err
	}
	if err := Federate(ctx, e.CP.Config, e.Emulator.Admin, Identity, e.Namespace, ServiceAccount); err != nil {
		return "", err
	}
	return "issuer " + issuer, nil
}

func (e *Env) startOperator(ctx context.Context) (string, error) {
	if err := e.StartOperator(ctx, e.ManagerLog, false); err != nil {
		return "", err
	}
	return fmt.Sprintf("pid %d", e.Manager.Pid()), nil
}

// StartOperator starts the manager (again) with its log in logFile and
// waits until its controller runs.
func (e *Env) StartOperator(ctx context.Context, logFile string, appendLog bool) error {
	var err error
	e.Manager, err = StartManager(ManagerOptions{
		Binary:     e.Binaries.Manager,
		Kubeconfig: e.CP.Kubeconfig,
		Env:        e.Emulator.ClientEnv(),
		LogFile:    logFile,
		Append:     appendLog,
		Args:       e.ManagerArgs,
	})
	if err != nil {
		return err
	}
	// controller-runtime logs this once the VaultSecret controller's cache
	// has synced and its workers run.
	if err := WaitForLog(ctx, e.Manager, logFile, "Starting workers", time.Minute); err != nil {
		return fmt.Errorf("the operator did not start its workers: %w\n%s", err, Tail(logFile, 10))
	}
	return nil
}

func (e *Env) applySamples(ctx context.Context) (string, error) {
	files, err := SampleFiles(e.Root)
	if err != nil {
		return "", err
	}
	if err := ApplySamples(ctx, e.CP, e.Root, e.Namespace); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d files", len(files)), nil
}

func (e *Env) waitReady(ctx context.Context) (string, error) {
	var list v1alpha1.VaultSecretList
	if err := e.K8s.List(ctx, &list, client.InNamespace(e.Namespace)); err != nil {
		return "", err
	}
	if err := WaitReady(ctx, e.K8s, e.Namespace, len(list.Items), e.Manager, 90*time.Second); err != nil {
		return "", err
	}
	e.Synced = len(list.Items)
	return fmt.Sprintf("%d VaultSecrets", len(list.Items)), nil
}

// Down stops everything Up started, newest first, and removes the
// emulator's state (its CA and signing keys); logs stay. It returns what
// it stopped, for a progress line. Safe on a partial Env and more than once.
func (e *Env) Down() []string {
	var stopped []string
	if e.Manager != nil {
		_ = e.Manager.Stop(15 * time.Second)
		stopped = append(stopped, fmt.Sprintf("operator pid %d", e.Manager.Pid()))
	}
	if e.Emulator != nil {
		_ = e.Emulator.Stop(10 * time.Second)
		stopped = append(stopped, fmt.Sprintf("emulator pid %d", e.Emulator.Pid()))
		_ = os.RemoveAll(filepath.Join(e.StateDir, "emulator"))
	}
	if e.CP != nil {
		e.CP.Stop()
		stopped = append(stopped, "control plane")
	}
	return stopped
}

// Started reports whether any process was started.
func (e *Env) Started() bool { return e.Manager != nil || e.Emulator != nil || e.CP != nil }

// Rel shortens a path below the repository root for display.
func (e *Env) Rel(p string) string {
	if r, err := filepath.Rel(e.Root, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}
