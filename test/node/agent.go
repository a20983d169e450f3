// Package node is a node agent for the local control plane: it does for
// the Pods bound to its Node what a kubelet does, with runc for containers
// and one network namespace per Pod in which only loopback exists. It
// registers the Node, binds unscheduled Pods to it (there is no
// scheduler), runs their containers with their volumes, probes and
// security settings, writes their status back, and stands in for
// kube-proxy with loopback listeners per Service port. See README.md.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// KubeletVersion is the version the Node reports.
const KubeletVersion = "v1.37.2"

// Options configure an Agent.
type Options struct {
	// Config is an admin client configuration of the control plane.
	Config *rest.Config
	// NodeName names the Node (default "vaultsync-node").
	NodeName string
	// StateDir holds everything the agent creates: runc's state, images,
	// Pod directories, logs, services.json. It must be private to one agent.
	StateDir string
	// Images are the OCI archives Pods can run.
	Images []ImageArchive
	// HostPorts are host loopback ports reachable from every Pod at
	// 127.0.0.1:<port> (the API server's port is always added).
	HostPorts []int
	// RootCA stands in for the kube-root-ca.crt ConfigMap (default: the
	// CA of Config).
	RootCA []byte
	// BackoffBase and BackoffMax bound the restart back-off of crashing
	// containers (default 10s doubling up to 5m, as a kubelet).
	BackoffBase, BackoffMax time.Duration
	// ServiceNamespaces limits the kube-proxy stand-in (default: all).
	ServiceNamespaces []string
	// Runc is the runc binary (default "runc" on PATH).
	Runc string
	// SeccompDir holds seccompProfile: Localhost profiles.
	SeccompDir string
	// ResyncPeriod is how often secret, configMap and projected volumes
	// are refreshed (default 10s).
	ResyncPeriod time.Duration
	// TokenRefreshAfter, when set, also refreshes projected tokens older
	// than this (tests; the API server issues tokens for 10 minutes at
	// least, and a kubelet refreshes them at 80% of their life).
	TokenRefreshAfter time.Duration
	// Log receives the agent's log (default stderr).
	Log io.Writer
}

// Agent is a running node agent.
type Agent struct {
	o      Options
	cs     kubernetes.Interface
	log    *log.Logger
	images *imageStore
	// apiPort is the API server's port on the host loopback.
	apiPort int
	// netnsPrefix names this agent's network namespaces.
	netnsPrefix string

	// cancel ends the agent's context (see Start).
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	ips     map[string]types.UID

	factory  informers.SharedInformerFactory
	services *serviceProxy
	stopOnce sync.Once
}

// New checks the options; Start runs the agent.
func New(o Options) (*Agent, error) {
	if o.Config == nil || o.StateDir == "" {
		return nil, errors.New("node agent: Config and StateDir are required")
	}
	if o.NodeName == "" {
		o.NodeName = "vaultsync-node"
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 10 * time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Minute
	}
	if o.Runc == "" {
		o.Runc = "runc"
	}
	if o.ResyncPeriod <= 0 {
		o.ResyncPeriod = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if len(o.RootCA) == 0 {
		o.RootCA = o.Config.CAData
		if len(o.RootCA) == 0 && o.Config.CAFile != "" {
			o.RootCA, _ = os.ReadFile(o.Config.CAFile)
		}
	}
	abs, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, err
	}
	o.StateDir = abs
	u, err := url.Parse(o.Config.Host)
	if err != nil {
		return nil, fmt.Errorf("API server address %q: %w", o.Config.Host, err)
	}
	port, _ := strconv.Atoi(u.Port())
	if ip := net.ParseIP(u.Hostname()); port == 0 || ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("the API server must listen on a loopback address with a port, not %q", o.Config.Host)
	}
	cs, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		o: o, cs: cs, apiPort: port,
		log:         log.New(o.Log, "node-agent ", log.LstdFlags|log.Lmicroseconds),
		images:      newImageStore(filepath.Join(o.StateDir, "images")),
		netnsPrefix: "vsn-" + shortHash(o.StateDir) + "-",
		workers:     map[types.UID]*podWorker{},
		ips:         map[string]types.UID{},
	}
	return a, nil
}

// NodeName is the name of the agent's Node.
func (a *Agent) NodeName() string { return a.o.NodeName }

// RuncRoot is runc's state directory of this agent (runc --root).
func (a *Agent) RuncRoot() string { return filepath.Join(a.o.StateDir, "runc") }

// NetnsPrefix is the name prefix of the agent's network namespaces.
func (a *Agent) NetnsPrefix() string { return a.netnsPrefix }

