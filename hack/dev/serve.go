package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vaultsync/vaultsync/test/testenv"
)

// serve is the supervisor: it starts the environment, writes the env and
// pid files, and keeps everything running until SIGTERM or SIGINT.
func serve(l layout, bins testenv.Binaries, out io.Writer) error {
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.WriteFile(l.pidFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	defer func() {
		for _, p := range []string{l.envFile(), l.readyFile(), l.pidFile()} {
			_ = os.Remove(p)
		}
	}()

	step := func(title string, fn func(context.Context) (string, error)) error {
		_, _ = fmt.Fprintf(out, "==> %s ...\n", title)
		start := time.Now()
		detail, err := fn(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", title, err)
		}
		if detail != "" {
			detail = ", " + detail
		}
		_, _ = fmt.Fprintf(out, "    ok (%.1fs%s)\n", time.Since(start).Seconds(), detail)
		return nil
	}
	withNode := os.Getenv("DEV_NODE") == "1"
	env, err := testenv.Up(testenv.Options{
		Root: l.root, StateDir: l.stateDir(), Namespace: namespace, Binaries: bins, EndpointSlices: withNode,
	}, step)
	defer func() {
		_, _ = fmt.Fprintf(out, "==> stopping %s\n", strings.Join(env.Down(), ", "))
	}()
	if err != nil {
		if env.Manager != nil {
			_, _ = fmt.Fprintf(out, "last lines of %s:\n%s\n", env.ManagerLog, testenv.Tail(env.ManagerLog, 20))
		}
		return err
	}
	if withNode {
		agent, err := startNode(ctx, l, env, step)
		if err != nil {
			return err
		}
		defer agent.Stop()
	}
	if err := writeEnv(l, env); err != nil {
		return err
	}
	if err := os.WriteFile(l.readyFile(), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "ready: %d VaultSecrets synced in namespace %s\n", env.Synced, namespace)

	select {
	case <-ctx.Done():
	case <-env.Manager.Done():
		// Keep the rest up for inspection; the log says what happened.
		_, _ = fmt.Fprintf(out, "the operator exited; see %s. The control plane and emulator keep running until dev down.\n", env.ManagerLog)
		<-ctx.Done()
	}
	return nil
}

// writeEnv writes the kubeconfig to a stable place and the env file.
func writeEnv(l layout, env *testenv.Env) error {
	kc, err := os.ReadFile(env.CP.Kubeconfig)
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.kubeconfig(), kc, 0o600); err != nil {
		return err
	}
	vars := map[string]string{
		"KUBECONFIG":        l.kubeconfig(),
		"KV_EMULATOR_ADMIN": env.Emulator.AdminURL,
	}
	for _, kv := range env.Emulator.ClientEnv() {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by make dev-up; removed by make dev-down. Source it: . " + l.envFile() + "\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(vars[k]))
	}
	kubectlDir, err := filepath.Abs(filepath.Dir(env.CP.Kubectl()))
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "export PATH=%s:\"$PATH\"\n", shellQuote(kubectlDir))
	return os.WriteFile(l.envFile(), []byte(b.String()), 0o600)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
