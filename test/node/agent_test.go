package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/vaultsync/vaultsync/test/controlplane"
)

// buildWebImage builds testdata/web statically and packs it as an OCI
// archive named web:test, user 65532.
func buildWebImage(t *testing.T, dir string) string {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "web")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./test/node/testdata/web")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test image: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "web.tar")
	err = WriteOCIArchive(archive, map[string][]byte{"/web": data, "/etc/passwd": []byte("root:x:0:0::/:/web\nnonroot:x:65532:65532::/:/web\n")},
		ocispec.ImageConfig{Entrypoint: []string{"/web"}, User: "65532:65532", Env: []string{"FROM_IMAGE=yes", "PATH=/"}}, "web:test")
	if err != nil {
		t.Fatal(err)
	}
	return archive
}

type whoami struct {
	Hostname string   `json:"hostname"`
	UID      int      `json:"uid"`
	GID      int      `json:"gid"`
	Groups   []int    `json:"groups"`
	Env      []string `json:"env"`
}

func (w whoami) env(k string) string {
	for _, kv := range w.Env {
		if strings.HasPrefix(kv, k+"=") {
			return strings.TrimPrefix(kv, k+"=")
		}
	}
	return ""
}

// TestAgent runs a Deployment of the test image on the agent and checks
// what a kubelet would give it.
func TestAgent(t *testing.T) {
	if why := Unavailable(); why != "" {
		t.Skip(why)
	}
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	dir := t.TempDir()
	archive := buildWebImage(t, dir)

	t0 := time.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{ControllerManager: true, EndpointSlices: true})
	g.Expect(err).NotTo(HaveOccurred())
	defer cp.Stop()
	t.Logf("control plane up in %s", time.Since(t0).Round(time.Millisecond))
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())

	var agentLog bytes.Buffer
	// A fixed state directory: what a killed run left there, this start removes.
	state := filepath.Join(os.TempDir(), "vaultsync-node-test-agent")
	a, err := New(Options{
		Config: cp.Config, NodeName: "node-test", StateDir: state,
		Images:      []ImageArchive{{Path: archive}},
		BackoffBase: time.Second, ResyncPeriod: time.Second, TokenRefreshAfter: 3 * time.Second,
		Log: &syncWriter{w: &agentLog},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a.Start(ctx)).To(Succeed())
	stopped := false
	defer func() {
		if !stopped {
			a.Stop()
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", agentLog.String())
			logs, _ := filepath.Glob(filepath.Join(state, "logs", "*", "*", "*.log"))
			for i, l := range logs {
				if i < 3 {
					b, _ := os.ReadFile(l)
					t.Logf("%s:\n%s", l, b)
				}
			}
		}
	}()

	node, err := cs.CoreV1().Nodes().Get(ctx, "node-test", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(node.Status.NodeInfo.KubeletVersion).To(Equal(KubeletVersion))
	g.Expect(node.Status.Addresses).To(ContainElement(corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}))

	ns := "default"
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "web-config"}, Data: map[string]string{"greeting": "hello", "other": "x"},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	labels := map[string]string{"app": "web"}
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds: 1, FailureThreshold: 2, TimeoutSeconds: 1,
		}
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName:            "web",
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr.To(true), FSGroup: ptr.To[int64](2000),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name: "web", Image: "localhost/web:test", ImagePullPolicy: corev1.PullNever,
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						Env: []corev1.EnvVar{
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "POD_NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
							{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
							{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
							{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
							{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}, Key: "greeting"}}},
							{Name: "COMPOSED", Value: "$(APP)-$(POD_NS)"},
						},
						ReadinessProbe: probe("/ready"),
						LivenessProbe:  probe("/healthz"),
						Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
							corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("500m"),
						}},
						SecurityContext: &corev1.SecurityContext{
							RunAsUser: ptr.To[int64](65532), ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "scratch", MountPath: "/scratch"},
							{Name: "config", MountPath: "/config"},
							{Name: "aud-token", MountPath: "/var/run/secrets/tokens"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"},
							Items:                []corev1.KeyToPath{{Key: "greeting", Path: "greeting.txt"}},
						}}},
						{Name: "aud-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
							ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "api://AzureADTokenExchange", ExpirationSeconds: ptr.To[int64](3600), Path: "token"},
						}}}}},
					},
				},
			},
		},
	}
	t1 := time.Now()
	_, err = cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	readyPods := func() []corev1.Pod {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return nil
		}
		var out []corev1.Pod
		for _, p := range list.Items {
			if p.Spec.NodeName == "node-test" && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && podReady(&p) {
				out = append(out, p)
			}
		}
		return out
	}
	g.Eventually(readyPods, 90*time.Second, 250*time.Millisecond).Should(HaveLen(2), "both replicas run and pass their readiness probe")
	t.Logf("Deployment of 2 replicas Running and Ready in %s", time.Since(t1).Round(time.Millisecond))
	pods := readyPods()
	pod := pods[0]
	g.Expect(pod.Status.PodIP).To(HavePrefix("10.244.0."))
	g.Expect(pod.Status.HostIP).To(Equal("127.0.0.1"))
	cst := pod.Status.ContainerStatuses[0]
	g.Expect(cst.ContainerID).To(HavePrefix("runc://"))
	g.Expect(cst.ImageID).To(ContainSubstring("@sha256:"))
	g.Expect(*cst.Started).To(BeTrue())

	// Talk to one Pod inside its network namespace.
	get := func(podName, path string) (int, []byte, error) {
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return a.DialPod(ctx, ns, podName, 8080) },
		}}
		resp, err := cl.Get("http://pod" + path)
		if err != nil {
			return 0, nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	code, body, err := get(pod.Name, "/whoami")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(200))
	var who whoami
	g.Expect(json.Unmarshal(body, &who)).To(Succeed())
	g.Expect(who.UID).To(Equal(65532))
	g.Expect(who.GID).To(Equal(65532), "the image's group")
	g.Expect(who.Groups).To(ContainElement(2000), "fsGroup is a supplementary group")
	g.Expect(who.Hostname).To(Equal(pod.Name))
	g.Expect(who.env("POD_NAME")).To(Equal(pod.Name))
	g.Expect(who.env("POD_NS")).To(Equal(ns))
	g.Expect(who.env("APP")).To(Equal("web"))
	g.Expect(who.env("NODE")).To(Equal("node-test"))
	g.Expect(who.env("POD_IP")).To(Equal(pod.Status.PodIP))
	g.Expect(who.env("GREETING")).To(Equal("hello"))
	g.Expect(who.env("COMPOSED")).To(Equal("web-default"))
	g.Expect(who.env("FROM_IMAGE")).To(Equal("yes"))
	g.Expect(who.env("KUBERNETES_SERVICE_HOST")).To(Equal("127.0.0.1"))

	// Read-only root, writable scratch volume.
	code, body, err = get(pod.Name, "/write?path=/newfile")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(http.StatusForbidden))
	g.Expect(string(body)).To(ContainSubstring("read-only file system"))
	code, _, err = get(pod.Name, "/write?path=/scratch/file")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(200))

	// The ServiceAccount volume the admission plugin would have added, and
	// the configMap volume with items.
	for _, f := range []string{"token", "ca.crt", "namespace"} {
		code, body, err = get(pod.Name, "/file?path="+ServiceAccountMountPath+"/"+f)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(200), f)
		g.Expect(body).NotTo(BeEmpty(), f)
	}
	_, body, _ = get(pod.Name, "/file?path=/config/greeting.txt")
	g.Expect(string(body)).To(Equal("hello"))
	// The in-cluster token works against the API server through the
	// forwarded port (as the manager will use it).
	_, tok, _ := get(pod.Name, "/file?path="+ServiceAccountMountPath+"/token")
	g.Expect(whoAmIToken(ctx, cp, string(tok))).To(Equal("system:serviceaccount:default:web"))

	// The audience token is refreshed.
	_, tok1, _ := get(pod.Name, "/file?path=/var/run/secrets/tokens/token")
	g.Expect(tok1).NotTo(BeEmpty())
	t2 := time.Now()
	g.Eventually(func() string {
		_, b, _ := get(pod.Name, "/file?path=/var/run/secrets/tokens/token")
		return string(b)
	}, 30*time.Second, 500*time.Millisecond).ShouldNot(Or(Equal(string(tok1)), BeEmpty()))
	t.Logf("projected token refreshed after %s", time.Since(t2).Round(time.Millisecond))

	// A configMap change reaches the volume.
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	cm.Data["greeting"] = "bonjour"
	_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func() string {
		_, b, _ := get(pod.Name, "/file?path=/config/greeting.txt")
		return string(b)
	}, 30*time.Second, 500*time.Millisecond).Should(Equal("bonjour"))

	// The Service forwards to both Pods, then only to the ready one.
	var svc string
	g.Eventually(func() bool { var ok bool; svc, ok = a.ServiceAddress(ns, "web", 80); return ok }, 10*time.Second).Should(BeTrue())
	hostname := func() string {
		cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := cl.Get("http://" + svc + "/whoami")
		if err != nil {
			return err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		var w whoami
		_ = json.NewDecoder(resp.Body).Decode(&w)
		return w.Hostname
	}
	seen := map[string]bool{}
	g.Eventually(func() int {
		seen[hostname()] = true
		return len(seen)
	}, 30*time.Second, 100*time.Millisecond).Should(BeNumerically(">=", 2))
	g.Expect(seen).To(HaveKey(pods[0].Name))
	g.Expect(seen).To(HaveKey(pods[1].Name))
	_, _, err = get(pods[1].Name, "/unready")
	g.Expect(err).NotTo(HaveOccurred())
	t3 := time.Now()
	g.Eventually(func() bool {
		sl, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return false
		}
		for _, s := range sl.Items {
			for _, ep := range s.Endpoints {
				if ep.TargetRef != nil && ep.TargetRef.Name == pods[1].Name && ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					return true
				}
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond).Should(BeTrue(), "the unready Pod's endpoint turns not ready")
	t.Logf("unready pod left the Service's ready endpoints in %s", time.Since(t3).Round(time.Millisecond))
	for range 10 {
		g.Expect(hostname()).To(Equal(pods[0].Name), "only the ready Pod serves the Service")
	}

	// A liveness failure restarts the container.
	_, _, err = get(pods[0].Name, "/fail")
	g.Expect(err).NotTo(HaveOccurred())
	t4 := time.Now()
	g.Eventually(func() int32 {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pods[0].Name, metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return -1
		}
		return p.Status.ContainerStatuses[0].RestartCount
	}, 60*time.Second, 250*time.Millisecond).Should(BeNumerically(">=", 1))
	t.Logf("liveness failure restarted the container in %s", time.Since(t4).Round(time.Millisecond))
	g.Eventually(func() bool {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pods[0].Name, metav1.GetOptions{})
		return err == nil && podReady(p) && p.Status.ContainerStatuses[0].LastTerminationState.Terminated != nil
	}, 60*time.Second, 250*time.Millisecond).Should(BeTrue(), "the restarted container is Ready again, its last state is Terminated")

	// Pods the agent cannot run say why.
	bad := func(name, image string, sc *corev1.SecurityContext) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "c", Image: image, SecurityContext: sc}},
		}}
	}
	_, err = cs.CoreV1().Pods(ns).Create(ctx, bad("noimage", "example.invalid/nothing:1", nil), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.CoreV1().Pods(ns).Create(ctx, bad("root", "web:test", &corev1.SecurityContext{RunAsUser: ptr.To[int64](0), RunAsNonRoot: ptr.To(true)}), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	waiting := func(name string) string {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
			return ""
		}
		return p.Status.ContainerStatuses[0].State.Waiting.Reason
	}
	g.Eventually(func() string { return waiting("noimage") }, 30*time.Second, 250*time.Millisecond).Should(Equal("ImagePullBackOff"))
	g.Eventually(func() string { return waiting("root") }, 30*time.Second, 250*time.Millisecond).Should(Equal("CreateContainerConfigError"))
	for _, n := range []string{"noimage", "root"} {
		g.Expect(cs.CoreV1().Pods(ns).Delete(ctx, n, metav1.DeleteOptions{})).To(Succeed())
	}

	// Deleting the Deployment deletes the Pods; the agent cleans up after them.
	t5 := time.Now()
	g.Expect(cs.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})).To(Succeed())
	g.Eventually(func() int {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return -1
		}
		return len(list.Items)
	}, 90*time.Second, 250*time.Millisecond).Should(BeZero())
	t.Logf("deleted pods gone from the API in %s", time.Since(t5).Round(time.Millisecond))
	g.Eventually(func() []string { return leftovers(a) }, 20*time.Second, 250*time.Millisecond).Should(BeEmpty())

	a.Stop()
	stopped = true
	g.Expect(leftovers(a)).To(BeEmpty())
	_, err = cs.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
}

// leftovers lists what the agent should have removed: runc containers,
// mounts under its state directory, its network namespaces.
func leftovers(a *Agent) []string {
	var out []string
	list, _ := exec.Command("runc", "--root", a.RuncRoot(), "list", "-q").Output()
	for _, id := range strings.Fields(string(list)) {
		out = append(out, "container "+id)
	}
	for _, m := range MountsUnder(a.o.StateDir) {
		out = append(out, "mount "+m)
	}
	for _, n := range listNetns(a.NetnsPrefix()) {
		out = append(out, "netns "+n)
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// whoAmIToken asks the API server who a bearer token is.
func whoAmIToken(ctx context.Context, cp *controlplane.ControlPlane, token string) string {
	cfg := *cp.Config
	cfg.CertData, cfg.KeyData, cfg.CertFile, cfg.KeyFile = nil, nil, "", ""
	cfg.BearerToken = token
	cs, err := kubernetes.NewForConfig(&cfg)
	if err != nil {
		return err.Error()
	}
	res, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Sprintf("error: %v", err)
	}
	return res.Status.UserInfo.Username
}

// syncWriter serialises writes of the agent's goroutines to a buffer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
