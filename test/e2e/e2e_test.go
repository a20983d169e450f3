package e2e

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
	"github.com/vaultsync/vaultsync/test/testenv"
)

const (
	wait = 60 * time.Second
	tick = 200 * time.Millisecond
)

// jwtPattern matches a JSON Web Token (header and payload are base64url JSON).
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.`)

var _ = Describe("vaultsync end to end", Ordered, func() {
	// rotated is the value written by the rotation spec; the leak spec
	// looks for it in the operator's log.
	var rotated string

	It("turns every sample into the Secret its comment describes", func() {
		promises, err := samplePromises()
		Expect(err).NotTo(HaveOccurred())
		Expect(promises).NotTo(BeEmpty())
		var names []string
		for _, p := range promises {
			names = append(names, p.Secret)
		}
		By("waiting for the VaultSecrets " + strings.Join(names, ", ") + " to be Ready")
		Expect(testenv.WaitReady(ctx, k8s, namespace, len(promises), nil, 90*time.Second)).To(Succeed())

		for _, p := range promises {
			s := secret(p.Secret)
			Expect(s.Type).To(Equal(p.Type), "type of Secret %s (%s)", p.Secret, p.File)
			Expect(sortedKeys(s.Data)).To(Equal(p.Keys), "keys of Secret %s (%s)", p.Secret, p.File)
			Expect(s.Labels).To(HaveKeyWithValue("vaultsync.io/managed", "true"))
			Expect(s.OwnerReferences).To(ContainElement(SatisfyAll(
				HaveField("Kind", "VaultSecret"), HaveField("Name", p.Secret), HaveField("Controller", HaveValue(BeTrue())),
			)), "Secret %s is owned by its VaultSecret", p.Secret)
		}

		By("checking the values against what the emulator was seeded with")
		password := seeded("DbPassword")
		db := secret("db-credentials")
		Expect(db.Data["password"]).To(matchValue(password), "password")
		Expect(db.Data["connection"]).To(matchValue("Server=db.internal;User Id=app;Password="+password), "templated connection")
		Expect(db.Labels).To(HaveKeyWithValue("app.kubernetes.io/part-of", "shop"))

		features := secret("features")
		Expect(features.Data["checkout"]).To(matchValue(seeded("feature-checkout")))
		Expect(features.Data["search"]).To(matchValue(seeded("feature-search")))

		var cfg map[string]any
		Expect(json.Unmarshal([]byte(seeded("app-config")), &cfg)).To(Succeed())
		appConfig := secret("app-config")
		Expect(appConfig.Data["logLevel"]).To(matchValue(cfg["logLevel"].(string)))
		Expect(appConfig.Data["apiKey"]).To(matchValue(cfg["apiKey"].(string)))
		Expect(appConfig.Data["featureFlags"]).To(MatchJSON(`{"beta":true}`))
		Expect(appConfig.Data["beta"]).To(matchValue("true"))

		By("checking the public key of signing-key, as PEM and as a JWK")
		key := secret("signing-key")
		block, _ := pem.Decode(key.Data["public.pem"])
		Expect(block).NotTo(BeNil())
		Expect(block.Type).To(Equal("PUBLIC KEY"))
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		Expect(err).NotTo(HaveOccurred())
		rsaPub, ok := pub.(*rsa.PublicKey)
		Expect(ok).To(BeTrue(), "an RSA key")
		var jwk struct{ Kty, N, E string }
		Expect(json.Unmarshal(key.Data["public.jwk"], &jwk)).To(Succeed())
		Expect(jwk.Kty).To(Equal("RSA"))
		n, err := base64.RawURLEncoding.DecodeString(jwk.N)
		Expect(err).NotTo(HaveOccurred())
		Expect(new(big.Int).SetBytes(n).Cmp(rsaPub.N)).To(Equal(0), "the JWK and the PEM are the same key")
		Expect(string(key.Data["public.pem"])).NotTo(ContainSubstring("PRIVATE"))

		By("checking the TLS chain of web-tls: leaf then intermediate, the root in ca.crt, a PKCS#8 key")
		tls := secret("web-tls")
		chain := certificates(tls.Data["tls.crt"])
		Expect(chain).To(HaveLen(2))
		leaf, intermediate := chain[0], chain[1]
		Expect(leaf.Subject.String()).To(Equal("CN=shop.example.com"))
		Expect(leaf.DNSNames).To(ConsistOf("shop.example.com", "www.shop.example.com"))
		Expect(leaf.CheckSignatureFrom(intermediate)).To(Succeed())
		roots := certificates(tls.Data["ca.crt"])
		Expect(roots).To(HaveLen(1))
		Expect(intermediate.CheckSignatureFrom(roots[0])).To(Succeed())
		Expect(roots[0].CheckSignatureFrom(roots[0])).To(Succeed(), "the root is self-signed")
		keyBlock, _ := pem.Decode(tls.Data["tls.key"])
		Expect(keyBlock).NotTo(BeNil())
		Expect(keyBlock.Type).To(Equal("PRIVATE KEY"))
		priv, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
		Expect(err).NotTo(HaveOccurred())
		signer, ok := priv.(crypto.Signer)
		Expect(ok).To(BeTrue())
		Expect(signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey)).To(BeTrue(), "tls.key belongs to the leaf")

		vs := vaultSecret("web-tls")
		Expect(vs.Status.Certificates).To(ConsistOf(SatisfyAll(
			HaveField("Key", "tls.crt"), HaveField("Subject", "CN=shop.example.com"),
			HaveField("NotAfter.Time", BeTemporally("~", leaf.NotAfter, time.Second)),
		)))
	})

	It("delivers a rotated secret after a force-sync", func() {
		before := vaultSecret("db-credentials")
		oldVersion, oldHash := before.Status.SyncedVersions["password"], before.Status.DataHash
		Expect(oldVersion).To(MatchRegexp("^[0-9a-f]{32}$"))

		rotated = randomValue()
		vi, err := env.Admin().SetSecret(ctx, testenv.Vault, "DbPassword", admin.SecretVersion{Value: rotated, ContentType: "text/plain"})
		Expect(err).NotTo(HaveOccurred())
		Expect(vi.Version).NotTo(Equal(oldVersion))

		stamp := time.Now().UTC().Format(time.RFC3339Nano)
		_, err = testenv.Kubectl(ctx, env.ControlPlane(), "annotate", "--overwrite", "-n", namespace,
			"vaultsecret", "db-credentials", v1alpha1.AnnotationForceSync+"="+stamp)
		Expect(err).NotTo(HaveOccurred())

		Eventually(func(g Gomega) {
			vs := vaultSecret("db-credentials")
			g.Expect(vs.Status.LastForceSync).To(Equal(stamp))
			g.Expect(vs.Status.SyncedVersions).To(HaveKeyWithValue("password", vi.Version))
			g.Expect(testenv.IsReady(vs)).To(BeTrue())
			g.Expect(vs.Status.DataHash).NotTo(Equal(oldHash))
			s := secret("db-credentials")
			g.Expect(s.Data["password"]).To(matchValue(rotated))
			g.Expect(s.Data["connection"]).To(matchValue("Server=db.internal;User Id=app;Password=" + rotated))
		}, wait, tick).Should(Succeed())
	})

	It("never logs a secret value, a private key or a token", func() {
		log, err := env.OperatorLog(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(log).To(ContainSubstring("Starting workers"), "this is the operator's log")

		secrets := map[string]string{"the rotated DbPassword": rotated}
		for _, v := range seed.Vaults {
			for _, s := range v.Secrets {
				for i, sv := range append([]admin.SecretVersion{s.SecretVersion}, s.Versions...) {
					if len(sv.Value) >= 8 { // short values ("v2", "off") are ordinary words of a log
						secrets[fmt.Sprintf("Key Vault secret %s/%s (version %d)", v.Name, s.Name, i)] = sv.Value
					}
				}
			}
		}
		var cfg map[string]any
		Expect(json.Unmarshal([]byte(seeded("app-config")), &cfg)).To(Succeed())
		secrets["the apiKey of app-config"] = cfg["apiKey"].(string)
		for k, v := range secret("db-credentials").Data {
			secrets["db-credentials "+k] = string(v)
		}
		// Every line of the private key's PEM body, so that no part of it leaks.
		keyPEM := string(secret("web-tls").Data["tls.key"])
		for i, line := range strings.Split(keyPEM, "\n") {
			if len(line) >= 32 && !strings.HasPrefix(line, "-----") {
				secrets[fmt.Sprintf("line %d of the web-tls private key", i)] = line
			}
		}
		Expect(len(secrets)).To(BeNumerically(">", 10))
		for what, value := range secrets {
			// No Gomega matcher on the log itself: a failure must not print the value.
			Expect(strings.Contains(log, value)).To(BeFalse(), "the operator's log contains %s", what)
			Expect(strings.Contains(log, base64.StdEncoding.EncodeToString([]byte(value)))).To(BeFalse(),
				"the operator's log contains %s in base64", what)
		}
		Expect(jwtPattern.MatchString(log)).To(BeFalse(), "the operator's log contains a token")
	})

	It("writes no Secret when the operator restarts", func() {
		var list corev1.SecretList
		Expect(k8s.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{"vaultsync.io/managed": "true"})).To(Succeed())
		Expect(list.Items).NotTo(BeEmpty())
		versions := map[string]string{}
		for _, s := range list.Items {
			versions[s.Name] = s.ResourceVersion
		}
		restart := time.Now()

		By("stopping the operator with SIGTERM and starting it again")
		Expect(env.RestartOperator(ctx)).To(Succeed())

		By("syncing a new VaultSecret, which proves the new operator reconciles")
		canary := vaultSecret("db-credentials").DeepCopy()
		canary.ObjectMeta = metav1.ObjectMeta{Namespace: namespace, Name: "canary"}
		canary.Status = v1alpha1.VaultSecretStatus{}
		Expect(k8s.Create(ctx, canary)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(testenv.IsReady(vaultSecret("canary"))).To(BeTrue())
		}, wait, tick).Should(Succeed())

		By("comparing the resourceVersions of the Secrets synced before the restart")
		for name, rv := range versions {
			Expect(secret(name).ResourceVersion).To(Equal(rv), "Secret %s was written after the restart", name)
		}
		By("checking that Key Vault was read only for the canary")
		entries, err := env.Admin().Log(ctx, admin.LogFilter{Service: admin.ServiceVault, Since: restart})
		Expect(err).NotTo(HaveOccurred())
		for _, e := range entries {
			Expect(e.Object).To(Equal("DbPassword"), "Key Vault read %s %s after the restart", e.Operation, e.Object)
		}
	})

	It("garbage-collects the Secret of a deleted VaultSecret", func() {
		s := secret("features")
		vs := vaultSecret("features")
		Expect(s.OwnerReferences).To(ContainElement(HaveField("UID", vs.UID)))
		Expect(k8s.Delete(ctx, vs)).To(Succeed())
		Eventually(func() bool {
			err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "features"}, &corev1.Secret{})
			return apierrors.IsNotFound(err)
		}, wait, tick).Should(BeTrue(), "the garbage collector deletes Secret features")
		Expect(secret("db-credentials").Name).To(Equal("db-credentials"), "other Secrets stay")
	})
})

func secret(name string) *corev1.Secret {
	GinkgoHelper()
	s := &corev1.Secret{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)).To(Succeed(), "Secret %s", name)
	return s
}

func vaultSecret(name string) *v1alpha1.VaultSecret {
	GinkgoHelper()
	vs := &v1alpha1.VaultSecret{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, vs)).To(Succeed(), "VaultSecret %s", name)
	return vs
}

// seeded is the value hack/demo/emulator.yaml gives a secret of the demo vault.
func seeded(name string) string {
	GinkgoHelper()
	for _, v := range seed.Vaults {
		if v.Name != testenv.Vault {
			continue
		}
		for _, s := range v.Secrets {
			if s.Name == name {
				return latest(s)
			}
		}
	}
	Fail("hack/demo/emulator.yaml seeds no secret " + name)
	return ""
}

// latest is the value of a seeded secret's latest version (the
// configuration's inline value is its only version).
func latest(s admin.Secret) string {
	if n := len(s.Versions); n > 0 {
		return s.Versions[n-1].Value
	}
	return s.Value
}

// matchValue compares a Secret value without printing either side on failure.
func matchValue(want string) OmegaMatcher {
	return WithTransform(func(got []byte) bool { return string(got) == want }, BeTrue())
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func certificates(pemData []byte) []*x509.Certificate {
	GinkgoHelper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, pemData = pem.Decode(pemData)
		if b == nil {
			return out
		}
		Expect(b.Type).To(Equal("CERTIFICATE"))
		c, err := x509.ParseCertificate(b.Bytes)
		Expect(err).NotTo(HaveOccurred())
		out = append(out, c)
	}
}

func randomValue() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "rotated-" + base64.RawURLEncoding.EncodeToString(b)
}

func mustClient(cp *controlplane.ControlPlane) client.Client {
	c, err := client.New(cp.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		panic(err)
	}
	return c
}
