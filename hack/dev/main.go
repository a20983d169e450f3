// Command dev is `make dev-up` and `make dev-down`: the environment of
// `make demo` (local control plane, Key Vault emulator, operator, samples)
// kept running in the background for exploring by hand.
//
//	dev up   [--dir .dev] [--skip-build]   start it; print how to use it
//	dev down [--dir .dev]                  stop it and remove its state
//
// up starts a supervisor (`dev serve`) in its own session that owns every
// process, writes DIR/env (source it for KUBECONFIG, HTTPS_PROXY,
// SSL_CERT_FILE, NO_PROXY, KV_EMULATOR_ADMIN and kubectl on PATH) and
// DIR/dev.pid, and stops everything on SIGTERM. Both commands are safe to
// run twice.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/test/testenv"
)

// namespace receives the samples, as in make demo.
const namespace = "demo"

func main() {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// layout names the files of a dev environment below --dir.
type layout struct {
	root, dir string
}

func (l layout) envFile() string    { return filepath.Join(l.dir, "env") }
func (l layout) pidFile() string    { return filepath.Join(l.dir, "dev.pid") }
func (l layout) stateDir() string   { return filepath.Join(l.dir, "dev") }
func (l layout) readyFile() string  { return filepath.Join(l.stateDir(), "ready") }
func (l layout) kubeconfig() string { return filepath.Join(l.stateDir(), "kubeconfig") }
func (l layout) serveLog() string   { return filepath.Join(l.stateDir(), "supervisor.log") }

func run(args []string, stdout, stderr io.Writer) int {
	root, err := testenv.RepoRoot()
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "dev:", err)
		return 1
	}
	if len(args) == 0 {
		_, _ = fmt.Fprintln(stderr, "usage: dev up|down [--dir DIR] [--skip-build]")
		return 2
	}
	fs := flag.NewFlagSet("dev "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", filepath.Join(root, ".dev"), "directory of the environment's state, env file and pid file")
	skipBuild := fs.Bool("skip-build", false, "do not run make build / make emulator (bin/manager and bin/kv-emulator must exist)")
	managerBin := fs.String("manager-bin", filepath.Join(root, "bin", "manager"), "the operator binary")
	emulatorBin := fs.String("emulator-bin", filepath.Join(root, "bin", "kv-emulator"), "the emulator binary")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "dev:", err)
		return 1
	}
	l := layout{root: root, dir: abs}
	bins := testenv.Binaries{Manager: *managerBin, Emulator: *emulatorBin}
	switch args[0] {
	case "up":
		err = up(l, bins, *skipBuild, stdout)
	case "down":
		err = down(l, stdout)
	case "serve":
		err = serve(l, bins, stdout)
	default:
		_, _ = fmt.Fprintf(stderr, "dev: unknown command %q (want up or down)\n", args[0])
		return 2
	}
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "dev:", err)
		return 1
	}
	return 0
}

// running returns the supervisor's pid when it runs.
func running(l layout) (int, bool) {
	b, err := os.ReadFile(l.pidFile())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !testenv.Alive(pid) {
		return 0, false
	}
	// A reused pid belongs to some other program: only ours has "serve"
	// and our --dir on its command line.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && (!strings.Contains(string(cmdline), "serve") || !strings.Contains(string(cmdline), l.dir)) {
		return 0, false
	}
	return pid, true
}

