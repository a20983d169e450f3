package controllers_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator"
)

var (
	valuesMu sync.Mutex
	values   []string
)

// rememberValue records a secret value the suite put into the vault, so
// that checkNoLeaks can look for it where it must never appear.
func rememberValue(v string) {
	valuesMu.Lock()
	defer valuesMu.Unlock()
	values = append(values, v)
}

// checkNoLeaks runs after every spec: no secret value, private key or token
// may appear in the manager's log (at any verbosity the suite enables), in an
// event, or in a VaultSecret's status.
func checkNoLeaks() {
	root, err := controlplane.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	cfg, err := emulator.LoadConfig(filepath.Join(root, "hack", "demo", "emulator.yaml"))
	Expect(err).NotTo(HaveOccurred())
	for _, v := range cfg.Vaults {
		for _, s := range v.Secrets {
			rememberValue(s.Value)
		}
	}

	var where []string
	where = append(where, logs.String())
	var events eventsv1.EventList
	Expect(k8s.List(ctx, &events)).To(Succeed())
	for _, e := range events.Items {
		where = append(where, e.Note)
	}
	var list v1alpha1.VaultSecretList
	Expect(k8s.List(ctx, &list)).To(Succeed())
	for _, vs := range list.Items {
		b, err := json.Marshal(vs.Status)
		Expect(err).NotTo(HaveOccurred())
		where = append(where, string(b))
	}
	var pushes v1alpha1.VaultPushSecretList
	Expect(k8s.List(ctx, &pushes)).To(Succeed())
	for _, ps := range pushes.Items {
		b, err := json.Marshal(ps.Status)
		Expect(err).NotTo(HaveOccurred())
		where = append(where, string(b))
	}
	// A VaultSecret logs "syncing", a VaultPushSecret "pushed": a focused run may have either.
	Expect(logs.String()).To(Or(ContainSubstring("syncing"), ContainSubstring("pushed")), "the log capture works")

	valuesMu.Lock()
	defer valuesMu.Unlock()
	for _, text := range where {
		for _, v := range values {
			if len(v) < 8 { // too short to tell apart from ordinary words
				continue
			}
			Expect(text).NotTo(ContainSubstring(v), "a secret value leaked")
		}
		Expect(text).NotTo(ContainSubstring("PRIVATE KEY"), "a private key leaked")
		Expect(text).NotTo(MatchRegexp(`eyJ[A-Za-z0-9_-]{10,}\.eyJ`), "a token leaked")
	}
}

