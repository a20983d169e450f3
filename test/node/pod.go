package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podWorker owns one Pod on the node: its network namespace, volumes,
// containers and status.
type podWorker struct {
	a   *Agent
	uid types.UID
	dir string // <state>/pods/<uid>

	mu       sync.Mutex
	pod      *corev1.Pod
	runners  map[string]*containerRunner
	startAt  metav1.Time
	podIP    string
	netns    string // name
	netnsPth string
	fwd      []*forwarder
	removed  bool // the Pod is gone from the API
	setupErr string
	// setupReason is the waiting reason while setup fails.
	setupReason string
	// conds remembers when each condition last changed (status loop only).
	conds map[corev1.PodConditionType]corev1.PodCondition

	// tokens caches the projected ServiceAccount tokens of the volumes.
	tokens *tokenCache

	updates  chan struct{}
	statusCh chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	stopped  chan struct{}
	lastSent string
}

// newPodWorker makes the worker of a Pod; its context derives from ctx, the
// agent's context, so stopping the agent stops it.
func newPodWorker(ctx context.Context, a *Agent, pod *corev1.Pod) *podWorker {
	ctx, cancel := context.WithCancel(ctx)
	tokens := newTokenCache()
	tokens.maxAge = a.o.TokenRefreshAfter
	return &podWorker{
		a: a, uid: pod.UID, pod: pod.DeepCopy(),
		dir:      filepath.Join(a.o.StateDir, "pods", string(pod.UID)),
		runners:  map[string]*containerRunner{},
		startAt:  metav1.Now(),
		tokens:   tokens,
		conds:    map[corev1.PodConditionType]corev1.PodCondition{},
		updates:  make(chan struct{}, 1),
		statusCh: make(chan struct{}, 1),
		ctx:      ctx, cancel: cancel,
		stopped: make(chan struct{}),
	}
}

func (w *podWorker) update(pod *corev1.Pod) {
	w.mu.Lock()
	w.pod = pod.DeepCopy()
	w.mu.Unlock()
	select {
	case w.updates <- struct{}{}:
	default:
	}
}

func (w *podWorker) gone() {
	w.mu.Lock()
	w.removed = true
	w.mu.Unlock()
	select {
	case w.updates <- struct{}{}:
	default:
	}
}

func (w *podWorker) currentPod() *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod
}

func (w *podWorker) runner(name string) *containerRunner {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runners[name]
}

func (w *podWorker) logf(format string, args ...any) {
	p := w.currentPod()
	w.a.log.Printf("pod %s/%s: %s", p.Namespace, p.Name, fmt.Sprintf(format, args...))
}

func (w *podWorker) markDirty() {
	select {
	case w.statusCh <- struct{}{}:
	default:
	}
}

// run is the life of the Pod on this node.
func (w *podWorker) run() {
	defer close(w.stopped)
	statusDone := make(chan struct{})
	go func() { defer close(statusDone); w.statusLoop() }()
	defer func() { w.cancel(); <-statusDone }()

	for w.ctx.Err() == nil {
		if w.terminating() {
			w.terminate()
			return
		}
		if err := w.setup(); err != nil {
			var ce *ConfigError
			w.mu.Lock()
			w.setupErr, w.setupReason = err.Error(), "ContainerCreating"
			if errors.As(err, &ce) {
				w.setupReason = "CreateContainerConfigError"
			}
			w.mu.Unlock()
			w.logf("setting up: %v", err)
			w.markDirty()
			if !w.sleep(2 * time.Second) {
				break
			}
			continue
		}
		w.mu.Lock()
		w.setupErr = ""
		w.mu.Unlock()
		break
	}
	if w.ctx.Err() != nil {
		return // shutdown() tears down
	}
	w.startRunners()
	w.markDirty()
	resync := time.NewTimer(w.a.o.ResyncPeriod)
	defer resync.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.updates:
		case <-resync.C:
			w.refreshVolumes(w.ctx)
			next := w.a.o.ResyncPeriod
			if due := time.Until(w.tokens.nextDue()); due > 0 && due < next {
				next = due
			}
			resync.Reset(next)
		}
		if w.terminating() {
			w.terminate()
			return
		}
		w.markDirty()
	}
}

func (w *podWorker) sleep(d time.Duration) bool {
	select {
	case <-w.ctx.Done():
		return false
	case <-w.updates:
		return true
	case <-time.After(d):
		return true
	}
}

func (w *podWorker) terminating() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.removed || w.pod.DeletionTimestamp != nil
}

