package events

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given CN and returns it.
func writeCert(t *testing.T, dir, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func startServer(t *testing.T, s *Server) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	return ln.Addr().String(), func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("server did not stop")
			return nil
		}
	}
}

func TestServerPlainHTTP(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, nil)
	addr, stop := startServer(t, &Server{Handler: f.h})
	g.Expect((&Server{}).NeedLeaderElection()).To(BeFalse())

	resp, err := http.Get("http://" + addr + "/healthz")
	g.Expect(err).NotTo(HaveOccurred())
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	g.Expect(string(b)).To(Equal("ok\n"))

	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+DefaultPath, strings.NewReader(jsonOf([]any{egEvent("p1", TypeSecretNewVersionCreated, vaultID)})))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(DefaultHeader, testSecret)
	resp, err = http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(200))
	g.Expect(f.sink.got()).To(HaveLen(1))

	resp, err = http.Post("http://"+addr+"/elsewhere", "application/json", strings.NewReader("[]"))
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusNotFound))

	g.Expect(stop()).To(Succeed())
}

func TestServerTLSReloadsCertificate(t *testing.T) {
	g := NewWithT(t)
	old := reloadCheck
	reloadCheck = 0
	t.Cleanup(func() { reloadCheck = old })

	dir := t.TempDir()
	first := writeCert(t, dir, "first")
	f := newFixture(t, nil)
	addr, stop := startServer(t, &Server{Handler: f.h, CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")})

	served := func() string {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test reads the served certificate
		if err != nil {
			return "error: " + err.Error()
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	g.Expect(served()).To(Equal(first.Subject.CommonName))

	// Plain HTTP on the TLS port fails.
	resp, err := http.Get("http://" + addr + "/healthz")
	if err == nil {
		resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusBadRequest))
	}

	// A rotated certificate (new files, later modification time) is served without a restart.
	writeCert(t, dir, "second")
	later := time.Now().Add(time.Second)
	g.Expect(os.Chtimes(filepath.Join(dir, "tls.crt"), later, later)).To(Succeed())
	g.Eventually(served, 5*time.Second, 20*time.Millisecond).Should(Equal("second"))

	// A half-written rotation keeps the last good pair.
	g.Expect(os.WriteFile(filepath.Join(dir, "tls.key"), []byte("garbage"), 0o600)).To(Succeed())
	even := time.Now().Add(2 * time.Second)
	g.Expect(os.Chtimes(filepath.Join(dir, "tls.key"), even, even)).To(Succeed())
	g.Expect(served()).To(Equal("second"))

	g.Expect(stop()).To(Succeed())
}

func TestServerConfigErrors(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, nil)
	for _, s := range []*Server{
		{},
		{Handler: f.h, CertFile: "/nonexistent/tls.crt"},
		{Handler: f.h, CertFile: "/nonexistent/tls.crt", KeyFile: "/nonexistent/tls.key"},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.Serve(context.Background(), ln)).NotTo(Succeed())
	}
	g.Expect((&Server{Addr: "256.0.0.1:1", Handler: f.h}).Start(context.Background())).NotTo(Succeed())
}
