package badinput

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

// rc is what a runtime case can use: its own namespace and a prefix for the
// Key Vault objects it creates.
type rc struct {
	t  *testing.T
	ns string
	p  string
}

func (c *rc) obj(n string) string { return c.p + "-" + n }

func (c *rc) set(n, value string) {
	c.t.Helper()
	if _, err := env.Emu.SetSecret(inprocess.Vault, c.obj(n), emulator.SecretVersion{Value: value}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rc) setTyped(n, value, contentType string) {
	c.t.Helper()
	if _, err := env.Emu.SetSecret(inprocess.Vault, c.obj(n), emulator.SecretVersion{Value: value, ContentType: contentType}); err != nil {
		c.t.Fatal(err)
	}
}

func item(key, name string) v1alpha1.DataItem {
	return v1alpha1.DataItem{Key: key, Remote: v1alpha1.RemoteRef{Name: name}}
}

func wi() v1alpha1.VaultAuth {
	return v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: inprocess.ServiceAccount}}
}

// runtimeCase: breakIt may run more than once (an update that conflicts is
// retried), so it must be idempotent. The VaultSecret is created with good (when set) and must be
// Ready with goodData; then break either replaces the spec or changes the
// vault; the outcome must be Ready=False with reason while the Secret still
// holds goodData. A case whose documented outcome is a sync (synced) checks
// Ready=True instead and that the Secret holds wantData.
type runtimeCase struct {
	name     string
	good     func(c *rc) *v1alpha1.VaultSecretSpec
	goodData map[string]string
	breakIt  func(c *rc, spec *v1alpha1.VaultSecretSpec)
	reason   string
	// synced: the documented outcome is a successful sync.
	synced   bool
	wantData func(c *rc) map[string]string
}

func basic(c *rc) *v1alpha1.VaultSecretSpec {
	c.set("pw", "good-password")
	return &v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{item("password", c.obj("pw"))}}
}

var basicData = map[string]string{"password": "good-password"}

// replaceItems returns a break function that replaces the items.
func replaceItems(f func(c *rc) ([]v1alpha1.DataItem, []v1alpha1.DataFromSource)) func(*rc, *v1alpha1.VaultSecretSpec) {
	return func(c *rc, s *v1alpha1.VaultSecretSpec) {
		s.Data, s.DataFrom = f(c)
	}
}