// setup creates the network namespace, its forwarders, the Pod's files and
// its volumes.
func (w *podWorker) setup() error {
	pod := w.currentPod()
	if w.podIP == "" {
		ip, err := w.a.allocateIP(w.uid)
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.podIP = ip
		w.mu.Unlock()
	}
	if w.netnsPth == "" {
		name := w.a.netnsPrefix + strings.ReplaceAll(string(w.uid), "-", "")[:12]
		_ = deleteNetns(name)
		p, err := createNetns(w.ctx, name)
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.netns, w.netnsPth = name, p
		w.mu.Unlock()
		ports := append([]int{w.a.apiPort}, w.a.o.HostPorts...)
		seen := map[int]bool{}
		for _, port := range ports {
			if seen[port] {
				continue
			}
			seen[port] = true
			l, err := ListenIn(p, fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return fmt.Errorf("forwarding host port %d into the pod: %w", port, err)
			}
			f := startForwarder(w.ctx, l, hostDial(port))
			w.mu.Lock()
			w.fwd = append(w.fwd, f)
			w.mu.Unlock()
		}
	}
	if err := os.MkdirAll(filepath.Join(w.dir, "volumes"), 0o755); err != nil {
		return err
	}
	hostname := podHostname(pod)
	files := map[string]string{
		"hostname":    hostname + "\n",
		"hosts":       fmt.Sprintf("# Kubernetes-managed hosts file (vaultsync node agent).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", w.podIP, hostname),
		"resolv.conf": fmt.Sprintf("# No cluster DNS on the vaultsync node agent: names resolve only through /etc/hosts.\nsearch %s.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.0.0.1\noptions ndots:5\n", pod.Namespace),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(w.dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := w.prepareVolumes(w.ctx, pod); err != nil {
		return err
	}
	return nil
}

func podHostname(pod *corev1.Pod) string {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// volumesOf are the Pod's volumes plus the kube-api-access volume the
// ServiceAccount admission plugin would have added.
func (w *podWorker) volumesOf(ctx context.Context, pod *corev1.Pod) []corev1.Volume {
	vols := append([]corev1.Volume(nil), pod.Spec.Volumes...)
	if w.needsAPIAccess(ctx, pod) {
		vols = append(vols, KubeAPIAccessVolume(w.apiAccessName()))
	}
	return vols
}

func (w *podWorker) apiAccessName() string { return "kube-api-access-node" }

// needsAPIAccess: the Pod mounts a token unless it opted out, and no
// container already mounts something at the standard path.
func (w *podWorker) needsAPIAccess(ctx context.Context, pod *corev1.Pod) bool {
	if pod.Spec.AutomountServiceAccountToken != nil && !*pod.Spec.AutomountServiceAccountToken {
		return false
	}
	if pod.Spec.AutomountServiceAccountToken == nil {
		sa := pod.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		acct, err := w.a.cs.CoreV1().ServiceAccounts(pod.Namespace).Get(ctx, sa, metav1.GetOptions{})
		cancel()
		if err == nil && acct.AutomountServiceAccountToken != nil && !*acct.AutomountServiceAccountToken {
			return false
		}
	}
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, "kube-api-access-") {
			return false
		}
	}
	return true
}

func (w *podWorker) fsGroup(pod *corev1.Pod) *int64 {
	if pod.Spec.SecurityContext != nil {
		return pod.Spec.SecurityContext.FSGroup
	}
	return nil
}

func (w *podWorker) renderer(pod *corev1.Pod) *renderer {
	return &renderer{pod: pod, src: w.a, tokens: w.a, cache: w.tokens, rootCA: w.a.o.RootCA}
}

func (w *podWorker) prepareVolumes(ctx context.Context, pod *corev1.Pod) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r := w.renderer(pod)
	for _, v := range w.volumesOf(ctx, pod) {
		dir := filepath.Join(w.dir, "volumes", v.Name)
		switch {
		case v.EmptyDir != nil:
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return err
			}
			if v.EmptyDir.Medium == corev1.StorageMediumMemory && !isMount(dir) {
				opts := "mode=1777"
				if v.EmptyDir.SizeLimit != nil && !v.EmptyDir.SizeLimit.IsZero() {
					opts += ",size=" + strconv.FormatInt(v.EmptyDir.SizeLimit.Value(), 10)
				}
				if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
					return fmt.Errorf("mounting memory emptyDir %s: %w", v.Name, err)
				}
			}
			if err := os.Chmod(dir, 0o777); err != nil { //nolint:gosec // an emptyDir is world-writable, as a kubelet makes it: its containers write to it as any uid
				return err
			}
			if g := w.fsGroup(pod); g != nil {
				_ = os.Chown(dir, 0, int(*g))
				_ = os.Chmod(dir, 0o777|os.ModeSetgid)
			}
		case v.HostPath != nil:
			// A host path is the host's own: nothing to prepare.
		default:
			files, ok, err := r.render(ctx, v)
			if !ok {
				return &ConfigError{msg: fmt.Sprintf("volume %s: unsupported volume type", v.Name)}
			}
			if err != nil {
				return fmt.Errorf("MountVolume.SetUp failed for volume %q: %w", v.Name, err)
			}
			if _, err := writeAtomic(dir, files, w.fsGroup(pod)); err != nil {
				return err
			}
		}
	}
	return nil
}

