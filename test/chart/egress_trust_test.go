/*
Copyright 2026 The vaultsync Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package chart

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
)

// The manager's egress is checked in a child process, the test binary itself
// with egressChildEnv set: Go reads HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE and
// SSL_CERT_DIR once per process, so each environment needs a process of its own.
const (
	egressChildEnv = "VAULTSYNC_EGRESS_CHILD"
	// egressArgEnv carries the child's argument: a URL to GET, URLs (one a
	// line) to decide the proxy of, or a PEM file to verify.
	egressArgEnv = "VAULTSYNC_EGRESS_ARG"
	// vaultHost is the name the test vault answers to. Only the test proxy
	// knows it; the child has no DNS, so nothing leaves the loopback interface.
	vaultHost = "kv.vaultsync.test"
	// serviceHost stands in for the ClusterIP of default/kubernetes, which the
	// kubelet exposes to every pod as KUBERNETES_SERVICE_HOST. Only proxy
	// decisions are computed for it; nothing is sent there.
	serviceHost = "10.96.0.1"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(egressChildEnv); mode != "" {
		os.Exit(egressChild(mode, os.Getenv(egressArgEnv)))
	}
	os.Exit(m.Run())
}

// egressChild runs one probe the way the manager would and prints its result.
func egressChild(mode, arg string) int {
	// No DNS: a request that bypassed the proxy fails here instead of leaving the machine.
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in the egress test")
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch mode {
	case "get":
		// The Azure SDK's own pipeline and default transport, as the Key Vault and
		// Entra ID clients of the manager use them.
		pl := azruntime.NewPipeline("vaultsync-egress-test", "v0", azruntime.PipelineOptions{},
			&policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}})
		req, err := azruntime.NewRequest(ctx, http.MethodGet, arg)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		resp, err := pl.Do(req)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		fmt.Printf("status %d: %s\n", resp.StatusCode, body)
		if resp.StatusCode != http.StatusOK {
			return 1
		}
		return 0
	case "proxy":
		// What net/http (the Azure SDK and client-go alike) decides for each URL.
		for _, raw := range strings.Fields(arg) {
			u, err := url.Parse(raw)
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			p, err := http.ProxyFromEnvironment(&http.Request{URL: u})
			switch {
			case err != nil:
				fmt.Println(raw, "error:", err)
			case p == nil:
				fmt.Println(raw, "direct")
			default:
				fmt.Println(raw, p.String())
			}
		}
		return 0
	case "verify":
		// Is this certificate trusted by the system pool Go builds from the environment?
		b, err := os.ReadFile(arg)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		block, _ := pem.Decode(b)
		if block == nil {
			fmt.Println("error: no PEM block")
			return 1
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		if _, err := cert.Verify(x509.VerifyOptions{}); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("trusted")
		return 0
	}
	fmt.Println("unknown mode", mode)
	return 2
}

// TestEgressThroughProxyTrustsExtraCA renders the chart with a proxy and a CA
// ConfigMap, lays the CA out as the kubelet mounts a ConfigMap, and runs the
// Azure SDK's transport with the rendered variables: a request to a vault that
// only the proxy can reach, with a certificate signed by that CA, succeeds.
func TestEgressThroughProxyTrustsExtraCA(t *testing.T) {
	g := NewWithT(t)
	ca := newTestCA(t, "vaultsync egress test CA")
	other := newTestCA(t, "unrelated CA")

	vault := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "from the vault")
	}))
	vault.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	vault.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, vaultHost)}, MinVersion: tls.VersionTLS12}
	vault.StartTLS()
	t.Cleanup(vault.Close)
	proxy := newConnectProxy(t, vaultHost+":443", vault.Listener.Addr().String())

	m := renderChart(t, fmt.Sprintf(`
proxy:
  httpsProxy: %[1]s
  httpProxy: %[1]s
  noProxy: .corp.example.com,10.20.0.0/16
extraCACertificates:
  configMap:
    name: corp-ca
    key: ca-bundle.pem
`, proxy.URL))
	pod := m.deployment(t).Spec.Template.Spec
	g.Expect(pod.Volumes).To(HaveLen(1))
	g.Expect(pod.Containers[0].VolumeMounts).To(HaveLen(1))
	items := pod.Volumes[0].ConfigMap.Items
	g.Expect(items).To(HaveLen(1))
	g.Expect(items[0].Key).To(Equal("ca-bundle.pem"))

	// The ConfigMap's key, a bundle of two CAs, mounted as the kubelet does
	// (files are symlinks through ..data), at a host path standing in for the mount.
	mnt := mountConfigMap(t, items[0].Path, append(other.pem, ca.pem...))
	env := podEnv(t, pod.Containers[0], map[string]string{pod.Containers[0].VolumeMounts[0].MountPath: mnt})
	g.Expect(env).To(HaveKey("SSL_CERT_DIR"))
	g.Expect(env["NO_PROXY"]).To(ContainSubstring(serviceHost), "the kubelet expands $(KUBERNETES_SERVICE_HOST)")

	// Through the proxy, and trusted through SSL_CERT_DIR.
	out, err := runEgressChild(t, env, "get", "https://"+vaultHost+"/secrets/db-password")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("status 200: from the vault"))
	g.Expect(proxy.connects()).To(Equal([]string{vaultHost + ":443"}))

	// Without SSL_CERT_DIR the same request reaches the vault through the proxy
	// but its certificate is not trusted: the trust came from the mount.
	delete(env, "SSL_CERT_DIR")
	out, err = runEgressChild(t, env, "get", "https://"+vaultHost+"/secrets/db-password")
	g.Expect(err).To(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("certificate signed by unknown authority"))
	g.Expect(proxy.connects()).To(HaveLen(2))
}

// TestEgressNoProxyKeepsTheAPIServerDirect computes, with the rendered
// variables, where net/http sends each kind of request the manager makes.
func TestEgressNoProxyKeepsTheAPIServerDirect(t *testing.T) {
	g := NewWithT(t)
	const proxyURL = "http://proxy.example.com:3128"
	c := renderChart(t, `
proxy:
  httpsProxy: `+proxyURL+`
  httpProxy: `+proxyURL+`
  noProxy: .corp.example.com,10.20.0.0/16
`).deployment(t).Spec.Template.Spec.Containers[0]
	env := podEnv(t, c, nil)
	want := map[string]string{
		// The in-cluster client dials https://$KUBERNETES_SERVICE_HOST:443.
		"https://" + serviceHost + ":443/api": "direct",
		// In-cluster names.
		"https://kubernetes.default.svc/api":      "direct",
		"https://webhook.shop.svc.cluster.local/": "direct",
		// Managed identity's metadata endpoint, even with HTTP_PROXY.
		"http://169.254.169.254/metadata/identity/oauth2/token": "direct",
		// proxy.noProxy: a domain suffix and a CIDR.
		"https://vault.corp.example.com/": "direct",
		"https://10.20.3.4/":              "direct",
		// Azure, and anything else, through the proxy.
		"https://demo.vault.azure.net/secrets/x":          proxyURL,
		"https://login.microsoftonline.com/tenant/oauth2": proxyURL,
		"http://example.com/":                             proxyURL,
	}
	var urls []string
	for u := range want {
		urls = append(urls, u)
	}
	out, err := runEgressChild(t, env, "proxy", strings.Join(urls, "\n"))
	g.Expect(err).NotTo(HaveOccurred(), out)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		u, decision, _ := strings.Cut(line, " ")
		got[u] = decision
	}
	g.Expect(got).To(Equal(want))
}

// TestExtraCACertificatesKeepSystemRoots checks that the rendered SSL_CERT_DIR
// adds to the system roots (which Entra ID and Key Vault chain to) instead of
// replacing them, as SSL_CERT_FILE pointing at the CA alone would.
func TestExtraCACertificatesKeepSystemRoots(t *testing.T) {
	g := NewWithT(t)
	root := systemRoot(t)
	c := renderChart(t, valuesCAConfigMap).deployment(t).Spec.Template.Spec.Containers[0]
	ca := newTestCA(t, "vaultsync egress test CA")
	mnt := mountConfigMap(t, "ca.crt", ca.pem)
	env := podEnv(t, c, map[string]string{extraCADir: mnt})

	out, err := runEgressChild(t, env, "verify", root)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("trusted"))

	// The same check fails where the CA replaces the roots, so it can tell.
	delete(env, "SSL_CERT_DIR")
	env["SSL_CERT_FILE"] = filepath.Join(mnt, "ca.crt")
	env["SSL_CERT_DIR"] = mnt
	out, err = runEgressChild(t, env, "verify", root)
	g.Expect(err).To(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("unknown authority"))
}

// podEnv returns the container's plain variables as the kubelet would set
// them: $(KUBERNETES_SERVICE_HOST) expanded to serviceHost, and container
// paths in SSL_CERT_DIR mapped to the host directories standing in for them.
func podEnv(t testing.TB, c corev1.Container, mounts map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			continue
		}
		v := strings.ReplaceAll(e.Value, "$(KUBERNETES_SERVICE_HOST)", serviceHost)
		if e.Name == "SSL_CERT_DIR" {
			dirs := strings.Split(v, ":")
			for i, d := range dirs {
				if host, ok := mounts[d]; ok {
					dirs[i] = host
				}
			}
			v = strings.Join(dirs, ":")
		}
		env[e.Name] = v
	}
	return env
}

// runEgressChild runs egressChild(mode, arg) in a new process whose
// environment is this one's without any proxy or certificate variable, plus env.
func runEgressChild(t testing.TB, env map[string]string, mode, arg string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUEST_METHOD":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, egressChildEnv+"="+mode, egressArgEnv+"="+arg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// mountConfigMap lays out one key the way the kubelet mounts a ConfigMap or
// Secret volume: the file is a symlink to ..data/<path>, and ..data a symlink
// to a timestamped directory. Go must read it through the symlinks.
func mountConfigMap(t testing.TB, path string, content []byte) string {
	t.Helper()
	dir := t.TempDir()
	ts := "..2026_01_01_00_00_00.000000001"
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ts, path), content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", path), filepath.Join(dir, path)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// systemRoot writes one current root of the machine's bundle, without
// extended key usages, to a file and returns its path; it skips the test on a
// machine without a bundle where Go looks for one.
func systemRoot(t testing.TB) string {
	t.Helper()
	for _, f := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
		"/etc/ssl/ca-bundle.pem", "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/cert.pem"} {
		rest, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		now := time.Now()
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil || len(cert.ExtKeyUsage) > 0 || now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
				continue
			}
			p := filepath.Join(t.TempDir(), "root.pem")
			if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Skip("no system CA bundle on this machine")
	return ""
}

// testCA is a CA that issues server certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a server certificate for host signed by the CA.
func (ca *testCA) issue(t testing.TB, host string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// connectProxy is an HTTPS (CONNECT) proxy on 127.0.0.1 that knows one host
// and tunnels it to a local address.
type connectProxy struct {
	URL string
	mu  sync.Mutex
	got []string
}

func newConnectProxy(t testing.TB, host, target string) *connectProxy {
	t.Helper()
	p := &connectProxy{}
	var conns sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.got = append(p.got, r.Host)
		p.mu.Unlock()
		if r.Method != http.MethodConnect || r.Host != host {
			http.Error(w, "this proxy tunnels only "+host, http.StatusForbidden)
			return
		}
		upstream, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		client, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			_ = upstream.Close()
			return
		}
		_, _ = io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n")
		conns.Add(1)
		go func() {
			defer conns.Done()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(upstream, client); done <- struct{}{} }()
			go func() { _, _ = io.Copy(client, upstream); done <- struct{}{} }()
			<-done
			_ = client.Close()
			_ = upstream.Close()
			<-done
		}()
	}))
	t.Cleanup(func() {
		srv.Close()
		conns.Wait()
	})
	p.URL = srv.URL
	return p
}

// connects returns the CONNECT targets the proxy was asked for, in order.
func (p *connectProxy) connects() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}
