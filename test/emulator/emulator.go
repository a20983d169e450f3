// Package emulator is a local Azure Key Vault and Entra ID for tests: an HTTPS CONNECT proxy on loopback
// that terminates TLS for the production host names (*.vault.azure.net, login.microsoftonline.com and the
// sovereign equivalents) with certificates of its own CA, so the unmodified Azure SDK clients reach it with
// only HTTPS_PROXY and SSL_CERT_FILE set. It also serves a managed identity endpoint and an admin API.
//
// Go reads HTTPS_PROXY and SSL_CERT_FILE once per process, so a test binary calls PrepareEnv in TestMain,
// before any HTTP client exists, and then Start with the Options it returned:
//
//	opts, err := emulator.PrepareEnv(stateDir)
//	...
//	emu, err := emulator.Start(ctx, cfg, opts)
//	defer emu.Close()
package emulator

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// Environment variable names the emulator sets or writes.
const (
	EnvHTTPSProxy       = "HTTPS_PROXY"
	EnvSSLCertFile      = "SSL_CERT_FILE"
	EnvNoProxy          = "NO_PROXY"
	EnvIdentityEndpoint = "IDENTITY_ENDPOINT"
	EnvIdentityHeader   = "IDENTITY_HEADER"
	EnvAdmin            = "KV_EMULATOR_ADMIN"
)

// Options configure Start.
type Options struct {
	// StateDir holds ca.pem, its key, the token signing key and the env file. Reused when it exists,
	// so the CA stays the same across runs. A temporary directory (removed by Close) when empty.
	StateDir string
	// ProxyAddr and AdminAddr are loopback listen addresses; default 127.0.0.1:0.
	ProxyAddr string
	AdminAddr string
	// ProxyListener and AdminListener, when set, are used instead of binding (PrepareEnv binds them early
	// so their ports can go into the environment first).
	ProxyListener net.Listener
	AdminListener net.Listener
	// IdentityHeader is the managed identity secret (IDENTITY_HEADER); it overrides the configuration's.
	IdentityHeader string
	// Logger receives one line per request (never a secret value or token); nil discards.
	Logger *slog.Logger
}

// Emulator is a running emulator.
type Emulator struct {
	opts           Options
	stateDir       string
	tempDir        string
	baseDir        string
	ca             *authority
	tokenKey       *rsa.PrivateKey
	tokenKID       string
	identityHeader string
	log0           *slog.Logger

	proxyLn, adminLn net.Listener
	tunnels          *connListener
	proxySrv         *http.Server
	tunnelSrv        *http.Server
	adminSrv         *http.Server
	closeOnce        sync.Once
	wg               sync.WaitGroup

	mu         sync.Mutex
	tenant     string
	lifetime   time.Duration
	identities []*identity
	vaults     map[string]*vault // by host
	faults     admin.Faults
	rnd        *rand.Rand
	events     *eventHub

	logMu sync.Mutex
	log   []admin.LogEntry
	seq   int64
}

// PrepareEnv creates (or reuses) the CA in stateDir, binds the proxy and admin listeners on 127.0.0.1,
// picks a managed identity header, and sets HTTPS_PROXY, SSL_CERT_FILE, NO_PROXY, IDENTITY_ENDPOINT,
// IDENTITY_HEADER and KV_EMULATOR_ADMIN in this process's environment. Call it before anything in the
// process makes an HTTP request (TestMain), then pass the returned Options to Start.
func PrepareEnv(stateDir string) (Options, error) {
	if stateDir == "" {
		return Options{}, errors.New("PrepareEnv needs a state directory")
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return Options{}, err
	}
	ca, err := loadOrCreateCA(stateDir)
	if err != nil {
		return Options{}, err
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Options{}, err
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = pl.Close()
		return Options{}, err
	}
	opts := Options{StateDir: stateDir, ProxyListener: pl, AdminListener: al, IdentityHeader: newVersionID()}
	for k, v := range envFor(pl.Addr().String(), al.Addr().String(), ca.file, opts.IdentityHeader) {
		if err := os.Setenv(k, v); err != nil {
			return Options{}, err
		}
	}
	return opts, nil
}

