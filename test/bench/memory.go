package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
)

// binaryManager is bin/manager running as a child process, so that its
// memory is its own.
type binaryManager struct {
	cmd     *exec.Cmd
	metrics string
	// pprof is the base URL of its pprof endpoint (-manager-heap; empty: not served).
	pprof string
	done  chan struct{}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (b *bench) startBinary(bin string, logw io.Writer) (*binaryManager, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(port), "--metrics-secure=false",
		"--health-probe-bind-address=0", "--operator-namespace=vaultsync-system",
		fmt.Sprintf("--max-concurrent-reconciles=%d", b.c.workers),
		fmt.Sprintf("--kube-api-qps=%g", b.c.qps), fmt.Sprintf("--kube-api-burst=%d", b.c.burst)}
	pprofURL := ""
	if b.c.heapPrefix != "" {
		pport, err := freePort()
		if err != nil {
			return nil, err
		}
		args = append(args, "--pprof-bind-address=127.0.0.1:"+strconv.Itoa(pport))
		pprofURL = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof", pport)
	}
	cmd := exec.Command(bin, args...)
	// The emulator's proxy and CA variables are in this process's environment.
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+b.env.CP.Kubeconfig), b.c.managerEnv...)
	if logw == nil {
		logw = io.Discard
	}
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &binaryManager{cmd: cmd, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), pprof: pprofURL, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.done) }()
	return m, nil
}

func (m *binaryManager) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// heapProfile writes the binary's heap profile (in use as of the last
// collection, and every allocation since it started) to file.
func (m *binaryManager) heapProfile(file string) error {
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	resp, err := c.Get(m.pprof + "/heap")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/heap: %s", m.pprof, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// watchHeap writes a heap profile to PREFIX-name-high-N.pprof each time the
// binary's RSS rises 2 MiB above the last one it profiled (N counts them, and
// a line on stderr gives the time, RSS and reconciles), until stop is closed,
// then PREFIX-name-end.pprof; the returned channel is closed when it is done.
func (b *bench) watchHeap(m *binaryManager, name string, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	if m.pprof == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		var high int64
		highs := 0
		start := time.Now()
		for {
			select {
			case <-stop:
				file := fmt.Sprintf("%s-%s-end.pprof", b.c.heapPrefix, name)
				if err := m.heapProfile(file); err != nil {
					fmt.Fprintf(os.Stderr, "bench: heap profile %s: %v\n", file, err)
				}
				hwm, rss, _ := m.status()
				var stats []string
				for _, s := range []string{"heap_inuse", "heap_idle", "heap_released", "heap_sys", "next_gc", "stack_inuse"} {
					stats = append(stats, fmt.Sprintf("%s %.1f", s, m.metric("go_memstats_"+s+"_bytes", "")/mib))
				}
				fmt.Fprintf(os.Stderr, "bench: heap profiles of %s in %s-%s-{high-{1..%d},end}.pprof (last high at RSS %.1f MiB; end: peak %.1f, RSS %.1f, %s MiB)\n",
					name, b.c.heapPrefix, name, highs, float64(high)/mib, float64(hwm)/mib, float64(rss)/mib, strings.Join(stats, ", "))
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, rss, _ := m.status(); rss > high+2*mib {
				highs++
				if err := m.heapProfile(fmt.Sprintf("%s-%s-high-%d.pprof", b.c.heapPrefix, name, highs)); err == nil {
					high = rss
					fmt.Fprintf(os.Stderr, "bench: %s %.1f s: RSS %.1f MiB, %d reconciled, heap in use %.1f MiB\n",
						name, time.Since(start).Seconds(), float64(rss)/mib, m.reconciles(), m.metric("go_memstats_heap_inuse_bytes", "")/mib)
				}
			}
		}
	}()
	return done
}

// status returns VmHWM, VmRSS and RssAnon (heap, stacks: what is not the
// mapped binary) in bytes from /proc/PID/status.
func (m *binaryManager) status() (hwm, rss, anon int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmHWM:":
			hwm = kb << 10
		case "VmRSS:":
			rss = kb << 10
		case "RssAnon:":
			anon = kb << 10
		}
	}
	return hwm, rss, anon
}