var runtimeCases = []runtimeCase{
	{name: "duplicate keys across two dataFrom JSON secrets", good: basic, goodData: basicData, reason: "InvalidSpec",
		breakIt: replaceItems(func(c *rc) ([]v1alpha1.DataItem, []v1alpha1.DataFromSource) {
			c.set("j1", `{"user":"a"}`)
			c.set("j2", `{"user":"b"}`)
			return nil, []v1alpha1.DataFromSource{{Remote: &v1alpha1.DataFromRemote{Name: c.obj("j1")}}, {Remote: &v1alpha1.DataFromRemote{Name: c.obj("j2")}}}
		})},
	{name: "duplicate key across data and dataFrom: data wins (documented)", synced: true,
		good: func(c *rc) *v1alpha1.VaultSecretSpec {
			c.set("json", `{"user":"from-json","port":"5432"}`)
			c.set("user", "from-data")
			return &v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{item("user", c.obj("user"))},
				DataFrom: []v1alpha1.DataFromSource{{Remote: &v1alpha1.DataFromRemote{Name: c.obj("json")}}}}
		},
		wantData: func(*rc) map[string]string { return map[string]string{"user": "from-data", "port": "5432"} }},
	{name: "key invalid after rewrite", good: basic, goodData: basicData, reason: "InvalidSpec",
		breakIt: replaceItems(func(c *rc) ([]v1alpha1.DataItem, []v1alpha1.DataFromSource) {
			c.set("rw", "x")
			return nil, []v1alpha1.DataFromSource{{Find: &v1alpha1.FindSpec{NameRegex: "^" + c.obj("rw") + "$",
				Rewrite: &v1alpha1.Rewrite{Regex: "-", Replace: "/"}}}}
		})},
	{name: "two secrets rewritten to one key", good: basic, goodData: basicData, reason: "InvalidSpec",
		breakIt: replaceItems(func(c *rc) ([]v1alpha1.DataItem, []v1alpha1.DataFromSource) {
			c.set("dup-a", "1")
			c.set("dup-b", "2")
			return nil, []v1alpha1.DataFromSource{{Find: &v1alpha1.FindSpec{NameRegex: "^" + c.obj("dup-"),
				Rewrite: &v1alpha1.Rewrite{Regex: ".*", Replace: "same"}}}}
		})},
	{name: "nameRegex that does not compile", good: basic, goodData: basicData, reason: "InvalidSpec",
		breakIt: replaceItems(func(c *rc) ([]v1alpha1.DataItem, []v1alpha1.DataFromSource) {
			return nil, []v1alpha1.DataFromSource{{Find: &v1alpha1.FindSpec{NameRegex: "(["}}}
		})},
	{name: "rewrite regex that does not compile", good: basic, goodData: basicData, reason: "InvalidSpec",
		breakIt: replaceItems(func(c *rc) ([]v1alpha1.DataItem, []v1alpha1.DataFromSource) {
			return nil, []v1alpha1.DataFromSource{{Find: &v1alpha1.FindSpec{NameRegex: "x", Rewrite: &v1alpha1.Rewrite{Regex: "a{2,1}", Replace: ""}}}}
		})},
	{name: "bad template syntax", good: basic, goodData: basicData, reason: "TemplateInvalid",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			s.Target.Template = &v1alpha1.SecretTemplate{Data: map[string]string{"dsn": "{{ .password "}}
		}},
	{name: "template referencing a missing key", good: basic, goodData: basicData, reason: "TemplateFailed",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			s.Target.Template = &v1alpha1.SecretTemplate{Data: map[string]string{"dsn": "{{ .nosuchkey }}"}}
		}},
	{name: "property on a secret that is not JSON", reason: "NotJSON",
		good: func(c *rc) *v1alpha1.VaultSecretSpec {
			c.set("cfg", `{"db":{"password":"p1"}}`)
			return &v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "pw", Remote: v1alpha1.RemoteRef{Name: c.obj("cfg"), Property: "db.password"}}}}
		},
		goodData: map[string]string{"pw": "p1"},
		breakIt:  func(c *rc, s *v1alpha1.VaultSecretSpec) { c.set("cfg", "plain text, not JSON") }},
	{name: "property path missing from the JSON", reason: "PropertyNotFound",
		good: func(c *rc) *v1alpha1.VaultSecretSpec {
			c.set("cfg", `{"db":{"password":"p1"}}`)
			return &v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "pw", Remote: v1alpha1.RemoteRef{Name: c.obj("cfg"), Property: "db.password"}}}}
		},
		goodData: map[string]string{"pw": "p1"},
		breakIt:  func(c *rc, s *v1alpha1.VaultSecretSpec) { c.set("cfg", `{"db":{"user":"u"}}`) }},
	{name: "malformed property path", good: basic, goodData: basicData, reason: "InvalidPropertyPath",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			c.set("json2", `{"a":{"b":1}}`)
			s.Data = []v1alpha1.DataItem{{Key: "x", Remote: v1alpha1.RemoteRef{Name: c.obj("json2"), Property: "a..b"}}}
		}},
	{name: "dataFrom remote that is a JSON array", good: basic, goodData: basicData, reason: "NotJSON",
		breakIt: replaceItems(func(c *rc) ([]v1alpha1.DataItem, []v1alpha1.DataFromSource) {
			c.set("arr", `[1,2,3]`)
			return nil, []v1alpha1.DataFromSource{{Remote: &v1alpha1.DataFromRemote{Name: c.obj("arr")}}}
		})},
	{name: "Base64 decode of a value that is not base64", reason: "DecodeFailed",
		good: func(c *rc) *v1alpha1.VaultSecretSpec {
			c.set("b64", base64.StdEncoding.EncodeToString([]byte("decoded-ok")))
			return &v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "bin", Remote: v1alpha1.RemoteRef{Name: c.obj("b64"), Decode: v1alpha1.DecodeBase64}}}}
		},
		goodData: map[string]string{"bin": "decoded-ok"},
		breakIt:  func(c *rc, s *v1alpha1.VaultSecretSpec) { c.set("b64", "this is %%% not base64!") }},
	{name: "a plain secret read as a certificate", good: basic, goodData: basicData, reason: "NotACertificate",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			s.Data = []v1alpha1.DataItem{{Remote: v1alpha1.RemoteRef{Name: c.obj("pw"), Type: v1alpha1.ObjectTypeCertificate}}}
		}},
	{name: "password-protected PFX stored as a secret and read as a certificate", good: basic, goodData: basicData, reason: "NotACertificate",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			c.setTyped("pfx", base64.StdEncoding.EncodeToString(protectedPFX(c.t)), "application/x-pkcs12")
			s.Data = []v1alpha1.DataItem{{Remote: v1alpha1.RemoteRef{Name: c.obj("pfx"), Type: v1alpha1.ObjectTypeCertificate}}}
		}},
	{name: "a secret read as a key", good: basic, goodData: basicData, reason: "KeyNotFound",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			s.Data = []v1alpha1.DataItem{{Key: "pub", Remote: v1alpha1.RemoteRef{Name: c.obj("pw"), Type: v1alpha1.ObjectTypeKey}}}
		}},
	{name: "expired certificate: synced, expiry in status (documented)", synced: true,
		good: func(c *rc) *v1alpha1.VaultSecretSpec {
			if _, err := env.Emu.ImportCertificate(inprocess.Vault, emulator.Certificate{Name: c.obj("expired"), PEM: expiredPEM(c.t), ContentType: emulator.ContentTypePEM}); err != nil {
				c.t.Fatal(err)
			}
			return &v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Remote: v1alpha1.RemoteRef{Name: c.obj("expired"), Type: v1alpha1.ObjectTypeCertificate}}}}
		}},
	{name: "fetched set larger than 1 MiB", good: basic, goodData: basicData, reason: "SecretTooLarge",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			// Key Vault holds at most 25 KB per secret: 45 of them exceed 1 MiB together.
			for i := range 45 {
				n := fmt.Sprintf("big%d", i)
				c.set(n, strings.Repeat(string(rune('a'+i%26)), 25000))
				s.Data = append(s.Data, item(n, c.obj(n)))
			}
		}},
	{name: "secret deleted from the vault", good: basic, goodData: basicData, reason: "SecretNotFound",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			if err := env.Emu.DeleteSecret(inprocess.Vault, c.obj("pw"), true); err != nil {
				c.t.Fatal(err)
			}
		}},
	{name: "secret disabled in the vault", good: basic, goodData: basicData, reason: "SecretDisabled",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			if err := env.Emu.SetSecretEnabled(inprocess.Vault, c.obj("pw"), "", false); err != nil {
				c.t.Fatal(err)
			}
		}},
	{name: "object name of 127 characters that does not exist", good: basic, goodData: basicData, reason: "SecretNotFound",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			s.Data = []v1alpha1.DataItem{item("long", strings.Repeat("n", 127))}
		}},
	{name: "object name of 127 characters that exists", synced: true,
		good: func(c *rc) *v1alpha1.VaultSecretSpec {
			name := c.p + strings.Repeat("l", 127-len(c.p))
			if _, err := env.Emu.SetSecret(inprocess.Vault, name, emulator.SecretVersion{Value: "long-name-value"}); err != nil {
				c.t.Fatal(err)
			}
			return &v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{item("long", name)}}
		},
		wantData: func(*rc) map[string]string { return map[string]string{"long": "long-name-value"} }},
	{name: "pinned version that does not exist", good: basic, goodData: basicData, reason: "SecretNotFound",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) { s.Data[0].Remote.Version = strings.Repeat("0", 32) }},
	{name: "vault the identity has no role on", good: basic, goodData: basicData, reason: "ForbiddenByRbac",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) { s.Vault.URL = env.VaultURL("norole") }},
	{name: "vault that does not exist", good: basic, goodData: basicData, reason: "KeyVaultUnavailable",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) { s.Vault.URL = "https://nosuchvault.vault.azure.net/" }},
	{name: "ServiceAccount missing", good: basic, goodData: basicData, reason: "ServiceAccountNotFound",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) { s.Vault.Auth.WorkloadIdentity.ServiceAccountName = "nobody" }},
	{name: "ServiceAccount without the client-id annotation", good: basic, goodData: basicData, reason: "MissingClientID",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: "plain"}}
			if err := client.IgnoreAlreadyExists(env.Client.Create(context.Background(), sa)); err != nil {
				c.t.Fatal(err)
			}
			s.Vault.Auth.WorkloadIdentity.ServiceAccountName = "plain"
		}},
	{name: "ServiceAccount not federated with the identity", good: basic, goodData: basicData, reason: "FederatedCredentialMismatch",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: "unfederated", Annotations: map[string]string{
				"azure.workload.identity/client-id": inprocess.IdentityClientID, "azure.workload.identity/tenant-id": inprocess.TenantID}}}
			if err := client.IgnoreAlreadyExists(env.Client.Create(context.Background(), sa)); err != nil {
				c.t.Fatal(err)
			}
			s.Vault.Auth.WorkloadIdentity.ServiceAccountName = "unfederated"
		}},
	{name: "service principal Secret ref missing its key", good: basic, goodData: basicData, reason: "CredentialKeyNotFound",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			cred := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: "sp-credentials"}, Data: map[string][]byte{"other": []byte("x")}}
			if err := client.IgnoreAlreadyExists(env.Client.Create(context.Background(), cred)); err != nil {
				c.t.Fatal(err)
			}
			s.Vault.Auth = v1alpha1.VaultAuth{ServicePrincipal: &v1alpha1.ServicePrincipalAuth{TenantID: inprocess.TenantID, ClientID: inprocess.IdentityClientID,
				ClientSecretRef: &v1alpha1.SecretKeyRef{Name: "sp-credentials", Key: "clientSecret"}}}
		}},
	{name: "service principal Secret missing", good: basic, goodData: basicData, reason: "CredentialSecretNotFound",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			s.Vault.Auth = v1alpha1.VaultAuth{ServicePrincipal: &v1alpha1.ServicePrincipalAuth{TenantID: inprocess.TenantID, ClientID: inprocess.IdentityClientID,
				ClientSecretRef: &v1alpha1.SecretKeyRef{Name: "no-such-secret", Key: "clientSecret"}}}
		}},
	{name: "target Secret owned by someone else", good: basic, goodData: basicData, reason: "TargetConflict",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: "not-ours"}, Data: map[string][]byte{"theirs": []byte("x")}}
			if err := client.IgnoreAlreadyExists(env.Client.Create(context.Background(), other)); err != nil {
				c.t.Fatal(err)
			}
			s.Target.Name = "not-ours"
		}},
	{name: "Merge into a Secret that does not exist", good: basic, goodData: basicData, reason: "TargetNotFound",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			s.Target.Name = "missing-merge-target"
			s.Target.CreationPolicy = v1alpha1.CreationPolicyMerge
		}},
	{name: "Merge into a Secret that does not allow it", good: basic, goodData: basicData, reason: "MergeNotAllowed",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: "no-merges-here"}, Data: map[string][]byte{"theirs": []byte("x")}}
			if err := client.IgnoreAlreadyExists(env.Client.Create(context.Background(), other)); err != nil {
				c.t.Fatal(err)
			}
			s.Target.Name = "no-merges-here"
			s.Target.CreationPolicy = v1alpha1.CreationPolicyMerge
		}},
	{name: "find over more than 10,000 secrets", good: basic, goodData: basicData, reason: "TooManySecrets",
		breakIt: func(c *rc, s *v1alpha1.VaultSecretSpec) {
			s.Vault.URL = env.VaultURL(manyVault(c.t))
			s.Data = nil
			s.DataFrom = []v1alpha1.DataFromSource{{Find: &v1alpha1.FindSpec{NameRegex: "^never-matches$"}}}
		}},
}

