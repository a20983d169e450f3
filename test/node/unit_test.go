package node

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestNormalizeRef(t *testing.T) {
	g := NewWithT(t)
	for in, want := range map[string]string{
		"vaultsync:dev":                       "vaultsync:dev",
		"localhost/vaultsync:dev":             "vaultsync:dev",
		"docker.io/library/vaultsync:dev":     "vaultsync:dev",
		"docker.io/vaultsync/vaultsync:1":     "vaultsync/vaultsync:1",
		"vaultsync":                           "vaultsync:latest",
		"localhost:5000/vaultsync":            "localhost:5000/vaultsync:latest",
		"ghcr.io/vaultsync/vaultsync@sha256:": "ghcr.io/vaultsync/vaultsync@sha256:",
	} {
		g.Expect(NormalizeRef(in)).To(Equal(want), in)
	}
}

type fakeObjects struct {
	secrets map[string]*corev1.Secret
	cms     map[string]*corev1.ConfigMap
}

func (f fakeObjects) Secret(_ context.Context, _, name string) (*corev1.Secret, error) {
	if s, ok := f.secrets[name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func (f fakeObjects) ConfigMap(_ context.Context, _, name string) (*corev1.ConfigMap, error) {
	if c, ok := f.cms[name]; ok {
		return c, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u-1", Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{"a": "b"}},
		Spec:   corev1.PodSpec{NodeName: "n1", ServiceAccountName: "sa"},
		Status: corev1.PodStatus{PodIP: "10.244.0.2", HostIP: "127.0.0.1"},
	}
}

func TestResolveEnv(t *testing.T) {
	src := fakeObjects{
		secrets: map[string]*corev1.Secret{"s": {Data: map[string][]byte{"k": []byte("secret-v"), "B": []byte("2")}}},
		cms:     map[string]*corev1.ConfigMap{"c": {Data: map[string]string{"k": "cm-v", "A": "1"}}},
	}
	fr := func(p string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: p}}
	}
	c := &corev1.Container{
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}, Prefix: "CM_"},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: ptr.To(true)}},
		},
		Env: []corev1.EnvVar{
			{Name: "NAME", ValueFrom: fr("metadata.name")},
			{Name: "NS", ValueFrom: fr("metadata.namespace")},
			{Name: "UID", ValueFrom: fr("metadata.uid")},
			{Name: "APP", ValueFrom: fr("metadata.labels['app']")},
			{Name: "NODE", ValueFrom: fr("spec.nodeName")},
			{Name: "SA", ValueFrom: fr("spec.serviceAccountName")},
			{Name: "IP", ValueFrom: fr("status.podIP")},
			{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}},
			{Name: "C", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Key: "k"}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "none"}, Key: "k", Optional: ptr.To(true)}}},
			{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "X", Value: "$(NAME).$(NS) $$(NAME) $(UNDEFINED) $(KUBERNETES_SERVICE_HOST)"},
		},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
	}
	g := NewWithT(t)
	env, err := ResolveEnv(context.Background(), testPod(), c, []EnvVar{{"KUBERNETES_SERVICE_HOST", "127.0.0.1"}}, src)
	g.Expect(err).NotTo(HaveOccurred())
	got := map[string]string{}
	for _, e := range env {
		got[e.Name] = e.Value
	}
	g.Expect(got).To(Equal(map[string]string{
		"KUBERNETES_SERVICE_HOST": "127.0.0.1",
		"CM_k":                    "cm-v", "CM_A": "1", "k": "secret-v", "B": "2",
		"NAME": "p", "NS": "ns", "UID": "u-1", "APP": "web", "NODE": "n1", "SA": "sa", "IP": "10.244.0.2",
		"S": "secret-v", "C": "cm-v", "MEM": "64",
		"X": "p.ns $(NAME) $(UNDEFINED) 127.0.0.1",
	}))

	// A missing required key is a configuration error, as a kubelet says.
	c.Env = []corev1.EnvVar{{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k"}}}}
	c.EnvFrom = nil
	_, err = ResolveEnv(context.Background(), testPod(), c, nil, src)
	var ce *ConfigError
	g.Expect(errors.As(err, &ce)).To(BeTrue())
	g.Expect(err.Error()).To(Equal(`secret "gone" not found`))
}

func TestArgv(t *testing.T) {
	g := NewWithT(t)
	env := []EnvVar{{"V", "x"}}
	ep, cmd := []string{"/ep", "$(V)"}, []string{"cmd", "$(V)"}
	for _, tc := range []struct {
		command, args, want []string
	}{
		{nil, nil, []string{"/ep", "$(V)", "cmd", "$(V)"}}, // the image's own are never expanded
		{[]string{"/bin/c", "$(V)"}, nil, []string{"/bin/c", "x"}},
		{nil, []string{"a", "$(V)"}, []string{"/ep", "$(V)", "a", "x"}},
		{[]string{"/bin/c"}, []string{"$(V)"}, []string{"/bin/c", "x"}},
	} {
		got, err := Argv(&corev1.Container{Command: tc.command, Args: tc.args}, ep, cmd, env)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got).To(Equal(tc.want), "command %v args %v", tc.command, tc.args)
	}
	_, err := Argv(&corev1.Container{}, nil, nil, nil)
	g.Expect(err).To(HaveOccurred())
	g.Expect(MergeImageEnv([]string{"PATH=/bin", "A=1"}, []EnvVar{{"A", "2"}, {"B", "3"}})).To(Equal([]string{"PATH=/bin", "A=2", "B=3"}))
}