func up(l layout, bins testenv.Binaries, skipBuild bool, out io.Writer) error {
	if pid, ok := running(l); ok {
		_, _ = fmt.Fprintf(out, "the dev environment already runs (supervisor pid %d)\n", pid)
		printUsage(l, out)
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := build(ctx, l, skipBuild, out); err != nil {
		return err
	}
	for _, b := range []string{bins.Manager, bins.Emulator} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s is missing: run make build emulator", b)
		}
	}
	// Leftovers of an environment that died without dev down.
	_ = os.RemoveAll(l.stateDir())
	_ = os.Remove(l.envFile())
	if err := os.MkdirAll(l.stateDir(), 0o700); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.Create(l.serveLog())
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(self, "serve", "--dir", l.dir, "--manager-bin", bins.Manager, "--emulator-bin", bins.Emulator)
	cmd.Dir = l.root
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // survives this shell and make
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the supervisor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Relay the supervisor's progress lines until it is ready.
	shown := 0
	relay := func() {
		b, _ := os.ReadFile(l.serveLog())
		if len(b) > shown {
			_, _ = out.Write(b[shown:])
			shown = len(b)
		}
	}
	deadline := time.After(5 * time.Minute)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		relay()
		if _, err := os.Stat(l.readyFile()); err == nil {
			break
		}
		select {
		case err := <-exited:
			relay()
			return fmt.Errorf("the dev environment did not start (%v); its log is %s", err, l.serveLog()) //nolint:errorlint // err is nil on a clean exit: %w would print %!w(<nil>)
		case <-deadline:
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
			return fmt.Errorf("the dev environment was not ready within 5 minutes; stopping it (log: %s)", l.serveLog())
		case <-ctx.Done():
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
			<-exited //nolint:errcheck // waiting for the exit; the SIGTERM we sent is its cause
			return errors.New("interrupted; the dev environment is stopped")
		case <-tick.C:
		}
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	_, _ = fmt.Fprintf(out, "\nthe dev environment runs in the background (supervisor pid %d; make dev-down stops it)\n", pid)
	printUsage(l, out)
	return nil
}

func printUsage(l layout, out io.Writer) {
	rel := func(p string) string {
		if r, err := filepath.Rel(l.root, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	_, _ = fmt.Fprintf(out, `
  source %s    # KUBECONFIG, HTTPS_PROXY (the emulator), SSL_CERT_FILE, NO_PROXY, KV_EMULATOR_ADMIN, kubectl on PATH

  kubectl get vaultsecrets -A
  kubectl describe vaultsecret -n %[2]s db-credentials
  kubectl describe secret -n %[2]s db-credentials     # key names and sizes, no values
  curl -s -X PUT "$KV_EMULATOR_ADMIN/admin/vaults/demo/secrets/DbPassword" -d '{"value":"new-password"}'
  kubectl annotate vaultsecret -n %[2]s db-credentials vaultsync.io/force-sync="$(date +%%s)" --overwrite
  tail -f %[3]s

The env file routes this shell's HTTPS through the emulator, which serves only Azure names: open a new shell for anything else.
`, rel(l.envFile()), namespace, rel(filepath.Join(l.stateDir(), "manager.log")))
}

func build(ctx context.Context, l layout, skip bool, out io.Writer) error {
	binDir, err := testenv.BinDir()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(binDir, "kube-apiserver")); err != nil {
		_, _ = fmt.Fprintf(out, "==> building the control plane into %s from the Go module proxy; this takes about 7 minutes on 2 cores, once ...\n", binDir)
		if err := runMake(ctx, l.root, "envtest-bins"); err != nil {
			return err
		}
	}
	if skip {
		return nil
	}
	_, _ = fmt.Fprintln(out, "==> building bin/manager and bin/kv-emulator (make build emulator) ...")
	return runMake(ctx, l.root, "build", "emulator")
}

func runMake(ctx context.Context, root string, targets ...string) error {
	cmd := exec.CommandContext(ctx, "make", targets...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make %s: %w\n%s", strings.Join(targets, " "), err, b)
	}
	return nil
}

func down(l layout, out io.Writer) error {
	pid, ok := running(l)
	if !ok {
		_, _ = fmt.Fprintln(out, "the dev environment is not running")
	} else {
		_, _ = fmt.Fprintf(out, "==> stopping the dev environment (supervisor pid %d) ...\n", pid)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		err := testenv.Poll(context.Background(), time.Minute, 200*time.Millisecond, func() (bool, error) {
			return !testenv.Alive(pid), nil
		})
		if err != nil {
			// The supervisor leads its own session and process group: the
			// control plane it started goes with it.
			_, _ = fmt.Fprintf(out, "    the supervisor did not stop within a minute; killing its process group\n")
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		_, _ = fmt.Fprintln(out, "    ok")
	}
	for _, p := range []string{l.envFile(), l.pidFile(), l.stateDir()} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	_ = os.Remove(l.dir) // only when empty: make demo keeps its logs there too
	_, _ = fmt.Fprintf(out, "removed %s, %s and %s\n", l.envFile(), l.pidFile(), l.stateDir())
	return nil
}