// Start cleans what a crashed earlier run left, loads the images,
// registers the Node and starts serving Pods and Services.
func (a *Agent) Start(ctx context.Context) error {
	if _, err := exec.LookPath(a.o.Runc); err != nil {
		return fmt.Errorf("runc not found (apt-get install -y runc): %w", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("ip not found (apt-get install -y iproute2): %w", err)
	}
	for _, d := range []string{a.o.StateDir, a.RuncRoot(), filepath.Join(a.o.StateDir, "pods"), filepath.Join(a.o.StateDir, "logs")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	a.cleanLeftovers()
	for _, im := range a.o.Images {
		names, err := a.images.Load(im)
		if err != nil {
			return err
		}
		a.log.Printf("loaded image archive %s: %s", im.Path, strings.Join(names, ", "))
	}
	// The agent outlives ctx, which only bounds the start: its own context
	// keeps ctx's values but not its cancellation, and Stop cancels it.
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	if err := a.registerNode(ctx); err != nil {
		a.cancel()
		return err
	}
	a.wg.Add(1)
	go a.heartbeat(actx)

	a.factory = informers.NewSharedInformerFactory(a.cs, 0)
	pods := a.factory.Core().V1().Pods().Informer()
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.onPod(actx, obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { a.onPod(actx, obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				a.onPodGone(p)
			}
		},
	})
	a.services = newServiceProxy(a)
	a.services.register(actx, a.factory)
	a.factory.Start(actx.Done())
	for t, ok := range a.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			a.Stop()
			return fmt.Errorf("informer of %v did not sync", t)
		}
	}
	a.log.Printf("node %s ready (state %s, runc root %s)", a.o.NodeName, a.o.StateDir, a.RuncRoot())
	return nil
}

// Stop stops every container, removes every mount and network namespace
// the agent made and stops serving. The Pods stay in the API, as with a
// kubelet that goes away. Safe to call more than once.
func (a *Agent) Stop() {
	a.stopOnce.Do(func() {
		if a.cancel != nil {
			a.cancel()
		}
		a.mu.Lock()
		workers := make([]*podWorker, 0, len(a.workers))
		for _, w := range a.workers {
			workers = append(workers, w)
		}
		a.mu.Unlock()
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Add(1)
			go func() { defer wg.Done(); w.shutdown() }()
		}
		wg.Wait()
		if a.services != nil {
			a.services.close()
		}
		if a.factory != nil {
			a.factory.Shutdown()
		}
		a.wg.Wait()
		a.cleanLeftovers()
		a.log.Printf("node %s stopped", a.o.NodeName)
	})
}

// cleanLeftovers removes what an earlier run may have left: runc
// containers under the agent's root, mounts under the state directory,
// the agent's network namespaces and Pod directories.
func (a *Agent) cleanLeftovers() {
	out, _ := exec.Command(a.o.Runc, "--root", a.RuncRoot(), "list", "-q").Output()
	for _, id := range strings.Fields(string(out)) {
		_ = exec.Command(a.o.Runc, "--root", a.RuncRoot(), "kill", id, "KILL").Run()
		_ = exec.Command(a.o.Runc, "--root", a.RuncRoot(), "delete", "--force", id).Run()
		a.log.Printf("removed leftover container %s", id)
	}
	for _, m := range MountsUnder(a.o.StateDir) {
		if err := unmount(m); err != nil {
			a.log.Printf("unmounting leftover %s: %v", m, err)
		}
	}
	for _, ns := range listNetns(a.netnsPrefix) {
		if err := deleteNetns(ns); err != nil {
			a.log.Printf("%v", err)
		}
	}
	_ = os.RemoveAll(filepath.Join(a.o.StateDir, "pods"))
	_ = os.MkdirAll(filepath.Join(a.o.StateDir, "pods"), 0o711)
}

func (a *Agent) registerNode(ctx context.Context) error {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.o.NodeName, Labels: map[string]string{
			"kubernetes.io/hostname": a.o.NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			"node.vaultsync.io/agent": "true",
		}},
		Spec: corev1.NodeSpec{PodCIDR: PodCIDR, PodCIDRs: []string{PodCIDR}},
	}
	_, err := a.cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("registering node %s: %w", a.o.NodeName, err)
	}
	if err := a.updateNodeStatus(ctx); err != nil {
		return err
	}
	_, err = a.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: corev1.NamespaceNodeLease}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return a.renewLease(ctx)
}

