package render

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/vaultsync/vaultsync/internal/pki/pkitest"
	"software.sslmate.com/src/go-pkcs12"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestCertificateFormats feeds every source format Key Vault (or a user)
// produces through parse -> order -> TLS output and checks the result.
func TestCertificateFormats(t *testing.T) {
	for _, alg := range []string{"rsa", "ecdsa"} {
		p := newPKI(t, alg, "formats")
		tests := []struct {
			name        string
			contentType string
			value       string
			wantReorder bool
			isPFX       bool
		}{
			{name: "PEM key first, chain in order", contentType: ContentTypePEM,
				value: pemPKCS8(t, p.LeafKey) + pemCerts(p.Leaf, p.Inter, p.Root)},
			{name: "PEM key first, chain reversed", contentType: ContentTypePEM,
				value: pemPKCS8(t, p.LeafKey) + pemCerts(p.Root, p.Inter, p.Leaf), wantReorder: true},
			{name: "PEM key last, chain shuffled", contentType: ContentTypePEM,
				value: pemCerts(p.Inter, p.Leaf, p.Root) + pemPKCS8(t, p.LeafKey), wantReorder: true},
			{name: "PEM PKCS#1/SEC1 key in the middle", contentType: ContentTypePEM,
				value: pemCerts(p.Leaf) + pemLegacyKey(t, p.LeafKey) + pemCerts(p.Inter, p.Root)},
			{name: "PEM PKCS#1/SEC1 key mislabelled PRIVATE KEY", contentType: ContentTypePEM,
				value: strings.Replace(strings.Replace(pemLegacyKey(t, p.LeafKey), "RSA PRIVATE", "PRIVATE", 2), "EC PRIVATE", "PRIVATE", 2) +
					pemCerts(p.Leaf, p.Inter, p.Root)},
			{name: "PEM without content type", contentType: "",
				value: pemPKCS8(t, p.LeafKey) + pemCerts(p.Leaf, p.Inter, p.Root)},
			{name: "legacy RC2 PFX", contentType: ContentTypePKCS12, isPFX: true,
				value: b64(pkitest.PFX(t, pkcs12.LegacyRC2, p, p.Leaf, []*x509.Certificate{p.Inter, p.Root}, ""))},
			{name: "legacy 3DES PFX", contentType: ContentTypePKCS12, isPFX: true,
				value: b64(pkitest.PFX(t, pkcs12.Legacy, p, p.Leaf, []*x509.Certificate{p.Inter, p.Root}, ""))},
			{name: "modern AES PFX", contentType: ContentTypePKCS12, isPFX: true,
				value: b64(pkitest.PFX(t, pkcs12.Modern, p, p.Leaf, []*x509.Certificate{p.Inter, p.Root}, ""))},
			{name: "modern 2026 PFX (PBMAC1)", contentType: ContentTypePKCS12, isPFX: true,
				value: b64(pkitest.PFX(t, pkcs12.Modern2026, p, p.Leaf, []*x509.Certificate{p.Inter, p.Root}, ""))},
			{name: "modern PFX with root first", contentType: ContentTypePKCS12, isPFX: true, wantReorder: true,
				value: b64(pkitest.PFX(t, pkcs12.Modern, p, p.Root, []*x509.Certificate{p.Inter, p.Leaf}, ""))},
			{name: "PFX without content type", contentType: "", isPFX: true,
				value: b64(pkitest.PFX(t, pkcs12.Modern, p, p.Leaf, []*x509.Certificate{p.Inter, p.Root}, ""))},
			{name: "PFX with content type parameters", contentType: "Application/X-PKCS12; charset=binary", isPFX: true,
				value: b64(pkitest.PFX(t, pkcs12.Legacy, p, p.Leaf, []*x509.Certificate{p.Inter, p.Root}, ""))},
		}
		for _, tc := range tests {
			t.Run(alg+"/"+tc.name, func(t *testing.T) {
				g := NewWithT(t)
				bundle, err := ParseCertificateSecret(tc.contentType, tc.value)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(bundle.PFX != nil).To(Equal(tc.isPFX))

				cert, err := BuildCertificate(bundle)
				g.Expect(err).NotTo(HaveOccurred())
				if tc.wantReorder {
					g.Expect(cert.Warnings).To(ConsistOf(ContainSubstring("not in leaf-to-root order")))
				} else {
					g.Expect(cert.Warnings).To(BeEmpty())
				}
				g.Expect(cert.Chain.Leaf.Equal(p.Leaf)).To(BeTrue())
				g.Expect(cert.Chain.Intermediates).To(HaveLen(1))
				g.Expect(cert.Chain.Intermediates[0].Equal(p.Inter)).To(BeTrue())
				g.Expect(cert.Chain.Root.Equal(p.Root)).To(BeTrue())
				g.Expect(cert.Chain.Complete()).To(BeTrue())

				data, err := cert.Render(FormatPEM, "ignored")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(data).To(HaveKey(KeyTLSCert))
				g.Expect(data).To(HaveKey(KeyTLSKey))
				g.Expect(data).To(HaveKey(KeyCACert))
				g.Expect(data).To(HaveLen(3))

				crt := decodePEMCerts(t, data[KeyTLSCert])
				g.Expect(crt).To(HaveLen(2), "tls.crt holds leaf and intermediate, not the root")
				g.Expect(crt[0].Equal(p.Leaf)).To(BeTrue())
				g.Expect(crt[1].Equal(p.Inter)).To(BeTrue())
				ca := decodePEMCerts(t, data[KeyCACert])
				g.Expect(ca).To(HaveLen(1))
				g.Expect(ca[0].Equal(p.Root)).To(BeTrue())

				block, _ := pem.Decode(data[KeyTLSKey])
				g.Expect(block.Type).To(Equal("PRIVATE KEY"))
				_, err = x509.ParsePKCS8PrivateKey(block.Bytes)
				g.Expect(err).NotTo(HaveOccurred())

				pair, err := tls.X509KeyPair(data[KeyTLSCert], data[KeyTLSKey])
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pair.Leaf.Equal(p.Leaf)).To(BeTrue())

				// The chain verifies against ca.crt.
				roots, inters := x509.NewCertPool(), x509.NewCertPool()
				roots.AddCert(ca[0])
				inters.AddCert(crt[1])
				_, err = crt[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: p.Leaf.DNSNames[0]})
				g.Expect(err).NotTo(HaveOccurred())

				g.Expect(cert.Info.NotAfter).To(BeTemporally("==", p.Leaf.NotAfter))
				g.Expect(cert.Info.Subject).To(Equal("CN=formats.example.com"))
				g.Expect(cert.Info.DNSNames).To(Equal([]string{"formats.example.com"}))
			})
		}
	}
}

