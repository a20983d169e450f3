// Command demo is `make demo`: on a fresh machine it builds what is missing,
// starts a local control plane and the Key Vault emulator, runs the operator
// (bin/manager) against them with workload identity, syncs the sample
// VaultSecrets, prints what they produced with every value masked, rotates
// a secret in the emulator and shows the new version arriving, then pushes a
// Secret into the vault with a VaultPushSecret (config/samples/push). It stops
// everything it started when it ends, fails or is interrupted.
//
//	go run ./hack/demo [--state-dir .dev/demo] [--skip-build] [--timeout 5m]
//
// Its first line says how long a first run takes (Banner); each step prints
// a line when it starts, "... Ns" every 30 seconds while it runs, and its
// duration and the time since the start when it ends. It builds only what
// it runs: etcd, kube-apiserver and kubectl, not kube-controller-manager,
// which only the test suites need (the demo deletes nothing, so it needs no
// garbage collector).
//
// Exit status: 0 on success, 1 on failure, 130 when interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/test/testenv"
)

// Banner is the demo's first line. The Makefile's demo target prints the
// same line (DEMO_BANNER, checked by TestBannerMatchesMakefile) before it
// compiles this program, and passes --started-at so it is not printed twice.
// 956 s is the time `make demo` took on an empty Go module and build cache
// on 2 cores (etcd 81 s, kube-apiserver 428 s, kube-controller-manager 125 s,
// kubectl 27 s, the rest downloads and the manager), measured while it still
// built kube-controller-manager.
const Banner = "vaultsync demo: a first run on 2 cores with empty Go caches took 956 s, measured (" +
	"125 s of it for kube-controller-manager, which the demo no longer builds), almost all of it building the " +
	"control plane once; later runs take under a minute (22 s measured with nothing to rebuild)."

func main() {
	ctrllog.SetLogger(logr.Discard()) // envtest's own chatter is not part of the demo's output
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root, err := testenv.RepoRoot()
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{root: root}
	fs.StringVar(&o.stateDir, "state-dir", filepath.Join(root, ".dev", "demo"),
		"directory for the emulator's state and the operator's log (manager.log)")
	fs.StringVar(&o.managerBin, "manager-bin", filepath.Join(root, "bin", "manager"), "the operator binary")
	fs.StringVar(&o.emulatorBin, "emulator-bin", filepath.Join(root, "bin", "kv-emulator"), "the emulator binary")
	fs.BoolVar(&o.skipBuild, "skip-build", false, "do not run make build / make emulator (the binaries must exist)")
	fs.StringVar(&o.namespace, "namespace", "demo", "namespace of the sample VaultSecrets")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long (control plane build excluded)")
	startedAt := fs.Int64("started-at", 0,
		"Unix time the run started at; set by make demo, which has printed the first line and built this program")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	clock := time.Now()
	if *startedAt > 0 {
		clock = time.Unix(*startedAt, 0)
	} else {
		_, _ = fmt.Fprintln(stdout, Banner)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop() // further signals stay caught while cleaning up, which is bounded

	d := &demo{options: o, out: stdout, clock: clock}
	err = d.run(ctx)
	interrupted := ctx.Err() != nil
	d.cleanup()
	switch {
	case interrupted:
		_, _ = fmt.Fprintln(stderr, "demo: interrupted; everything it started is stopped")
		return 130
	case err != nil:
		d.reportError(stderr, err)
		return 1
	}
	_, _ = fmt.Fprintf(stdout, "\ndemo finished in %s (%s with the builds): the operator synced %d VaultSecrets, delivered a rotated secret, pushed a Secret into Key Vault and fanned a certificate out to %d namespaces.\n",
		seconds(time.Since(d.started)), elapsed(time.Since(d.clock)), d.env.Synced, len(fanoutNamespaces))
	return 0
}

// stepError names the step that failed.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func (d *demo) reportError(w io.Writer, err error) {
	var se *stepError
	if errors.As(err, &se) {
		_, _ = fmt.Fprintf(w, "\ndemo failed while %s:\n  %v\n", se.step, se.err)
	} else {
		_, _ = fmt.Fprintf(w, "\ndemo failed: %v\n", err)
	}
	if d.env != nil && d.env.Manager != nil {
		if tail := tailFile(d.env.ManagerLog, 20); tail != "" {
			_, _ = fmt.Fprintf(w, "\nlast lines of the operator log (%s):\n%s\n", d.rel(d.env.ManagerLog), indent(tail, "  "))
		}
	}
}
