package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
	"github.com/vaultsync/vaultsync/test/testenv"
)

// The kind environment (E2E_CLUSTER=kind, make test-e2e-kind): the
// operator is installed with charts/vaultsync from the image IMG, and the
// emulator (image E2E_EMULATOR_IMG, test/e2e/kind/emulator.Dockerfile) runs
// as a native sidecar of the manager pod. The emulator only listens on
// loopback, which the pod's containers share: the manager reaches it at
// HTTPS_PROXY=http://127.0.0.1:8900 and trusts its CA from an emptyDir both
// containers mount; the suite reaches its admin API through kubectl
// port-forward, which connects to the pod's loopback. Both images must be
// loaded into the cluster (kind load docker-image).
const (
	kindRelease        = "vaultsync"
	kindDeployment     = "vaultsync" // the chart's full name for this release
	kindProxyPort      = 8900
	kindAdminPort      = 8901
	kindEmulatorMount  = "/var/run/kv-emulator"
	defaultEmulatorImg = "vaultsync/kv-emulator:e2e"
	defaultOperatorImg = "ghcr.io/vaultsync/vaultsync:dev"
)

type kindEnv struct {
	cp          *controlplane.ControlPlane
	helm        string
	portForward *testenv.Process
	admin       *admin.Client
}

func startKind(ctx context.Context) (environment, error) {
	img, emuImg := envOr("IMG", defaultOperatorImg), envOr("E2E_EMULATOR_IMG", defaultEmulatorImg)
	repo, tag := splitImage(img)
	k := &kindEnv{helm: envOr("HELM", filepath.Join(root, "bin", "helm"))}
	var err error
	By("connecting to the current kubeconfig's cluster")
	if k.cp, _, err = testenv.StartControlPlane(ctx, root, true); err != nil {
		return nil, err
	}

	By("installing the chart with image " + img + " and the emulator sidecar " + emuImg)
	extraEnv := []map[string]string{
		{"name": "HTTPS_PROXY", "value": fmt.Sprintf("http://127.0.0.1:%d", kindProxyPort)},
		// The API server (a Service IP) must not go through the emulator.
		{"name": "NO_PROXY", "value": "127.0.0.1,localhost,::1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,.svc,.cluster.local"},
		{"name": "SSL_CERT_FILE", "value": kindEmulatorMount + "/ca.pem"},
	}
	volumes := []map[string]any{{"name": "kv-emulator", "emptyDir": map[string]any{}}}
	mounts := []map[string]any{{"name": "kv-emulator", "mountPath": kindEmulatorMount, "readOnly": true}}
	if _, err := run(ctx, k.helm, "upgrade", "--install", kindRelease, filepath.Join(root, "charts", "vaultsync"),
		"--namespace", testenv.OperatorNamespace, "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag="+tag,
		"--set", "manager.logLevel="+logLevel(), "--set", "manager.logEncoder=console",
		"--set-json", "extraEnv="+mustJSON(extraEnv),
		"--set-json", "extraVolumes="+mustJSON(volumes),
		"--set-json", "extraVolumeMounts="+mustJSON(mounts),
	); err != nil {
		return k, err
	}
	sidecar := map[string]any{
		"name": "kv-emulator", "image": emuImg, "imagePullPolicy": "IfNotPresent",
		"restartPolicy": "Always", // a native sidecar: started before the manager, stopped after it
		"args": []string{
			"--proxy-addr", fmt.Sprintf("127.0.0.1:%d", kindProxyPort),
			"--admin-addr", fmt.Sprintf("127.0.0.1:%d", kindAdminPort),
		},
		"volumeMounts": []map[string]any{{"name": "kv-emulator", "mountPath": kindEmulatorMount}},
		"securityContext": map[string]any{
			"runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
			"capabilities": map[string]any{"drop": []string{"ALL"}},
		},
	}
	patch := []map[string]any{{"op": "add", "path": "/spec/template/spec/initContainers", "value": []any{sidecar}}}
	if _, err := testenv.Kubectl(ctx, k.cp, "patch", "deployment", kindDeployment, "-n", testenv.OperatorNamespace,
		"--type=json", "-p", mustJSON(patch)); err != nil {
		return k, err
	}
	if err := k.connect(ctx); err != nil {
		return k, err
	}
	return k, nil
}