func TestOrderChainErrors(t *testing.T) {
	p := newPKI(t, "rsa", "err")
	other := newPKI(t, "ecdsa", "mismatch")
	g := NewWithT(t)

	_, _, err := OrderChain([]*x509.Certificate{p.Leaf, p.Inter, p.Root}, other.LeafKey)
	g.Expect(err).To(MatchError(ErrKeyMismatch))
	g.Expect(err.Error()).To(ContainSubstring("err.example.com"))

	// A key that matches a CA certificate but not the leaf still picks that
	// CA as the leaf (it is what the key can serve).
	chain, _, err := OrderChain([]*x509.Certificate{p.Leaf, p.Inter, p.Root}, p.InterKey)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(chain.Leaf.Equal(p.Inter)).To(BeTrue())

	_, _, err = OrderChain(nil, nil)
	g.Expect(err).To(MatchError(ErrNotCertificate))

	// The same mismatch through the PEM path.
	b, err := ParseCertificateSecret(ContentTypePEM, pemPKCS8(t, other.LeafKey)+pemCerts(p.Leaf, p.Inter, p.Root))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = BuildCertificate(b)
	g.Expect(err).To(MatchError(ErrKeyMismatch))
}

func TestSelfSignedLeaf(t *testing.T) {
	g := NewWithT(t)
	key := ecKey(t, elliptic256())
	tmpl := leafTemplate("self.example.com")
	self := issue(t, tmpl, nil, key, key)
	b, err := ParseCertificateSecret(ContentTypePEM, pemCerts(self)+pemPKCS8(t, key))
	g.Expect(err).NotTo(HaveOccurred())
	cert, err := BuildCertificate(b)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cert.Warnings).To(BeEmpty())
	g.Expect(cert.Chain.Root).To(BeNil())
	g.Expect(cert.Chain.Complete()).To(BeTrue())
	data, err := cert.TLSData()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data[KeyCACert])).To(Equal(pemCerts(self)), "a self-signed leaf is its own CA")
	g.Expect(string(data[KeyTLSCert])).To(Equal(pemCerts(self)))
	_, err = tls.X509KeyPair(data[KeyTLSCert], data[KeyTLSKey])
	g.Expect(err).NotTo(HaveOccurred())
}

func TestParsePFXPassword(t *testing.T) {
	g := NewWithT(t)
	p := newPKI(t, "rsa", "pw")
	for _, enc := range []*pkcs12.Encoder{pkcs12.LegacyRC2, pkcs12.Legacy, pkcs12.Modern} {
		der := pkitest.PFX(t, enc, p, p.Leaf, []*x509.Certificate{p.Inter, p.Root}, "correct horse")
		_, err := ParsePFX(der, "")
		g.Expect(err).To(MatchError(ErrPFXPassword))
		_, err = ParsePFX(der, "wrong")
		g.Expect(err).To(MatchError(ErrPFXPassword))
		b, err := ParsePFX(der, "correct horse")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(b.Certificates).To(HaveLen(3))
		g.Expect(b.PrivateKey).NotTo(BeNil())
		for _, ct := range []string{ContentTypePKCS12, ""} {
			b, err = ParseCertificateSecretWithPassword(ct, b64(der), "correct horse")
			g.Expect(err).NotTo(HaveOccurred())
			_, err = BuildCertificate(b)
			g.Expect(err).NotTo(HaveOccurred())
			_, err = ParseCertificateSecretWithPassword(ct, b64(der), "wrong")
			g.Expect(err).To(MatchError(ErrPFXPassword))
		}
	}
}

