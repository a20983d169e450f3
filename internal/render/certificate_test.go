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
	"software.sslmate.com/src/go-pkcs12"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func encodePFX(t testing.TB, enc *pkcs12.Encoder, p *testPKI, first *x509.Certificate, rest []*x509.Certificate, password string) []byte {
	t.Helper()
	der, err := enc.Encode(p.leafKey, first, rest, password)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

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
				value: pemPKCS8(t, p.leafKey) + pemCerts(p.leaf, p.inter, p.root)},
			{name: "PEM key first, chain reversed", contentType: ContentTypePEM,
				value: pemPKCS8(t, p.leafKey) + pemCerts(p.root, p.inter, p.leaf), wantReorder: true},
			{name: "PEM key last, chain shuffled", contentType: ContentTypePEM,
				value: pemCerts(p.inter, p.leaf, p.root) + pemPKCS8(t, p.leafKey), wantReorder: true},
			{name: "PEM PKCS#1/SEC1 key in the middle", contentType: ContentTypePEM,
				value: pemCerts(p.leaf) + pemLegacyKey(t, p.leafKey) + pemCerts(p.inter, p.root)},
			{name: "PEM PKCS#1/SEC1 key mislabelled PRIVATE KEY", contentType: ContentTypePEM,
				value: strings.Replace(strings.Replace(pemLegacyKey(t, p.leafKey), "RSA PRIVATE", "PRIVATE", 2), "EC PRIVATE", "PRIVATE", 2) +
					pemCerts(p.leaf, p.inter, p.root)},
			{name: "PEM without content type", contentType: "",
				value: pemPKCS8(t, p.leafKey) + pemCerts(p.leaf, p.inter, p.root)},
			{name: "legacy RC2 PFX", contentType: ContentTypePKCS12, isPFX: true,
				value: b64(encodePFX(t, pkcs12.LegacyRC2, p, p.leaf, []*x509.Certificate{p.inter, p.root}, ""))},
			{name: "legacy 3DES PFX", contentType: ContentTypePKCS12, isPFX: true,
				value: b64(encodePFX(t, pkcs12.Legacy, p, p.leaf, []*x509.Certificate{p.inter, p.root}, ""))},
			{name: "modern AES PFX", contentType: ContentTypePKCS12, isPFX: true,
				value: b64(encodePFX(t, pkcs12.Modern, p, p.leaf, []*x509.Certificate{p.inter, p.root}, ""))},
			{name: "modern 2026 PFX (PBMAC1)", contentType: ContentTypePKCS12, isPFX: true,
				value: b64(encodePFX(t, pkcs12.Modern2026, p, p.leaf, []*x509.Certificate{p.inter, p.root}, ""))},
			{name: "modern PFX with root first", contentType: ContentTypePKCS12, isPFX: true, wantReorder: true,
				value: b64(encodePFX(t, pkcs12.Modern, p, p.root, []*x509.Certificate{p.inter, p.leaf}, ""))},
			{name: "PFX without content type", contentType: "", isPFX: true,
				value: b64(encodePFX(t, pkcs12.Modern, p, p.leaf, []*x509.Certificate{p.inter, p.root}, ""))},
			{name: "PFX with content type parameters", contentType: "Application/X-PKCS12; charset=binary", isPFX: true,
				value: b64(encodePFX(t, pkcs12.Legacy, p, p.leaf, []*x509.Certificate{p.inter, p.root}, ""))},
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
				g.Expect(cert.Chain.Leaf.Equal(p.leaf)).To(BeTrue())
				g.Expect(cert.Chain.Intermediates).To(HaveLen(1))
				g.Expect(cert.Chain.Intermediates[0].Equal(p.inter)).To(BeTrue())
				g.Expect(cert.Chain.Root.Equal(p.root)).To(BeTrue())
				g.Expect(cert.Chain.Complete()).To(BeTrue())

				data, err := cert.Render(FormatPEM, "ignored")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(data).To(HaveKey(KeyTLSCert))
				g.Expect(data).To(HaveKey(KeyTLSKey))
				g.Expect(data).To(HaveKey(KeyCACert))
				g.Expect(data).To(HaveLen(3))

				crt := decodePEMCerts(t, data[KeyTLSCert])
				g.Expect(crt).To(HaveLen(2), "tls.crt holds leaf and intermediate, not the root")
				g.Expect(crt[0].Equal(p.leaf)).To(BeTrue())
				g.Expect(crt[1].Equal(p.inter)).To(BeTrue())
				ca := decodePEMCerts(t, data[KeyCACert])
				g.Expect(ca).To(HaveLen(1))
				g.Expect(ca[0].Equal(p.root)).To(BeTrue())

				block, _ := pem.Decode(data[KeyTLSKey])
				g.Expect(block.Type).To(Equal("PRIVATE KEY"))
				_, err = x509.ParsePKCS8PrivateKey(block.Bytes)
				g.Expect(err).NotTo(HaveOccurred())

				pair, err := tls.X509KeyPair(data[KeyTLSCert], data[KeyTLSKey])
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pair.Leaf.Equal(p.leaf)).To(BeTrue())

				// The chain verifies against ca.crt.
				roots, inters := x509.NewCertPool(), x509.NewCertPool()
				roots.AddCert(ca[0])
				inters.AddCert(crt[1])
				_, err = crt[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: p.leaf.DNSNames[0]})
				g.Expect(err).NotTo(HaveOccurred())

				g.Expect(cert.Info.NotAfter).To(BeTemporally("==", p.leaf.NotAfter))
				g.Expect(cert.Info.Subject).To(Equal("CN=formats.example.com"))
				g.Expect(cert.Info.DNSNames).To(Equal([]string{"formats.example.com"}))
			})
		}
	}
}

