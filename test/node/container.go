package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// containerRunner runs one container of a Pod again and again, as its
// restart policy says, with probes while it runs.
type containerRunner struct {
	w *podWorker
	c *corev1.Container

	mu       sync.Mutex
	st       corev1.ContainerStatus
	id       string // runc id of the current run
	rootfs   string
	upper    string
	imgRoot  string
	pid      int
	exited   chan struct{} // closed when the current run ends
	stopping bool
	stopCh   chan struct{}
	done     chan struct{}
	// killReason is set when the agent kills the run (liveness).
	killReason string
	// final is set when the container will not run again (restart policy).
	final bool
}

func newContainerRunner(w *podWorker, c *corev1.Container) *containerRunner {
	return &containerRunner{
		w: w, c: c,
		st: corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"},
		}},
		stopCh: make(chan struct{}),
		done:   make(chan struct{}),
	}
}

func (r *containerRunner) status() (corev1.ContainerStatus, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return *r.st.DeepCopy(), r.final
}

func (r *containerRunner) info() (ContainerInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.id == "" {
		return ContainerInfo{}, false
	}
	return ContainerInfo{ID: r.id, RootFS: r.rootfs, ImageRootFS: r.imgRoot, UpperDir: r.upper, Pid: r.pid}, true
}

func (r *containerRunner) setStatus(fn func(st *corev1.ContainerStatus)) {
	r.mu.Lock()
	fn(&r.st)
	r.mu.Unlock()
	r.w.markDirty()
}

func (r *containerRunner) isStopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopping
}

// wait sleeps unless the runner is stopped first.
func (r *containerRunner) wait(d time.Duration) bool {
	select {
	case <-r.stopCh:
		return false
	case <-time.After(d):
		return true
	}
}

func (r *containerRunner) run() {
	defer close(r.done)
	pod := r.w.currentPod()
	policy := pod.Spec.RestartPolicy
	backoff := time.Duration(0)
	for attempt := 0; ; attempt++ {
		if r.isStopping() {
			return
		}
		code, ran, err := r.runOnce(r.w.ctx, attempt)
		if r.isStopping() {
			return
		}
		if err != nil {
			var ce *ConfigError
			reason := "CreateContainerError"
			switch {
			case errors.As(err, &ce):
				reason = "CreateContainerConfigError"
			case errors.Is(err, ErrImageNotFound):
				reason = "ImagePullBackOff"
				if r.c.ImagePullPolicy == corev1.PullNever {
					reason = "ErrImageNeverPull"
				}
			}
			r.w.logf("container %s: %s: %v", r.c.Name, reason, err)
			r.setStatus(func(st *corev1.ContainerStatus) {
				st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: err.Error()}}
			})
			attempt--
			if !r.wait(r.w.a.o.BackoffBase) {
				return
			}
			continue
		}
		if !ran {
			continue
		}
		restart := policy == corev1.RestartPolicyAlways || policy == "" || (policy == corev1.RestartPolicyOnFailure && code != 0)
		if !restart {
			r.mu.Lock()
			r.final = true
			r.mu.Unlock()
			r.w.markDirty()
			return
		}
		// Kubernetes-like back-off: the first restart is at once, then
		// base, doubling up to max; a run of 10 minutes resets it.
		st, _ := r.status()
		if t := st.LastTerminationState.Terminated; t != nil && t.FinishedAt.Sub(t.StartedAt.Time) > 10*time.Minute {
			backoff = 0
		}
		if backoff > 0 {
			msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", backoff, r.c.Name, pod.Name, pod.Namespace, pod.UID)
			r.setStatus(func(st *corev1.ContainerStatus) {
				st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: msg}}
			})
			if !r.wait(backoff) {
				return
			}
		}
		switch backoff {
		case 0:
			backoff = r.w.a.o.BackoffBase
		default:
			backoff *= 2
		}
		if backoff > r.w.a.o.BackoffMax {
			backoff = r.w.a.o.BackoffMax
		}
		r.setStatus(func(st *corev1.ContainerStatus) { st.RestartCount++ })
	}
}

