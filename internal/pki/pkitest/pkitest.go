// Package pkitest makes certificate chains and PEM text for the tests of the
// packages that parse certificates (internal/pki, internal/render). Keys and
// certificates are generated at run time; nothing here is a fixture on disk.
package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// PKI is a root CA, an intermediate CA and a leaf the intermediate issued.
type PKI struct {
	RootKey, InterKey, LeafKey crypto.Signer
	Root, Inter, Leaf          *x509.Certificate
}

var (
	mu    sync.Mutex
	cache = map[string]*PKI{}
)

// New returns a PKI whose leaf key is "rsa" or "ecdsa" (anything else is
// ECDSA P-256). The leaf is for name + ".example.com" and the CAs are named
// after name, so PKIs with different names are independent. A PKI is made
// once per process and name: RSA key generation is slow.
func New(t testing.TB, leafAlg, name string) *PKI {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	id := leafAlg + "/" + name
	if p, ok := cache[id]; ok {
		return p
	}
	p := &PKI{RootKey: ECKey(t, elliptic.P384()), InterKey: ECKey(t, elliptic.P256())}
	p.Root = Issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: name + " Root CA", Organization: []string{"vaultsync test"}},
		IsCA:    true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, p.RootKey, p.RootKey)
	p.Inter = Issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: name + " Intermediate CA", Organization: []string{"vaultsync test"}},
		IsCA:    true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign,
	}, p.Root, p.InterKey, p.RootKey)
	if leafAlg == "rsa" {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		p.LeafKey = k
	} else {
		p.LeafKey = ECKey(t, elliptic.P256())
	}
	p.Leaf = Issue(t, LeafTemplate(name+".example.com"), p.Inter, p.LeafKey, p.InterKey)
	cache[id] = p
	return p
}

// LeafTemplate is a TLS server certificate for dns.
func LeafTemplate(dns string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: dns},
		DNSNames:    []string{dns},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

var serial atomic.Int64

// Issue signs tmpl for key with signerKey as parent; a nil parent makes it
// self-signed. It fills in a serial number and, when tmpl has none, a validity
// from an hour ago to 90 days from now.
func Issue(t testing.TB, tmpl, parent *x509.Certificate, key, signerKey crypto.Signer) *x509.Certificate {
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

// ECKey is a new ECDSA key on curve c.
func ECKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// PEMCerts is certs as CERTIFICATE blocks, in the order given.
func PEMCerts(certs ...*x509.Certificate) string {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return string(out)
}

// PEMPKCS8 is key as a PKCS#8 PRIVATE KEY block.
func PEMPKCS8(t testing.TB, key crypto.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// PEMLegacyKey is key as PKCS#1 (RSA) or SEC1 (EC).
func PEMLegacyKey(t testing.TB, key crypto.PrivateKey) string {
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

// DecodePEMCerts returns the certificates of PEM text in order, and fails
// the test on any block that is not a certificate.
func DecodePEMCerts(t testing.TB, data []byte) []*x509.Certificate {
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

// PFX encodes p's leaf key with first and rest as a PKCS#12 file.
func PFX(t testing.TB, enc *pkcs12.Encoder, p *PKI, first *x509.Certificate, rest []*x509.Certificate, password string) []byte {
	t.Helper()
	der, err := enc.Encode(p.LeafKey, first, rest, password)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