func TestCertificateOutputs(t *testing.T) {
	p := newPKI(t, "ecdsa", "out")

	t.Run("PFX from a PFX source is the original", func(t *testing.T) {
		g := NewWithT(t)
		der := pkitest.PFX(t, pkcs12.Modern, p, p.Leaf, []*x509.Certificate{p.Inter, p.Root}, "")
		b, err := ParseCertificateSecret(ContentTypePKCS12, b64(der))
		g.Expect(err).NotTo(HaveOccurred())
		cert, err := BuildCertificate(b)
		g.Expect(err).NotTo(HaveOccurred())
		data, err := cert.Render(FormatPFX, "keystore.pfx")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(data).To(Equal(map[string][]byte{"keystore.pfx": der}))
	})

	t.Run("PFX from a PEM source is re-encoded, ordered and deterministic", func(t *testing.T) {
		g := NewWithT(t)
		b, err := ParseCertificateSecret(ContentTypePEM, pemCerts(p.Root, p.Leaf, p.Inter)+pemPKCS8(t, p.LeafKey))
		g.Expect(err).NotTo(HaveOccurred())
		cert, err := BuildCertificate(b)
		g.Expect(err).NotTo(HaveOccurred())
		pfx1, err := cert.PFX()
		g.Expect(err).NotTo(HaveOccurred())
		pfx2, err := cert.PFX()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pfx1).To(Equal(pfx2), "same input, same bytes")

		key, leaf, cas, err := pkcs12.DecodeChain(pfx1, "")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(leaf.Equal(p.Leaf)).To(BeTrue())
		g.Expect(cas).To(HaveLen(2))
		g.Expect(cas[0].Equal(p.Inter)).To(BeTrue())
		g.Expect(cas[1].Equal(p.Root)).To(BeTrue())
		g.Expect(samePublicKey(p.LeafKey.Public(), key.(interface{ Public() crypto.PublicKey }).Public())).To(BeTrue())

		// And it reads back through our own parser.
		back, err := ParseCertificateSecret(ContentTypePKCS12, b64(pfx1))
		g.Expect(err).NotTo(HaveOccurred())
		_, err = BuildCertificate(back)
		g.Expect(err).NotTo(HaveOccurred())
	})

	t.Run("CertOnly is the whole chain without the key", func(t *testing.T) {
		g := NewWithT(t)
		b, err := ParseCertificateSecret(ContentTypePEM, pemPKCS8(t, p.LeafKey)+pemCerts(p.Inter, p.Root, p.Leaf))
		g.Expect(err).NotTo(HaveOccurred())
		cert, err := BuildCertificate(b)
		g.Expect(err).NotTo(HaveOccurred())
		data, err := cert.Render(FormatCertOnly, "chain.pem")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(data).To(HaveLen(1))
		g.Expect(string(data["chain.pem"])).To(Equal(pemCerts(p.Leaf, p.Inter, p.Root)))
		g.Expect(bytes.Contains(data["chain.pem"], []byte("PRIVATE KEY"))).To(BeFalse())
	})

	t.Run("DER certificate has no key", func(t *testing.T) {
		g := NewWithT(t)
		b, err := ParseCertificateSecret(ContentTypeDER, b64(p.Leaf.Raw))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(b.PrivateKey).To(BeNil())
		cert, err := BuildCertificate(b)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = cert.Render(FormatPEM, "")
		g.Expect(err).To(MatchError(ErrNoPrivateKey))
		_, err = cert.PFX()
		g.Expect(err).To(MatchError(ErrNoPrivateKey))
		g.Expect(string(cert.ChainPEM())).To(Equal(pemCerts(p.Leaf)))
	})

	t.Run("unknown format", func(t *testing.T) {
		g := NewWithT(t)
		b, err := ParseCertificateSecret(ContentTypeDER, b64(p.Leaf.Raw))
		g.Expect(err).NotTo(HaveOccurred())
		cert, err := BuildCertificate(b)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = cert.Render("JKS", "x")
		g.Expect(err).To(MatchError(ErrNotCertificate))
	})

	t.Run("ignored PEM blocks become warnings", func(t *testing.T) {
		g := NewWithT(t)
		extra := string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{1}}))
		b, err := ParseCertificateSecret(ContentTypePEM, pemPKCS8(t, p.LeafKey)+extra+pemCerts(p.Leaf, p.Inter))
		g.Expect(err).NotTo(HaveOccurred())
		cert, err := BuildCertificate(b)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cert.Warnings).To(ConsistOf(ContainSubstring(`ignored PEM block 2 of type "X509 CRL"`)))
		g.Expect(strings.Count(string(cert.ChainPEM()), "BEGIN CERTIFICATE")).To(Equal(2))
	})
}