// refreshVolumes rewrites secret, configMap and projected volumes whose
// source changed, and tokens that are due.
func (w *podWorker) refreshVolumes(ctx context.Context) {
	pod := w.currentPod()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r := w.renderer(pod)
	for _, v := range w.volumesOf(ctx, pod) {
		if v.EmptyDir != nil || v.HostPath != nil {
			continue
		}
		files, ok, err := r.render(ctx, v)
		if !ok || err != nil {
			continue // the old content stays, as with a kubelet
		}
		changed, err := writeAtomic(filepath.Join(w.dir, "volumes", v.Name), files, w.fsGroup(pod))
		if err != nil {
			w.logf("refreshing volume %s: %v", v.Name, err)
		} else if changed {
			w.logf("volume %s updated", v.Name)
		}
	}
}

func isMount(p string) bool {
	for _, m := range MountsUnder(p) {
		if m == p {
			return true
		}
	}
	return false
}

// mountsFor are the bind mounts of one container: its volumes and the
// Pod's /etc files.
func (w *podWorker) mountsFor(ctx context.Context, pod *corev1.Pod, c *corev1.Container) ([]specs.Mount, error) {
	vols := map[string]corev1.Volume{}
	for _, v := range w.volumesOf(ctx, pod) {
		vols[v.Name] = v
	}
	var out []specs.Mount
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			return nil, configErrorf("volume %q of mount %s not found in the pod", m.Name, m.MountPath)
		}
		src := filepath.Join(w.dir, "volumes", v.Name)
		if v.HostPath != nil {
			src = v.HostPath.Path
		}
		ro := m.ReadOnly || v.Secret != nil || v.ConfigMap != nil || v.Projected != nil || v.DownwardAPI != nil
		if m.SubPath != "" {
			p := filepath.Join(src, filepath.Clean("/"+m.SubPath))
			if resolved, err := filepath.EvalSymlinks(p); err == nil && strings.HasPrefix(resolved, src+"/") {
				p = resolved
			} else if err != nil {
				if err := os.MkdirAll(p, 0o777); err != nil {
					return nil, err
				}
			}
			src = p
		}
		out = append(out, bindMount(src, m.MountPath, ro))
		mounted[filepath.Clean(m.MountPath)] = true
	}
	if w.needsAPIAccess(ctx, pod) && !mounted[ServiceAccountMountPath] {
		out = append(out, bindMount(filepath.Join(w.dir, "volumes", w.apiAccessName()), ServiceAccountMountPath, true))
	}
	for _, f := range []string{"hosts", "hostname", "resolv.conf"} {
		if !mounted["/etc/"+f] {
			out = append(out, bindMount(filepath.Join(w.dir, f), "/etc/"+f, false))
		}
	}
	return out, nil
}

func (w *podWorker) startRunners() {
	pod := w.currentPod()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range pod.Spec.Containers {
		c := pod.Spec.Containers[i].DeepCopy()
		if _, ok := w.runners[c.Name]; ok {
			continue
		}
		r := newContainerRunner(w, c)
		w.runners[c.Name] = r
		go r.run()
	}
}

func (w *podWorker) allRunners() []*containerRunner {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*containerRunner, 0, len(w.runners))
	for _, r := range w.runners {
		out = append(out, r)
	}
	return out
}

// stopContainers stops every container within grace.
func (w *podWorker) stopContainers(grace time.Duration) {
	var wg sync.WaitGroup
	for _, r := range w.allRunners() {
		wg.Add(1)
		go func() { defer wg.Done(); r.stop(grace) }()
	}
	wg.Wait()
}