func envFor(proxyAddr, adminAddr, caFile, header string) map[string]string {
	return map[string]string{
		EnvHTTPSProxy:       "http://" + proxyAddr,
		EnvSSLCertFile:      caFile,
		EnvNoProxy:          "127.0.0.1,localhost,::1",
		EnvIdentityEndpoint: "http://" + adminAddr + "/msi/token",
		EnvIdentityHeader:   header,
		EnvAdmin:            "http://" + adminAddr,
	}
}

// Start runs an emulator for cfg (nil: an empty configuration). It stops when ctx ends or Close is called.
func Start(ctx context.Context, cfg *Config, opts Options) (*Emulator, error) {
	if cfg == nil {
		cfg = &Config{}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	e := &Emulator{opts: opts, baseDir: cfg.BaseDir, vaults: map[string]*vault{}, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), log0: opts.Logger}
	if e.log0 == nil {
		e.log0 = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e.events = newEventHub(e.log0)
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	e.stateDir = opts.StateDir
	if e.stateDir == "" {
		d, err := os.MkdirTemp("", "kv-emulator-")
		if err != nil {
			return nil, err
		}
		e.stateDir, e.tempDir = d, d
	}
	if err := os.MkdirAll(e.stateDir, 0o755); err != nil {
		return nil, err
	}
	var err error
	if e.ca, err = loadOrCreateCA(e.stateDir); err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	if e.tokenKey, err = loadOrCreateTokenKey(e.stateDir); err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	e.tokenKID = keyThumbprint(&e.tokenKey.PublicKey)
	e.identityHeader = cmpOr(opts.IdentityHeader, cfg.ManagedIdentityHeader, newVersionID())
	if err := e.load(cfg); err != nil {
		return nil, err
	}
	if e.proxyLn, err = listen(opts.ProxyListener, opts.ProxyAddr); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	if e.adminLn, err = listen(opts.AdminListener, opts.AdminAddr); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	e.tunnels = newConnListener(e.proxyLn.Addr())
	e.tunnelSrv = &http.Server{Handler: http.HandlerFunc(e.serveTunnel), ReadHeaderTimeout: 30 * time.Second, ErrorLog: discardLogger()}
	e.proxySrv = &http.Server{Handler: http.HandlerFunc(e.serveProxy), ReadHeaderTimeout: 30 * time.Second, ErrorLog: discardLogger()}
	e.adminSrv = &http.Server{Handler: e.adminHandler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: discardLogger()}
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{e.tunnelSrv, e.tunnels}, {e.proxySrv, e.proxyLn}, {e.adminSrv, e.adminLn}} {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			_ = s.srv.Serve(s.ln)
		}()
	}
	if err := e.writeEnvFile(); err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, e.Close)
	ok = true
	return e, nil
}

