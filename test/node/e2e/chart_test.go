// Package e2e installs the Helm chart on the local control plane with the
// test/node agent as its node: the manager runs from the image, as a real
// container, with in-cluster configuration. make test-node runs it; without
// VAULTSYNC_NODE_TEST=1, root and runc it skips.
package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
	"github.com/vaultsync/vaultsync/test/node"
	"github.com/vaultsync/vaultsync/test/testenv"
)

const (
	release   = "vaultsync"
	opNS      = testenv.OperatorNamespace
	tenantNS  = "tenant"
	leaseName = "vaultsync.vaultsync.io"
	eventsKey = "node-e2e-events-key-0123456789"
	leaderLbl = "vaultsync.io/leader"
)

// env is what the scenarios share.
type env struct {
	t       *testing.T
	ctx     context.Context
	root    string
	cp      *controlplane.ControlPlane
	cs      kubernetes.Interface
	k8s     client.Client
	emu     *testenv.Emulator
	agent   *node.Agent
	archive string
	// standIn is true when the image is built here from `go build`, not
	// by make image from the Dockerfile.
	standIn bool
}

// TestChartOnNode is the make test-node suite; its scenarios run in order
// on one installation.
func TestChartOnNode(t *testing.T) {
	logf.SetLogger(logr.Discard())
	if why := node.Unavailable(); why != "" {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 18*time.Minute)
	defer cancel()
	e := setup(t, ctx)

	steps := []struct {
		name string
		fn   func(*env)
	}{
		{"1-ready-and-syncs-in-cluster", (*env).scenarioReady},
		{"2-leader-failover", (*env).scenarioFailover},
		{"3-events-through-service-after-failover", (*env).scenarioEvents},
		{"4-upgrade-to-second-tag", (*env).scenarioUpgrade},
		{"5-wedged-manager-restarted", (*env).scenarioWedged},
		{"6-read-only-root", (*env).scenarioReadOnlyRoot},
		{"7-uninstall-keeps-crds-and-secrets", (*env).scenarioUninstall},
	}
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			sub := *e
			sub.t = t
			start := time.Now()
			s.fn(&sub)
			t.Logf("scenario %s took %s", s.name, time.Since(start).Round(time.Millisecond))
		})
		if !ok {
			e.dumpLogs()
			t.FailNow() // later scenarios build on the earlier ones
		}
	}
}

