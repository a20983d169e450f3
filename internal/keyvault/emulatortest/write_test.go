package emulatortest_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/push"
	"github.com/vaultsync/vaultsync/internal/push/pushtest"
	"github.com/vaultsync/vaultsync/test/emulator"
)

// TestWritesThroughEmulator drives the operations of a push through the real SDK pipeline and
// the emulator: set a secret with tags, read its properties, import a PEM certificate (challenge
// authentication with the body held back), read it back with its chain in order, delete both.
func TestWritesThroughEmulator(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const vault = "kvpush"
	g.Expect(emu.AddVault(emulator.Vault{Name: vault, RoleAssignments: []emulator.RoleAssignment{
		{Principal: "reader", Role: "Key Vault Secrets Officer"},
		{Principal: "reader", Role: "Key Vault Certificates Officer"},
	}})).To(Succeed())
	c := newClient(t, vault, secretCredential(t, readerClientID, readerSecret), "officer", noRetry())

	_, err := c.GetSecretInfo(ctx, "pushed")
	g.Expect(err).To(MatchError(keyvault.ErrNotFound))
	tags := map[string]string{"managed-by": "vaultsync", "vaultsync-owner": "c/ns/n"}
	w, err := c.SetSecret(ctx, "pushed", "pushed-value-1", "text/plain", tags)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(w.Version).To(MatchRegexp(`^[0-9a-f]{32}$`))
	info, err := c.GetSecretInfo(ctx, "pushed")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Version).To(Equal(w.Version))
	g.Expect(info.Tags).To(Equal(tags))
	g.Expect(info.ContentType).To(Equal("text/plain"))
	versions, err := emu.Versions(vault, emulator.KindSecrets, "pushed")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(versions).To(HaveLen(1))
	g.Expect(versions[0].Value).To(Equal("pushed-value-1"))

	chain := pushtest.NewTLS("push.example.test")
	bundle, err := push.CertificatePEM("tls", chain.Data())
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetCertificateInfo(ctx, "pushed-cert")
	g.Expect(err).To(MatchError(keyvault.ErrNotFound))
	ci, err := c.ImportCertificate(ctx, "pushed-cert", bundle, tags)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ci.Name).To(Equal("pushed-cert"))
	g.Expect(ci.Version).To(MatchRegexp(`^[0-9a-f]{32}$`))
	got, err := c.GetCertificateInfo(ctx, "pushed-cert")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.Version).To(Equal(ci.Version))
	g.Expect(got.Tags).To(Equal(tags))
	s, err := c.GetCertificateSecret(ctx, "pushed-cert", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.ContentType).To(Equal(keyvault.ContentTypePEM))
	var subjects []string
	for rest := []byte(s.Value); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(b.Bytes)
			g.Expect(err).NotTo(HaveOccurred())
			subjects = append(subjects, cert.Subject.CommonName)
		}
	}
	g.Expect(subjects).To(Equal([]string{"push.example.test", "vaultsync test intermediate", "vaultsync test root"}))

	// A secret of a certificate cannot be set; the properties say it is managed.
	mi, err := c.GetSecretInfo(ctx, "pushed-cert")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mi.Managed).To(BeTrue())

	g.Expect(c.DeleteSecret(ctx, "pushed")).To(Succeed())
	g.Expect(c.DeleteCertificate(ctx, "pushed-cert")).To(Succeed())
	for kind, name := range map[string]string{emulator.KindSecrets: "pushed", emulator.KindCertificates: "pushed-cert"} {
		deleted, err := emu.Deleted(vault, kind, name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(deleted).To(BeTrue(), "%s %s soft-deleted, not purged", kind, name)
	}
	// The name of a soft-deleted secret cannot be reused.
	_, err = c.SetSecret(ctx, "pushed", "pushed-value-2", "", tags)
	var kv *keyvault.Error
	g.Expect(errors.As(err, &kv)).To(BeTrue(), "%v", err)
	g.Expect(kv.Status).To(Equal(409))
	g.Expect(kv.InnerCode).To(Equal("ObjectIsDeletedButRecoverable"))
}

// TestWriteForbiddenHints: a reader without an officer role gets ForbiddenByRbac with the role
// a push needs.
func TestWriteForbiddenHints(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := newClient(t, vaultName, secretCredential(t, readerClientID, readerSecret), "reader", noRetry())
	_, err := c.SetSecret(ctx, "nope", "pushed-value-x", "", nil)
	g.Expect(keyvault.Reason(err)).To(Equal(keyvault.ReasonForbiddenByRbac))
	g.Expect(keyvault.Hint(err)).To(ContainSubstring("Key Vault Secrets Officer"))
	bundle, err := push.CertificatePEM("tls", pushtest.NewTLS("x.example.test").Data())
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.ImportCertificate(ctx, "nope-cert", bundle, nil)
	g.Expect(keyvault.Reason(err)).To(Equal(keyvault.ReasonForbiddenByRbac))
	g.Expect(keyvault.Hint(err)).To(ContainSubstring("Key Vault Certificates Officer"))
	g.Expect(err.Error()).NotTo(ContainSubstring("PRIVATE KEY"))
	g.Expect(strings.Contains(err.Error(), "nope-cert")).To(BeTrue())
}