// cpuSeconds returns the CPU time (user and system) the process has used so far.
func (m *binaryManager) cpuSeconds() float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces) start with the state, field 3.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// metric returns the sum of a metric's samples whose label set contains match.
func (m *binaryManager) metric(name, match string) float64 {
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	resp, err := c.Get(m.metrics)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, match) {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			sum += v
		}
	}
	return sum
}

func (m *binaryManager) reconciles() int {
	return int(m.metric("controller_runtime_reconcile_total{", `controller="vaultsecret"`))
}

// waitReconciled waits until the binary has reconciled n VaultSecrets and then lets it settle.
func (m *binaryManager) waitReconciled(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for m.reconciles() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager binary reconciled %d of %d VaultSecrets in %s", m.reconciles(), n, timeout)
		}
		select {
		case <-m.done:
			return fmt.Errorf("the manager binary exited")
		case <-time.After(200 * time.Millisecond):
		}
	}
	time.Sleep(3 * time.Second)
	return nil
}

const mib = 1 << 20

// restartRepeats is how many restarts each restart figure of the memory section takes the median of.
const restartRepeats = 3

// memory runs the manager binary and reads its peak RSS (VmHWM): during the
// first sync of n VaultSecrets, on a restart with them synced, and on a
// restart after many unrelated 100 KB Secrets were added to the cluster;
// with -large, first the same two figures for that many VaultSecrets.
func (b *bench) memory(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "vaultsync-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".") // linked like the image (hack/build-flags.sh)
	build.Dir, build.Stdout, build.Stderr = b.env.Root, os.Stderr, os.Stderr
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the manager: %w", err)
	}
	// Only this scenario's VaultSecrets may exist while the binary runs.
	for _, ns := range []string{"bench", "budget", "large"} {
		if err := b.cleanup(ctx, ns); err != nil {
			return err
		}
	}
	if err := b.env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vaultsync-system"}}); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	if b.c.large > 0 {
		if err := b.memoryAt(ctx, bin, "mem-large", b.c.large, false); err != nil {
			return err
		}
		if err := b.cleanup(ctx, "mem-large"); err != nil {
			return err
		}
	}
	n := b.c.n
	if err := b.memoryAt(ctx, bin, "mem", n, true); err != nil {
		return err
	}
	if b.c.unrelated <= 0 {
		return nil
	}
	hwmBase, rssBase, heapBase := b.memBase.hwm, b.memBase.rss, b.memBase.heap
	un := "unrelated"
	if err := b.env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: un}}); err != nil {
		return err
	}
	payload := make([]byte, 100<<10)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	start := time.Now()
	if err := parallel(b.c.unrelated, 16, func(i int) error {
		return b.env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: un, Name: fmt.Sprintf("unrelated-%d", i)},
			Data: map[string][]byte{"blob": payload}})
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: created %d unrelated 100 KB Secrets in %.0f s\n", b.c.unrelated, time.Since(start).Seconds())
	un1, err := b.restartPeak(bin, n)
	if err != nil {
		return err
	}
	added := un1.hwm - hwmBase
	b.t.check(fmt.Sprintf("peak RSS added by %d unrelated 100 KB Secrets (%.0f MiB) in the cluster", b.c.unrelated, float64(b.c.unrelated*len(payload))/mib),
		fmt.Sprintf("%+.1f MiB (%.1f → %.1f MiB)", float64(added)/mib, float64(hwmBase)/mib, float64(un1.hwm)/mib), "≤ 2 MiB", added <= 2*mib,
		fmt.Sprintf("restart with %d synced VaultSecrets, median of %d each; RSS after %.1f → %.1f MiB, heap in use %.1f → %.1f MiB",
			n, restartRepeats, float64(rssBase)/mib, float64(un1.rss)/mib, heapBase/mib, un1.heap/mib))
	return nil
}

// peak is what one look at the manager binary found.
type peak struct {
	hwm, rss int64
	heap     float64
}

// memoryTarget is the peak RSS goal for n VaultSecrets: 60 MiB at 1,000,
// 150 MiB at 10,000 (issue 13); none in between or beyond.
func memoryTarget(n int) (int64, string) {
	switch {
	case n <= 1000:
		return 60 * mib, "≤ 60 MiB"
	case n <= 10000:
		return 150 * mib, "≤ 150 MiB"
	}
	return 0, "-"
}