func setup(t *testing.T, ctx context.Context) *env {
	g := NewWithT(t)
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	e := &env{t: t, ctx: ctx, root: root}

	t0 := time.Now()
	bins, err := testenv.Build(ctx, root, dir)
	g.Expect(err).NotTo(HaveOccurred())
	// VAULTSYNC_NODE_IMAGE names the archive of make image. It must be
	// built from this tree (the chart passes the flags of this manager),
	// so an archive lying in bin/ is not picked up by itself.
	e.archive = os.Getenv("VAULTSYNC_NODE_IMAGE")
	if e.archive != "" {
		if _, err := os.Stat(e.archive); err != nil {
			t.Fatalf("VAULTSYNC_NODE_IMAGE: %v (run make image)", err)
		}
	} else {
		// A stand-in with the image's layout (/manager, user 65532, no
		// shell), from go build of this tree.
		e.archive, e.standIn = filepath.Join(dir, "vaultsync-standin.tar"), true
		mgr, err := os.ReadFile(bins.Manager)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(node.WriteOCIArchive(e.archive, map[string][]byte{"/manager": mgr},
			ocispec.ImageConfig{Entrypoint: []string{"/manager"}, User: "65532:65532", WorkingDir: "/"}, "vaultsync:dev")).To(Succeed())
		t.Logf("NOTE: VAULTSYNC_NODE_IMAGE is not set; using a stand-in image of the go-built manager (make image builds the real one)")
	}
	t.Logf("binaries and image ready in %s (archive %s)", time.Since(t0).Round(time.Millisecond), e.archive)

	t0 = time.Now()
	e.cp, err = controlplane.Start(ctx, controlplane.Options{ControllerManager: true, EndpointSlices: true})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(e.cp.Stop)
	e.cs, err = kubernetes.NewForConfig(e.cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	scheme := testenv.Scheme()
	g.Expect(apiextensionsv1.AddToScheme(scheme)).To(Succeed())
	e.k8s, err = client.New(e.cp.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("control plane up in %s (%s)", time.Since(t0).Round(time.Millisecond), e.cp.Config.Host)

	t0 = time.Now()
	e.emu, err = testenv.StartEmulator(ctx, testenv.EmulatorOptions{
		Binary: bins.Emulator, Config: filepath.Join(root, "hack", "demo", "emulator.yaml"),
		StateDir: filepath.Join(dir, "emulator"), LogFile: filepath.Join(dir, "emulator.log"),
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = e.emu.Stop(10 * time.Second) })
	proxyPort := portOf(t, e.emu.ProxyURL)
	t.Logf("emulator up in %s (proxy %s)", time.Since(t0).Round(time.Millisecond), e.emu.ProxyURL)

	t0 = time.Now()
	agentLog, err := os.Create(filepath.Join(dir, "agent.log"))
	g.Expect(err).NotTo(HaveOccurred())
	e.agent, err = node.New(node.Options{
		// A fixed state directory: a run that was killed leaves its
		// containers, mounts and namespaces there, and this start removes them.
		Config: e.cp.Config, NodeName: "node-e2e", StateDir: filepath.Join(os.TempDir(), "vaultsync-node-e2e"),
		Images:      []node.ImageArchive{{Path: e.archive, ExtraRefs: []string{"vaultsync:dev", "vaultsync:dev2"}}},
		HostPorts:   []int{proxyPort},
		BackoffBase: 2 * time.Second,
		Log:         agentLog,
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.agent.Start(ctx)).To(Succeed())
	t.Cleanup(func() {
		e.agent.Stop()
		if left := leftovers(e.agent); len(left) > 0 {
			t.Errorf("the agent left behind: %v", left)
		}
		if t.Failed() {
			t.Logf("agent log (tail):\n%s", testenv.Tail(agentLog.Name(), 60))
		}
		_ = agentLog.Close()
	})
	t.Logf("node agent up in %s", time.Since(t0).Round(time.Millisecond))

	// The tenant: a ServiceAccount federated with the emulator's "app"
	// identity, as test/e2e does.
	for _, ns := range []string{opNS, tenantNS} {
		g.Expect(testenv.EnsureNamespace(ctx, e.k8s, ns)).To(Succeed())
	}
	_, err = testenv.Kubectl(ctx, e.cp, "apply", "-n", tenantNS, "-f", filepath.Join(root, "config", "samples", "serviceaccount.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(testenv.Federate(ctx, e.cp.Config, e.emu.Admin, testenv.Identity, tenantNS, testenv.ServiceAccount)).To(Succeed())

	// What the chart's values point at: the emulator's CA and the events key.
	ca, err := os.ReadFile(e.emu.Env["SSL_CERT_FILE"])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: opNS, Name: "emulator-ca"},
		Data: map[string]string{"ca.crt": string(ca)}})).To(Succeed())
	g.Expect(e.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: opNS, Name: release + "-events"},
		StringData: map[string]string{"key": eventsKey}})).To(Succeed())

	t0 = time.Now()
	e.helm("install", release, filepath.Join(root, "charts", "vaultsync"), "-n", opNS, "--wait", "--timeout", "4m",
		"-f", e.values(proxyPort))
	t.Logf("helm install --wait (2 replicas Ready on the node) took %s", time.Since(t0).Round(time.Millisecond))
	return e
}

