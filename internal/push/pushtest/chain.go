// Package pushtest makes certificate chains for the tests of VaultPushSecret: a root, an
// intermediate and a leaf, as a kubernetes.io/tls Secret holds them.
package pushtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"time"
)

// TLS is a three-level chain in the shape of a kubernetes.io/tls Secret.
type TLS struct {
	// Key is the leaf's private key (PKCS#8 PEM).
	Key []byte
	// Crt is the leaf followed by the intermediate (PEM), as tls.crt holds them.
	Crt []byte
	// CA is the root (PEM), as ca.crt holds it.
	CA []byte
	// Leaf, Intermediate and Root are the parsed certificates.
	Leaf, Intermediate, Root *x509.Certificate
}

// Data is the chain as the data of a kubernetes.io/tls Secret.
func (t *TLS) Data() map[string][]byte {
	return map[string][]byte{"tls.key": t.Key, "tls.crt": t.Crt, "ca.crt": t.CA}
}

// NewTLS makes a fresh chain whose leaf is for cn. It panics on failure (a test helper).
func NewTLS(cn string) *TLS {
	rootKey, root := issue("vaultsync test root", nil, nil, true)
	interKey, inter := issue("vaultsync test intermediate", root, rootKey, true)
	leafKey, leaf := issue(cn, inter, interKey, false)
	der, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		panic(err)
	}
	enc := func(c *x509.Certificate) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return &TLS{
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		Crt:  append(enc(leaf), enc(inter)...),
		CA:   enc(root),
		Leaf: leaf, Intermediate: inter, Root: root,
	}
}

func issue(cn string, parent *x509.Certificate, parentKey crypto.Signer, ca bool) (crypto.Signer, *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: ca,
	}
	if ca {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.DNSNames = []string{cn}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return key, c
}