func (a *Agent) updateNodeStatus(ctx context.Context) error {
	n, err := a.cs.CoreV1().Nodes().Get(ctx, a.o.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("2"),
		corev1.ResourceMemory:           resource.MustParse("4Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("10Gi"),
	}
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		for _, old := range n.Status.Conditions {
			if old.Type == t && old.Status == s {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	n.Status.Capacity, n.Status.Allocatable = capacity, capacity
	n.Status.Conditions = []corev1.NodeCondition{
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "node agent has sufficient memory available"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "node agent has no disk pressure"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "node agent has sufficient PID available"),
		cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "vaultsync node agent is posting ready status"),
	}
	n.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
		{Type: corev1.NodeHostName, Address: a.o.NodeName},
	}
	n.Status.NodeInfo = corev1.NodeSystemInfo{
		KubeletVersion: KubeletVersion, OperatingSystem: "linux", Architecture: "amd64",
		ContainerRuntimeVersion: "runc://" + runcVersion(a.o.Runc), OSImage: "vaultsync node agent",
		KernelVersion: kernelVersion(),
	}
	_, err = a.cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

func (a *Agent) renewLease(ctx context.Context) error {
	leases := a.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, a.o.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.o.NodeName},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: ptr.To(a.o.NodeName), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now,
			},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = ptr.To(a.o.NodeName), ptr.To[int32](40), &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// heartbeat renews the Lease and the Node status until ctx, the agent's
// context, ends.
func (a *Agent) heartbeat(ctx context.Context) {
	defer a.wg.Done()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		beat, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := a.renewLease(beat); err != nil && ctx.Err() == nil {
			a.log.Printf("renewing the node lease: %v", err)
		}
		if err := a.updateNodeStatus(beat); err != nil && ctx.Err() == nil {
			a.log.Printf("updating the node status: %v", err)
		}
		cancel()
	}
}

// onPod reacts to every Pod event: binds unscheduled Pods and hands the
// Pods of this node to their workers. ctx is the agent's context.
func (a *Agent) onPod(ctx context.Context, pod *corev1.Pod) {
	if ctx.Err() != nil {
		return
	}
	if pod.Spec.NodeName == "" {
		if pod.DeletionTimestamp == nil && (pod.Spec.SchedulerName == "" || pod.Spec.SchedulerName == corev1.DefaultSchedulerName) {
			go a.bind(ctx, pod)
		}
		return
	}
	if pod.Spec.NodeName != a.o.NodeName {
		return
	}
	a.mu.Lock()
	w, ok := a.workers[pod.UID]
	if !ok {
		if pod.DeletionTimestamp != nil {
			// Nothing of it runs here (any more): finish the deletion.
			a.mu.Unlock()
			go a.deletePod(ctx, pod)
			return
		}
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			a.mu.Unlock()
			return
		}
		w = newPodWorker(ctx, a, pod)
		a.workers[pod.UID] = w
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			w.run()
			a.mu.Lock()
			delete(a.workers, pod.UID)
			a.mu.Unlock()
		}()
	}
	a.mu.Unlock()
	w.update(pod)
}

func (a *Agent) onPodGone(pod *corev1.Pod) {
	a.mu.Lock()
	w := a.workers[pod.UID]
	a.mu.Unlock()
	if w != nil {
		w.gone()
	}
}

func (a *Agent) bind(ctx context.Context, pod *corev1.Pod) {
	bindCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := a.cs.CoreV1().Pods(pod.Namespace).Bind(bindCtx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: a.o.NodeName},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		a.log.Printf("binding pod %s/%s: %v", pod.Namespace, pod.Name, err)
		return
	}
	if err == nil {
		a.log.Printf("bound pod %s/%s to %s", pod.Namespace, pod.Name, a.o.NodeName)
	}
}

// deletePod removes a Pod object whose containers are gone, as a kubelet
// does at the end of graceful deletion. The deletion keeps ctx's values but
// not its cancellation: the containers are already gone, so it finishes even
// when the agent is stopping.
func (a *Agent) deletePod(ctx context.Context, pod *corev1.Pod) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := a.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		a.log.Printf("deleting pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

// PodCIDR is the range of the nominal Pod IPs. They appear in Pod status
// and EndpointSlices only: no interface has them and the agent never sends
// a packet to them; the kube-proxy stand-in maps them back to the Pod's
// network namespace.
const PodCIDR = "10.244.0.0/24"

func (a *Agent) allocateIP(uid types.UID) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := 2; i < 255; i++ {
		ip := fmt.Sprintf("10.244.0.%d", i)
		if _, used := a.ips[ip]; !used {
			a.ips[ip] = uid
			return ip, nil
		}
	}
	return "", errors.New("no free Pod IP in " + PodCIDR)
}

func (a *Agent) releaseIP(ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.ips, ip)
}