// terminate is graceful deletion: stop the containers within the grace
// period, tear everything down, then delete the Pod object.
func (w *podWorker) terminate() {
	pod := w.currentPod()
	grace := 30 * time.Second
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	if pod.DeletionGracePeriodSeconds != nil {
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	w.logf("stopping (grace %s)", grace)
	w.stopContainers(grace)
	w.teardown()
	w.mu.Lock()
	removed := w.removed
	w.mu.Unlock()
	if !removed {
		w.a.deletePod(w.ctx, pod)
	}
	w.logf("deleted")
}

// shutdown is the agent stopping: containers stop, the Pod stays.
func (w *podWorker) shutdown() {
	pod := w.currentPod()
	grace := 10 * time.Second
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second < grace {
		grace = time.Duration(*g) * time.Second
	}
	w.stopContainers(grace)
	w.cancel()
	<-w.stopped
	w.teardown()
}

// teardown removes the forwarders, mounts, directory, netns and IP.
func (w *podWorker) teardown() {
	w.mu.Lock()
	fwd, ns, ip := w.fwd, w.netns, w.podIP
	w.fwd, w.netns, w.netnsPth, w.podIP = nil, "", "", ""
	w.mu.Unlock()
	for _, f := range fwd {
		f.Close()
	}
	for _, m := range MountsUnder(w.dir) {
		if err := unmount(m); err != nil {
			w.logf("unmounting %s: %v", m, err)
		}
	}
	if err := os.RemoveAll(w.dir); err != nil {
		w.logf("removing %s: %v", w.dir, err)
	}
	if ns != "" {
		if err := deleteNetns(ns); err != nil {
			w.logf("%v", err)
		}
	}
	if ip != "" {
		w.a.releaseIP(ip)
	}
}

// statusLoop writes the Pod's status when it changes.
func (w *podWorker) statusLoop() {
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.statusCh:
		}
		if err := w.writeStatus(w.ctx); err != nil && w.ctx.Err() == nil && !apierrors.IsNotFound(err) {
			w.logf("writing status: %v", err)
			time.Sleep(500 * time.Millisecond)
			w.markDirty()
		}
		time.Sleep(50 * time.Millisecond) // coalesce bursts of changes
	}
}

func (w *podWorker) writeStatus(ctx context.Context) error {
	pod := w.currentPod()
	if pod.DeletionTimestamp != nil {
		return nil
	}
	st := w.computeStatus(pod)
	body, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return err
	}
	if string(body) == w.lastSent {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = w.a.cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, body, metav1.PatchOptions{}, "status")
	if err == nil {
		w.lastSent = string(body)
	}
	return err
}

// computeStatus is the Pod status a kubelet would write.
func (w *podWorker) computeStatus(pod *corev1.Pod) corev1.PodStatus {
	w.mu.Lock()
	ip, setupErr, setupReason := w.podIP, w.setupErr, w.setupReason
	w.mu.Unlock()
	st := corev1.PodStatus{
		HostIP: "127.0.0.1", HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}},
		StartTime: &w.startAt, QOSClass: pod.Status.QOSClass,
	}
	if ip != "" {
		st.PodIP, st.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	}
	var statuses []corev1.ContainerStatus
	allReady, anyRunning, allFinal, anyFailed := true, false, true, false
	for _, c := range pod.Spec.Containers {
		var cs corev1.ContainerStatus
		final := false
		if r := w.runner(c.Name); r != nil {
			cs, final = r.status()
		} else {
			reason, msg := "ContainerCreating", ""
			if setupErr != "" {
				reason, msg = setupReason, setupErr
			}
			cs = corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: corev1.ContainerState{
				Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg},
			}}
		}
		statuses = append(statuses, cs)
		if !cs.Ready {
			allReady = false
		}
		// Running, or restarting after having run, counts as running.
		if cs.State.Running != nil || (!final && (cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil)) {
			anyRunning = true
		}
		if !final {
			allFinal = false
		} else if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			anyFailed = true
		}
	}
	st.ContainerStatuses = statuses
	switch {
	case len(statuses) > 0 && allFinal && anyFailed:
		st.Phase = corev1.PodFailed
	case len(statuses) > 0 && allFinal:
		st.Phase = corev1.PodSucceeded
	case anyRunning:
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	if st.Phase != corev1.PodRunning {
		allReady = false
	}
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s, reason = corev1.ConditionTrue, ""
		}
		c := corev1.PodCondition{Type: t, Status: s, Reason: reason}
		prev, ok := w.conds[t]
		if !ok || prev.Status != s {
			prev = corev1.PodCondition{Status: s, LastTransitionTime: metav1.Now()}
			w.conds[t] = prev
		}
		c.LastTransitionTime = prev.LastTransitionTime
		return c
	}
	var conds []corev1.PodCondition
	for _, old := range pod.Status.Conditions {
		if old.Type == corev1.PodScheduled {
			conds = append(conds, old)
		}
	}
	conds = append(conds,
		cond(corev1.PodInitialized, true, ""),
		cond(corev1.ContainersReady, allReady, "ContainersNotReady"),
		cond(corev1.PodReady, allReady, "ContainersNotReady"),
	)
	st.Conditions = conds
	return st
}