// layer writes a tar layer of entries (name -> content; "" with a trailing
// slash is a directory).
func layer(t *testing.T, entries ...[2]string) *bytes.Buffer {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	uid, gid := os.Getuid(), os.Getgid()
	for _, e := range entries {
		h := &tar.Header{Name: e[0], Mode: 0o644, Uid: uid, Gid: gid, Typeflag: tar.TypeReg, Size: int64(len(e[1]))}
		if e[0][len(e[0])-1] == '/' {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(e[1]))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestApplyLayerWhiteouts(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	g.Expect(ApplyLayer(layer(t, [2]string{"etc/", ""}, [2]string{"etc/a", "1"}, [2]string{"etc/b", "2"},
		[2]string{"opt/", ""}, [2]string{"opt/x", "x"}, [2]string{"opt/y", "y"}), root)).To(Succeed())
	g.Expect(ApplyLayer(layer(t, [2]string{"etc/.wh.a", ""}, [2]string{"etc/c", "3"},
		[2]string{"opt/.wh..wh..opq", ""}, [2]string{"opt/z", "z"}, [2]string{"etc/b", "2b"}), root)).To(Succeed())
	names := func(d string) []string {
		es, _ := os.ReadDir(filepath.Join(root, d))
		var out []string
		for _, e := range es {
			out = append(out, e.Name())
		}
		return out
	}
	g.Expect(names("etc")).To(Equal([]string{"b", "c"}), "a whiteout removes a file of a lower layer")
	g.Expect(names("opt")).To(Equal([]string{"z"}), "an opaque whiteout empties the directory of the lower layers")
	b, _ := os.ReadFile(filepath.Join(root, "etc", "b"))
	g.Expect(string(b)).To(Equal("2b"))

	// A layer cannot write through a symbolic link out of its root.
	g.Expect(os.Symlink("/", filepath.Join(root, "escape"))).To(Succeed())
	g.Expect(ApplyLayer(layer(t, [2]string{"escape/tmp/owned", "x"}), root)).To(MatchError(ContainSubstring("symbolic link")))
}

// TestLayerModesAndLimits: a layer keeps the setuid and sticky bits of its
// entries, and an entry larger than maxImageFileSize is refused before any
// of it is copied.
func TestLayerModesAndLimits(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	uid, gid := os.Getuid(), os.Getgid()
	g.Expect(tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, Uid: uid, Gid: gid})).To(Succeed())
	g.Expect(tw.WriteHeader(&tar.Header{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: uid, Gid: gid, Size: 1})).To(Succeed())
	_, _ = tw.Write([]byte("x"))
	g.Expect(tw.Close()).To(Succeed())
	g.Expect(ApplyLayer(&b, root)).To(Succeed())
	fi, err := os.Stat(filepath.Join(root, "tmp"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fi.Mode() & (os.ModeSticky | os.ModePerm)).To(Equal(os.ModeSticky | 0o777))
	fi, err = os.Stat(filepath.Join(root, "bin", "su"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fi.Mode() & (os.ModeSetuid | os.ModePerm)).To(Equal(os.ModeSetuid | 0o755))

	// Only the header: the size it claims is refused before any read.
	b.Reset()
	tw = tar.NewWriter(&b)
	g.Expect(tw.WriteHeader(&tar.Header{Name: "bomb", Typeflag: tar.TypeReg, Mode: 0o644, Size: maxImageFileSize + 1})).To(Succeed())
	g.Expect(ApplyLayer(&b, root)).To(MatchError(ContainSubstring("more than the 1073741824")))
}

// TestRangeChecks: the numbers of a Pod or an image that would wrap round in
// a conversion are refused; the others convert as before.
func TestRangeChecks(t *testing.T) {
	g := NewWithT(t)
	for _, d := range []struct{ major, minor uint32 }{{0, 0}, {1, 3}, {136, 0x12345}, {0xfff, 0xfffff}} {
		dev, err := deviceNumber(int64(d.major), int64(d.minor))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(dev).To(BeEquivalentTo(unix.Mkdev(d.major, d.minor)), "%d:%d is encoded as unix.Mkdev does", d.major, d.minor)
	}
	for _, d := range [][2]int64{{-1, 0}, {0, -1}, {0x1000, 0}, {0, 0x100000}} {
		_, err := deviceNumber(d[0], d[1])
		g.Expect(err).To(MatchError(ContainSubstring("out of range")), "%d:%d", d[0], d[1])
	}

	pod, c := testPod(), &corev1.Container{Name: "c"}
	for _, v := range []int64{-1, math.MaxInt32 + 1, math.MaxUint32 + 1} {
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To(v)}
		_, err := ResolveIdentity(pod, c, "", "")
		var ce *ConfigError
		g.Expect(errors.As(err, &ce)).To(BeTrue(), "runAsUser %d is a configuration error, got %v", v, err)
	}
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](math.MaxInt32)}
	id, err := ResolveIdentity(pod, c, "", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id.UID).To(BeEquivalentTo(65532))
	g.Expect(id.GID).To(BeEquivalentTo(math.MaxInt32))

	for _, m := range []int32{-1, 0o1000, 0o4755} {
		_, err := modeOr(ptr.To(m), 0o644)
		var ce *ConfigError
		g.Expect(errors.As(err, &ce)).To(BeTrue(), "mode %#o is a configuration error, got %v", m, err)
	}
	mode, err := modeOr(ptr.To[int32](0o400), 0o644)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mode).To(Equal(os.FileMode(0o400)))
	mode, err = modeOr(nil, 0o644)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mode).To(Equal(os.FileMode(0o644)))
}

