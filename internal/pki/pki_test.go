package pki

import (
	"bytes"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"testing"

	. "github.com/onsi/gomega"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/vaultsync/vaultsync/internal/pki/pkitest"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestOrderChainWarnings(t *testing.T) {
	p := pkitest.New(t, "ecdsa", "warn")
	other := pkitest.New(t, "ecdsa", "other")
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
		{name: "complete chain in order", certs: []*x509.Certificate{p.Leaf, p.Inter, p.Root}, withKey: true,
			wantInter: 1, wantRoot: true, wantCA: p.Root, complete: true},
		{name: "wrong order", certs: []*x509.Certificate{p.Inter, p.Root, p.Leaf}, withKey: true,
			wantInter: 1, wantRoot: true, wantCA: p.Root, complete: true,
			warnings: []string{"not in leaf-to-root order in the source; reordered to warn.example.com -> warn Intermediate CA -> warn Root CA"}},
		{name: "root absent is normal", certs: []*x509.Certificate{p.Leaf, p.Inter}, withKey: true,
			wantInter: 1, wantCA: p.Inter},
		{name: "missing intermediate", certs: []*x509.Certificate{p.Leaf, p.Root}, withKey: true,
			wantCA: nil, warnings: []string{
				`"warn Root CA" (issued by "warn Root CA") is not part of the chain of "warn.example.com" and was dropped`,
				`incomplete: issuer "warn Intermediate CA" of certificate "warn.example.com" is missing`}},
		{name: "leaf alone without issuer", certs: []*x509.Certificate{p.Leaf}, withKey: true,
			wantCA: nil, warnings: []string{`incomplete: issuer "warn Intermediate CA"`}},
		{name: "unrelated certificate", certs: []*x509.Certificate{p.Leaf, other.Inter, p.Inter, p.Root}, withKey: true,
			wantInter: 1, wantRoot: true, wantCA: p.Root, complete: true,
			warnings: []string{`"other Intermediate CA" (issued by "other Root CA") is not part of the chain`}},
		{name: "duplicates", certs: []*x509.Certificate{p.Leaf, p.Inter, p.Inter, p.Root, p.Leaf}, withKey: true,
			wantInter: 1, wantRoot: true, wantCA: p.Root, complete: true,
			warnings: []string{"2 duplicate certificate(s)"}},
		{name: "no key: leaf is the one that issues nobody", certs: []*x509.Certificate{p.Root, p.Inter, p.Leaf},
			wantInter: 1, wantRoot: true, wantCA: p.Root, complete: true, warnings: []string{"not in leaf-to-root order"}},
		{name: "no key: intermediate and root only", certs: []*x509.Certificate{p.Inter, p.Root},
			wantRoot: true, wantCA: p.Root, complete: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var key any
			if tc.withKey {
				key = p.LeafKey
			}
			chain, warnings, err := OrderChain(tc.certs, key)
			g.Expect(err).NotTo(HaveOccurred())
			if tc.withKey {
				g.Expect(chain.Leaf.Equal(p.Leaf)).To(BeTrue())
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

// TestOrderChainByName covers certificates without key identifiers (issuer
// found by distinguished name and signature) and a CA that has the right
// name but another key.
func TestOrderChainByName(t *testing.T) {
	g := NewWithT(t)
	rootKey, interKey, leafKey := pkitest.ECKey(t, elliptic.P256()), pkitest.ECKey(t, elliptic.P256()), pkitest.ECKey(t, elliptic.P256())
	caTmpl := func(cn string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	root := pkitest.Issue(t, caTmpl("Name Root"), nil, rootKey, rootKey)
	// Hide the parent's SubjectKeyId so that children get no AuthorityKeyId.
	noSKID := func(c *x509.Certificate) *x509.Certificate { cp := *c; cp.SubjectKeyId = nil; return &cp }
	inter := pkitest.Issue(t, caTmpl("Name Intermediate"), noSKID(root), interKey, rootKey)
	leaf := pkitest.Issue(t, pkitest.LeafTemplate("name.example.com"), noSKID(inter), leafKey, interKey)
	g.Expect(leaf.AuthorityKeyId).To(BeEmpty())
	g.Expect(inter.AuthorityKeyId).To(BeEmpty())

	// An impostor with the intermediate's exact name and a different key.
	impostorKey := pkitest.ECKey(t, elliptic.P256())
	impostor := pkitest.Issue(t, caTmpl("Name Intermediate"), noSKID(root), impostorKey, rootKey)

	chain, warnings, err := OrderChain([]*x509.Certificate{impostor, root, leaf, inter}, leafKey)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(chain.Leaf.Equal(leaf)).To(BeTrue())
	g.Expect(chain.Intermediates).To(HaveLen(1))
	g.Expect(chain.Intermediates[0].Equal(inter)).To(BeTrue(), "the impostor's signature does not verify the leaf")
	g.Expect(chain.Root.Equal(root)).To(BeTrue())
	g.Expect(warnings).To(ContainElement(ContainSubstring(`"Name Intermediate" (issued by "Name Root") is not part of the chain`)))
}

func TestParseCertificateSecretErrors(t *testing.T) {
	p := pkitest.New(t, "ecdsa", "bad")
	protected := pkitest.PFX(t, pkcs12.Modern, p, p.Leaf, []*x509.Certificate{p.Inter}, "s3cret-pw")
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
		{name: "PEM with key only", contentType: ContentTypePEM, value: pkitest.PEMPKCS8(t, p.LeafKey), wantErr: ErrNotCertificate},
		{name: "PEM with two keys", contentType: ContentTypePEM, value: pkitest.PEMPKCS8(t, p.LeafKey) + pkitest.PEMPKCS8(t, p.InterKey) + pkitest.PEMCerts(p.Leaf), wantErr: ErrNotCertificate},
		{name: "PEM with a broken certificate", contentType: ContentTypePEM,
			value: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("hunter2-broken")})), wantErr: ErrNotCertificate},
		{name: "PEM with a broken key", contentType: ContentTypePEM,
			value: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("hunter2-broken")})) + pkitest.PEMCerts(p.Leaf), wantErr: ErrUnsupportedKey},
		{name: "encrypted PKCS#8 key", contentType: ContentTypePEM, value: encryptedKey + pkitest.PEMCerts(p.Leaf), wantErr: ErrUnsupportedKey},
		{name: "legacy encrypted PEM key", contentType: ContentTypePEM, value: legacyEncrypted + pkitest.PEMCerts(p.Leaf), wantErr: ErrUnsupportedKey},
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

func TestPFXIterationBound(t *testing.T) {
	p := pkitest.New(t, "ecdsa", "iter")
	for name, enc := range map[string]*pkcs12.Encoder{"legacy": pkcs12.Legacy, "modern": pkcs12.Modern, "modern2026": pkcs12.Modern2026} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			// 65536 iterations: allowed, and encoded as INTEGER 02 03 01 00 00.
			der := pkitest.PFX(t, enc.WithIterations(1<<16), p, p.Leaf, []*x509.Certificate{p.Inter}, "")
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
