// Command kv-emulator runs the local Azure Key Vault and Entra ID emulator.
//
//	kv-emulator --config FILE --state-dir DIR [--proxy-addr 127.0.0.1:0] [--admin-addr 127.0.0.1:0] [-v]
//
// It writes DIR/ca.pem and DIR/env (shell export lines), prints one ready line and serves until
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vaultsync/vaultsync/test/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "kv-emulator:", err)
		os.Exit(1)
	}
}

// run starts the emulator and serves until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kv-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (YAML)")
	stateDir := fs.String("state-dir", "", "directory for ca.pem, keys and the env file (reused across runs)")
	proxyAddr := fs.String("proxy-addr", "127.0.0.1:0", "loopback address of the HTTPS CONNECT proxy")
	adminAddr := fs.String("admin-addr", "127.0.0.1:0", "loopback address of the admin API and managed identity endpoint")
	verbose := fs.Bool("v", false, "log every request to stderr (never secret values or tokens)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" || *stateDir == "" {
		fs.Usage()
		return errors.New("--config and --state-dir are required")
	}
	cfg, err := emulator.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	opts := emulator.Options{StateDir: *stateDir, ProxyAddr: *proxyAddr, AdminAddr: *adminAddr}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	emu, err := emulator.Start(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer emu.Close()
	if _, err := fmt.Fprintf(stdout, "kv-emulator ready proxy=%s admin=%s env=%s\n", emu.ProxyURL(), emu.AdminURL(), emu.EnvFile()); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