func TestRuntime(t *testing.T) {
	if err := env.Emu.AddVault(emulator.Vault{Name: "norole"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range runtimeCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			ctx := context.Background()
			ns, err := env.NewNamespace(ctx, uniq("rt"))
			g.Expect(err).NotTo(HaveOccurred())
			c := &rc{t: t, ns: ns, p: uniq("o")}
			spec := tc.good(c)
			if spec.Vault == nil {
				spec.Vault = &v1alpha1.VaultRef{URL: env.VaultURL(inprocess.Vault), Auth: wi()}
			}
			vs := &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "target"}, Spec: *spec}
			g.Expect(env.Client.Create(ctx, vs)).To(Succeed())
			ready := readyOf(ns, "target")
			g.Eventually(ready, 60*time.Second, 100*time.Millisecond).Should(HavePrefix("True/"), "the good spec syncs")
			if tc.synced {
				if tc.wantData != nil {
					g.Expect(secretData(ns, "target")).To(Equal(tc.wantData(c)))
				}
				if strings.HasPrefix(tc.name, "expired certificate") {
					got := &v1alpha1.VaultSecret{}
					g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(vs), got)).To(Succeed())
					g.Expect(got.Status.Certificates).To(HaveLen(1))
					g.Expect(got.Status.Certificates[0].NotAfter.Time).To(BeTemporally("<", time.Now()), "status shows the expiry")
					g.Expect(secretData(ns, "target")).To(HaveKey("tls.crt"))
				}
				return
			}
			g.Expect(secretData(ns, "target")).To(Equal(tc.goodData))

			g.Eventually(func() error {
				cur := &v1alpha1.VaultSecret{}
				if err := env.Client.Get(ctx, client.ObjectKeyFromObject(vs), cur); err != nil {
					return err
				}
				tc.breakIt(c, &cur.Spec)
				// Vault-side breaks need a sync to be seen: ask for one.
				if cur.Annotations == nil {
					cur.Annotations = map[string]string{}
				}
				cur.Annotations[v1alpha1.AnnotationForceSync] = "break"
				return env.Client.Update(ctx, cur)
			}, 10*time.Second, 200*time.Millisecond).Should(Succeed())
			g.Eventually(ready, 60*time.Second, 100*time.Millisecond).Should(Equal("False/"+tc.reason), "Ready says what is wrong")
			g.Expect(secretData(ns, "target")).To(Equal(tc.goodData), "the last good Secret stays intact")
			g.Expect(conditionMessage(ns, "target")).NotTo(BeEmpty())
		})
	}
}

