package render

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testPKI is a root CA, an intermediate CA and a leaf, generated at run time.
type testPKI struct {
	rootKey, interKey, leafKey crypto.Signer
	root, inter, leaf          *x509.Certificate
}

var (
	pkiMu    sync.Mutex
	pkiCache = map[string]*testPKI{}
)

// newPKI returns a cached PKI whose leaf key is "rsa" or "ecdsa"; name keeps
// independent PKIs apart (same key type, different keys and names).
func newPKI(t testing.TB, leafAlg, name string) *testPKI {
	t.Helper()
	pkiMu.Lock()
	defer pkiMu.Unlock()
	id := leafAlg + "/" + name
	if p, ok := pkiCache[id]; ok {
		return p
	}
	p := &testPKI{rootKey: ecKey(t, elliptic.P384()), interKey: ecKey(t, elliptic.P256())}
	p.root = issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: name + " Root CA", Organization: []string{"vaultsync test"}},
		IsCA:    true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, p.rootKey, p.rootKey)
	p.inter = issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: name + " Intermediate CA", Organization: []string{"vaultsync test"}},
		IsCA:    true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign,
	}, p.root, p.interKey, p.rootKey)
	switch leafAlg {
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		p.leafKey = k
	default:
		p.leafKey = ecKey(t, elliptic.P256())
	}
	p.leaf = issue(t, leafTemplate(name+".example.com"), p.inter, p.leafKey, p.interKey)
	pkiCache[id] = p
	return p
}

func leafTemplate(dns string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: dns},
		DNSNames:    []string{dns},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

var serial atomic.Int64

// issue signs tmpl with signerKey; a nil parent makes it self-signed.
func issue(t testing.TB, tmpl, parent *x509.Certificate, key, signerKey crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour).Truncate(time.Second)
		tmpl.NotAfter = time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemCerts(certs ...*x509.Certificate) string {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return string(out)
}

func pemPKCS8(t testing.TB, key crypto.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// pemLegacyKey writes PKCS#1 for RSA and SEC1 for EC keys.
func pemLegacyKey(t testing.TB, key crypto.PrivateKey) string {
	t.Helper()
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	}
	t.Fatalf("unexpected key %T", key)
	return ""
}

// decodePEMCerts returns the certificates of PEM text in order.
func decodePEMCerts(t testing.TB, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		if b.Type != "CERTIFICATE" {
			t.Fatalf("unexpected PEM block %q", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func elliptic256() elliptic.Curve { return elliptic.P256() }

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

func tlsPair(data map[string][]byte) (tls.Certificate, error) {
	return tls.X509KeyPair(data[KeyTLSCert], data[KeyTLSKey])
}