// workerByIP finds the Pod that holds a nominal Pod IP.
func (a *Agent) workerByIP(ip string) *podWorker {
	a.mu.Lock()
	defer a.mu.Unlock()
	if uid, ok := a.ips[ip]; ok {
		return a.workers[uid]
	}
	return nil
}

// Logs returns the log of a container of a Pod (the current run, or the
// previous one), stdout and stderr interleaved. Logs outlive the Pod.
func (a *Agent) Logs(namespace, pod, container string, previous bool) ([]byte, error) {
	dirs, _ := filepath.Glob(filepath.Join(a.o.StateDir, "logs", namespace+"_"+pod+"_*", container))
	if len(dirs) == 0 {
		return nil, fmt.Errorf("no logs of %s/%s container %s", namespace, pod, container)
	}
	sort.Slice(dirs, func(i, j int) bool { return modTime(dirs[i]).Before(modTime(dirs[j])) })
	files, _ := filepath.Glob(filepath.Join(dirs[len(dirs)-1], "*.log"))
	sort.Slice(files, func(i, j int) bool { return logAttempt(files[i]) < logAttempt(files[j]) })
	if len(files) == 0 {
		return nil, fmt.Errorf("no logs of %s/%s container %s", namespace, pod, container)
	}
	f := files[len(files)-1]
	if previous {
		if len(files) < 2 {
			return nil, fmt.Errorf("previous terminated container %s in pod %s not found", container, pod)
		}
		f = files[len(files)-2]
	}
	return os.ReadFile(f)
}

// LogPath is the log file of the current run of a container.
func (a *Agent) LogPath(namespace, pod, container string) string {
	dirs, _ := filepath.Glob(filepath.Join(a.o.StateDir, "logs", namespace+"_"+pod+"_*", container))
	sort.Slice(dirs, func(i, j int) bool { return modTime(dirs[i]).Before(modTime(dirs[j])) })
	if len(dirs) == 0 {
		return ""
	}
	files, _ := filepath.Glob(filepath.Join(dirs[len(dirs)-1], "*.log"))
	sort.Slice(files, func(i, j int) bool { return logAttempt(files[i]) < logAttempt(files[j]) })
	if len(files) == 0 {
		return ""
	}
	return files[len(files)-1]
}

func logAttempt(p string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(p), ".log"))
	return n
}

func modTime(p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// ContainerInfo locates the current run of a container, for tests and
// debugging: its runc id, its init process on the host, its root
// filesystem (the overlay mount) and the image directory under it.
type ContainerInfo struct {
	ID, RootFS, ImageRootFS, UpperDir string
	Pid                               int
}

// Container returns the current run of a container of a Pod.
func (a *Agent) Container(namespace, pod, container string) (ContainerInfo, bool) {
	a.mu.Lock()
	var w *podWorker
	for _, cand := range a.workers {
		p := cand.currentPod()
		if p.Namespace == namespace && p.Name == pod {
			w = cand
		}
	}
	a.mu.Unlock()
	if w == nil {
		return ContainerInfo{}, false
	}
	r := w.runner(container)
	if r == nil {
		return ContainerInfo{}, false
	}
	return r.info()
}

// DialPod connects to a port of a Pod of this node inside its network
// namespace (what `kubectl port-forward` does through a kubelet).
func (a *Agent) DialPod(ctx context.Context, namespace, pod string, port int) (net.Conn, error) {
	a.mu.Lock()
	var w *podWorker
	for _, cand := range a.workers {
		if p := cand.currentPod(); p.Namespace == namespace && p.Name == pod {
			w = cand
		}
	}
	a.mu.Unlock()
	if w == nil {
		return nil, fmt.Errorf("pod %s/%s does not run on node %s", namespace, pod, a.o.NodeName)
	}
	w.mu.Lock()
	ns := w.netnsPth
	w.mu.Unlock()
	if ns == "" {
		return nil, fmt.Errorf("pod %s/%s has no network namespace yet", namespace, pod)
	}
	return DialIn(ctx, ns, fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
}

// Token issues a ServiceAccount token bound to a Pod.
func (a *Agent) Token(ctx context.Context, pod *corev1.Pod, audience string, exp int64) (*authenticationv1.TokenRequestStatus, error) {
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if audience != "" {
		tr.Spec.Audiences = []string{audience}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	out, err := a.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for ServiceAccount %s/%s: %w", pod.Namespace, sa, err)
	}
	return &out.Status, nil
}

// Secret and ConfigMap read live from the API server.
func (a *Agent) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return a.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

// ConfigMap reads a ConfigMap live from the API server.
func (a *Agent) ConfigMap(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	return a.cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
}

func runcVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return f[2]
	}
	return "unknown"
}

func kernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
