// Package controlplane runs a local Kubernetes control plane for tests, the
// demo and development: etcd and kube-apiserver through envtest, plus a
// kube-controller-manager with the garbage collector and the Deployment and
// ReplicaSet controllers, so owned objects really disappear and rollouts
// really create ReplicaSets (and, with Options.EndpointSlices, the
// EndpointSlice controller for the Services of test/node's Pods). The
// binaries are built from the Go module proxy
// by hack/build-control-plane.sh (make envtest-bins).
//
// With UseExistingCluster (or USE_EXISTING_CLUSTER=true) the same API points
// at the cluster of the current kubeconfig instead, for example a kind
// cluster, so suites built on it are cluster-agnostic.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Version is the Kubernetes version the local control plane is built from.
const Version = "1.37.2"

// Options configure Start.
type Options struct {
	// CRDDirectoryPaths are installed before Start returns.
	CRDDirectoryPaths []string
	// ControllerManager also starts kube-controller-manager (garbage
	// collector, deployment and replicaset controllers).
	ControllerManager bool
	// EndpointSlices also runs kube-controller-manager's endpointslice
	// controller (with ControllerManager), for Services backed by Pods
	// that the test/node agent runs.
	EndpointSlices bool
	// UseExistingCluster targets the current kubeconfig's cluster instead of
	// starting processes. USE_EXISTING_CLUSTER=true sets it too.
	UseExistingCluster bool
	// Output receives the control plane's own logs (default: discarded,
	// unless KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT=true).
	Output io.Writer
}

// ControlPlane is a running (or borrowed) control plane.
type ControlPlane struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Env is the underlying envtest environment.
	Env *envtest.Environment
	// Kubeconfig is a kubeconfig file for the admin user, for kubectl and helm.
	Kubeconfig string
	// BinDir holds kubectl and the other control-plane binaries.
	BinDir string

	dir     string
	kcm     *exec.Cmd
	kcmDone chan struct{}
	once    sync.Once
}

// BinDir returns the directory of the control-plane binaries:
// $KUBEBUILDER_ASSETS, else <repo>/bin/k8s/<Version>.
func BinDir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin", "k8s", Version), nil
}

// RepoRoot finds the repository root (the directory holding go.mod) from
// this source file's location or the working directory.
func RepoRoot() (string, error) {
	starts := []string{}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, d := range starts {
		for dir := d; ; dir = filepath.Dir(dir) {
			if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
				strings.Contains(string(b), "module github.com/vaultsync/vaultsync\n") {
				return dir, nil
			}
			if parent := filepath.Dir(dir); parent == dir {
				break
			}
		}
	}
	return "", errors.New("cannot find the vaultsync repository root (go.mod)")
}

// Start starts the control plane. Call Stop when done.
func Start(ctx context.Context, o Options) (*ControlPlane, error) {
	binDir, err := BinDir()
	if err != nil {
		return nil, err
	}
	existing := o.UseExistingCluster || os.Getenv("USE_EXISTING_CLUSTER") == "true"
	if !existing {
		for _, b := range []string{"kube-apiserver", "etcd"} {
			if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
				return nil, fmt.Errorf("%s not found in %s: run 'make envtest-bins' first (builds the control plane from the Go module proxy)", b, binDir)
			}
		}
	}
	dir, err := os.MkdirTemp("", "vaultsync-cp-")
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:        o.CRDDirectoryPaths,
		ErrorIfCRDPathMissing:    len(o.CRDDirectoryPaths) > 0,
		BinaryAssetsDirectory:    binDir,
		UseExistingCluster:       &existing,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	if !existing && o.Output != nil {
		env.ControlPlane.APIServer = &envtest.APIServer{Out: o.Output, Err: o.Output}
		env.ControlPlane.Etcd = &envtest.Etcd{Out: o.Output, Err: o.Output}
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop() // a failed start (a CRD refused, say) may leave etcd and the apiserver running
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	cp := &ControlPlane{Config: cfg, Env: env, BinDir: binDir, dir: dir}
	if existing {
		cp.Kubeconfig = os.Getenv("KUBECONFIG")
		if cp.Kubeconfig == "" {
			home, _ := os.UserHomeDir()
			cp.Kubeconfig = filepath.Join(home, ".kube", "config")
		}
		return cp, nil
	}
	admin, err := env.AddUser(envtest.User{Name: "vaultsync-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		cp.Stop()
		return nil, fmt.Errorf("creating the admin user: %w", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		cp.Stop()
		return nil, err
	}
	cp.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, kc, 0o600); err != nil {
		cp.Stop()
		return nil, err
	}
	if o.ControllerManager {
		if err := cp.startControllerManager(ctx, o.Output, o.EndpointSlices); err != nil {
			cp.Stop()
			return nil, err
		}
	}
	return cp, nil
}

func (cp *ControlPlane) startControllerManager(ctx context.Context, out io.Writer, endpointSlices bool) error {
	bin := filepath.Join(cp.BinDir, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("kube-controller-manager not found in %s: run 'make envtest-bins'", cp.BinDir)
	}
	if out == nil {
		out = io.Discard
		if os.Getenv("KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT") == "true" {
			out = os.Stderr
		}
	}
	controllers := "garbage-collector-controller,deployment-controller,replicaset-controller"
	if endpointSlices {
		controllers += ",endpointslice-controller"
	}
	cmd := exec.Command(bin,
		"--kubeconfig="+cp.Kubeconfig,
		"--controllers="+controllers,
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--concurrent-gc-syncs=5",
		"--v=1",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	cp.kcm = cmd
	cp.kcmDone = make(chan struct{})
	go func() { _ = cmd.Wait(); close(cp.kcmDone) }()
	return cp.waitForControllerManager(ctx)
}

// waitForControllerManager returns once the garbage collector works: it
// creates an owner and a dependent, deletes the owner and waits until the
// dependent is collected. That is the behaviour the suites rely on, so it is
// a better readiness signal than any log line or port.
func (cp *ControlPlane) waitForControllerManager(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	owner, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kcm-probe-owner-"},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	dep, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kcm-probe-dependent-", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID,
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	if err := cs.CoreV1().ConfigMaps("default").Delete(ctx, owner.Name, metav1.DeleteOptions{}); err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, dep.Name, metav1.GetOptions{}); err != nil {
			if strings.Contains(err.Error(), "not found") {
				return nil
			}
		}
		select {
		case <-cp.kcmDone:
			return errors.New("kube-controller-manager exited during start-up (set KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT=true to see its log)")
		case <-ctx.Done():
			return fmt.Errorf("kube-controller-manager did not start garbage collection in time: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Kubectl returns the path of the kubectl binary.
func (cp *ControlPlane) Kubectl() string { return filepath.Join(cp.BinDir, "kubectl") }

// Stop stops everything Start started. It is safe to call more than once.
func (cp *ControlPlane) Stop() {
	cp.once.Do(func() {
		if cp.kcm != nil && cp.kcm.Process != nil {
			_ = cp.kcm.Process.Signal(os.Interrupt)
			select {
			case <-cp.kcmDone:
			case <-time.After(10 * time.Second):
				_ = cp.kcm.Process.Kill()
				<-cp.kcmDone
			}
		}
		if cp.Env != nil {
			_ = cp.Env.Stop()
		}
		if cp.dir != "" {
			_ = os.RemoveAll(cp.dir)
		}
	})
}
