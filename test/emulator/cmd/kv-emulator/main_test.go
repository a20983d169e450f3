package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// TestRunServesTheExampleConfig runs the command on config.example.yaml and uses it the way the README
// says: only HTTPS_PROXY and SSL_CERT_FILE, production URL, ClientSecretCredential.
func TestRunServesTheExampleConfig(t *testing.T) {
	// Go reads the proxy environment once, so the proxy port is chosen before any client exists.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := ln.Addr().String()
	_ = ln.Close()
	state := t.TempDir()
	t.Setenv("HTTPS_PROXY", "http://"+proxyAddr)
	t.Setenv("SSL_CERT_FILE", filepath.Join(state, "ca.pem"))

	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--config", "../../config.example.yaml", "--state-dir", state, "--proxy-addr", proxyAddr}, pw, io.Discard)
		_ = pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v (run: %v)", err, <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if !regexp.MustCompile(`^kv-emulator ready proxy=http://127\.0\.0\.1:\d+ admin=http://127\.0\.0\.1:\d+ env=\S+/env\n$`).MatchString(line) {
		t.Fatalf("ready line %q", line)
	}
	env, err := os.ReadFile(filepath.Join(state, "env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"HTTPS_PROXY", "SSL_CERT_FILE", "NO_PROXY", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "KV_EMULATOR_ADMIN"} {
		if !strings.Contains(string(env), "export "+k+"=") {
			t.Errorf("env file lacks %s:\n%s", k, env)
		}
	}

	cred, err := azidentity.NewClientSecretCredential("8d1c7e4a-3f2b-4a6c-9e0d-5b7a1c2e3f40", "0b5f3d6e-1c2a-4e8b-9f7d-2a3c4b5d6e7f", "demo-client-secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := azsecrets.NewClient("https://demo.vault.azure.net", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	if _, err := client.SetSecret(cctx, "from-cmd-test", azsecrets.SetSecretParameters{Value: ptr("hello")}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := client.GetSecret(cctx, "from-cmd-test", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Value != "hello" {
		t.Fatalf("got %q", *got.Value)
	}
	seeded, err := client.GetSecret(cctx, "api-key", "", nil)
	if err != nil || *seeded.Value != "second-version" {
		t.Fatalf("seeded secret: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	err := run(t.Context(), []string{"--config", "../../config.example.yaml", "--state-dir", t.TempDir(), "--proxy-addr", "0.0.0.0:0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Fatalf("want a loopback error, got %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
