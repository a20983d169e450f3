package render

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"hash"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// Output formats of a certificate item.
const (
	// FormatPEM writes tls.crt (leaf and intermediates), tls.key (PKCS#8) and
	// ca.crt (see [Chain.CA]), the layout of a kubernetes.io/tls Secret.
	FormatPEM = "PEM"
	// FormatPFX writes a PKCS#12 file with an empty password under the item's key.
	FormatPFX = "PFX"
	// FormatCertOnly writes the public chain (leaf to root) as PEM under the
	// item's key, without the private key.
	FormatCertOnly = "CertOnly"
)

// Keys of a kubernetes.io/tls Secret written by FormatPEM.
const (
	KeyTLSCert = "tls.crt"
	KeyTLSKey  = "tls.key"
	KeyCACert  = "ca.crt"
)

// CertInfo describes the leaf certificate, for status.
type CertInfo struct {
	Subject      string
	Issuer       string
	SerialNumber string // hexadecimal
	NotBefore    time.Time
	NotAfter     time.Time
	DNSNames     []string
}

// Certificate is an ordered, checked certificate with its key.
type Certificate struct {
	Chain Chain
	// Key is the private key matching Chain.Leaf, nil when the source had none.
	Key crypto.PrivateKey
	// Info describes Chain.Leaf.
	Info CertInfo
	// Warnings from parsing and ordering; they contain names only.
	Warnings []string

	pfx []byte
}

// BuildCertificate orders the bundle's chain (see [OrderChain]) and returns a
// Certificate ready for output.
func BuildCertificate(b *CertBundle) (*Certificate, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nothing to render", ErrNotCertificate)
	}
	chain, warnings, err := OrderChain(b.Certificates, b.PrivateKey)
	if err != nil {
		return nil, err
	}
	leaf := chain.Leaf
	return &Certificate{
		Chain: chain,
		Key:   b.PrivateKey,
		Info: CertInfo{
			Subject:      leaf.Subject.String(),
			Issuer:       leaf.Issuer.String(),
			SerialNumber: leaf.SerialNumber.Text(16),
			NotBefore:    leaf.NotBefore,
			NotAfter:     leaf.NotAfter,
			DNSNames:     append([]string(nil), leaf.DNSNames...),
		},
		Warnings: append(append([]string(nil), b.Warnings...), warnings...),
		pfx:      b.PFX,
	}, nil
}

// Render produces the Secret data of a certificate item in the given format
// ("" means FormatPEM). FormatPEM ignores key and writes tls.crt, tls.key and,
// when there is one, ca.crt; FormatPFX and FormatCertOnly write key.
func (c *Certificate) Render(format, key string) (map[string][]byte, error) {
	switch format {
	case "", FormatPEM:
		return c.TLSData()
	case FormatPFX:
		pfx, err := c.PFX()
		if err != nil {
			return nil, err
		}
		return map[string][]byte{key: pfx}, nil
	case FormatCertOnly:
		return map[string][]byte{key: c.ChainPEM()}, nil
	}
	return nil, fmt.Errorf("%w: unknown certificate output format %q (want %s, %s or %s)",
		ErrNotCertificate, format, FormatPEM, FormatPFX, FormatCertOnly)
}

// TLSData returns tls.crt (leaf then intermediates), tls.key (PKCS#8) and
// ca.crt (omitted when [Chain.CA] is nil). tls.X509KeyPair accepts the pair.
func (c *Certificate) TLSData() (map[string][]byte, error) {
	key, err := c.KeyPEM()
	if err != nil {
		return nil, err
	}
	crt := encodeCerts(c.Chain.ServerChain())
	// The leaf matches the key by construction; this also refuses key types
	// that TLS cannot use (an X25519 certificate, for example).
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		return nil, fmt.Errorf("%w: %q and its key cannot be used for TLS: %v", ErrUnsupportedKey, certName(c.Chain.Leaf), err) //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
	}
	out := map[string][]byte{KeyTLSCert: crt, KeyTLSKey: key}
	if ca := c.Chain.CA(); ca != nil {
		out[KeyCACert] = encodeCerts([]*x509.Certificate{ca})
	}
	return out, nil
}

// KeyPEM returns the private key as a PKCS#8 "PRIVATE KEY" PEM block.
func (c *Certificate) KeyPEM() ([]byte, error) {
	if c.Key == nil {
		return nil, fmt.Errorf("%w: %q came without its private key (non-exportable key?); use the CertOnly output",
			ErrNoPrivateKey, certName(c.Chain.Leaf))
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: private key of type %T cannot be written as PKCS#8", ErrUnsupportedKey, c.Key)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ChainPEM returns the whole chain, leaf to root, as PEM certificates.
func (c *Certificate) ChainPEM() []byte {
	return encodeCerts(c.Chain.Certificates())
}

// PFX returns the original PKCS#12 bytes when the source was PKCS#12 (Key
// Vault's file, byte for byte, in its original certificate order; a file
// opened with a password keeps that password). Otherwise it encodes the key and the ordered
// chain as a PKCS#12 file with an empty password using go-pkcs12's Modern
// profile (AES-256-CBC, PBKDF2, HMAC-SHA-256). The salts and IVs of that
// encoding are derived from the content, so the same input always gives the
// same bytes and the Secret does not change on every refresh; with an empty
// password the encryption protects nothing anyway.
func (c *Certificate) PFX() ([]byte, error) {
	if len(c.pfx) > 0 {
		return append([]byte(nil), c.pfx...), nil
	}
	if c.Key == nil {
		return nil, fmt.Errorf("%w: %q came without its private key, so no PFX can be written; use the CertOnly output",
			ErrNoPrivateKey, certName(c.Chain.Leaf))
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: private key of type %T cannot be written to PKCS#12", ErrUnsupportedKey, c.Key)
	}
	seed := sha256.New()
	seed.Write([]byte("vaultsync pfx salt v1\x00"))
	seed.Write(keyDER)
	for _, cert := range c.Chain.Certificates() {
		seed.Write(cert.Raw)
	}
	cas := append(append([]*x509.Certificate(nil), c.Chain.Intermediates...), rootOrNil(c.Chain)...)
	pfx, err := pkcs12.Modern.WithRand(newDetReader(seed.Sum(nil))).Encode(c.Key, c.Chain.Leaf, cas, "")
	if err != nil {
		return nil, fmt.Errorf("%w: cannot encode PKCS#12: key type %T", ErrUnsupportedKey, c.Key)
	}
	return pfx, nil
}

func rootOrNil(c Chain) []*x509.Certificate {
	if c.Root == nil {
		return nil
	}
	return []*x509.Certificate{c.Root}
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// detReader is a deterministic byte stream: SHA-256(seed || counter) blocks.
type detReader struct {
	seed    []byte
	counter uint64
	buf     []byte
	h       hash.Hash
}

func newDetReader(seed []byte) *detReader {
	return &detReader{seed: seed, h: sha256.New()}
}

func (r *detReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			r.h.Reset()
			r.h.Write(r.seed)
			var ctr [8]byte
			binary.BigEndian.PutUint64(ctr[:], r.counter)
			r.h.Write(ctr[:])
			r.counter++
			r.buf = r.h.Sum(nil)
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}
