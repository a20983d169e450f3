// Package testenv is the one set-up of a local vaultsync environment for the
// test suites, the benchmarks, make demo (hack/demo) and make dev-up
// (hack/dev): the local control plane of test/controlplane, the Key Vault
// emulator, and workload identity federated for a namespace. It runs the
// built kv-emulator and manager binaries as subprocesses (Up: the end-to-end,
// failover and node suites, the demo and the dev environment); its
// subpackage inprocess runs the emulator, and the manager when asked, inside
// the test process instead (the controller suite, the conformance checks,
// the benchmarks, the fault suite and the bad-input catalogue).
//
// Every subprocess gets its own process group, so stopping it also stops
// anything it started, and the kernel sends it SIGTERM if its parent dies.
// Only loopback addresses are used.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a subprocess running in its own process group.
type Process struct {
	// Name is a short label used in errors ("operator", "emulator").
	Name string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
	once sync.Once
}

// StartProcess starts cmd in a new process group. The process receives
// SIGTERM if the calling process dies without stopping it.
func StartProcess(name string, cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id (also the id of its process group).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its error if so.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := syscall.Kill(-p.Pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// Stop sends SIGTERM to the process group and waits up to grace for the
// process to exit, then kills the group. It returns the process' exit error
// (nil after a clean exit on SIGTERM). It is safe to call more than once.
func (p *Process) Stop(grace time.Duration) error {
	p.once.Do(func() {
		if exited, _ := p.Exited(); !exited {
			_ = p.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(grace):
				_ = p.Signal(syscall.SIGKILL)
				<-p.done
			}
		}
	})
	<-p.done
	return p.err
}

// Alive reports whether a process with this pid exists and is not a zombie
// (an exited process nobody has reaped yet).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no procfs: trust kill
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// Tail returns the last n lines of a file ("" if it cannot be read).
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	b = bytes.TrimRight(b, "\n")
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// childEnv is the environment of a subprocess: the caller's, minus anything
// that would send it elsewhere (proxies, CA bundles, kubeconfig, Azure and
// managed-identity settings), plus extra ("KEY=value").
func childEnv(extra ...string) []string {
	drop := func(k string) bool {
		switch strings.ToUpper(k) {
		case "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR",
			"KUBECONFIG", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET",
			"IMDS_ENDPOINT", "KV_EMULATOR_ADMIN":
			return true
		}
		return strings.HasPrefix(strings.ToUpper(k), "AZURE_")
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop(k) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}
