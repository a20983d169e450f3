package node

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// ociVersion is the runtime-spec version runc 1.1 implements.
const ociVersion = "1.0.2"

// defaultCapabilities are the capabilities a container gets from
// containerd and CRI-O unless its securityContext changes them.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// seccompDenied are the system calls the RuntimeDefault profile refuses
// with EPERM: changing mounts and namespaces (a way out of the container),
// loading kernel code (modules, kexec, BPF), tracing other processes,
// the kernel keyring (not namespaced), clocks and swap (host-wide), reboot,
// accounting, open_by_handle_at (the "shocker" escape), userfaultfd and
// perf_event_open (exploit helpers), and the obsolete or host-wide rest
// that Docker's default profile also refuses. Everything else is allowed:
// a deny list is enough for a test node, Docker's allow list is longer
// than this agent.
var seccompDenied = []string{
	"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
	"finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "get_mempolicy",
	"init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
	"mbind", "mount", "mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
	"open_by_handle_at", "open_tree", "perf_event_open", "personality", "pivot_root", "process_vm_readv",
	"process_vm_writev", "ptrace", "query_module", "quotactl", "quotactl_fd", "reboot", "request_key",
	"set_mempolicy", "setns", "settimeofday", "stime", "swapoff", "swapon", "sysfs", "syslog",
	"umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
}

// RuntimeDefaultSeccomp is the profile of seccompProfile: RuntimeDefault.
func RuntimeDefaultSeccomp() *specs.LinuxSeccomp {
	eperm := uint(1) // EPERM
	names := append([]string(nil), seccompDenied...)
	sort.Strings(names)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{{
			Names:    names,
			Action:   specs.ActErrno,
			ErrnoRet: &eperm,
		}},
	}
}

// Identity is the user a container process runs as.
type Identity struct {
	UID, GID       uint32
	AdditionalGIDs []uint32
}

// ResolveIdentity applies the Pod's and the container's securityContext to
// the image's USER (numeric, or a name looked up in the image's
// /etc/passwd and /etc/group), and enforces runAsNonRoot.
func ResolveIdentity(pod *corev1.Pod, c *corev1.Container, imageUser, rootfs string) (Identity, error) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	var id Identity
	userPart, groupPart, hasGroup := strings.Cut(imageUser, ":")
	uidKnown := true
	switch userPart {
	case "":
	default:
		if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
			id.UID = uint32(n)
		} else if u, g, ok := lookupPasswd(rootfs, userPart); ok {
			id.UID, id.GID = u, g
		} else {
			uidKnown = false
		}
	}
	if hasGroup {
		if n, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			id.GID = uint32(n)
		} else if g, ok := lookupGroup(rootfs, groupPart); ok {
			id.GID = g
		}
	}
	runAsUser := psc.RunAsUser
	if csc.RunAsUser != nil {
		runAsUser = csc.RunAsUser
	}
	if runAsUser != nil {
		uid, err := podID("runAsUser", *runAsUser)
		if err != nil {
			return id, err
		}
		id.UID, uidKnown = uid, true
	}
	runAsGroup := psc.RunAsGroup
	if csc.RunAsGroup != nil {
		runAsGroup = csc.RunAsGroup
	}
	if runAsGroup != nil {
		gid, err := podID("runAsGroup", *runAsGroup)
		if err != nil {
			return id, err
		}
		id.GID = gid
	}
	nonRoot := psc.RunAsNonRoot
	if csc.RunAsNonRoot != nil {
		nonRoot = csc.RunAsNonRoot
	}
	if ptrTrue(nonRoot) {
		if !uidKnown {
			return id, configErrorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root", userPart)
		}
		if id.UID == 0 {
			return id, configErrorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", pod.Namespace+"/"+pod.Name, c.Name)
		}
	}
	if psc.FSGroup != nil {
		gid, err := podID("fsGroup", *psc.FSGroup)
		if err != nil {
			return id, err
		}
		id.AdditionalGIDs = append(id.AdditionalGIDs, gid)
	}
	for _, g := range psc.SupplementalGroups {
		gid, err := podID("supplementalGroups", g)
		if err != nil {
			return id, err
		}
		id.AdditionalGIDs = append(id.AdditionalGIDs, gid)
	}
	return id, nil
}

// podID converts a user or group id of a securityContext. The API server
// admits 0 to 2147483647 only; checking again here keeps a value that did
// not come through it from wrapping round to another user's id.
func podID(field string, v int64) (uint32, error) {
	if v < 0 || v > math.MaxInt32 {
		return 0, configErrorf("%s %d must be between 0 and %d, inclusive", field, v, math.MaxInt32)
	}
	return uint32(v), nil
}

func lookupPasswd(rootfs, name string) (uint32, uint32, bool) {
	f, err := os.Open(filepath.Join(rootfs, "etc", "passwd"))
	if err != nil {
		return 0, 0, false
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), ":")
		if len(p) >= 4 && p[0] == name {
			u, err1 := strconv.ParseUint(p[2], 10, 32)
			g, err2 := strconv.ParseUint(p[3], 10, 32)
			if err1 == nil && err2 == nil {
				return uint32(u), uint32(g), true
			}
		}
	}
	return 0, 0, false
}

func lookupGroup(rootfs, name string) (uint32, bool) {
	f, err := os.Open(filepath.Join(rootfs, "etc", "group"))
	if err != nil {
		return 0, false
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), ":")
		if len(p) >= 3 && p[0] == name {
			if g, err := strconv.ParseUint(p[2], 10, 32); err == nil {
				return uint32(g), true
			}
		}
	}
	return 0, false
}

