package emulator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// certMaterial is a certificate with its private key and the rest of its chain.
type certMaterial struct {
	leaf  *x509.Certificate
	chain []*x509.Certificate // issuers, leaf excluded, in order
	key   crypto.Signer
}

// generateChain makes root -> intermediate -> leaf.
func generateChain(name string, g *GenerateCertificate) (*certMaterial, error) {
	now := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	validity := 365 * 24 * time.Hour
	if g.Validity != nil {
		validity = g.Validity.Duration
	}
	newCA := func(cn string, parent *x509.Certificate, parentKey crypto.Signer, pathLen int) (*x509.Certificate, crypto.Signer, error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		t := &x509.Certificate{
			SerialNumber:          randomSerial(),
			Subject:               pkix.Name{CommonName: cn, Organization: []string{"kv-emulator"}},
			NotBefore:             now,
			NotAfter:              now.Add(validity + 365*24*time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			MaxPathLen:            pathLen,
			MaxPathLenZero:        pathLen == 0,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
		signer := crypto.Signer(k)
		if parent == nil {
			parent, parentKey = t, k
		}
		der, err := x509.CreateCertificate(rand.Reader, t, parent, k.Public(), parentKey)
		if err != nil {
			return nil, nil, err
		}
		c, err := x509.ParseCertificate(der)
		return c, signer, err
	}
	root, rootKey, err := newCA(name+" Root CA", nil, nil, 1)
	if err != nil {
		return nil, err
	}
	inter, interKey, err := newCA(name+" Intermediate CA", root, rootKey, 0)
	if err != nil {
		return nil, err
	}
	var key crypto.Signer
	if g.KeyType == "EC" {
		key, err = ecdsa.GenerateKey(curves[g.Curve], rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, g.KeySize)
	}
	if err != nil {
		return nil, err
	}
	subject := g.Subject
	if subject == "" {
		subject = "CN=" + name
	}
	dn, err := parseSubject(subject)
	if err != nil {
		return nil, err
	}
	usage := x509.KeyUsageDigitalSignature
	if g.KeyType != "EC" {
		usage |= x509.KeyUsageKeyEncipherment
	}
	t := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      dn,
		DNSNames:     g.DNSNames,
		NotBefore:    now,
		NotAfter:     now.Add(validity),
		KeyUsage:     usage,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, t, inter, key.Public(), interKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &certMaterial{leaf: leaf, chain: []*x509.Certificate{inter, root}, key: key}, nil
}

// parseSubject reads a simple "CN=a, O=b, OU=c, C=d, L=e, ST=f" distinguished name.
func parseSubject(s string) (pkix.Name, error) {
	var n pkix.Name
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return n, fmt.Errorf("subject %q: %q is not KEY=VALUE", s, part)
		}
		v = strings.TrimSpace(v)
		switch strings.ToUpper(strings.TrimSpace(k)) {
		case "CN":
			n.CommonName = v
		case "O":
			n.Organization = append(n.Organization, v)
		case "OU":
			n.OrganizationalUnit = append(n.OrganizationalUnit, v)
		case "C":
			n.Country = append(n.Country, v)
		case "L":
			n.Locality = append(n.Locality, v)
		case "ST", "S":
			n.Province = append(n.Province, v)
		default:
			return n, fmt.Errorf("subject %q: unsupported attribute %q", s, k)
		}
	}
	return n, nil
}

// loadCertificateMaterial reads the PEM or PFX source of a certificate spec (not Generate).
func loadCertificateMaterial(c *Certificate, baseDir string) (*certMaterial, error) {
	switch {
	case c.PEM != "":
		return parsePEMBundle([]byte(c.PEM))
	case c.PEMFile != "":
		b, err := os.ReadFile(resolvePath(baseDir, c.PEMFile))
		if err != nil {
			return nil, fmt.Errorf("pemFile: %w", err)
		}
		return parsePEMBundle(b)
	case c.PFX != "":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.PFX))
		if err != nil {
			return nil, fmt.Errorf("pfx: not standard base64: %w", err)
		}
		return parsePFX(b, c.Password)
	case c.PFXFile != "":
		b, err := os.ReadFile(resolvePath(baseDir, c.PFXFile))
		if err != nil {
			return nil, fmt.Errorf("pfxFile: %w", err)
		}
		return parsePFX(b, c.Password)
	}
	return nil, errors.New("no certificate source")
}

// parsePEMBundle reads a private key and certificates; the leaf is the certificate matching the key.
func parsePEMBundle(data []byte) (*certMaterial, error) {
	var certs []*x509.Certificate
	var key crypto.Signer
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("bad certificate: %w", err)
			}
			certs = append(certs, c)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			k, err := parsePrivateKey(blk.Bytes)
			if err != nil {
				return nil, err
			}
			key = k
		}
	}
	if key == nil {
		return nil, errors.New("no private key in PEM")
	}
	return assemble(key, certs)
}

func parsePrivateKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			switch s.(type) {
			case *rsa.PrivateKey, *ecdsa.PrivateKey:
				return s, nil
			}
		}
		return nil, errors.New("unsupported private key type (want RSA or EC)")
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("unreadable private key (want PKCS#8, PKCS#1 or SEC1)")
}

func parsePFX(data []byte, password string) (*certMaterial, error) {
	k, leaf, cas, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, fmt.Errorf("pfx: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("pfx: unsupported private key")
	}
	return assemble(s, append([]*x509.Certificate{leaf}, cas...))
}

func assemble(key crypto.Signer, certs []*x509.Certificate) (*certMaterial, error) {
	if len(certs) == 0 {
		return nil, errors.New("no certificate found")
	}
	for i, c := range certs {
		if publicKeysEqual(key.Public(), c.PublicKey) {
			rest := append(append([]*x509.Certificate{}, certs[:i]...), certs[i+1:]...)
			return &certMaterial{leaf: c, chain: rest, key: key}, nil
		}
	}
	return nil, errors.New("no certificate matches the private key")
}

// secretValue encodes the certificate as the value of its backing secret.
func (m *certMaterial) secretValue(contentType, pfxEncoding string) (string, error) {
	if contentType == admin.ContentTypePEM {
		return m.pem()
	}
	enc := pkcs12.Modern2023
	if pfxEncoding == admin.PFXLegacy {
		enc = pkcs12.LegacyRC2
	}
	der, err := enc.Encode(m.key, m.leaf, m.chain, "")
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// pem returns the PKCS#8 key followed by the chain, leaf first.
func (m *certMaterial) pem() (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(m.key)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	for _, c := range append([]*x509.Certificate{m.leaf}, m.chain...) {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return b.String(), nil
}