// runOnce creates and runs the container once. ran is false when it was
// never started (stopping); err is set when it could not be created. ctx is
// the Pod worker's context.
func (r *containerRunner) runOnce(ctx context.Context, attempt int) (code int, ran bool, err error) {
	w := r.w
	pod := w.currentPod()
	a := w.a
	img, err := a.images.Get(r.c.Image)
	if err != nil {
		return 0, false, err
	}
	base := []EnvVar{
		{"KUBERNETES_SERVICE_HOST", "127.0.0.1"},
		{"KUBERNETES_SERVICE_PORT", strconv.Itoa(a.apiPort)},
		{"KUBERNETES_SERVICE_PORT_HTTPS", strconv.Itoa(a.apiPort)},
		{"KUBERNETES_PORT", fmt.Sprintf("tcp://127.0.0.1:%d", a.apiPort)},
		{fmt.Sprintf("KUBERNETES_PORT_%d_TCP", a.apiPort), fmt.Sprintf("tcp://127.0.0.1:%d", a.apiPort)},
		{fmt.Sprintf("KUBERNETES_PORT_%d_TCP_PROTO", a.apiPort), "tcp"},
		{fmt.Sprintf("KUBERNETES_PORT_%d_TCP_PORT", a.apiPort), strconv.Itoa(a.apiPort)},
		{fmt.Sprintf("KUBERNETES_PORT_%d_TCP_ADDR", a.apiPort), "127.0.0.1"},
	}
	// status.podIP and friends are read from the Pod as the agent knows it.
	pv := pod.DeepCopy()
	w.mu.Lock()
	pv.Status.PodIP, pv.Status.PodIPs = w.podIP, []corev1.PodIP{{IP: w.podIP}}
	pv.Status.HostIP, pv.Status.HostIPs = "127.0.0.1", []corev1.HostIP{{IP: "127.0.0.1"}}
	nsPath := w.netnsPth
	w.mu.Unlock()
	envCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	env, err := ResolveEnv(envCtx, pv, r.c, base, a)
	if err != nil {
		return 0, false, err
	}
	argv, err := Argv(r.c, img.Config.Entrypoint, img.Config.Cmd, env)
	if err != nil {
		return 0, false, err
	}
	id, err := ResolveIdentity(pv, r.c, img.Config.User, img.RootFS)
	if err != nil {
		return 0, false, err
	}
	mounts, err := w.mountsFor(ctx, pv, r.c)
	if err != nil {
		return 0, false, err
	}
	cid := containerID(string(pod.UID), r.c.Name, attempt)
	bundle := filepath.Join(w.dir, "containers", fmt.Sprintf("%s-%d", r.c.Name, attempt))
	upper, work, rootfs := filepath.Join(bundle, "upper"), filepath.Join(bundle, "work"), filepath.Join(bundle, "rootfs")
	for _, d := range []string{upper, work, rootfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, false, err
		}
	}
	if err := unix.Mount("overlay", rootfs, "overlay", 0,
		fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", img.RootFS, upper, work)); err != nil {
		return 0, false, fmt.Errorf("mounting the container's root filesystem: %w", err)
	}
	defer func() {
		if err := unmount(rootfs); err != nil {
			w.logf("unmounting %s: %v", rootfs, err)
		}
		_ = os.RemoveAll(bundle)
	}()
	spec, err := BuildSpec(SpecInput{
		Pod: pv, Container: r.c, Argv: argv, Env: MergeImageEnv(img.Config.Env, env), Cwd: img.Config.WorkingDir,
		Identity: id, Hostname: podHostname(pod), RootFS: rootfs, NetnsPath: nsPath,
		CgroupsPath: "/vaultsync-node/" + cid, Mounts: mounts, LocalhostProfiles: a.o.SeccompDir,
	})
	if err != nil {
		return 0, false, err
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return 0, false, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return 0, false, err
	}
	logDir := filepath.Join(a.o.StateDir, "logs", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), r.c.Name)
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return 0, false, err
	}
	logf, err := os.OpenFile(filepath.Join(logDir, strconv.Itoa(attempt)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = logf.Close() }()
	if r.isStopping() {
		return 0, false, nil
	}
	// runc stays in the foreground as the container's parent: its exit
	// status is the container's (128+signal when killed).
	cmd := exec.Command(a.o.Runc, "--root", a.RuncRoot(), "run", "--bundle", bundle, cid)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	exited := make(chan struct{})
	r.mu.Lock()
	r.id, r.rootfs, r.upper, r.imgRoot, r.exited, r.killReason, r.pid = cid, rootfs, upper, img.RootFS, exited, "", 0
	r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return 0, false, fmt.Errorf("starting runc: %w", err)
	}
	started := metav1.Now()
	imageID := img.Ref + "@" + img.ManifestDigest
	go func() {
		pid := waitPid(a, cid, exited)
		r.mu.Lock()
		if r.id == cid {
			r.pid = pid
		}
		r.mu.Unlock()
	}()
	r.setStatus(func(st *corev1.ContainerStatus) {
		st.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}
		st.ContainerID = "runc://" + cid
		st.ImageID = imageID
		st.Image = r.c.Image
		st.Ready = false
		st.Started = ptrBool(r.c.StartupProbe == nil)
	})
	w.logf("container %s started (%s, attempt %d)", r.c.Name, cid, attempt)
	probeCtx, stopProbes := context.WithCancel(ctx)
	var probes sync.WaitGroup
	probes.Add(1)
	go func() { defer probes.Done(); r.probe(probeCtx, pod, nsPath, cid, started.Time) }()

	werr := cmd.Wait()
	close(exited)
	stopProbes()
	probes.Wait()
	code = 0
	if werr != nil {
		var ee *exec.ExitError
		if !errors.As(werr, &ee) {
			return 0, false, werr
		}
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	_ = exec.Command(a.o.Runc, "--root", a.RuncRoot(), "delete", "--force", cid).Run()
	finished := metav1.Now()
	r.mu.Lock()
	killReason := r.killReason
	r.mu.Unlock()
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	msg := ""
	if killReason != "" {
		msg = killReason
	}
	if code == 137 && oomKilled(cid) {
		reason = "OOMKilled"
	}
	term := &corev1.ContainerStateTerminated{
		ExitCode: exitCode32(code), Reason: reason, Message: msg, StartedAt: started, FinishedAt: finished,
		ContainerID: "runc://" + cid,
	}
	r.setStatus(func(st *corev1.ContainerStatus) {
		st.State = corev1.ContainerState{Terminated: term}
		st.LastTerminationState = corev1.ContainerState{Terminated: term.DeepCopy()}
		st.Ready = false
		st.Started = ptrBool(false)
	})
	w.logf("container %s exited with %d %s", r.c.Name, code, msg)
	return code, true, nil
}

