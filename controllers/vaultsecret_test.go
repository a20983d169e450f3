package controllers_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/secrets"
	"github.com/vaultsync/vaultsync/test/emulator"
)

const timeout = 20 * time.Second

func wiVault() *v1alpha1.VaultRef {
	return &v1alpha1.VaultRef{URL: vaultURL, Auth: v1alpha1.VaultAuth{
		WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "app"},
	}}
}

func createVS(ns, name string, spec v1alpha1.VaultSecretSpec) *v1alpha1.VaultSecret {
	if spec.Vault == nil {
		spec.Vault = wiVault()
	}
	vs := &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	Expect(k8s.Create(ctx, vs)).To(Succeed())
	return vs
}

func getVS(ns, name string) *v1alpha1.VaultSecret {
	vs := &v1alpha1.VaultSecret{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vs)).To(Succeed())
	return vs
}

// readyCondition returns the Ready condition once it reflects the current generation.
func readyCondition(ns, name string) func() *metav1.Condition {
	return currentReady(client.ObjectKey{Namespace: ns, Name: name}, &v1alpha1.VaultSecret{},
		func(vs *v1alpha1.VaultSecret) []metav1.Condition { return vs.Status.Conditions })
}

func expectReady(ns, name string) *v1alpha1.VaultSecret {
	GinkgoHelper()
	eventuallyReady(readyCondition(ns, name), "VaultSecret %s/%s becomes Ready", ns, name)
	return getVS(ns, name)
}

func expectNotReady(ns, name, reason string) *metav1.Condition {
	GinkgoHelper()
	return eventuallyNotReady(readyCondition(ns, name), reason)
}

func getSecret(ns, name string) *corev1.Secret {
	s := &corev1.Secret{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s)).To(Succeed())
	return s
}

func secretValue(ns, name, key string) func() string {
	return func() string {
		s := &corev1.Secret{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			return "<" + err.Error() + ">"
		}
		return string(s.Data[key])
	}
}

func setSecret(name, value string) emulator.VersionInfo {
	GinkgoHelper()
	rememberValue(value)
	v, err := emu.SetSecret(vaultName, name, emulator.SecretVersion{Value: value})
	Expect(err).NotTo(HaveOccurred())
	return v
}

func forceSync(ns, name, token string) {
	GinkgoHelper()
	vs := getVS(ns, name)
	patch := client.MergeFrom(vs.DeepCopy())
	if vs.Annotations == nil {
		vs.Annotations = map[string]string{}
	}
	vs.Annotations[v1alpha1.AnnotationForceSync] = token
	Expect(k8s.Patch(ctx, vs, patch)).To(Succeed())
}

// eventNotes lists the notes of the events with this reason about a VaultSecret.
func eventNotes(ns, name, reason string) []string {
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Regarding.Kind == "VaultSecret" && e.Reason == reason {
			out = append(out, e.Note)
		}
	}
	return out
}

func eventReasons(ns, name string) []string {
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Regarding.Kind == "VaultSecret" {
			out = append(out, e.Reason)
		}
	}
	return out
}

