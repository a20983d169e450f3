package emulator_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/vaultsync/vaultsync/test/emulator"
)

// emu is the emulator shared by the package's tests. Go reads HTTPS_PROXY and SSL_CERT_FILE once per
// process, so TestMain sets them (PrepareEnv) before any client exists.
var emu *emulator.Emulator

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kv-emulator-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	opts, err := emulator.PrepareEnv(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "PrepareEnv:", err)
		return 1
	}
	cfg, err := emulator.LoadConfig("config.example.yaml")
	if err != nil {
		fmt.Fprintln(os.Stderr, "LoadConfig:", err)
		return 1
	}
	e, err := emulator.Start(context.Background(), cfg, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Start:", err)
		return 1
	}
	defer e.Close()
	emu = e
	return m.Run()
}

var counter atomic.Int64

// guid returns a random GUID.
func guid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// uniqueName returns a short unique name usable as vault, identity or object name.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%04d", prefix, counter.Add(1))
}

// secretIdentity adds a client-secret identity and returns its client id and secret.
func secretIdentity(t *testing.T) (name, clientID, secret string) {
	t.Helper()
	name, clientID, secret = uniqueName("app"), guid(), "s3cr3t-"+guid()
	if err := emu.AddIdentity(emulator.Identity{Name: name, ClientID: clientID, ClientSecrets: []string{secret}}); err != nil {
		t.Fatal(err)
	}
	return name, clientID, secret
}

// newVault adds a vault with role assignments and returns its name and URL.
func newVault(t *testing.T, roles ...emulator.RoleAssignment) (string, string) {
	t.Helper()
	name := uniqueName("vt")
	if err := emu.AddVault(emulator.Vault{Name: name, RoleAssignments: roles}); err != nil {
		t.Fatal(err)
	}
	return name, emu.VaultURL(name)
}

// noRetry makes client errors surface at once.
func noRetry() policy.RetryOptions { return policy.RetryOptions{MaxRetries: -1} }

func secretCredential(t *testing.T, clientID, secret string) azcore.TokenCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(emu.TenantID(), clientID, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func secretsClient(t *testing.T, vaultURL string, cred azcore.TokenCredential) *azsecrets.Client {
	t.Helper()
	c, err := azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: noRetry()}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keysClient(t *testing.T, vaultURL string, cred azcore.TokenCredential) *azkeys.Client {
	t.Helper()
	c, err := azkeys.NewClient(vaultURL, cred, &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: noRetry()}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawResponse is a decoded raw HTTP answer.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r rawResponse) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// raw sends a request with the default transport (HTTPS_PROXY and SSL_CERT_FILE from the environment).
func raw(t *testing.T, method, url, token string, body string) rawResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctxT(t), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// mint returns an access token for an identity.
func mint(t *testing.T, principal string) string {
	t.Helper()
	tok, err := emu.MintToken(emulator.TokenRequest{Principal: principal})
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func ptr[T any](v T) *T { return &v }

// azcoreCloud returns client options for a cloud whose authority is login.
func azcoreCloud(login string) azcore.ClientOptions {
	return azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: "https://" + login + "/"}}
}