func TestOrderChainWarnings(t *testing.T) {
	p := newPKI(t, "ecdsa", "warn")
	other := newPKI(t, "ecdsa", "other")
	tests := []struct {
		name      string
		certs     []*x509.Certificate
		withKey   bool
		wantInter int
		wantRoot  bool
		wantCA    *x509.Certificate
		complete  bool
		warnings  []string // substrings, one per expected warning
	}{
		{name: "complete chain in order", certs: []*x509.Certificate{p.leaf, p.inter, p.root}, withKey: true,
			wantInter: 1, wantRoot: true, wantCA: p.root, complete: true},
		{name: "wrong order", certs: []*x509.Certificate{p.inter, p.root, p.leaf}, withKey: true,
			wantInter: 1, wantRoot: true, wantCA: p.root, complete: true,
			warnings: []string{"not in leaf-to-root order in the source; reordered to warn.example.com -> warn Intermediate CA -> warn Root CA"}},
		{name: "root absent is normal", certs: []*x509.Certificate{p.leaf, p.inter}, withKey: true,
			wantInter: 1, wantCA: p.inter},
		{name: "missing intermediate", certs: []*x509.Certificate{p.leaf, p.root}, withKey: true,
			wantCA: nil, warnings: []string{
				`"warn Root CA" (issued by "warn Root CA") is not part of the chain of "warn.example.com" and was dropped`,
				`incomplete: issuer "warn Intermediate CA" of certificate "warn.example.com" is missing`}},
		{name: "leaf alone without issuer", certs: []*x509.Certificate{p.leaf}, withKey: true,
			wantCA: nil, warnings: []string{`incomplete: issuer "warn Intermediate CA"`}},
		{name: "unrelated certificate", certs: []*x509.Certificate{p.leaf, other.inter, p.inter, p.root}, withKey: true,
			wantInter: 1, wantRoot: true, wantCA: p.root, complete: true,
			warnings: []string{`"other Intermediate CA" (issued by "other Root CA") is not part of the chain`}},
		{name: "duplicates", certs: []*x509.Certificate{p.leaf, p.inter, p.inter, p.root, p.leaf}, withKey: true,
			wantInter: 1, wantRoot: true, wantCA: p.root, complete: true,
			warnings: []string{"2 duplicate certificate(s)"}},
		{name: "no key: leaf is the one that issues nobody", certs: []*x509.Certificate{p.root, p.inter, p.leaf},
			wantInter: 1, wantRoot: true, wantCA: p.root, complete: true, warnings: []string{"not in leaf-to-root order"}},
		{name: "no key: intermediate and root only", certs: []*x509.Certificate{p.inter, p.root},
			wantRoot: true, wantCA: p.root, complete: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var key any
			if tc.withKey {
				key = p.leafKey
			}
			chain, warnings, err := OrderChain(tc.certs, key)
			g.Expect(err).NotTo(HaveOccurred())
			if tc.withKey {
				g.Expect(chain.Leaf.Equal(p.leaf)).To(BeTrue())
			}
			g.Expect(chain.Intermediates).To(HaveLen(tc.wantInter))
			g.Expect(chain.Root != nil).To(Equal(tc.wantRoot))
			if tc.wantCA == nil {
				g.Expect(chain.CA()).To(BeNil())
			} else {
				g.Expect(chain.CA().Equal(tc.wantCA)).To(BeTrue())
			}
			g.Expect(chain.Complete()).To(Equal(tc.complete))
			g.Expect(warnings).To(HaveLen(len(tc.warnings)), "warnings: %q", warnings)
			for i, w := range tc.warnings {
				g.Expect(warnings[i]).To(ContainSubstring(w))
			}
		})
	}
}