var _ = Describe("VaultSecret refresh and samples", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("picks up a new version after the refresh interval, and not before", func() {
		setSecret("periodic", "before-rotation")
		createVS(ns, "periodic", v1alpha1.VaultSecretSpec{
			RefreshInterval: &metav1.Duration{Duration: time.Minute},
			Data:            []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "periodic"}}},
		})
		vs := expectReady(ns, "periodic")
		next := vs.Status.NextSyncTime.Time
		// The first refresh comes between half and one and a half intervals later (see refreshSlot).
		Expect(next.Sub(vs.Status.LastSyncTime.Time)).To(BeNumerically("~", time.Minute, 30*time.Second+time.Second))
		setSecret("periodic", "after-rotation")
		Consistently(secretValue(ns, "periodic", "v"), 3*time.Second, 200*time.Millisecond).Should(Equal("before-rotation"))
		Eventually(secretValue(ns, "periodic", "v"), time.Until(next)+15*time.Second, 250*time.Millisecond).Should(Equal("after-rotation"))
		Expect(time.Now()).To(BeTemporally(">=", next), "not before the scheduled time")
	})

	It("turns config/samples into the Secrets their comments describe", func() {
		root, err := controlplane.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		out, err := exec.CommandContext(ctx, cp.Kubectl(), "--kubeconfig", cp.Kubeconfig, "apply", "-n", ns,
			"-f", filepath.Join(root, "config", "samples")).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		for _, name := range []string{"db-credentials", "app-config", "web-tls", "features", "signing-key"} {
			expectReady(ns, name)
		}
		Expect(getSecret(ns, "db-credentials").Data).To(Equal(map[string][]byte{
			"password":   []byte("correct-horse-battery-staple"),
			"connection": []byte("Server=db.internal;User Id=app;Password=correct-horse-battery-staple"),
		}))
		Expect(getSecret(ns, "db-credentials").Labels).To(HaveKeyWithValue("app.kubernetes.io/part-of", "shop"))
		Expect(getSecret(ns, "app-config").Data).To(Equal(map[string][]byte{
			"logLevel": []byte("info"), "featureFlags": []byte(`{"beta":true}`), "apiKey": []byte("ak-7f3e9c1d"), "beta": []byte("true"),
		}))
		tlsSecret := getSecret(ns, "web-tls")
		Expect(tlsSecret.Type).To(Equal(corev1.SecretTypeTLS))
		Expect(tlsSecret.Data).To(SatisfyAll(HaveKey("tls.crt"), HaveKey("tls.key"), HaveKey("ca.crt")))
		Expect(parseCerts(tlsSecret.Data["tls.crt"])).To(HaveLen(2))
		Expect(getVS(ns, "web-tls").Status.Certificates).To(ConsistOf(HaveField("Subject", ContainSubstring("shop.example.com"))))
		Expect(getSecret(ns, "features").Data).To(Equal(map[string][]byte{"checkout": []byte("enabled"), "search": []byte("v2")}))
		key := getSecret(ns, "signing-key").Data
		Expect(string(key["public.pem"])).To(HavePrefix("-----BEGIN PUBLIC KEY-----"))
		Expect(string(key["public.jwk"])).To(ContainSubstring(`"kty":"RSA"`))
	})

	It("writes a certificate as a PFX, a PEM bundle or the public chain only", func() {
		name := "formats-" + ns
		_, err := emu.ImportCertificate(vaultName, emulator.Certificate{Name: name,
			Generate: &emulator.GenerateCertificate{Subject: "CN=formats.example.com"}})
		Expect(err).NotTo(HaveOccurred())
		item := func(key string, f v1alpha1.Format) v1alpha1.DataItem {
			return v1alpha1.DataItem{Key: key, Remote: v1alpha1.RemoteRef{Name: name, Type: v1alpha1.ObjectTypeCertificate, Format: f}}
		}
		createVS(ns, "formats", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{
			item("cert.pfx", v1alpha1.FormatPFX), item("bundle.pem", v1alpha1.FormatPEM), item("chain.pem", v1alpha1.FormatCertOnly),
		}})
		expectReady(ns, "formats")
		data := getSecret(ns, "formats").Data
		key, leaf, cas, err := pkcs12.DecodeChain(data["cert.pfx"], "")
		Expect(err).NotTo(HaveOccurred(), "an empty-password PFX")
		Expect(key).NotTo(BeNil())
		Expect(leaf.Subject.CommonName).To(Equal("formats.example.com"))
		Expect(cas).NotTo(BeEmpty())
		Expect(string(data["bundle.pem"])).To(HavePrefix("-----BEGIN PRIVATE KEY-----"))
		Expect(parseCerts(data["bundle.pem"])[0].Subject.CommonName).To(Equal("formats.example.com"))
		Expect(string(data["chain.pem"])).NotTo(ContainSubstring("PRIVATE KEY"))
		chain := parseCerts(data["chain.pem"])
		Expect(chain).To(HaveLen(3), "leaf, intermediate and root")
		Expect(chain[0].Subject.CommonName).To(Equal("formats.example.com"))
	})

	It("orders a certificate chain stored out of order and warns about it", func() {
		pemText := outOfOrderChain()
		_, err := emu.ImportCertificate(vaultName, emulator.Certificate{Name: "unordered-" + ns, PEM: pemText, ContentType: "application/x-pem-file"})
		Expect(err).NotTo(HaveOccurred())
		createVS(ns, "unordered", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{Type: corev1.SecretTypeTLS},
			Data:   []v1alpha1.DataItem{{Remote: v1alpha1.RemoteRef{Name: "unordered-" + ns, Type: v1alpha1.ObjectTypeCertificate}}},
		})
		expectReady(ns, "unordered")
		chain := parseCerts(getSecret(ns, "unordered").Data["tls.crt"])
		Expect(chain).To(HaveLen(2))
		Expect(chain[0].Subject.CommonName).To(Equal("leaf.example.com"))
		Expect(chain[1].Subject.CommonName).To(Equal("Suite Intermediate"))
		Eventually(func() []string {
			var list eventsv1.EventList
			Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			var notes []string
			for _, e := range list.Items {
				if e.Reason == "CertificateChain" && e.Type == corev1.EventTypeWarning {
					notes = append(notes, e.Note)
				}
			}
			return notes
		}, timeout).ShouldNot(BeEmpty())
	})
})

// outOfOrderChain returns PEM text holding a root, a leaf, the leaf's key
// and an intermediate, in that (wrong) order.
func outOfOrderChain() string {
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		Expect(err).NotTo(HaveOccurred())
		return k
	}
	now := time.Now()
	mk := func(serial int64, cn string, isCA bool, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			IsCA: isCA, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		}
		if !isCA {
			tmpl.DNSNames = []string{cn}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		Expect(err).NotTo(HaveOccurred())
		c, err := x509.ParseCertificate(der)
		Expect(err).NotTo(HaveOccurred())
		return c
	}
	rootKey, interKey, leafKey := newKey(), newKey(), newKey()
	root := mk(1, "Suite Root", true, rootKey, nil, nil)
	inter := mk(2, "Suite Intermediate", true, interKey, root, rootKey)
	leaf := mk(3, "leaf.example.com", false, leafKey, inter, interKey)
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	Expect(err).NotTo(HaveOccurred())
	var b strings.Builder
	for _, blk := range []*pem.Block{
		{Type: "CERTIFICATE", Bytes: root.Raw},
		{Type: "CERTIFICATE", Bytes: leaf.Raw},
		{Type: "PRIVATE KEY", Bytes: keyDER},
		{Type: "CERTIFICATE", Bytes: inter.Raw},
	} {
		Expect(pem.Encode(&b, blk)).To(Succeed())
	}
	return b.String()
}