// exitCode32 is an exit code as the API's int32. runc's exit codes are 0 to
// 255, or 128 plus a signal number, so the clamp never changes one: it only
// keeps the conversion from wrapping round.
func exitCode32(code int) int32 {
	return int32(min(max(code, math.MinInt32), math.MaxInt32))
}

// oomKilled is a best guess from the kernel log-free side: cgroup v1 keeps
// no record once runc deleted the cgroup, so it is always false here.
func oomKilled(string) bool { return false }

// waitPid reads the container's init pid from runc's state once it runs.
func waitPid(a *Agent, id string, exited <-chan struct{}) int {
	for i := 0; i < 100; i++ {
		out, err := exec.Command(a.o.Runc, "--root", a.RuncRoot(), "state", id).Output()
		if err == nil {
			var st struct {
				Pid int `json:"pid"`
			}
			if json.Unmarshal(out, &st) == nil && st.Pid > 0 {
				return st.Pid
			}
		}
		select {
		case <-exited:
			return 0
		case <-time.After(50 * time.Millisecond):
		}
	}
	return 0
}

func ptrBool(b bool) *bool { return &b }

// signal sends a signal to the container's processes through runc.
func (r *containerRunner) signal(sig string) {
	r.mu.Lock()
	id := r.id
	r.mu.Unlock()
	if id == "" {
		return
	}
	_ = exec.Command(r.w.a.o.Runc, "--root", r.w.a.RuncRoot(), "kill", "--all", id, sig).Run()
}

