package push_test

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/push"
	"github.com/vaultsync/vaultsync/internal/push/pushtest"
)

func certsOf(t *testing.T, bundle string) (keys int, certs []*x509.Certificate) {
	t.Helper()
	rest := []byte(bundle)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return keys, certs
		}
		switch b.Type {
		case "PRIVATE KEY":
			keys++
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			certs = append(certs, c)
		default:
			t.Fatalf("unexpected PEM block %q", b.Type)
		}
	}
}

func TestCertificatePEMKeepsChainOrderAndAppendsCA(t *testing.T) {
	g := NewWithT(t)
	chain := pushtest.NewTLS("push.example.test")
	bundle, err := push.CertificatePEM("tls", chain.Data())
	g.Expect(err).NotTo(HaveOccurred())
	keys, certs := certsOf(t, bundle)
	g.Expect(keys).To(Equal(1))
	g.Expect(certs).To(HaveLen(3))
	g.Expect(certs[0].Equal(chain.Leaf)).To(BeTrue(), "leaf first")
	g.Expect(certs[1].Equal(chain.Intermediate)).To(BeTrue(), "then tls.crt's intermediate")
	g.Expect(certs[2].Equal(chain.Root)).To(BeTrue(), "ca.crt appended")

	// ca.crt already in tls.crt is not repeated; no ca.crt is fine.
	d := chain.Data()
	d["tls.crt"] = append(append([]byte{}, chain.Crt...), chain.CA...)
	bundle, err = push.CertificatePEM("tls", d)
	g.Expect(err).NotTo(HaveOccurred())
	_, certs = certsOf(t, bundle)
	g.Expect(certs).To(HaveLen(3))
	delete(d, "ca.crt")
	bundle, err = push.CertificatePEM("tls", d)
	g.Expect(err).NotTo(HaveOccurred())
	_, certs = certsOf(t, bundle)
	g.Expect(certs).To(HaveLen(3))
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func TestCertificatePEMRefusals(t *testing.T) {
	chain := pushtest.NewTLS("a.example.test")
	other := pushtest.NewTLS("b.example.test")
	for name, tc := range map[string]struct {
		data map[string][]byte
		want error
	}{
		"no tls.key":          {map[string][]byte{"tls.crt": chain.Crt}, push.ErrSourceKeyNotFound},
		"no tls.crt":          {map[string][]byte{"tls.key": chain.Key}, push.ErrSourceKeyNotFound},
		"key of another leaf": {map[string][]byte{"tls.key": other.Key, "tls.crt": chain.Crt}, push.ErrCertificateUnusable},
		"intermediate first":  {map[string][]byte{"tls.key": chain.Key, "tls.crt": append(pemOf(chain.Intermediate), pemOf(chain.Leaf)...)}, push.ErrCertificateUnusable},
		"garbage tls.crt":     {map[string][]byte{"tls.key": chain.Key, "tls.crt": []byte("not pem")}, push.ErrCertificateUnusable},
		"key in tls.crt":      {map[string][]byte{"tls.key": chain.Key, "tls.crt": append(append([]byte{}, chain.Key...), chain.Crt...)}, push.ErrCertificateUnusable},
		"corrupt key":         {map[string][]byte{"tls.key": []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "tls.crt": chain.Crt}, push.ErrCertificateUnusable},
		"garbage ca.crt":      {map[string][]byte{"tls.key": chain.Key, "tls.crt": chain.Crt, "ca.crt": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}, push.ErrCertificateUnusable},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := push.CertificatePEM("tls", tc.data)
			g.Expect(errors.Is(err, tc.want)).To(BeTrue(), "%v", err)
			g.Expect(err.Error()).NotTo(ContainSubstring("PRIVATE KEY"))
		})
	}
}

func TestBuild(t *testing.T) {
	g := NewWithT(t)
	spec := &v1alpha1.VaultPushSecretSpec{
		Data: []v1alpha1.PushDataItem{
			{SecretKey: "password", Remote: v1alpha1.PushRemoteRef{Name: "db-password", ContentType: "text/plain"}},
		},
		DataFrom: &v1alpha1.PushDataFrom{Mode: v1alpha1.DataFromWhole, Remote: v1alpha1.PushJSONRemote{Name: "db-all"}},
	}
	objs, err := push.Build(spec, "db", map[string][]byte{"password": []byte("pw-123456"), "user": []byte("app")})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(objs).To(HaveLen(2))
	g.Expect(objs[0]).To(Equal(push.Object{Name: "db-password", Type: v1alpha1.PushTypeSecret, ContentType: "text/plain", Value: "pw-123456"}))
	g.Expect(objs[1].ContentType).To(Equal(push.ContentTypeJSON))
	var m map[string]string
	g.Expect(json.Unmarshal([]byte(objs[1].Value), &m)).To(Succeed())
	g.Expect(m).To(Equal(map[string]string{"password": "pw-123456", "user": "app"}))
	g.Expect(objs[0].String()).NotTo(ContainSubstring("pw-123456"))

	_, err = push.Build(spec, "db", map[string][]byte{"user": []byte("app")})
	g.Expect(errors.Is(err, push.ErrSourceKeyNotFound)).To(BeTrue())
	g.Expect(push.Reason(err)).To(Equal("SourceKeyNotFound"))
	g.Expect(err.Error()).To(ContainSubstring(`"password"`))

	_, err = push.Build(&v1alpha1.VaultPushSecretSpec{DataFrom: spec.DataFrom}, "db", map[string][]byte{"bin": {0xff, 0xfe}})
	g.Expect(errors.Is(err, push.ErrNotText)).To(BeTrue())

	_, err = push.Build(&v1alpha1.VaultPushSecretSpec{Data: spec.Data}, "db", map[string][]byte{"password": []byte(strings.Repeat("x", push.MaxValueBytes+1))})
	g.Expect(errors.Is(err, push.ErrTooLarge)).To(BeTrue())
}

func TestDigest(t *testing.T) {
	g := NewWithT(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	a := push.Object{Name: "x", Type: v1alpha1.PushTypeSecret, Value: "secret-value"}
	g.Expect(push.Digest(key, a)).To(Equal(push.Digest(key, a)))
	g.Expect(push.Digest(key, a)).To(HaveLen(64))
	g.Expect(push.Digest(key, a)).NotTo(ContainSubstring("secret-value"))
	b := a
	b.Value = "other"
	g.Expect(push.Digest(key, b)).NotTo(Equal(push.Digest(key, a)))
	c := a
	c.ContentType = "text/plain"
	g.Expect(push.Digest(key, c)).NotTo(Equal(push.Digest(key, a)))
	g.Expect(push.Digest([]byte("another-key-another-key-another!!"), a)).NotTo(Equal(push.Digest(key, a)))
	// The name is not part of the digest: the same data under another name is the same data.
	d := a
	d.Name = "y"
	g.Expect(push.Digest(key, d)).To(Equal(push.Digest(key, a)))

	tags := push.Tags(push.Owner("cluster", "ns", "name"), push.Digest(key, a))
	g.Expect(tags).To(HaveKeyWithValue(v1alpha1.TagManagedBy, "vaultsync"))
	g.Expect(tags).To(HaveKeyWithValue(v1alpha1.TagOwner, "cluster/ns/name"))
}