func TestOrderChainErrors(t *testing.T) {
	p := newPKI(t, "rsa", "err")
	other := newPKI(t, "ecdsa", "mismatch")
	g := NewWithT(t)

	_, _, err := OrderChain([]*x509.Certificate{p.leaf, p.inter, p.root}, other.leafKey)
	g.Expect(err).To(MatchError(ErrKeyMismatch))
	g.Expect(err.Error()).To(ContainSubstring("err.example.com"))

	// A key that matches a CA certificate but not the leaf still picks that
	// CA as the leaf (it is what the key can serve).
	chain, _, err := OrderChain([]*x509.Certificate{p.leaf, p.inter, p.root}, p.interKey)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(chain.Leaf.Equal(p.inter)).To(BeTrue())

	_, _, err = OrderChain(nil, nil)
	g.Expect(err).To(MatchError(ErrNotCertificate))

	// The same mismatch through the PEM path.
	b, err := ParseCertificateSecret(ContentTypePEM, pemPKCS8(t, other.leafKey)+pemCerts(p.leaf, p.inter, p.root))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = BuildCertificate(b)
	g.Expect(err).To(MatchError(ErrKeyMismatch))
}

// TestOrderChainByName covers certificates without key identifiers (issuer
// found by distinguished name and signature) and a CA that has the right
// name but another key.
func TestOrderChainByName(t *testing.T) {
	g := NewWithT(t)
	rootKey, interKey, leafKey := ecKey(t, elliptic256()), ecKey(t, elliptic256()), ecKey(t, elliptic256())
	caTmpl := func(cn string) *x509.Certificate {
		return &x509.Certificate{Subject: pkixName(cn), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	root := issue(t, caTmpl("Name Root"), nil, rootKey, rootKey)
	// Hide the parent's SubjectKeyId so that children get no AuthorityKeyId.
	noSKID := func(c *x509.Certificate) *x509.Certificate { cp := *c; cp.SubjectKeyId = nil; return &cp }
	inter := issue(t, caTmpl("Name Intermediate"), noSKID(root), interKey, rootKey)
	leaf := issue(t, leafTemplate("name.example.com"), noSKID(inter), leafKey, interKey)
	g.Expect(leaf.AuthorityKeyId).To(BeEmpty())
	g.Expect(inter.AuthorityKeyId).To(BeEmpty())

	// An impostor with the intermediate's exact name and a different key.
	impostorKey := ecKey(t, elliptic256())
	impostor := issue(t, caTmpl("Name Intermediate"), noSKID(root), impostorKey, rootKey)

	chain, warnings, err := OrderChain([]*x509.Certificate{impostor, root, leaf, inter}, leafKey)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(chain.Leaf.Equal(leaf)).To(BeTrue())
	g.Expect(chain.Intermediates).To(HaveLen(1))
	g.Expect(chain.Intermediates[0].Equal(inter)).To(BeTrue(), "the impostor's signature does not verify the leaf")
	g.Expect(chain.Root.Equal(root)).To(BeTrue())
	g.Expect(warnings).To(ContainElement(ContainSubstring(`"Name Intermediate" (issued by "Name Root") is not part of the chain`)))
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

func TestParseCertificateSecretErrors(t *testing.T) {
	p := newPKI(t, "ecdsa", "bad")
	protected := encodePFX(t, pkcs12.Modern, p, p.leaf, []*x509.Certificate{p.inter}, "s3cret-pw")
	encryptedKey := string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	legacyEncrypted := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}}))
	tests := []struct {
		name        string
		contentType string
		value       string
		wantErr     error
	}{
		{name: "plain secret", contentType: "", value: "hunter2-plain-password", wantErr: ErrNotCertificate},
		{name: "plain secret with text content type", contentType: "text/plain", value: "hunter2-plain-password", wantErr: ErrNotCertificate},
		{name: "JSON secret", contentType: "application/json", value: `{"password":"hunter2-json"}`, wantErr: ErrNotCertificate},
		{name: "pkcs12 content type, not base64", contentType: ContentTypePKCS12, value: "hunter2 not base64!", wantErr: ErrNotCertificate},
		{name: "pkcs12 content type, base64 of junk", contentType: ContentTypePKCS12, value: b64([]byte("hunter2-junk-bytes")), wantErr: ErrNotCertificate},
		{name: "base64 of junk without content type", contentType: "", value: b64([]byte("hunter2-junk-bytes")), wantErr: ErrNotCertificate},
		{name: "PEM with key only", contentType: ContentTypePEM, value: pemPKCS8(t, p.leafKey), wantErr: ErrNotCertificate},
		{name: "PEM with two keys", contentType: ContentTypePEM, value: pemPKCS8(t, p.leafKey) + pemPKCS8(t, p.interKey) + pemCerts(p.leaf), wantErr: ErrNotCertificate},
		{name: "PEM with a broken certificate", contentType: ContentTypePEM,
			value: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("hunter2-broken")})), wantErr: ErrNotCertificate},
		{name: "PEM with a broken key", contentType: ContentTypePEM,
			value: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("hunter2-broken")})) + pemCerts(p.leaf), wantErr: ErrUnsupportedKey},
		{name: "encrypted PKCS#8 key", contentType: ContentTypePEM, value: encryptedKey + pemCerts(p.leaf), wantErr: ErrUnsupportedKey},
		{name: "legacy encrypted PEM key", contentType: ContentTypePEM, value: legacyEncrypted + pemCerts(p.leaf), wantErr: ErrUnsupportedKey},
		{name: "password-protected PFX", contentType: ContentTypePKCS12, value: b64(protected), wantErr: ErrPFXPassword},
		{name: "password-protected PFX, sniffed", contentType: "", value: b64(protected), wantErr: ErrPFXPassword},
		{name: "DER content type, junk", contentType: ContentTypeDER, value: b64([]byte("hunter2-junk")), wantErr: ErrNotCertificate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := ParseCertificateSecret(tc.contentType, tc.value)
			g.Expect(err).To(MatchError(tc.wantErr))
			g.Expect(err.Error()).NotTo(ContainSubstring("hunter2"))
			g.Expect(err.Error()).NotTo(ContainSubstring("s3cret"))
		})
	}
}

