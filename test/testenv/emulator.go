package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// EmulatorOptions configure StartEmulator.
type EmulatorOptions struct {
	// Binary is the kv-emulator binary (make emulator builds bin/kv-emulator).
	Binary string
	// Config is the emulator configuration (hack/demo/emulator.yaml).
	Config string
	// StateDir keeps the emulator's CA, signing key and env file.
	StateDir string
	// LogFile receives the emulator's output (default StateDir/../emulator.log).
	LogFile string
	// ReadyTimeout bounds the wait for the ready line (default 30s).
	ReadyTimeout time.Duration
}

// Emulator is a running kv-emulator process.
type Emulator struct {
	*Process
	// ProxyURL is the HTTPS CONNECT proxy (HTTPS_PROXY of the clients).
	ProxyURL string
	// AdminURL is the admin API (KV_EMULATOR_ADMIN).
	AdminURL string
	// EnvFile is the shell file of the client environment.
	EnvFile string
	// Env is the client environment the emulator reports: HTTPS_PROXY,
	// SSL_CERT_FILE, NO_PROXY, IDENTITY_ENDPOINT, IDENTITY_HEADER, KV_EMULATOR_ADMIN.
	Env map[string]string
	// Admin drives the emulator through its admin API.
	Admin *admin.Client
	// LogFile holds the emulator's output.
	LogFile string
}

// StartEmulator runs the kv-emulator binary and waits for its ready line.
func StartEmulator(ctx context.Context, o EmulatorOptions) (*Emulator, error) {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, err
	}
	if o.LogFile == "" {
		o.LogFile = filepath.Join(filepath.Dir(o.StateDir), "emulator.log")
	}
	logf, err := os.Create(o.LogFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Binary, "--config", o.Config, "--state-dir", o.StateDir)
	cmd.Env = childEnv()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		_ = logf.Close()
		return nil, err
	}
	p, err := StartProcess("emulator", cmd)
	if err != nil {
		_ = logf.Close()
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		defer func() { _ = logf.Close() }()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			_, _ = fmt.Fprintln(logf, line)
			if strings.HasPrefix(line, "kv-emulator ready ") {
				select {
				case lines <- line:
				default:
				}
			}
		}
		_, _ = io.Copy(logf, stdout)
	}()

	timer := time.NewTimer(o.ReadyTimeout)
	defer timer.Stop()
	var ready string
	select {
	case ready = <-lines:
	case <-p.Done():
		return nil, fmt.Errorf("kv-emulator exited before it was ready: %v\n%s", p.err, Tail(o.LogFile, 10)) //nolint:errorlint // err is nil on a clean exit: %w would print %!w(<nil>)
	case <-timer.C:
		_ = p.Stop(5 * time.Second)
		return nil, fmt.Errorf("kv-emulator printed no ready line within %s\n%s", o.ReadyTimeout, Tail(o.LogFile, 10))
	case <-ctx.Done():
		_ = p.Stop(5 * time.Second)
		return nil, ctx.Err()
	}
	e := &Emulator{Process: p, LogFile: o.LogFile}
	for _, f := range strings.Fields(strings.TrimPrefix(ready, "kv-emulator ready ")) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "proxy":
			e.ProxyURL = v
		case "admin":
			e.AdminURL = v
		case "env":
			e.EnvFile = v
		}
	}
	if e.ProxyURL == "" || e.AdminURL == "" {
		_ = p.Stop(5 * time.Second)
		return nil, fmt.Errorf("cannot read the kv-emulator ready line %q", ready)
	}
	e.Admin = admin.NewClient(e.AdminURL)
	if e.Env, err = e.Admin.Env(ctx); err != nil {
		_ = p.Stop(5 * time.Second)
		return nil, fmt.Errorf("reading the emulator's client environment: %w", err)
	}
	return e, nil
}

// ClientEnv is the environment an Azure SDK client process needs to reach
// the emulator: HTTPS_PROXY, SSL_CERT_FILE and NO_PROXY, as "KEY=value".
// Managed identity variables are left out on purpose.
func (e *Emulator) ClientEnv() []string {
	var env []string
	for _, k := range []string{"HTTPS_PROXY", "SSL_CERT_FILE", "NO_PROXY"} {
		env = append(env, k+"="+e.Env[k])
	}
	return env
}