// TestOperatorStaysHealthy runs after the catalogue: a new VaultSecret still syncs.
func TestOperatorStaysHealthy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns, err := env.NewNamespace(ctx, uniq("canary"))
	g.Expect(err).NotTo(HaveOccurred())
	c := &rc{t: t, ns: ns, p: uniq("canary")}
	spec := basic(c)
	spec.Vault = &v1alpha1.VaultRef{URL: env.VaultURL(inprocess.Vault), Auth: wi()}
	g.Expect(env.Client.Create(ctx, &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "canary"}, Spec: *spec})).To(Succeed())
	g.Eventually(readyOf(ns, "canary"), 30*time.Second, 100*time.Millisecond).Should(HavePrefix("True/"))
	g.Expect(secretData(ns, "canary")).To(Equal(basicData))
	select {
	case err := <-mgr.Done():
		t.Fatalf("the manager stopped: %v", err)
	default:
	}
}

func readyOf(ns, name string) func() string {
	return func() string {
		vs := &v1alpha1.VaultSecret{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, vs); err != nil {
			return err.Error()
		}
		c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.ObservedGeneration != vs.Generation {
			return ""
		}
		if c.Status == metav1.ConditionFalse && vs.Annotations[v1alpha1.AnnotationForceSync] != vs.Status.LastForceSync {
			return "" // the condition predates the requested sync
		}
		return string(c.Status) + "/" + c.Reason
	}
}

