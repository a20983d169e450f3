// Command bench measures vaultsync at scale on the local control plane and
// the Key Vault emulator (latency added to every Key Vault request) and
// prints, for each figure, the measured value, the target and PASS or GAP.
// It never asserts anything: it reports. See docs/benchmarks.md.
//
//	go run ./test/bench                   # the default run (make bench)
//	go run ./test/bench -large 10000      # also 10,000 VaultSecrets, in process and as the binary (minutes)
//	go run ./test/bench -sweep 8:50:100,16:200:400,32:500:1000   # workers:qps:burst
//	go run ./test/bench -cpuprofile cpu.pprof -memprofile heap.pprof -apiserver-profile api   # where the time goes
//	go run ./test/bench -admission -rounds 3   # only the apiserver's admission: dry-run VaultSecret vs Secret creates
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/vaultsync/vaultsync/controllers"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

type config struct {
	n         int
	latency   time.Duration
	workers   int
	qps       float64
	burst     int
	refresh   bool
	restart   bool
	budget    int
	memory    bool
	unrelated int
	large     int
	sweep     string
	out       string
	verbose   bool
	prof      *profiler
	// managerEnv is added to the manager binary's environment (the memory figures).
	managerEnv []string
	// largeInProcess runs -large with the in-process manager too (not only the binary).
	largeInProcess bool
	// heapPrefix: where heap profiles of the manager binary go (memory figures; empty: none).
	heapPrefix string

	admission        bool
	admissionWorkers int
	rounds           int
}

func main() {
	var c config
	def := controllers.DefaultOptions()
	flag.IntVar(&c.n, "n", 1000, "VaultSecrets of the main scenario (3 shared secrets each)")
	flag.DurationVar(&c.latency, "latency", 20*time.Millisecond, "latency the emulator adds to every Key Vault request")
	flag.IntVar(&c.workers, "workers", def.MaxConcurrentReconciles, "--max-concurrent-reconciles of the manager")
	flag.Float64Var(&c.qps, "qps", inprocess.DefaultQPS, "--kube-api-qps of the manager")
	flag.IntVar(&c.burst, "burst", inprocess.DefaultBurst, "--kube-api-burst of the manager")
	flag.BoolVar(&c.refresh, "refresh", true, "wait for a whole refresh cycle (refreshInterval 1m, about 70 s)")
	flag.BoolVar(&c.restart, "restart", true, "restart the manager and check that nothing is written")
	flag.IntVar(&c.budget, "budget", 300, "VaultSecrets (one distinct secret each) against a vault that allows 100 requests per 5 s (0: skip)")
	flag.BoolVar(&c.memory, "memory", true, "measure the manager binary's peak RSS (builds it)")
	flag.IntVar(&c.unrelated, "unrelated", 10000, "unrelated 100 KB Secrets created for the memory figure (0: skip)")
	flag.IntVar(&c.large, "large", 0, "also converge and restart this many VaultSecrets (e.g. 10000; takes minutes), and with -memory the manager binary's peak RSS for as many")
	flag.StringVar(&c.sweep, "sweep", "", "only measure convergence for each workers:qps:burst in this comma-separated list")
	flag.StringVar(&c.out, "out", "", "also write the Markdown table to this file")
	flag.BoolVar(&c.verbose, "v", false, "log the managers and the control plane to stderr")
	flag.BoolVar(&c.admission, "admission", false, "only measure admission: -n server-side dry-run creates of a VaultSecret (3 items) and of a Secret, and their ratio")
	flag.IntVar(&c.admissionWorkers, "admission-concurrency", 10, "goroutines sending the dry-run creates of -admission")
	flag.IntVar(&c.rounds, "rounds", 1, "with -admission: measure Secrets then VaultSecrets this many times in the same run")
	flag.Func("manager-env", "KEY=VALUE added to the manager binary's environment for the memory figures, such as GOGC=50 (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		c.managerEnv = append(c.managerEnv, v)
		return nil
	})
	flag.BoolVar(&c.largeInProcess, "large-inprocess", true, "with -large, also converge and restart them with the in-process manager (false: only the binary's memory figures)")
	flag.StringVar(&c.heapPrefix, "manager-heap", "", "serve pprof on the manager binary (--pprof-bind-address) and write its heap profiles to PREFIX-*.pprof: at each new RSS high and at the end of every first sync and restart")
	c.prof = &profiler{}
	flag.StringVar(&c.prof.cpuFile, "cpuprofile", "", "write a CPU profile of the main convergence to this file (manager goroutines labelled component=manager)")
	flag.StringVar(&c.prof.memFile, "memprofile", "", "write a heap profile to this file once the main convergence is Ready")
	flag.StringVar(&c.prof.apiPrefix, "apiserver-profile", "", "write kube-apiserver CPU profiles of the main convergence to PREFIX-cpu-N.pprof and its request, admission and CEL metric growth to PREFIX-metrics.txt")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	if err := run(c, strings.Join(os.Args[1:], " ")); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	c     config
	env   *inprocess.Env
	t     *table
	track *Tracker
	log   io.Writer
	// memBase is the restart peak of the main memory scenario (memoryAt).
	memBase peak
}