// memoryAt starts the manager binary, creates n VaultSecrets in ns (an hourly
// refresh, so none is due during the scenario) and reports its peak RSS
// through their first sync, then the median peak of restarts with them
// synced. keep leaves the restart figure in b.memBase for the unrelated-Secrets comparison.
func (b *bench) memoryAt(ctx context.Context, bin, ns string, n int, keep bool) error {
	if _, err := b.env.NewNamespace(ctx, ns); err != nil {
		return err
	}
	m, err := b.startBinary(bin, b.log)
	if err != nil {
		return err
	}
	stopHeap := make(chan struct{})
	heapDone := b.watchHeap(m, ns+"-first", stopHeap)
	url := b.env.VaultURL("bench")
	// An interval longer than the scenario: every restart below finds the same up-to-date
	// VaultSecrets, none of them due for a refresh (with 1m, the restarts after the minute spent
	// creating unrelated Secrets refreshed all of them, and their peaks compared more work).
	start := time.Now()
	if err := b.createVaultSecrets(ctx, ns, n, func(int) v1alpha1.VaultSecretSpec { return vsSpec(url, time.Hour, sharedSecrets...) }); err != nil {
		m.stop()
		return err
	}
	if err := b.waitReady(ctx, ns, n, 10*time.Minute+time.Duration(n)*50*time.Millisecond); err != nil {
		m.stop()
		return err
	}
	took := time.Since(start)
	time.Sleep(3 * time.Second)
	hwm, rss, anon := m.status()
	heap := m.metric("go_memstats_heap_inuse_bytes", "")
	cpu := m.cpuSeconds()
	close(stopHeap)
	<-heapDone
	m.stop()
	limit, target := memoryTarget(n)
	figure := fmt.Sprintf("manager binary peak RSS, first sync of %d VaultSecrets", n)
	note := fmt.Sprintf("RSS after %.1f MiB of which %.1f MiB anonymous (the rest is the mapped binary); heap in use %.1f MiB (VmHWM from /proc); all Ready %.1f s after the first create; %.1f s of CPU",
		float64(rss)/mib, float64(anon)/mib, heap/mib, took.Seconds(), cpu)
	if len(b.c.managerEnv) > 0 {
		note += "; environment " + strings.Join(b.c.managerEnv, " ")
	}
	if limit > 0 {
		b.t.check(figure, fmt.Sprintf("%.1f MiB", float64(hwm)/mib), target, hwm <= limit, note)
	} else {
		b.t.info(figure, fmt.Sprintf("%.1f MiB", float64(hwm)/mib), note)
	}
	base, err := b.restartPeak(bin, n)
	if err != nil {
		return err
	}
	if keep {
		b.memBase = base
	}
	b.t.info(fmt.Sprintf("manager binary peak RSS, restart with %d synced VaultSecrets", n), fmt.Sprintf("%.1f MiB", float64(base.hwm)/mib),
		fmt.Sprintf("median of %d restarts; RSS after %.1f MiB, heap in use %.1f MiB", restartRepeats, float64(base.rss)/mib, base.heap/mib))
	return nil
}

// restartPeak starts the manager binary restartRepeats times with n synced
// VaultSecrets in the cluster and returns the median of each figure: the
// peak of one restart varies by a few MiB with the moment the garbage
// collector runs in the startup burst.
func (b *bench) restartPeak(bin string, n int) (peak, error) {
	var hwms, rsss []int64
	var heaps []float64
	for i := range restartRepeats {
		m, err := b.startBinary(bin, b.log)
		if err != nil {
			return peak{}, err
		}
		stopHeap := make(chan struct{})
		heapDone := b.watchHeap(m, fmt.Sprintf("restart%d-%d", n, i+1), stopHeap)
		err = m.waitReconciled(n, 5*time.Minute+time.Duration(n)*10*time.Millisecond)
		hwm, rss, _ := m.status()
		heap := m.metric("go_memstats_heap_inuse_bytes", "")
		close(stopHeap)
		<-heapDone
		m.stop()
		if err != nil {
			return peak{}, err
		}
		hwms, rsss, heaps = append(hwms, hwm), append(rsss, rss), append(heaps, heap)
	}
	slices.Sort(hwms)
	slices.Sort(rsss)
	slices.Sort(heaps)
	return peak{hwm: hwms[len(hwms)/2], rss: rsss[len(rsss)/2], heap: heaps[len(heaps)/2]}, nil
}