func conditionMessage(ns, name string) string {
	vs := &v1alpha1.VaultSecret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, vs); err != nil {
		return ""
	}
	if c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		return c.Message
	}
	return ""
}

func secretData(ns, name string) map[string]string {
	s := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

var manyOnce = make(chan struct{}, 1)

// manyVault returns a vault holding 10,001 secrets, seeded once through the emulator's Go API.
func manyVault(t *testing.T) string {
	const name = "many"
	select {
	case manyOnce <- struct{}{}:
		if err := env.Emu.AddVault(emulator.Vault{Name: name, RoleAssignments: []emulator.RoleAssignment{{Principal: inprocess.Identity, Role: "Key Vault Secrets User"}}}); err != nil {
			t.Fatal(err)
		}
		for i := range 10001 {
			if _, err := env.Emu.SetSecret(name, fmt.Sprintf("item-%05d", i), emulator.SecretVersion{Value: "v"}); err != nil {
				t.Fatal(err)
			}
		}
	default:
	}
	return name
}

func selfSigned(t *testing.T, notBefore, notAfter time.Time) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "expired.example.test"},
		NotBefore: notBefore, NotAfter: notAfter, DNSNames: []string{"expired.example.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// expiredPEM is a PKCS#8 key and a certificate that expired a day ago.
func expiredPEM(t *testing.T) string {
	key, cert := selfSigned(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: k})
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	return b.String()
}

// protectedPFX is a PKCS#12 file with a password.
func protectedPFX(t *testing.T) []byte {
	key, cert := selfSigned(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	p, err := pkcs12.Modern.Encode(key, cert, nil, "s3cret-pfx-password")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