// Capabilities applies securityContext.capabilities to the default set:
// drop first (ALL empties it), then add (ALL is every capability).
func Capabilities(sc *corev1.SecurityContext) []string {
	set := map[string]bool{}
	for _, c := range defaultCapabilities {
		set[c] = true
	}
	if sc != nil && sc.Capabilities != nil {
		for _, d := range sc.Capabilities.Drop {
			if strings.EqualFold(string(d), "ALL") {
				set = map[string]bool{}
				continue
			}
			delete(set, capName(string(d)))
		}
		for _, a := range sc.Capabilities.Add {
			set[capName(string(a))] = true
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func capName(s string) string {
	s = strings.ToUpper(s)
	if !strings.HasPrefix(s, "CAP_") {
		s = "CAP_" + s
	}
	return s
}

// SpecInput is what a container's OCI configuration is made of.
type SpecInput struct {
	Pod       *corev1.Pod
	Container *corev1.Container
	Argv      []string
	Env       []string
	Cwd       string
	Identity  Identity
	Hostname  string
	RootFS    string
	NetnsPath string
	// CgroupsPath places the container (cgroup v1 hierarchies).
	CgroupsPath string
	// Mounts are the volume, /etc/hosts and similar bind mounts.
	Mounts []specs.Mount
	// LocalhostProfiles is the directory of seccompProfile: Localhost files.
	LocalhostProfiles string
}

// BuildSpec turns a container into an OCI runtime configuration for runc.
func BuildSpec(in SpecInput) (*specs.Spec, error) {
	c := in.Container
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	privileged := ptrTrue(csc.Privileged)
	caps := Capabilities(csc)
	if privileged {
		caps = allCapabilities()
	}
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = in.Cwd
	}
	if cwd == "" {
		cwd = "/"
	}
	s := &specs.Spec{
		Version: ociVersion,
		Process: &specs.Process{
			Args: in.Argv,
			Env:  in.Env,
			Cwd:  cwd,
			User: specs.User{UID: in.Identity.UID, GID: in.Identity.GID, AdditionalGids: in.Identity.AdditionalGIDs},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation,
		},
		Root:     &specs.Root{Path: in.RootFS, Readonly: ptrTrue(csc.ReadOnlyRootFilesystem)},
		Hostname: in.Hostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace, Path: in.NetnsPath},
			},
			CgroupsPath: in.CgroupsPath,
			Resources:   resources(c),
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if privileged {
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	}
	s.Mounts = append(s.Mounts, in.Mounts...)
	prof, err := seccompFor(in.Pod, csc, in.LocalhostProfiles)
	if err != nil {
		return nil, err
	}
	if !privileged {
		s.Linux.Seccomp = prof
	}
	return s, nil
}

func seccompFor(pod *corev1.Pod, csc *corev1.SecurityContext, localDir string) (*specs.LinuxSeccomp, error) {
	p := csc.SeccompProfile
	if p == nil && pod.Spec.SecurityContext != nil {
		p = pod.Spec.SecurityContext.SeccompProfile
	}
	if p == nil {
		return nil, nil // Kubernetes' default is Unconfined
	}
	switch p.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return RuntimeDefaultSeccomp(), nil
	case corev1.SeccompProfileTypeUnconfined:
		return nil, nil
	case corev1.SeccompProfileTypeLocalhost:
		if p.LocalhostProfile == nil || localDir == "" {
			return nil, configErrorf("seccomp Localhost profile needs localhostProfile and the agent's --seccomp-dir")
		}
		var prof specs.LinuxSeccomp
		if err := readJSON(filepath.Join(localDir, filepath.Clean("/"+*p.LocalhostProfile)), &prof); err != nil {
			return nil, configErrorf("reading seccomp profile %s: %v", *p.LocalhostProfile, err)
		}
		return &prof, nil
	}
	return nil, configErrorf("unknown seccomp profile type %q", p.Type)
}

// resources maps limits and requests to cgroup v1 settings: memory limit,
// CFS quota for the CPU limit (100 ms periods) and shares for the request.
func resources(c *corev1.Container) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		v := q.Value()
		r.Memory = &specs.LinuxMemory{Limit: &v}
	}
	cpu := &specs.LinuxCPU{}
	set := false
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		period := uint64(100000)
		quota := q.MilliValue() * int64(period) / 1000
		if quota < 1000 {
			quota = 1000
		}
		cpu.Period, cpu.Quota, set = &period, &quota, true
	}
	req, ok := c.Resources.Requests[corev1.ResourceCPU]
	if !ok {
		req, ok = c.Resources.Limits[corev1.ResourceCPU]
	}
	if ok {
		// The floor of 2 is the kernel's minimum, and it also keeps a
		// negative request from wrapping round to a huge weight.
		weight := max(req.MilliValue()*1024/1000, 2)
		shares := uint64(weight)
		cpu.Shares, set = &shares, true
	}
	if set {
		r.CPU = cpu
	}
	return r
}

func allCapabilities() []string {
	var out []string
	for _, c := range []string{
		"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
		"LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
		"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
		"SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
		"MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
	} {
		out = append(out, "CAP_"+c)
	}
	return out
}

// bindMount is a bind mount of a host path.
func bindMount(src, dst string, readOnly bool) specs.Mount {
	opts := []string{"rbind", "rprivate"}
	if readOnly {
		opts = append(opts, "ro")
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}
}

// containerID is the runc id of one run of a container.
func containerID(podUID, name string, attempt int) string {
	u := strings.ReplaceAll(podUID, "-", "")
	if len(u) > 12 {
		u = u[:12]
	}
	return fmt.Sprintf("%s-%s-%d", u, name, attempt)
}