var _ = Describe("VaultSecret", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("writes the Secret with owner reference, labels, template and status", func() {
		v := setSecret("basic-password", "hunter2-basic")
		createVS(ns, "db", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{
				Name:     "db-credentials",
				Labels:   map[string]string{"team": "shop"},
				Template: &v1alpha1.SecretTemplate{Data: map[string]string{"connection": "Server=db;Password={{ .password }}"}},
			},
			Data: []v1alpha1.DataItem{{Key: "password", Remote: v1alpha1.RemoteRef{Name: "basic-password"}}},
		})
		vs := expectReady(ns, "db")
		s := getSecret(ns, "db-credentials")
		Expect(s.Data).To(Equal(map[string][]byte{
			"password":   []byte("hunter2-basic"),
			"connection": []byte("Server=db;Password=hunter2-basic"),
		}))
		Expect(s.Type).To(Equal(corev1.SecretTypeOpaque))
		Expect(s.Labels).To(HaveKeyWithValue("team", "shop"))
		Expect(s.Labels).To(HaveKeyWithValue("vaultsync.io/managed", "true"))
		Expect(s.OwnerReferences).To(ConsistOf(HaveField("UID", vs.UID)))
		Expect(s.ManagedFields).To(ContainElement(HaveField("Manager", "vaultsync")))

		Expect(vs.Status.SyncedVersions).To(Equal(map[string]string{"password": v.Version}))
		Expect(vs.Status.DataHash).To(MatchRegexp("^[0-9a-f]{64}$"))
		Expect(vs.Status.LastSyncTime).NotTo(BeNil())
		// Refreshes sit on a per-reads grid: the first one comes between half and one and a half intervals later.
		Expect(vs.Status.NextSyncTime.Sub(vs.Status.LastSyncTime.Time)).To(BeNumerically("~", time.Hour, 30*time.Minute+time.Second))
		// A first sync that succeeds records no event: Ready=True (reason Synced) says it.
		Consistently(func() []string { return eventReasons(ns, "db") }, 2*time.Second).ShouldNot(ContainElement("Synced"))
	})

	It("reads JSON properties, whole JSON secrets and tagged searches with rewrite", func() {
		setSecret("json-config", `{"db":{"user":"app","password":"pw-json"},"port":5432}`)
		_, err := emu.SetSecret(vaultName, "srch-one", emulator.SecretVersion{Value: "1", Tags: map[string]string{"suite": ns}})
		Expect(err).NotTo(HaveOccurred())
		_, err = emu.SetSecret(vaultName, "srch-two", emulator.SecretVersion{Value: "2", Tags: map[string]string{"suite": "elsewhere"}})
		Expect(err).NotTo(HaveOccurred())
		createVS(ns, "mixed", v1alpha1.VaultSecretSpec{
			Data: []v1alpha1.DataItem{{Key: "user", Remote: v1alpha1.RemoteRef{Name: "json-config", Property: "db.user"}}},
			DataFrom: []v1alpha1.DataFromSource{
				{Remote: &v1alpha1.DataFromRemote{Name: "json-config"}},
				{Find: &v1alpha1.FindSpec{NameRegex: "^srch-", Tags: map[string]string{"suite": ns},
					Rewrite: &v1alpha1.Rewrite{Regex: "^srch-", Replace: "found-"}}},
			},
		})
		expectReady(ns, "mixed")
		Expect(getSecret(ns, "mixed").Data).To(Equal(map[string][]byte{
			"user":      []byte("app"),
			"db":        []byte(`{"user":"app","password":"pw-json"}`),
			"port":      []byte("5432"),
			"found-one": []byte("1"),
		}))
	})

	It("pins a version", func() {
		v1 := setSecret("pinned", "pinned-first-value")
		setSecret("pinned", "pinned-second-value")
		createVS(ns, "pin", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{
			{Key: "old", Remote: v1alpha1.RemoteRef{Name: "pinned", Version: v1.Version}},
			{Key: "new", Remote: v1alpha1.RemoteRef{Name: "pinned"}},
		}})
		expectReady(ns, "pin")
		Expect(getSecret(ns, "pin").Data).To(Equal(map[string][]byte{"old": []byte("pinned-first-value"), "new": []byte("pinned-second-value")}))
	})

	DescribeTable("certificates with a 3-level chain become a TLS Secret",
		func(contentType, pfxEncoding string) {
			name := "cert-" + strings.ReplaceAll(contentType+pfxEncoding, "/", "-")
			name = strings.ReplaceAll(strings.ReplaceAll(name, ".", "-"), "+", "-")
			_, err := emu.ImportCertificate(vaultName, emulator.Certificate{
				Name: name, ContentType: contentType, PFXEncoding: pfxEncoding,
				Generate: &emulator.GenerateCertificate{Subject: "CN=" + name + ".example.com", DNSNames: []string{name + ".example.com"}},
			})
			Expect(err).NotTo(HaveOccurred())
			createVS(ns, "tls", v1alpha1.VaultSecretSpec{
				Target: v1alpha1.SecretTarget{Type: corev1.SecretTypeTLS},
				Data:   []v1alpha1.DataItem{{Remote: v1alpha1.RemoteRef{Name: name, Type: v1alpha1.ObjectTypeCertificate}}},
			})
			vs := expectReady(ns, "tls")
			s := getSecret(ns, "tls")
			Expect(s.Type).To(Equal(corev1.SecretTypeTLS))
			_, err = tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"])
			Expect(err).NotTo(HaveOccurred())
			chain := parseCerts(s.Data["tls.crt"])
			Expect(chain).To(HaveLen(2), "leaf then intermediate")
			Expect(chain[0].Subject.CommonName).To(Equal(name + ".example.com"))
			Expect(chain[0].CheckSignatureFrom(chain[1])).To(Succeed())
			roots := parseCerts(s.Data["ca.crt"])
			Expect(roots).To(HaveLen(1))
			Expect(chain[1].CheckSignatureFrom(roots[0])).To(Succeed())
			Expect(roots[0].CheckSignatureFrom(roots[0])).To(Succeed(), "ca.crt is the self-signed root")
			Expect(string(s.Data["tls.key"])).To(HavePrefix("-----BEGIN PRIVATE KEY-----"))
			Expect(vs.Status.Certificates).To(ConsistOf(And(
				HaveField("Key", "tls.crt"),
				HaveField("Subject", ContainSubstring(name+".example.com")),
				HaveField("NotAfter.Time", BeTemporally("~", chain[0].NotAfter, time.Second)),
			)))
		},
		Entry("PFX, modern encryption", "application/x-pkcs12", "modern"),
		Entry("PFX, legacy encryption", "application/x-pkcs12", "legacy"),
		Entry("PEM", "application/x-pem-file", ""),
	)

	It("writes a key's public part as PEM and JWK", func() {
		_, err := emu.CreateKey(vaultName, emulator.Key{Name: "suite-key-" + ns, Kty: "EC", Curve: "P-256"})
		Expect(err).NotTo(HaveOccurred())
		createVS(ns, "key", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{
			{Key: "pem", Remote: v1alpha1.RemoteRef{Name: "suite-key-" + ns, Type: v1alpha1.ObjectTypeKey}},
			{Key: "jwk", Remote: v1alpha1.RemoteRef{Name: "suite-key-" + ns, Type: v1alpha1.ObjectTypeKey, Format: v1alpha1.FormatJWK}},
		}})
		expectReady(ns, "key")
		s := getSecret(ns, "key")
		block, _ := pem.Decode(s.Data["pem"])
		Expect(block).NotTo(BeNil())
		_, err = x509.ParsePKIXPublicKey(block.Bytes)
		Expect(err).NotTo(HaveOccurred())
		var jwk map[string]any
		Expect(json.Unmarshal(s.Data["jwk"], &jwk)).To(Succeed())
		Expect(jwk).To(HaveKeyWithValue("kty", "EC"))
		Expect(jwk).To(HaveKeyWithValue("crv", "P-256"))
	})

	It("picks up a rotation immediately on force-sync, with one event", func() {
		setSecret("rotating", "rotation-value-one")
		createVS(ns, "rot", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "rotating"}}}})
		before := expectReady(ns, "rot")
		v2 := setSecret("rotating", "rotation-value-two")
		forceSync(ns, "rot", "1")
		Eventually(secretValue(ns, "rot", "v"), timeout).Should(Equal("rotation-value-two"))
		Eventually(func() string { return getVS(ns, "rot").Status.SyncedVersions["v"] }, timeout).Should(Equal(v2.Version))
		Expect(getVS(ns, "rot").Status.DataHash).NotTo(Equal(before.Status.DataHash))
		Eventually(func() []string { return eventReasons(ns, "rot") }, timeout).Should(ContainElement("Updated"))
	})

	It("restores a managed Secret edited or deleted by someone else", func() {
		setSecret("drift", "drift-original-value")
		createVS(ns, "drift", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "drift"}}}})
		expectReady(ns, "drift")
		s := getSecret(ns, "drift")
		s.Data["v"] = []byte("tampered")
		s.Data["extra"] = []byte("x")
		Expect(k8s.Update(ctx, s)).To(Succeed())
		Eventually(func() map[string][]byte { return getSecret(ns, "drift").Data }, timeout).Should(
			Equal(map[string][]byte{"v": []byte("drift-original-value")}))
		Expect(k8s.Delete(ctx, getSecret(ns, "drift"))).To(Succeed())
		Eventually(secretValue(ns, "drift", "v"), timeout).Should(Equal("drift-original-value"))
	})

	It("never takes over a Secret it does not manage, and two VaultSecrets cannot share one", func() {
		setSecret("conflict", "mine")
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken"},
			Data:       map[string][]byte{"theirs": []byte("keep")},
		})).To(Succeed())
		createVS(ns, "grab", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{Name: "taken"},
			Data:   []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "conflict"}}},
		})
		c := expectNotReady(ns, "grab", "TargetConflict")
		Expect(c.Message).To(ContainSubstring("taken"))
		Expect(getSecret(ns, "taken").Data).To(Equal(map[string][]byte{"theirs": []byte("keep")}))

		createVS(ns, "first", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{Name: "shared"},
			Data:   []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "conflict"}}},
		})
		expectReady(ns, "first")
		createVS(ns, "second", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{Name: "shared"},
			Data:   []v1alpha1.DataItem{{Key: "other", Remote: v1alpha1.RemoteRef{Name: "conflict"}}},
		})
		c = expectNotReady(ns, "second", "TargetConflict")
		Expect(c.Message).To(ContainSubstring(ns + "/first"))
		Expect(getSecret(ns, "shared").Data).To(HaveKey("v"))
		Expect(getSecret(ns, "shared").Data).NotTo(HaveKey("other"))
	})

	It("keeps the last good data when a fetch fails, and says why", func() {
		setSecret("fragile", "good")
		setSecret("fragile-two", "also-good")
		createVS(ns, "keep", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{
			{Key: "a", Remote: v1alpha1.RemoteRef{Name: "fragile"}},
			{Key: "b", Remote: v1alpha1.RemoteRef{Name: "fragile-two"}},
		}})
		expectReady(ns, "keep")
		good := getSecret(ns, "keep")

		// A new version of "a" and a disabled "b": nothing may be half-written.
		latest := setSecret("fragile", "new-but-not-alone")
		_, err := emu.SetSecret(vaultName, "fragile-two", emulator.SecretVersion{Value: "disabled", Enabled: ptr.To(false)})
		Expect(err).NotTo(HaveOccurred())
		forceSync(ns, "keep", "disabled")
		c := expectNotReady(ns, "keep", "SecretDisabled")
		Expect(c.Message).To(ContainSubstring("fragile-two"))
		Expect(c.Message).To(ContainSubstring("data[1]"))
		Consistently(func() map[string][]byte { return getSecret(ns, "keep").Data }, 1500*time.Millisecond).Should(Equal(good.Data))
		Expect(getSecret(ns, "keep").ResourceVersion).To(Equal(good.ResourceVersion))
		Eventually(func() []string { return eventReasons(ns, "keep") }, timeout).Should(ContainElement("SyncFailed"))

		// Recovery: enable it again; the whole new set arrives at once.
		setSecret("fragile-two", "recovered")
		Eventually(secretValue(ns, "keep", "b"), timeout).Should(Equal("recovered"))
		Expect(getSecret(ns, "keep").Data["a"]).To(Equal([]byte("new-but-not-alone")))
		Eventually(func() string { return getVS(ns, "keep").Status.SyncedVersions["a"] }, timeout).Should(Equal(latest.Version))
	})

	It("records a Synced event for a sync that succeeds after a failure, none for a first sync", func() {
		setSecret("announced", "present")
		createVS(ns, "quiet", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "announced"}}}})
		expectReady(ns, "quiet")
		createVS(ns, "late", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "announced-later"}}}})
		expectNotReady(ns, "late", "SecretNotFound")
		setSecret("announced-later", "now-present")
		expectReady(ns, "late")
		Eventually(func() []string { return eventNotes(ns, "late", "Synced") }, timeout).Should(ConsistOf(ContainSubstring("after a failure")))
		// An event of "quiet"'s first sync would have been sent seconds before "late"'s.
		Expect(eventReasons(ns, "quiet")).NotTo(ContainElement("Synced"))
	})

	It("reports a missing secret and a missing role with their own reasons", func() {
		createVS(ns, "missing", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "does-not-exist"}}}})
		c := expectNotReady(ns, "missing", "SecretNotFound")
		Expect(c.Message).To(ContainSubstring("does-not-exist"))
		Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "missing"}, &corev1.Secret{}))).To(BeTrue())

		locked := wiVault()
		locked.URL = emu.VaultURL("locked")
		createVS(ns, "forbidden", v1alpha1.VaultSecretSpec{Vault: locked, Data: []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "anything"}}}})
		c = expectNotReady(ns, "forbidden", "ForbiddenByRbac")
		Expect(c.Message).To(ContainSubstring("Key Vault Secrets User"))
	})

	It("deletes an Owner Secret with its VaultSecret and leaves an Orphan one", func() {
		setSecret("gc", "collect-me-value")
		owned := createVS(ns, "owned", v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "gc"}}}})
		orphan := createVS(ns, "orphan", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{CreationPolicy: v1alpha1.CreationPolicyOrphan},
			Data:   []v1alpha1.DataItem{{Key: "v", Remote: v1alpha1.RemoteRef{Name: "gc"}}},
		})
		expectReady(ns, "owned")
		expectReady(ns, "orphan")
		Expect(getSecret(ns, "orphan").OwnerReferences).To(BeEmpty())
		Expect(k8s.Delete(ctx, owned)).To(Succeed())
		Expect(k8s.Delete(ctx, orphan)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "owned"}, &corev1.Secret{}))
		}, timeout).Should(BeTrue(), "the garbage collector deletes the owned Secret")
		Consistently(secretValue(ns, "orphan", "v"), 2*time.Second).Should(Equal("collect-me-value"))
	})

	It("merges keys into an existing Secret and removes only its own", func() {
		setSecret("merge-a", "A")
		setSecret("merge-b", "B")
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-env",
				Annotations: map[string]string{secrets.AnnotationMergeAllowed: "merge"}},
			Data: map[string][]byte{"theirs": []byte("keep")},
		})).To(Succeed())
		createVS(ns, "merge", v1alpha1.VaultSecretSpec{
			Target: v1alpha1.SecretTarget{Name: "app-env", CreationPolicy: v1alpha1.CreationPolicyMerge},
			Data: []v1alpha1.DataItem{
				{Key: "a", Remote: v1alpha1.RemoteRef{Name: "merge-a"}},
				{Key: "b", Remote: v1alpha1.RemoteRef{Name: "merge-b"}},
			},
		})
		expectReady(ns, "merge")
		Expect(getSecret(ns, "app-env").Data).To(Equal(map[string][]byte{"theirs": []byte("keep"), "a": []byte("A"), "b": []byte("B")}))
		updateLatest(getVS(ns, "merge"), func(vs *v1alpha1.VaultSecret) { vs.Spec.Data = vs.Spec.Data[:1] })
		Eventually(func() map[string][]byte { return getSecret(ns, "app-env").Data }, timeout).Should(
			Equal(map[string][]byte{"theirs": []byte("keep"), "a": []byte("A")}))
	})

	It("makes a no-op refresh with one GET per object, no token request and no Secret write", func() {
		setSecret("noop-a", "A")
		setSecret("noop-b", "B")
		// An identity of its own, so that no other spec's VaultSecrets (some retry failing
		// identities in the background) count in its token requests.
		clientID := addIdentity(emulator.Identity{Name: "noop-" + ns}, vaultName)
		createServiceAccount(ns, "noop", clientID)
		federate("noop-"+ns, ns, "noop")
		createVS(ns, "noop", v1alpha1.VaultSecretSpec{
			Vault: &v1alpha1.VaultRef{URL: vaultURL, Auth: v1alpha1.VaultAuth{
				WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "noop"}}},
			Data: []v1alpha1.DataItem{
				{Key: "a", Remote: v1alpha1.RemoteRef{Name: "noop-a"}},
				{Key: "b", Remote: v1alpha1.RemoteRef{Name: "noop-b"}},
				{Key: "a2", Remote: v1alpha1.RemoteRef{Name: "noop-a"}},
			}})
		expectReady(ns, "noop")
		Expect(tokenRequests(clientID, time.Time{})).To(Equal(1), "the first sync took one token")
		rv := getSecret(ns, "noop").ResourceVersion
		since := time.Now()
		forceSync(ns, "noop", "refresh")
		Eventually(func() string { return getVS(ns, "noop").Status.LastForceSync }, timeout).Should(Equal("refresh"))
		gets := func(obj string) int {
			return emu.Count(emulator.LogFilter{Service: "keyvault", Operation: "GetSecret", Object: obj, Since: since})
		}
		Expect(gets("noop-a")).To(Equal(1), "the two items naming noop-a share one GET")
		Expect(gets("noop-b")).To(Equal(1))
		Expect(tokenRequests(clientID, since)).To(Equal(0), "the refresh reused the token")
		Expect(getSecret(ns, "noop").ResourceVersion).To(Equal(rv), "no Secret write")
	})
})

func parseCerts(pemBytes []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, pemBytes = pem.Decode(pemBytes)
		if b == nil {
			return out
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		Expect(err).NotTo(HaveOccurred())
		out = append(out, c)
	}
}