func TestParsePFXPassword(t *testing.T) {
	g := NewWithT(t)
	p := newPKI(t, "rsa", "pw")
	for _, enc := range []*pkcs12.Encoder{pkcs12.LegacyRC2, pkcs12.Legacy, pkcs12.Modern} {
		der := encodePFX(t, enc, p, p.leaf, []*x509.Certificate{p.inter, p.root}, "correct horse")
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
		der := encodePFX(t, pkcs12.Modern, p, p.leaf, []*x509.Certificate{p.inter, p.root}, "")
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
		b, err := ParseCertificateSecret(ContentTypePEM, pemCerts(p.root, p.leaf, p.inter)+pemPKCS8(t, p.leafKey))
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
		g.Expect(leaf.Equal(p.leaf)).To(BeTrue())
		g.Expect(cas).To(HaveLen(2))
		g.Expect(cas[0].Equal(p.inter)).To(BeTrue())
		g.Expect(cas[1].Equal(p.root)).To(BeTrue())
		g.Expect(samePublicKey(p.leafKey.Public(), key.(interface{ Public() crypto.PublicKey }).Public())).To(BeTrue())

		// And it reads back through our own parser.
		back, err := ParseCertificateSecret(ContentTypePKCS12, b64(pfx1))
		g.Expect(err).NotTo(HaveOccurred())
		_, err = BuildCertificate(back)
		g.Expect(err).NotTo(HaveOccurred())
	})

	t.Run("CertOnly is the whole chain without the key", func(t *testing.T) {
		g := NewWithT(t)
		b, err := ParseCertificateSecret(ContentTypePEM, pemPKCS8(t, p.leafKey)+pemCerts(p.inter, p.root, p.leaf))
		g.Expect(err).NotTo(HaveOccurred())
		cert, err := BuildCertificate(b)
		g.Expect(err).NotTo(HaveOccurred())
		data, err := cert.Render(FormatCertOnly, "chain.pem")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(data).To(HaveLen(1))
		g.Expect(string(data["chain.pem"])).To(Equal(pemCerts(p.leaf, p.inter, p.root)))
		g.Expect(bytes.Contains(data["chain.pem"], []byte("PRIVATE KEY"))).To(BeFalse())
	})

	t.Run("DER certificate has no key", func(t *testing.T) {
		g := NewWithT(t)
		b, err := ParseCertificateSecret(ContentTypeDER, b64(p.leaf.Raw))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(b.PrivateKey).To(BeNil())
		cert, err := BuildCertificate(b)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = cert.Render(FormatPEM, "")
		g.Expect(err).To(MatchError(ErrNoPrivateKey))
		_, err = cert.PFX()
		g.Expect(err).To(MatchError(ErrNoPrivateKey))
		g.Expect(string(cert.ChainPEM())).To(Equal(pemCerts(p.leaf)))
	})

	t.Run("unknown format", func(t *testing.T) {
		g := NewWithT(t)
		b, err := ParseCertificateSecret(ContentTypeDER, b64(p.leaf.Raw))
		g.Expect(err).NotTo(HaveOccurred())
		cert, err := BuildCertificate(b)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = cert.Render("JKS", "x")
		g.Expect(err).To(MatchError(ErrNotCertificate))
	})

	t.Run("ignored PEM blocks become warnings", func(t *testing.T) {
		g := NewWithT(t)
		extra := string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{1}}))
		b, err := ParseCertificateSecret(ContentTypePEM, pemPKCS8(t, p.leafKey)+extra+pemCerts(p.leaf, p.inter))
		g.Expect(err).NotTo(HaveOccurred())
		cert, err := BuildCertificate(b)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cert.Warnings).To(ConsistOf(ContainSubstring(`ignored PEM block 2 of type "X509 CRL"`)))
		g.Expect(strings.Count(string(cert.ChainPEM()), "BEGIN CERTIFICATE")).To(Equal(2))
	})
}

func TestPFXIterationBound(t *testing.T) {
	p := newPKI(t, "ecdsa", "iter")
	for name, enc := range map[string]*pkcs12.Encoder{"legacy": pkcs12.Legacy, "modern": pkcs12.Modern, "modern2026": pkcs12.Modern2026} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			// 65536 iterations: allowed, and encoded as INTEGER 02 03 01 00 00.
			der := encodePFX(t, enc.WithIterations(1<<16), p, p.leaf, []*x509.Certificate{p.inter}, "")
			_, err := ParseCertificateSecret(ContentTypePKCS12, b64(der))
			g.Expect(err).NotTo(HaveOccurred())

			// The same file asking for 8,388,607 iterations is refused before
			// any key derivation runs.
			huge := bytes.ReplaceAll(der, []byte{2, 3, 1, 0, 0}, []byte{2, 3, 0x7f, 0xff, 0xff})
			g.Expect(huge).NotTo(Equal(der))
			_, err = ParseCertificateSecret(ContentTypePKCS12, b64(huge))
			g.Expect(err).To(MatchError(ErrNotCertificate))
			g.Expect(err.Error()).To(ContainSubstring("8388607 key-derivation iterations"))
		})
	}
}