func run(c config, args string) error {
	var logw io.Writer
	if c.verbose {
		logw = os.Stderr
	}
	t := newTable() // before the control plane starts: its load average is the others'
	fmt.Fprintln(os.Stderr, "bench: starting the control plane and the emulator")
	env, err := inprocess.Start(inprocess.Options{Output: logw})
	if err != nil {
		return err
	}
	defer env.Close()
	if err := env.Emu.SetFaults(emulator.Faults{Vaults: []emulator.VaultFault{{Latency: emulator.DurationOf(c.latency)}}}); err != nil {
		return err
	}
	ctx := context.Background()
	track, err := NewTracker(ctx, env)
	if err != nil {
		return err
	}
	defer track.Stop()
	b := &bench{c: c, env: env, t: t, track: track, log: logw}

	switch {
	case c.admission:
		if err := b.admission(ctx); err != nil {
			return err
		}
	case c.sweep != "":
		if err := b.sweep(ctx); err != nil {
			return err
		}
	default:
		if err := b.all(ctx); err != nil {
			return err
		}
	}
	command := "go run ./test/bench"
	if args != "" {
		command += " " + args
	}
	b.t.write(os.Stdout, command)
	if c.out != "" {
		f, err := os.Create(c.out)
		if err != nil {
			return err
		}
		defer f.Close()
		b.t.write(f, command)
	}
	return nil
}

func (b *bench) all(ctx context.Context) error {
	plainRate, err := b.plainCreateRate(ctx, "plain", b.c.n, b.c.workers)
	if err != nil {
		return err
	}
	mgr, err := b.startManager("m1", b.c.workers, b.c.qps, b.c.burst)
	if err != nil {
		return err
	}
	main, err := b.converge(ctx, mgr, "bench", b.c.n, refreshInterval, plainRate, true)
	if err != nil {
		_ = mgr.Stop()
		return err
	}
	if b.c.refresh {
		if err := b.refreshCycle(ctx, mgr, main); err != nil {
			_ = mgr.Stop()
			return err
		}
	}
	if b.c.restart {
		if mgr, err = b.restart(ctx, mgr, main, "m2"); err != nil {
			return err
		}
	}
	if b.c.budget > 0 {
		if err := b.budget(ctx, mgr, b.c.budget); err != nil {
			_ = mgr.Stop()
			return err
		}
	}
	if err := mgr.Stop(); err != nil {
		return err
	}
	if b.c.large > 0 && b.c.largeInProcess {
		if err := b.largeRun(ctx, b.c.large); err != nil {
			return err
		}
	}
	if b.c.memory {
		if err := b.memory(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) startManager(name string, workers int, qps float64, burst int) (*inprocess.Manager, error) {
	o := controllers.DefaultOptions()
	o.MaxConcurrentReconciles = workers
	return b.env.StartManager(inprocess.ManagerOptions{Options: &o, QPS: float32(qps), Burst: burst, Name: name, Log: b.log})
}