func listen(given net.Listener, addr string) (net.Listener, error) {
	if given != nil {
		if err := checkLoopbackAddr(given.Addr().String()); err != nil {
			return nil, err
		}
		return given, nil
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := checkLoopbackAddr(addr); err != nil {
		return nil, err
	}
	return net.Listen("tcp", addr)
}

func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// load builds the directory and vaults of a validated configuration.
func (e *Emulator) load(cfg *Config) error {
	e.tenant = cfg.TenantID
	e.lifetime = time.Hour
	if cfg.TokenLifetime != nil {
		e.lifetime = cfg.TokenLifetime.Duration
	}
	for i, spec := range cfg.Identities {
		id, err := newIdentity(spec, e.baseDir)
		if err != nil {
			return fmt.Errorf("identities[%d]: %w", i, err)
		}
		e.identities = append(e.identities, id)
	}
	for i, vs := range cfg.Vaults {
		if err := e.addVaultLocked(vs); err != nil {
			return fmt.Errorf("vaults[%d]: %w", i, err)
		}
	}
	// Configured subscriptions validate in the background: their receivers may start later.
	for i, s := range cfg.EventSubscriptions {
		if _, err := e.events.add(s); err != nil {
			return fmt.Errorf("eventSubscriptions[%d]: %w", i, err)
		}
	}
	return nil
}

// Close stops the emulator and waits for its servers.
func (e *Emulator) Close() {
	e.closeOnce.Do(func() {
		for _, s := range []*http.Server{e.proxySrv, e.tunnelSrv, e.adminSrv} {
			if s != nil {
				_ = s.Close()
			}
		}
		for _, l := range []net.Listener{e.proxyLn, e.adminLn, e.opts.ProxyListener, e.opts.AdminListener} {
			if l != nil {
				_ = l.Close()
			}
		}
		if e.tunnels != nil {
			_ = e.tunnels.Close()
		}
		e.wg.Wait()
		if e.events != nil {
			e.events.close()
		}
		if e.tempDir != "" {
			_ = os.RemoveAll(e.tempDir)
		}
	})
}

// ProxyURL is the HTTPS_PROXY value, http://127.0.0.1:PORT.
func (e *Emulator) ProxyURL() string { return "http://" + e.proxyLn.Addr().String() }

// AdminURL is the base URL of the admin API (and of the managed identity endpoint /msi/token).
func (e *Emulator) AdminURL() string { return "http://" + e.adminLn.Addr().String() }

// ManagedIdentityEndpoint is the IDENTITY_ENDPOINT value.
func (e *Emulator) ManagedIdentityEndpoint() string { return e.AdminURL() + "/msi/token" }

// IdentityHeader is the IDENTITY_HEADER value.
func (e *Emulator) IdentityHeader() string { return e.identityHeader }

// CAFile is the path of the CA certificate (the SSL_CERT_FILE value).
func (e *Emulator) CAFile() string { return e.ca.file }

// CAPEM is the CA certificate in PEM.
func (e *Emulator) CAPEM() []byte { return slices.Clone(e.ca.certPEM) }

// CAPool returns a pool holding the emulator's CA.
func (e *Emulator) CAPool() *x509.CertPool { return e.ca.pool() }

// StateDir is the state directory in use.
func (e *Emulator) StateDir() string { return e.stateDir }

// EnvFile is the path of the shell file with the export lines.
func (e *Emulator) EnvFile() string { return filepath.Join(e.stateDir, envFileName) }

// TenantID is the emulated tenant.
func (e *Emulator) TenantID() string { return e.tenant }

// Env returns the environment a client process needs.
func (e *Emulator) Env() map[string]string {
	return envFor(e.proxyLn.Addr().String(), e.adminLn.Addr().String(), e.ca.file, e.identityHeader)
}

// VaultURL returns https://{name}.vault.azure.net (or the sovereign host of the vault).
func (e *Emulator) VaultURL(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v := e.vaultByName(name); v != nil {
		return "https://" + v.host
	}
	return "https://" + vaultHost(name, admin.CloudPublic)
}

func (e *Emulator) writeEnvFile() error {
	env := e.Env()
	var b strings.Builder
	b.WriteString("# kv-emulator environment; source this file.\n")
	keys := slices.Sorted(maps.Keys(env))
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s='%s'\n", k, strings.ReplaceAll(env[k], "'", `'\''`))
	}
	return writeFileAtomic(e.EnvFile(), []byte(b.String()), 0o600)
}

// vaultByName finds a vault by name (any cloud); e.mu held.
func (e *Emulator) vaultByName(name string) *vault {
	hosts := slices.Sorted(maps.Keys(e.vaults))
	for _, h := range hosts {
		if v := e.vaults[h]; strings.EqualFold(v.name, name) {
			return v
		}
	}
	return nil
}

// identityByRef finds an identity by name, client id or object id; e.mu held.
func (e *Emulator) identityByRef(ref string) *identity {
	for _, id := range e.identities {
		if id.matches(ref) {
			return id
		}
	}
	return nil
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