// kill stops the current run: SIGTERM, then SIGKILL after grace.
func (r *containerRunner) kill(grace time.Duration, reason string) {
	r.mu.Lock()
	exited := r.exited
	if reason != "" {
		r.killReason = reason
	}
	r.mu.Unlock()
	if exited == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	r.signal("TERM")
	select {
	case <-exited:
		return
	case <-time.After(grace):
	}
	r.signal("KILL")
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		r.w.logf("container %s did not exit after SIGKILL", r.c.Name)
	}
}

// stop ends the runner for good (Pod deletion or agent shutdown).
func (r *containerRunner) stop(grace time.Duration) {
	r.mu.Lock()
	if !r.stopping {
		r.stopping = true
		close(r.stopCh)
	}
	r.mu.Unlock()
	r.kill(grace, "")
	<-r.done
}

// probe runs the startup, readiness and liveness probes of one run.
func (r *containerRunner) probe(ctx context.Context, pod *corev1.Pod, nsPath, cid string, started time.Time) {
	dial := func(ctx context.Context, port int, timeout time.Duration) (net.Conn, error) {
		return DialIn(ctx, nsPath, fmt.Sprintf("127.0.0.1:%d", port), timeout)
	}
	execProbe := func(ctx context.Context, cmd []string) (int, error) {
		args := append([]string{"--root", r.w.a.RuncRoot(), "exec", cid}, cmd...)
		err := exec.CommandContext(ctx, r.w.a.o.Runc, args...).Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		return 0, err
	}
	grace := 30 * time.Second
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	startedCh := make(chan struct{})
	var wg sync.WaitGroup
	loop := func(p *corev1.Probe, gate <-chan struct{}, onResult func(st *ProbeState, changed bool, err error) bool) {
		defer wg.Done()
		if gate != nil {
			select {
			case <-ctx.Done():
				return
			case <-gate:
			}
		}
		delay := time.Until(started.Add(time.Duration(p.InitialDelaySeconds) * time.Second))
		if delay > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
		}
		st := &ProbeState{Probe: p}
		t := time.NewTicker(period(p))
		defer t.Stop()
		for {
			err := RunProbe(ctx, p, r.c, dial, execProbe)
			if ctx.Err() != nil {
				return
			}
			changed := st.Observe(err == nil)
			if !onResult(st, changed, err) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
	if p := r.c.StartupProbe; p != nil {
		wg.Add(1)
		go loop(p, nil, func(st *ProbeState, _ bool, err error) bool {
			if st.Result {
				r.setStatus(func(s *corev1.ContainerStatus) { s.Started = ptrBool(true) })
				close(startedCh)
				return false
			}
			if st.Failed() {
				r.w.logf("container %s failed startup probe: %v", r.c.Name, err)
				go r.kill(probeGrace(p, grace), fmt.Sprintf("Container %s failed startup probe, will be restarted", r.c.Name))
				return false
			}
			return true
		})
	} else {
		close(startedCh)
	}
	if p := r.c.ReadinessProbe; p != nil {
		wg.Add(1)
		go loop(p, startedCh, func(st *ProbeState, changed bool, err error) bool {
			if changed {
				ready := st.Result
				if !ready {
					r.w.logf("container %s readiness probe failed: %v", r.c.Name, err)
				}
				r.setStatus(func(s *corev1.ContainerStatus) { s.Ready = ready })
			}
			return true
		})
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
			case <-startedCh:
				r.setStatus(func(s *corev1.ContainerStatus) { s.Ready = true })
			}
		}()
	}
	if p := r.c.LivenessProbe; p != nil {
		wg.Add(1)
		go loop(p, startedCh, func(st *ProbeState, _ bool, err error) bool {
			if st.Failed() {
				r.w.logf("container %s failed liveness probe, will be restarted: %v", r.c.Name, err)
				go r.kill(probeGrace(p, grace), fmt.Sprintf("Container %s failed liveness probe, will be restarted", r.c.Name))
				return false
			}
			return true
		})
	}
	wg.Wait()
}

func probeGrace(p *corev1.Probe, def time.Duration) time.Duration {
	if p.TerminationGracePeriodSeconds != nil {
		return time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
	}
	return def
}