// connect waits for the rollout, forwards a local port to the emulator's
// admin API and federates the samples' ServiceAccount. After a restart the
// emulator is a new process with the seeded state, so this runs again.
func (k *kindEnv) connect(ctx context.Context) error {
	if _, err := testenv.Kubectl(ctx, k.cp, "rollout", "status", "deployment/"+kindDeployment,
		"-n", testenv.OperatorNamespace, "--timeout=3m"); err != nil {
		return err
	}
	if k.portForward != nil {
		_ = k.portForward.Stop(5 * time.Second)
	}
	cmd := exec.Command(k.cp.Kubectl(), "port-forward", "-n", testenv.OperatorNamespace,
		"deployment/"+kindDeployment, fmt.Sprintf("127.0.0.1:0:%d", kindAdminPort))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.cp.Kubeconfig)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if k.portForward, err = testenv.StartProcess("port-forward", cmd); err != nil {
		return err
	}
	local := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case local <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case port := <-local:
		k.admin = admin.NewClient("http://127.0.0.1:" + port)
	case <-k.portForward.Done():
		return errors.New("kubectl port-forward to the emulator's admin API exited")
	case <-time.After(30 * time.Second):
		return errors.New("kubectl port-forward printed no local port within 30s")
	}
	if err := testenv.Poll(ctx, time.Minute, 500*time.Millisecond, func() (bool, error) {
		_, err := k.admin.Env(ctx)
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("the emulator's admin API does not answer through port-forward: %w", err)
	}
	if err := testenv.EnsureNamespace(ctx, mustClient(k.cp), namespace); err != nil {
		return err
	}
	return testenv.Federate(ctx, k.cp.Config, k.admin, testenv.Identity, namespace, testenv.ServiceAccount)
}

func (k *kindEnv) ControlPlane() *controlplane.ControlPlane { return k.cp }

func (k *kindEnv) Admin() *admin.Client { return k.admin }

func (k *kindEnv) OperatorLog(ctx context.Context) (string, error) {
	out, err := testenv.Kubectl(ctx, k.cp, "logs", "-n", testenv.OperatorNamespace, "deployment/"+kindDeployment,
		"-c", "manager", "--tail=-1")
	return string(out), err
}

// RestartOperator replaces the manager pod: Kubernetes sends SIGTERM and
// starts a new pod. The emulator sidecar restarts with it.
func (k *kindEnv) RestartOperator(ctx context.Context) error {
	if _, err := testenv.Kubectl(ctx, k.cp, "rollout", "restart", "deployment/"+kindDeployment,
		"-n", testenv.OperatorNamespace); err != nil {
		return err
	}
	return k.connect(ctx)
}

func (k *kindEnv) Stop() {
	stopCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if k.portForward != nil {
		_ = k.portForward.Stop(5 * time.Second)
	}
	if k.cp == nil {
		return
	}
	if _, err := testenv.Kubectl(stopCtx, k.cp, "delete", "namespace", namespace, "--ignore-not-found", "--wait=false"); err != nil {
		GinkgoWriter.Println(err)
	}
	if _, err := run(stopCtx, k.helm, "uninstall", kindRelease, "--namespace", testenv.OperatorNamespace); err != nil {
		GinkgoWriter.Println(err)
	}
	k.cp.Stop()
}

// run runs a command with the cluster's kubeconfig (helm reads KUBECONFIG).
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// splitImage splits "repo/name:tag" (the tag is after the last colon that
// follows the last slash; no tag means "latest").
func splitImage(img string) (repo, tag string) {
	i := strings.LastIndex(img, ":")
	if i < 0 || i < strings.LastIndex(img, "/") {
		return img, "latest"
	}
	return img[:i], img[i+1:]
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