func TestOCIArchiveRoundTrip(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "img.tar")
	g.Expect(WriteOCIArchive(archive, map[string][]byte{"/bin/app": []byte("binary")},
		ocispec.ImageConfig{Entrypoint: []string{"/bin/app"}, User: "65532:65532", Env: []string{"A=1"}}, "vaultsync:dev")).To(Succeed())
	s := newImageStore(filepath.Join(dir, "store"))
	names, err := s.Load(ImageArchive{Path: archive, ExtraRefs: []string{"vaultsync:dev2"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(names).To(ConsistOf("vaultsync:dev", "vaultsync:dev2"))
	for _, ref := range []string{"vaultsync:dev", "localhost/vaultsync:dev", "docker.io/library/vaultsync:dev2"} {
		img, err := s.Get(ref)
		g.Expect(err).NotTo(HaveOccurred(), ref)
		g.Expect(img.Config.Entrypoint).To(Equal([]string{"/bin/app"}))
		g.Expect(img.ID).To(HavePrefix("sha256:"))
		b, err := os.ReadFile(filepath.Join(img.RootFS, "bin", "app"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(b)).To(Equal("binary"))
	}
	_, err = s.Get("other:1")
	g.Expect(errors.Is(err, ErrImageNotFound)).To(BeTrue())
}

func TestProbes(t *testing.T) {
	g := NewWithT(t)
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	// A TCP port has 16 bits: parsed as such, it converts to the API's int32.
	_, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port16, err := strconv.ParseUint(portStr, 10, 16)
	g.Expect(err).NotTo(HaveOccurred())
	port, port32 := int(port16), int32(port16)
	c := &corev1.Container{Name: "c", Ports: []corev1.ContainerPort{{Name: "health", ContainerPort: port32}}}
	var dialled int
	dial := func(ctx context.Context, p int, timeout time.Duration) (net.Conn, error) {
		dialled = p
		var d net.Dialer
		return d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(p))
	}
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "healthz", Port: intstr.FromString("health")}}, TimeoutSeconds: 1}
	g.Expect(RunProbe(context.Background(), p, c, dial, nil)).To(Succeed())
	g.Expect(dialled).To(Equal(port), "the named port is resolved")
	healthy = false
	g.Expect(RunProbe(context.Background(), p, c, dial, nil)).To(MatchError(ContainSubstring("statuscode: 503")))
	tcp := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(port32)}}}
	g.Expect(RunProbe(context.Background(), tcp, c, dial, nil)).To(Succeed())
	_, err = ResolvePort(intstr.FromString("nope"), c)
	g.Expect(err).To(HaveOccurred())

	st := &ProbeState{Probe: &corev1.Probe{SuccessThreshold: 2, FailureThreshold: 3}}
	g.Expect(st.Observe(true)).To(BeFalse())
	g.Expect(st.Observe(true)).To(BeTrue(), "two successes in a row turn it true")
	g.Expect(st.Observe(false)).To(BeFalse())
	g.Expect(st.Observe(false)).To(BeFalse())
	g.Expect(st.Failed()).To(BeFalse())
	g.Expect(st.Observe(true)).To(BeFalse(), "a success resets the failures")
	st.Observe(false)
	st.Observe(false)
	g.Expect(st.Observe(false)).To(BeTrue(), "three failures in a row turn it false")
	g.Expect(st.Failed()).To(BeTrue())
}

