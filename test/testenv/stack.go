package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// Names shared by the demo, the dev environment, the end-to-end suite and
// hack/demo/emulator.yaml.
const (
	// OperatorNamespace is where the manager keeps its hash-key Secret.
	OperatorNamespace = "vaultsync-system"
	// Vault is the emulated vault of the samples (https://demo.vault.azure.net).
	Vault = "demo"
	// Identity is the Entra application the samples' ServiceAccount is federated with.
	Identity = "app"
	// ServiceAccount is the ServiceAccount of the samples.
	ServiceAccount = "app"
	// WorkloadIdentityAudience is the audience of federated tokens.
	WorkloadIdentityAudience = "api://AzureADTokenExchange"
)

// Scheme knows the core types and the VaultSecret API.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// StartControlPlane starts etcd, kube-apiserver and kube-controller-manager
// (for garbage collection) with the VaultSecret CRD installed before the
// garbage collector starts, so that it knows VaultSecrets at once. With
// existing it borrows the current kubeconfig's cluster instead and installs
// nothing.
func StartControlPlane(ctx context.Context, root string, existing bool) (*controlplane.ControlPlane, client.Client, error) {
	return startControlPlane(ctx, root, existing, true, false)
}

// startControlPlane is StartControlPlane, with kube-controller-manager only
// when controllerManager is set, and its endpointslice controller too when
// endpointSlices is (for a test/node agent's Services).
func startControlPlane(ctx context.Context, root string, existing, controllerManager, endpointSlices bool) (*controlplane.ControlPlane, client.Client, error) {
	o := controlplane.Options{ControllerManager: controllerManager, UseExistingCluster: existing, EndpointSlices: endpointSlices}
	if !existing {
		o.CRDDirectoryPaths = []string{filepath.Join(root, "config", "crd", "bases")}
	}
	cp, err := controlplane.Start(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(cp.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		cp.Stop()
		return nil, nil, err
	}
	return cp, c, nil
}

// EnsureNamespace creates a namespace unless it exists.
func EnsureNamespace(ctx context.Context, c client.Client, name string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// Issuer reads the service-account token issuer of the cluster and its
// signing keys (JWKS) from the API server.
func Issuer(ctx context.Context, cfg *rest.Config) (issuer string, jwks json.RawMessage, err error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", nil, err
	}
	rc := cs.Discovery().RESTClient()
	raw, err := rc.Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("reading the service-account issuer: %w", err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Issuer == "" {
		return "", nil, fmt.Errorf("the API server's OpenID configuration names no issuer")
	}
	keys, err := rc.Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("reading the service-account signing keys: %w", err)
	}
	return doc.Issuer, keys, nil
}

// Federate registers a federated credential on the emulator's identity that
// trusts tokens of namespace/serviceAccount issued by the cluster, as
// `az identity federated-credential create` does in Azure.
func Federate(ctx context.Context, cfg *rest.Config, adm *admin.Client, identity, namespace, serviceAccount string) error {
	issuer, jwks, err := Issuer(ctx, cfg)
	if err != nil {
		return err
	}
	return adm.AddFederatedCredential(ctx, identity, admin.FederatedCredential{
		Name:     "k8s-" + namespace + "-" + serviceAccount,
		Issuer:   issuer,
		Subject:  "system:serviceaccount:" + namespace + ":" + serviceAccount,
		Audience: WorkloadIdentityAudience,
		JWKS:     jwks,
	})
}

// ManagerOptions configure StartManager.
type ManagerOptions struct {
	// Binary is the manager binary (make build builds bin/manager).
	Binary string
	// Kubeconfig is the admin kubeconfig of the control plane.
	Kubeconfig string
	// Env is the emulator's client environment (Emulator.ClientEnv).
	Env []string
	// LogFile receives the manager's log; Append keeps what is there.
	LogFile string
	Append  bool
	// Args are added to the default flags.
	Args []string
}

// ManagerArgs are the flags every local run of the manager gets.
var ManagerArgs = []string{
	"--dev",
	"--operator-namespace", OperatorNamespace,
	"--metrics-bind-address", "0",
	"--health-probe-bind-address", "127.0.0.1:0",
}

// StartManager runs the manager binary against the control plane, reaching
// Azure through the emulator.
func StartManager(o ManagerOptions) (*Process, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if o.Append {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	if err := os.MkdirAll(filepath.Dir(o.LogFile), 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(o.LogFile, flags, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }() // the child has its own descriptor
	cmd := exec.Command(o.Binary, append(append([]string{}, ManagerArgs...), o.Args...)...)
	cmd.Env = childEnv(append([]string{"KUBECONFIG=" + o.Kubeconfig}, o.Env...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	return StartProcess("operator", cmd)
}

// WaitForLog waits until the file contains substr, the process exits, or
// the timeout passes.
func WaitForLog(ctx context.Context, p *Process, path, substr string, timeout time.Duration) error {
	return Poll(ctx, timeout, 100*time.Millisecond, func() (bool, error) {
		if exited, err := p.Exited(); exited {
			return false, fmt.Errorf("%s exited (%v)", p.Name, err) //nolint:errorlint // err is nil on a clean exit: %w would print %!w(<nil>)
		}
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), substr), nil
	})
}

// Poll calls cond every interval until it returns true or an error, or the
// timeout passes (then the error names the last error of cond, if any).
func Poll(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s", timeout)
		case <-t.C:
		}
	}
}

// Kubectl runs kubectl from the control plane's binaries with its kubeconfig.
func Kubectl(ctx context.Context, cp *controlplane.ControlPlane, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, cp.Kubectl(), args...)
	cmd.Env = childEnv("KUBECONFIG=" + cp.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// SampleFiles lists the YAML files of config/samples (not a kustomization).
func SampleFiles(root string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no samples in config/samples")
	}
	sort.Strings(out)
	return out, nil
}

// ApplySamples applies config/samples into namespace with kubectl.
func ApplySamples(ctx context.Context, cp *controlplane.ControlPlane, root, namespace string) error {
	files, err := SampleFiles(root)
	if err != nil {
		return err
	}
	args := []string{"apply", "-n", namespace}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	_, err = Kubectl(ctx, cp, args...)
	return err
}

// IsReady reports whether a VaultSecret's Ready condition is True for its
// current generation.
func IsReady(vs *v1alpha1.VaultSecret) bool {
	c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == vs.Generation &&
		vs.Status.ObservedGeneration == vs.Generation
}

// WaitReady waits until every VaultSecret of the namespace is Ready (at
// least want of them), failing early if the operator exits. On timeout
// the error lists the VaultSecrets that are not Ready with their reason
// and message (which never hold values).
func WaitReady(ctx context.Context, c client.Client, namespace string, want int, operator *Process, timeout time.Duration) error {
	var pending []string
	err := Poll(ctx, timeout, 200*time.Millisecond, func() (bool, error) {
		if operator != nil {
			if exited, err := operator.Exited(); exited {
				return false, fmt.Errorf("the operator exited (%v)", err) //nolint:errorlint // err is nil on a clean exit: %w would print %!w(<nil>)
			}
		}
		var list v1alpha1.VaultSecretList
		if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			pending = []string{err.Error()}
			return false, nil
		}
		pending = pending[:0]
		for i := range list.Items {
			vs := &list.Items[i]
			if IsReady(vs) {
				continue
			}
			reason, msg := "Pending", "not reconciled yet"
			if cond := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady); cond != nil {
				reason, msg = cond.Reason, cond.Message
			}
			pending = append(pending, fmt.Sprintf("%s: %s: %s", vs.Name, reason, msg))
		}
		if len(list.Items) < want {
			pending = append(pending, fmt.Sprintf("%d of %d VaultSecrets exist", len(list.Items), want))
		}
		return len(pending) == 0, nil
	})
	if err != nil && len(pending) > 0 {
		return fmt.Errorf("%w; not Ready:\n  %s", err, strings.Join(pending, "\n  "))
	}
	return err
}