// values are the chart values of the suite: the local image, the
// emulator's proxy and CA, events on, probes quick enough for a test.
func (e *env) values(proxyPort int) string {
	v := fmt.Sprintf(`
replicas: 2
image:
  repository: vaultsync
  tag: dev
  pullPolicy: Never
events:
  enabled: true
proxy:
  httpsProxy: http://127.0.0.1:%d
extraCACertificates:
  configMap:
    name: emulator-ca
    key: ca.crt
livenessProbe:
  initialDelaySeconds: 5
  periodSeconds: 2
  timeoutSeconds: 1
  failureThreshold: 3
readinessProbe:
  initialDelaySeconds: 1
  periodSeconds: 1
  timeoutSeconds: 1
  failureThreshold: 3
`, proxyPort)
	f := filepath.Join(e.t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return f
}

func (e *env) helm(args ...string) string {
	e.t.Helper()
	helm := filepath.Join(e.root, "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		if p, err := exec.LookPath("helm"); err == nil {
			helm = p
		} else {
			e.t.Fatalf("helm not found: run make helm")
		}
	}
	cmd := exec.CommandContext(e.ctx, helm, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.cp.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// managerPods lists the running manager Pods that are not being deleted.
func (e *env) managerPods() []corev1.Pod {
	list, err := e.cs.CoreV1().Pods(opNS).List(e.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=manager"})
	if err != nil {
		return nil
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (e *env) readyManagers() []string {
	var out []string
	for _, p := range e.managerPods() {
		if ready(&p) {
			out = append(out, p.Name)
		}
	}
	return out
}

// leader is the Pod holding the manager's Lease (holder "<pod>_<uuid>").
func (e *env) leader() string {
	name, _, _ := strings.Cut(e.holder(), "_")
	return name
}

// holder is the Lease's holder identity: a restarted container of the same
// Pod holds it under a new one.
func (e *env) holder() string {
	l, err := e.cs.CoordinationV1().Leases(opNS).Get(e.ctx, leaseName, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func (e *env) managerLog(pod string) string {
	b, _ := e.agent.Logs(opNS, pod, "manager", false)
	return string(b)
}

func (e *env) dumpLogs() {
	for _, p := range e.managerPods() {
		e.t.Logf("manager log of %s (tail):\n%s", p.Name, tail(e.managerLog(p.Name), 30))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (e *env) secretValue(name, key string) string {
	s, err := e.cs.CoreV1().Secrets(tenantNS).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return string(s.Data[key])
}

// secretVersions maps the tenant's Secrets to their resourceVersions.
func (e *env) secretVersions(except ...string) map[string]string {
	list, err := e.cs.CoreV1().Secrets(tenantNS).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, s := range list.Items {
		skip := false
		for _, x := range except {
			skip = skip || s.Name == x
		}
		if !skip {
			out[s.Name] = s.ResourceVersion
		}
	}
	return out
}

// setSecret writes a new version; feature-* secrets keep the env=prod tag
// the "features" VaultSecret selects them by.
func (e *env) setSecret(name, value string) {
	sv := admin.SecretVersion{Value: value}
	if strings.HasPrefix(name, "feature-") {
		sv.Tags = map[string]string{"env": "prod"}
	}
	_, err := e.emu.Admin.SetSecret(e.ctx, testenv.Vault, name, sv)
	NewWithT(e.t).Expect(err).NotTo(HaveOccurred())
}

func (e *env) restartCount(pod string) int32 {
	p, err := e.cs.CoreV1().Pods(opNS).Get(e.ctx, pod, metav1.GetOptions{})
	if err != nil || len(p.Status.ContainerStatuses) == 0 {
		return -1
	}
	return p.Status.ContainerStatuses[0].RestartCount
}

// scenarioReady: the Pods turn Ready through their probes, a VaultSecret of
// a tenant syncs through workload identity, and the manager says it uses
// in-cluster configuration (it has no kubeconfig).
func (e *env) scenarioReady() {
	g := NewWithT(e.t)
	pods := e.managerPods()
	g.Expect(pods).To(HaveLen(2))
	for _, p := range pods {
		g.Expect(ready(&p)).To(BeTrue(), "pod %s Ready", p.Name)
		g.Expect(p.Spec.NodeName).To(Equal("node-e2e"))
		c := p.Spec.Containers[0]
		g.Expect(c.ReadinessProbe).NotTo(BeNil())
		g.Expect(c.LivenessProbe).NotTo(BeNil())
		st := p.Status.ContainerStatuses[0]
		g.Expect(st.State.Running).NotTo(BeNil())
		g.Expect(st.ImageID).To(ContainSubstring("vaultsync:dev@sha256:"))
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady {
				e.t.Logf("pod %s: Ready %s after its container started", p.Name, cond.LastTransitionTime.Sub(st.State.Running.StartedAt.Time))
			}
		}
	}
	t0 := time.Now()
	_, err := testenv.Kubectl(e.ctx, e.cp, "apply", "-n", tenantNS,
		"-f", filepath.Join(e.root, "config", "samples", "vaultsecret_basic.yaml"),
		"-f", filepath.Join(e.root, "config", "samples", "vaultsecret_find.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(testenv.WaitReady(e.ctx, e.k8s, tenantNS, 2, nil, 2*time.Minute)).To(Succeed())
	g.Expect(e.secretValue("db-credentials", "password")).To(Equal("correct-horse-battery-staple"))
	e.t.Logf("VaultSecrets db-credentials and features Ready (workload identity through the emulator's proxy) in %s", time.Since(t0).Round(time.Millisecond))

	var lead string
	g.Eventually(e.leader, time.Minute, 200*time.Millisecond).ShouldNot(BeEmpty())
	lead = e.leader()
	for _, p := range pods {
		log := e.managerLog(p.Name)
		g.Expect(log).To(MatchRegexp(`"configuration":\s*"in-cluster"`), "pod %s logs its in-cluster configuration", p.Name)
		g.Expect(log).To(ContainSubstring(`"host":"https://127.0.0.1:`))
	}
	e.t.Logf("leader %s; both managers logged configuration=in-cluster", lead)
}

// subscribe makes the emulator deliver the demo vault's events to the
// events Service, through its address on the node's kube-proxy stand-in.
func (e *env) subscribe() string {
	g := NewWithT(e.t)
	var addr string
	g.Eventually(func() bool {
		var ok bool
		addr, ok = e.agent.ServiceAddress(opNS, release+"-events", 9443)
		return ok
	}, 30*time.Second, 200*time.Millisecond).Should(BeTrue(), "the events Service has a node address")
	subs, _ := e.emu.Admin.EventSubscriptions(e.ctx)
	for _, s := range subs {
		if s.Name == "node-e2e" {
			return addr
		}
	}
	g.Eventually(func() error {
		_, err := e.emu.Admin.AddEventSubscription(e.ctx, admin.EventSubscription{
			Name: "node-e2e", Endpoint: "http://" + addr + "/events", Secret: eventsKey,
			MaxAttempts: 10, RetryDelay: &admin.Duration{Duration: 500 * time.Millisecond},
		})
		return err
	}, time.Minute, time.Second).Should(Succeed(), "the subscription's handshake passes through the Service")
	return addr
}

// scenarioFailover: SIGKILL the leader's container; the standby takes
// over, a rotation made meanwhile reaches its Secret, and no up-to-date
// Secret is rewritten by the takeover.
func (e *env) scenarioFailover() {
	g := NewWithT(e.t)
	e.subscribe()
	old, oldHolder := e.leader(), e.holder()
	g.Expect(old).NotTo(BeEmpty())
	g.Expect(e.readyManagers()).To(HaveLen(2))
	info, ok := e.agent.Container(opNS, old, "manager")
	g.Expect(ok).To(BeTrue())
	g.Expect(info.Pid).To(BeNumerically(">", 0))
	before := e.secretVersions("db-credentials")

	g.Expect(syscall.Kill(info.Pid, syscall.SIGKILL)).To(Succeed())
	killed := time.Now()
	e.setSecret("DbPassword", "rotated-during-handover")
	var takeover time.Duration
	var newLeader string
	g.Eventually(func() bool {
		h := e.holder()
		if h != "" && h != oldHolder {
			takeover, newLeader = time.Since(killed), e.leader()
			return true
		}
		return false
	}, 60*time.Second, 100*time.Millisecond).Should(BeTrue(), "another manager takes the Lease")
	who := "the standby replica"
	if newLeader == old {
		who = "the restarted container of the killed leader's Pod (it won the race)"
	}
	e.t.Logf("takeover after SIGKILL of the leader's container: %s by %s (lease duration 15s)", takeover.Round(time.Millisecond), who)
	g.Eventually(func() string { return e.secretValue("db-credentials", "password") }, 90*time.Second, 100*time.Millisecond).
		Should(Equal("rotated-during-handover"), "the rotation made during the handover reaches the Secret")
	e.t.Logf("rotation made during the handover in the Secret %s after the kill", time.Since(killed).Round(time.Millisecond))
	g.Consistently(func() map[string]string { return e.secretVersions("db-credentials") }, 3*time.Second, 250*time.Millisecond).
		Should(Equal(before), "the takeover rewrote no up-to-date Secret")
	g.Eventually(func() int32 { return e.restartCount(old) }, time.Minute, 200*time.Millisecond).Should(BeNumerically(">=", 1),
		"the agent restarts the killed container")
	g.Eventually(e.readyManagers, 2*time.Minute, 200*time.Millisecond).Should(HaveLen(2))
	e.t.Logf("killed container restarted and both replicas Ready again %s after the kill", time.Since(killed).Round(time.Millisecond))
}

// podLabelled reports whether a Pod carries the leader label.
func (e *env) podLabelled(pod string) bool {
	p, err := e.cs.CoreV1().Pods(opNS).Get(e.ctx, pod, metav1.GetOptions{})
	return err == nil && p.Labels[leaderLbl] == "true"
}

// scenarioEvents: the events Service selects the leader's Pod alone; after
// a failover a delivery through the Service address reaches the new leader.
func (e *env) scenarioEvents() {
	g := NewWithT(e.t)
	addr := e.subscribe()
	old, oldHolder := e.leader(), e.holder()
	g.Eventually(func() bool { return e.podLabelled(old) }, time.Minute, 200*time.Millisecond).Should(BeTrue(), "the leader labels its Pod")

	// Warm: a delivery reaches the current leader.
	t0 := time.Now()
	e.setSecret("feature-checkout", "events-before-failover")
	g.Eventually(func() string { return e.secretValue("features", "checkout") }, 30*time.Second, 20*time.Millisecond).
		Should(Equal("events-before-failover"))
	e.t.Logf("event to Secret through %s before the failover: %s", addr, time.Since(t0).Round(time.Millisecond))

	info, ok := e.agent.Container(opNS, old, "manager")
	g.Expect(ok).To(BeTrue())
	g.Expect(syscall.Kill(info.Pid, syscall.SIGKILL)).To(Succeed())
	killed := time.Now()
	var next string
	g.Eventually(func() bool {
		h := e.holder()
		next = e.leader()
		return h != "" && h != oldHolder && e.podLabelled(next)
	}, 60*time.Second, 50*time.Millisecond).Should(BeTrue(), "the new leader labels its Pod")
	e.t.Logf("new leader %s labelled %s after the kill", next, time.Since(killed).Round(time.Millisecond))

	t1 := time.Now()
	e.setSecret("feature-checkout", "events-after-failover")
	g.Eventually(func() string { return e.secretValue("features", "checkout") }, 2*time.Second, 20*time.Millisecond).
		Should(Equal("events-after-failover"), "a delivery through the Service reaches the new leader within 2s")
	e.t.Logf("event to Secret through the Service after the failover: %s", time.Since(t1).Round(time.Millisecond))
	g.Eventually(e.readyManagers, 2*time.Minute, 200*time.Millisecond).Should(HaveLen(2))
	if next != old {
		g.Eventually(func() bool { return e.podLabelled(old) }, time.Minute, 200*time.Millisecond).Should(BeFalse(),
			"the restarted former leader dropped the label")
	}
}

// scenarioUpgrade: helm upgrade to a second tag of the image replaces the
// Pods while rotations keep coming; the last one reaches the Secret.
func (e *env) scenarioUpgrade() {
	g := NewWithT(e.t)
	oldPods := e.managerPods()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var last string
	var rotations int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			v := fmt.Sprintf("upgrade-rotation-%d", i)
			if _, err := e.emu.Admin.SetSecret(e.ctx, testenv.Vault, "DbPassword", admin.SecretVersion{Value: v}); err == nil {
				last, rotations = v, i+1
			}
		}
	}()
	t0 := time.Now()
	e.helm("upgrade", release, filepath.Join(e.root, "charts", "vaultsync"), "-n", opNS, "--reuse-values",
		"--set", "image.tag=dev2", "--wait", "--timeout", "4m")
	g.Eventually(func() bool {
		pods := e.managerPods()
		if len(pods) != 2 {
			return false
		}
		for _, p := range pods {
			if p.Spec.Containers[0].Image != "vaultsync:dev2" || !ready(&p) {
				return false
			}
		}
		return true
	}, 3*time.Minute, 200*time.Millisecond).Should(BeTrue(), "two Ready Pods of vaultsync:dev2")
	rollout := time.Since(t0)
	close(stop)
	wg.Wait()
	for _, p := range oldPods {
		_, err := e.cs.CoreV1().Pods(opNS).Get(e.ctx, p.Name, metav1.GetOptions{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "old pod %s replaced", p.Name)
	}
	e.t.Logf("helm upgrade to vaultsync:dev2 rolled both Pods in %s, %d rotations meanwhile", rollout.Round(time.Millisecond), rotations)
	t1 := time.Now()
	g.Eventually(func() string { return e.secretValue("db-credentials", "password") }, time.Minute, 50*time.Millisecond).
		Should(Equal(last), "the last rotation of the rollout reaches the Secret")
	e.t.Logf("last rotation in the Secret %s after the rollout", time.Since(t1).Round(time.Millisecond))
}

// scenarioWedged: a stopped (SIGSTOP) manager fails its liveness probe
// and is restarted.
func (e *env) scenarioWedged() {
	g := NewWithT(e.t)
	pods := e.managerPods()
	g.Expect(pods).To(HaveLen(2))
	victim := pods[0].Name
	g.Expect(e.restartCount(victim)).To(BeEquivalentTo(0))
	info, ok := e.agent.Container(opNS, victim, "manager")
	g.Expect(ok).To(BeTrue())
	g.Expect(syscall.Kill(info.Pid, syscall.SIGSTOP)).To(Succeed())
	t0 := time.Now()
	g.Eventually(func() int32 { return e.restartCount(victim) }, 2*time.Minute, 200*time.Millisecond).Should(BeEquivalentTo(1))
	e.t.Logf("SIGSTOPped manager restarted after %s (liveness 3x2s, then SIGTERM and SIGKILL after the 10s grace)", time.Since(t0).Round(time.Millisecond))
	p, err := e.cs.CoreV1().Pods(opNS).Get(e.ctx, victim, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
	g.Expect(last).NotTo(BeNil())
	g.Expect(last.ExitCode).To(BeEquivalentTo(137))
	g.Expect(last.Message).To(ContainSubstring("failed liveness probe"))
	g.Eventually(e.readyManagers, 2*time.Minute, 200*time.Millisecond).Should(HaveLen(2))
}

// scenarioReadOnlyRoot: the managers write nothing to their root
// filesystem: the image's tree is unchanged, the writable layer holds only
// the mount points runc made, and a write is refused.
func (e *env) scenarioReadOnlyRoot() {
	g := NewWithT(e.t)
	pods := e.managerPods()
	g.Expect(pods).NotTo(BeEmpty())
	for _, p := range pods {
		info, ok := e.agent.Container(opNS, p.Name, "manager")
		g.Expect(ok).To(BeTrue())
		sum1 := treeSum(g, info.ImageRootFS)
		err := os.WriteFile(fmt.Sprintf("/proc/%d/root/tmp-write-test", info.Pid), []byte("x"), 0o644)
		g.Expect(errors.Is(err, syscall.EROFS)).To(BeTrue(), "a write to the container's root fails with EROFS, got %v", err)
		var written []string
		g.Expect(filepath.WalkDir(info.UpperDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Size() > 0 || fi.Mode()&fs.ModeCharDevice == 0 && !isMountPoint(path, info.UpperDir) {
				rel, _ := filepath.Rel(info.UpperDir, path)
				written = append(written, rel)
			}
			return nil
		})).To(Succeed())
		g.Expect(written).To(BeEmpty(), "pod %s wrote to its root filesystem", p.Name)
		g.Expect(treeSum(g, info.ImageRootFS)).To(Equal(sum1))
		e.t.Logf("pod %s: root filesystem read-only, nothing written in its layer", p.Name)
	}
	e.t.Logf("NOTE: the chart mounts no scratch emptyDir; the manager needs none (it writes nothing)")
}

// isMountPoint: the empty files runc creates as bind-mount targets.
func isMountPoint(path, upper string) bool {
	rel, _ := filepath.Rel(upper, path)
	switch rel {
	case "etc/hosts", "etc/hostname", "etc/resolv.conf":
		return true
	}
	return false
}

// treeSum hashes the names (relative to dir), modes and contents of a
// directory tree. It reads through an os.Root, so no symbolic link in the
// tree, nor one swapped in while it walks, leads it out of dir.
func treeSum(g Gomega, dir string) string {
	root, err := os.OpenRoot(dir)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = root.Close() }()
	fsys := root.FS()
	h := sha256.New()
	g.Expect(fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %d\n", p, fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() {
			f, err := fsys.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			_ = f.Close()
			return err
		}
		return nil
	})).To(Succeed())
	return hex.EncodeToString(h.Sum(nil))
}

// scenarioUninstall: helm uninstall removes the Pods (the agent stops
// their containers and deletes them) and keeps CRDs and synced Secrets.
func (e *env) scenarioUninstall() {
	g := NewWithT(e.t)
	t0 := time.Now()
	e.helm("uninstall", release, "-n", opNS, "--wait", "--timeout", "2m")
	g.Eventually(func() int {
		list, err := e.cs.CoreV1().Pods(opNS).List(e.ctx, metav1.ListOptions{})
		if err != nil {
			return -1
		}
		return len(list.Items)
	}, 2*time.Minute, 200*time.Millisecond).Should(BeZero())
	e.t.Logf("helm uninstall: Pods gone in %s", time.Since(t0).Round(time.Millisecond))
	g.Eventually(func() []string { return leftovers(e.agent) }, 30*time.Second, 200*time.Millisecond).Should(BeEmpty(),
		"no container, mount or network namespace of the Pods is left")
	for _, crd := range []string{"vaultsecrets.vaultsync.io", "vaultconnections.vaultsync.io", "clustervaultconnections.vaultsync.io"} {
		g.Expect(e.k8s.Get(e.ctx, client.ObjectKey{Name: crd}, &apiextensionsv1.CustomResourceDefinition{})).To(Succeed(), "CRD %s kept", crd)
	}
	var vsl v1alpha1.VaultSecretList
	g.Expect(e.k8s.List(e.ctx, &vsl, client.InNamespace(tenantNS))).To(Succeed())
	g.Expect(vsl.Items).To(HaveLen(2))
	g.Expect(e.secretValue("db-credentials", "password")).NotTo(BeEmpty(), "synced Secret kept")
	g.Expect(e.secretValue("features", "checkout")).NotTo(BeEmpty(), "synced Secret kept")
}

// leftovers lists what the agent's Pods may have left behind.
func leftovers(a *node.Agent) []string {
	var out []string
	list, _ := exec.Command("runc", "--root", a.RuncRoot(), "list", "-q").Output()
	for _, id := range strings.Fields(string(list)) {
		out = append(out, "container "+id)
	}
	entries, _ := os.ReadDir("/var/run/netns")
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), a.NetnsPrefix()) {
			out = append(out, "netns "+en.Name())
		}
	}
	for _, m := range node.MountsUnder(filepath.Join(filepath.Dir(a.RuncRoot()), "pods")) {
		out = append(out, "mount "+m)
	}
	return out
}

func portOf(t *testing.T, u string) int {
	i := strings.LastIndex(u, ":")
	var p int
	if _, err := fmt.Sscanf(strings.TrimRight(u[i+1:], "/"), "%d", &p); err != nil || p == 0 {
		t.Fatalf("no port in %q", u)
	}
	return p
}