func TestBuildSpec(t *testing.T) {
	g := NewWithT(t)
	pod := testPod()
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000), FSGroup: ptr.To[int64](2000),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	c := &corev1.Container{Name: "c", SecurityContext: &corev1.SecurityContext{
		RunAsUser: ptr.To[int64](65532), ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}, Resources: corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi"), corev1.ResourceCPU: resource.MustParse("500m")},
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")},
	}}
	id, err := ResolveIdentity(pod, c, "", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id).To(Equal(Identity{UID: 65532, GID: 0, AdditionalGIDs: []uint32{2000}}))
	s, err := BuildSpec(SpecInput{Pod: pod, Container: c, Argv: []string{"/m"}, Identity: id, RootFS: "/r", NetnsPath: "/var/run/netns/x"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Root.Readonly).To(BeTrue())
	g.Expect(s.Process.NoNewPrivileges).To(BeTrue())
	g.Expect(s.Process.Capabilities.Bounding).To(BeEmpty())
	g.Expect(s.Process.Capabilities.Effective).To(BeEmpty())
	g.Expect(*s.Linux.Resources.Memory.Limit).To(BeEquivalentTo(256 << 20))
	g.Expect(*s.Linux.Resources.CPU.Quota).To(BeEquivalentTo(50000))
	g.Expect(*s.Linux.Resources.CPU.Shares).To(BeEquivalentTo(51))
	g.Expect(s.Linux.Namespaces).To(ContainElement(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/var/run/netns/x"}))
	g.Expect(s.Linux.Seccomp).NotTo(BeNil())
	g.Expect(s.Linux.Seccomp.DefaultAction).To(Equal(specs.ActAllow))
	g.Expect(s.Linux.Seccomp.Syscalls[0].Names).To(ContainElements("mount", "unshare", "setns", "bpf", "ptrace", "kexec_load", "keyctl"))
	g.Expect(s.Linux.Seccomp.Syscalls[0].Action).To(Equal(specs.ActErrno))

	// Capabilities: drop one, add one.
	g.Expect(Capabilities(&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW"}, Add: []corev1.Capability{"sys_time"}}})).
		To(And(ContainElement("CAP_SYS_TIME"), Not(ContainElement("CAP_NET_RAW")), ContainElement("CAP_CHOWN")))

	// runAsNonRoot refuses uid 0 and a user name it cannot check.
	c.SecurityContext.RunAsUser = ptr.To[int64](0)
	_, err = ResolveIdentity(pod, c, "", "")
	g.Expect(err).To(MatchError(ContainSubstring("runAsNonRoot and image will run as root")))
	pod.Spec.SecurityContext.RunAsUser, c.SecurityContext.RunAsUser = nil, nil
	_, err = ResolveIdentity(pod, c, "nobody", t.TempDir())
	g.Expect(err).To(MatchError(ContainSubstring("non-numeric user")))
	id, err = ResolveIdentity(pod, c, "65532:65532", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id.UID).To(BeEquivalentTo(65532))
	g.Expect(id.GID).To(BeEquivalentTo(65532))
}

func TestWriteAtomic(t *testing.T) {
	g := NewWithT(t)
	dir := filepath.Join(t.TempDir(), "vol")
	changed, err := writeAtomic(dir, map[string]volumeFile{"token": {[]byte("t1"), 0o644}, "sub/ca.crt": {[]byte("ca"), 0o600}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(BeTrue())
	first, _ := os.Readlink(filepath.Join(dir, "..data"))
	b, _ := os.ReadFile(filepath.Join(dir, "token"))
	g.Expect(string(b)).To(Equal("t1"))
	b, _ = os.ReadFile(filepath.Join(dir, "sub", "ca.crt"))
	g.Expect(string(b)).To(Equal("ca"))
	changed, err = writeAtomic(dir, map[string]volumeFile{"token": {[]byte("t1"), 0o644}, "sub/ca.crt": {[]byte("ca"), 0o600}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(BeFalse(), "same content: nothing rewritten")
	changed, err = writeAtomic(dir, map[string]volumeFile{"token": {[]byte("t2"), 0o644}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(BeTrue())
	b, _ = os.ReadFile(filepath.Join(dir, "token"))
	g.Expect(string(b)).To(Equal("t2"))
	_, err = os.Lstat(filepath.Join(dir, "sub"))
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "a key that went away is removed")
	_, err = os.Stat(filepath.Join(dir, first))
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "the old generation is removed")
}

func TestTokenDue(t *testing.T) {
	g := NewWithT(t)
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := issued.Add(time.Hour)
	g.Expect(tokenDue(issued, exp, issued.Add(47*time.Minute))).To(BeFalse())
	g.Expect(tokenDue(issued, exp, issued.Add(48*time.Minute))).To(BeTrue(), "80% of its life")
}

func TestKubeAPIAccessVolume(t *testing.T) {
	g := NewWithT(t)
	v := KubeAPIAccessVolume("kube-api-access-x")
	g.Expect(v.Projected.Sources).To(HaveLen(3))
	g.Expect(v.Projected.Sources[0].ServiceAccountToken.Path).To(Equal("token"))
	g.Expect(v.Projected.Sources[1].ConfigMap.Name).To(Equal("kube-root-ca.crt"))
	g.Expect(v.Projected.Sources[2].DownwardAPI.Items[0].FieldRef.FieldPath).To(Equal("metadata.namespace"))
}
