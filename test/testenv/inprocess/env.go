// Package inprocess runs vaultsync's real manager inside the test process
// against the local control plane (test/controlplane) and the Key Vault
// emulator, also in-process, for the benchmark (test/bench), the fault suite
// (test/faults) and the bad-input catalogue (test/badinput). It shares the
// issuer and federation conventions of package testenv; unlike testenv.Up it
// needs no built binaries. It counts every request the manager sends to the
// kube-apiserver (APICounter) and can cut the manager off from the apiserver
// (Gate) to emulate an apiserver outage.
//
// Everything it starts listens on loopback only.
package inprocess

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/controllers"
	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/testenv"
)

// Names of the emulated directory every Env starts with.
const (
	// TenantID is the emulated Entra ID tenant.
	TenantID = "3c1f8e2a-7b4d-4e6f-9a0b-1c2d3e4f5a6b"
	// Identity is the Entra application that every namespace's ServiceAccount
	// "app" is federated with (see Env.NewNamespace).
	Identity = "app"
	// IdentityClientID is Identity's client id.
	IdentityClientID = "6a2f1e3d-4c5b-4a69-8f7e-0d1c2b3a4f5e"
	// Vault is the vault every Env starts with; Identity may read its secrets,
	// certificates and keys.
	Vault = "bench"
	// ServiceAccount is the ServiceAccount NewNamespace creates.
	ServiceAccount = "app"
)

const emulatorConfig = `
tenantId: ` + TenantID + `
identities:
  - name: ` + Identity + `
    clientId: ` + IdentityClientID + `
vaults:
  - name: ` + Vault + `
    roleAssignments:
      - {principal: ` + Identity + `, role: Key Vault Secrets User}
      - {principal: ` + Identity + `, role: Key Vault Crypto User}
`

// Options configure Start.
type Options struct {
	// ControllerManager also starts kube-controller-manager (garbage collection).
	ControllerManager bool
	// Output receives the control plane's logs (nil: discarded).
	Output io.Writer
	// StateDir is the emulator's state directory (default: a temporary one, removed by Close).
	StateDir string
	// NoCRDs starts the control plane without vaultsync's CRDs, for suites
	// that need only the apiserver's ServiceAccount tokens.
	NoCRDs bool
	// EmulatorConfig returns the emulator's directory once the control plane
	// runs and e.Issuer and e.JWKS are known (nil: the directory of TenantID,
	// Identity and Vault above, which NewNamespace federates with).
	EmulatorConfig func(e *Env) (*emulator.Config, error)
}

// Env is a running control plane, with the CRDs installed unless
// Options.NoCRDs, and a running emulator whose environment (HTTPS_PROXY, SSL_CERT_FILE) this process uses.
type Env struct {
	CP  *controlplane.ControlPlane
	Emu *emulator.Emulator
	// Client is an uncached admin client without client-side rate limits.
	Client client.Client
	// Clientset is Client's typed sibling.
	Clientset *kubernetes.Clientset
	Scheme    *runtime.Scheme
	// Issuer and JWKS are the apiserver's ServiceAccount token issuer and keys.
	Issuer string
	JWKS   json.RawMessage
	// Root is the repository root.
	Root string

	tmp    string
	cancel context.CancelFunc
	nsSeq  atomic.Int64
}

var envStarted atomic.Bool

// Start prepares the emulator's environment (once per process: Go reads
// HTTPS_PROXY and SSL_CERT_FILE once), starts the control plane with the
// CRDs and the emulator. Call Close when done.
func Start(o Options) (*Env, error) {
	if !envStarted.CompareAndSwap(false, true) {
		return nil, errors.New("inprocess: Start may be called once per process (the proxy environment is read once)")
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		return nil, err
	}
	e := &Env{Root: root}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	state := o.StateDir
	if state == "" {
		if e.tmp, err = os.MkdirTemp("", "vaultsync-inprocess-"); err != nil {
			return nil, err
		}
		state = e.tmp
	}
	emuOpts, err := emulator.PrepareEnv(state)
	if err != nil {
		return nil, fmt.Errorf("emulator environment: %w", err)
	}
	cpOpts := controlplane.Options{ControllerManager: o.ControllerManager, Output: o.Output}
	if !o.NoCRDs {
		cpOpts.CRDDirectoryPaths = []string{filepath.Join(root, "config", "crd", "bases")}
	}
	e.CP, err = controlplane.Start(ctx, cpOpts)
	if err != nil {
		return nil, err
	}
	e.Scheme = runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(e.Scheme); err != nil {
		return nil, err
	}
	if err := controllers.AddToScheme(e.Scheme); err != nil {
		return nil, err
	}
	admin := rest.CopyConfig(e.CP.Config)
	admin.QPS, admin.Burst = -1, 0
	if e.Client, err = client.New(admin, client.Options{Scheme: e.Scheme}); err != nil {
		return nil, err
	}
	if e.Clientset, err = kubernetes.NewForConfig(admin); err != nil {
		return nil, err
	}
	if e.Issuer, e.JWKS, err = testenv.Issuer(ctx, admin); err != nil {
		return nil, err
	}
	var cfg *emulator.Config
	if o.EmulatorConfig != nil {
		cfg, err = o.EmulatorConfig(e)
	} else {
		cfg, err = emulator.ParseConfig([]byte(emulatorConfig))
	}
	if err != nil {
		return nil, err
	}
	if e.Emu, err = emulator.Start(ctx, cfg, emuOpts); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// Close stops the emulator and the control plane.
func (e *Env) Close() {
	if e.Emu != nil {
		e.Emu.Close()
	}
	if e.CP != nil {
		e.CP.Stop()
	}
	if e.cancel != nil {
		e.cancel()
	}
	if e.tmp != "" {
		_ = os.RemoveAll(e.tmp)
	}
}

// VaultURL returns the production-style URL of an emulated vault.
func (e *Env) VaultURL(name string) string { return e.Emu.VaultURL(name) }

// NewNamespace creates a namespace (a generated name when name is empty)
// with a ServiceAccount "app" federated with the emulator's identity "app",
// and returns its name.
func (e *Env) NewNamespace(ctx context.Context, name string) (string, error) {
	if name == "" {
		name = fmt.Sprintf("ns-%d", e.nsSeq.Add(1))
	}
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		return "", err
	}
	if err := e.CreateServiceAccount(ctx, name, ServiceAccount); err != nil {
		return "", err
	}
	return name, nil
}

// CreateServiceAccount creates a ServiceAccount annotated for workload
// identity and federates it with the emulator's identity "app".
func (e *Env) CreateServiceAccount(ctx context.Context, namespace, name string) error {
	if err := e.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Namespace: namespace, Name: name,
		Annotations: map[string]string{
			"azure.workload.identity/client-id": IdentityClientID,
			"azure.workload.identity/tenant-id": TenantID,
		},
	}}); err != nil {
		return err
	}
	return e.Emu.AddFederatedCredential(Identity, emulator.FederatedCredential{
		Name: namespace + "-" + name, Issuer: e.Issuer, Subject: "system:serviceaccount:" + namespace + ":" + name,
		Audience: testenv.WorkloadIdentityAudience, JWKS: e.JWKS,
	})
}
