package controllers_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os/exec"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/push/pushtest"
	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator"
)

// Helpers of the VaultPushSecret specs. Every value pushed is remembered for the leak check.

func pushSpec(secret string, items ...v1alpha1.PushDataItem) v1alpha1.VaultPushSecretSpec {
	return v1alpha1.VaultPushSecretSpec{
		SecretRef: v1alpha1.PushSecretRef{Name: secret},
		Vault: &v1alpha1.VaultRef{URL: emu.VaultURL(pushVault), Auth: v1alpha1.VaultAuth{
			WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "app"},
		}},
		Data: items,
	}
}

func pushItem(key, remote string) v1alpha1.PushDataItem {
	return v1alpha1.PushDataItem{SecretKey: key, Remote: v1alpha1.PushRemoteRef{Name: remote}}
}

func createSourceSecret(ns, name string, typ corev1.SecretType, data map[string][]byte) {
	GinkgoHelper()
	for _, v := range data {
		rememberValue(string(v))
	}
	Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: typ, Data: data})).To(Succeed())
}

func updateSourceSecret(ns, name string, mutate func(*corev1.Secret)) {
	GinkgoHelper()
	s := &corev1.Secret{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s)).To(Succeed())
	mutate(s)
	for _, v := range s.Data {
		rememberValue(string(v))
	}
	Expect(k8s.Update(ctx, s)).To(Succeed())
}

func createPush(ns, name string, spec v1alpha1.VaultPushSecretSpec) {
	GinkgoHelper()
	Expect(k8s.Create(ctx, &v1alpha1.VaultPushSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec})).To(Succeed())
}

func getPush(ns, name string) *v1alpha1.VaultPushSecret {
	GinkgoHelper()
	ps := &v1alpha1.VaultPushSecret{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ps)).To(Succeed())
	return ps
}

// pushReady returns the Ready condition once it reflects the current generation.
func pushReady(ns, name string) func() *metav1.Condition {
	return currentReady(client.ObjectKey{Namespace: ns, Name: name}, &v1alpha1.VaultPushSecret{},
		func(ps *v1alpha1.VaultPushSecret) []metav1.Condition { return ps.Status.Conditions })
}

func expectPushReady(ns, name string) *v1alpha1.VaultPushSecret {
	GinkgoHelper()
	eventuallyReady(pushReady(ns, name), "VaultPushSecret %s/%s becomes Ready", ns, name)
	return getPush(ns, name)
}

func expectPushNotReady(ns, name, reason string) *metav1.Condition {
	GinkgoHelper()
	return eventuallyNotReady(pushReady(ns, name), reason)
}

// remoteVersions lists the versions of an object in the push vault (none when it is absent).
func remoteVersions(kind, name string) []emulator.ObjectVersion {
	v, err := emu.Versions(pushVault, kind, name)
	if err != nil {
		return nil
	}
	return v
}

func latestValue(name string) func() string {
	return func() string {
		v := remoteVersions(emulator.KindSecrets, name)
		if len(v) == 0 {
			return ""
		}
		return v[len(v)-1].Value
	}
}

func versionCount(kind, name string) func() int {
	return func() int { return len(remoteVersions(kind, name)) }
}

// ownerTag is the vaultsync-owner tag the suite's manager writes for ns/name.
func ownerTag(ns, name string) string {
	GinkgoHelper()
	sys := &corev1.Namespace{}
	Expect(k8s.Get(ctx, client.ObjectKey{Name: metav1.NamespaceSystem}, sys)).To(Succeed())
	return string(sys.UID) + "/" + ns + "/" + name
}

func pushEventReasons(ns, name string) []string {
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Regarding.Kind == "VaultPushSecret" {
			out = append(out, e.Reason)
		}
	}
	return out
}

// getRequests counts the property reads of an object the manager sent to the push vault.
func getRequests(object string) int {
	return emu.Count(emulator.LogFilter{Vault: pushVault, Operation: "GetSecret", Object: object})
}

var _ = Describe("VaultPushSecret", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("pushes a key with ownership tags, and writes no new version while the data is unchanged", func() {
		remote := ns + "-db-password"
		createSourceSecret(ns, "db", corev1.SecretTypeOpaque, map[string][]byte{"password": []byte("push-first-value-1")})
		spec := pushSpec("db", pushItem("password", remote))
		spec.Data[0].Remote.ContentType = "text/plain"
		createPush(ns, "db", spec)
		ps := expectPushReady(ns, "db")
		Expect(latestValue(remote)()).To(Equal("push-first-value-1"))
		v := remoteVersions(emulator.KindSecrets, remote)
		Expect(v).To(HaveLen(1))
		Expect(v[0].ContentType).To(Equal("text/plain"))
		Expect(v[0].Tags).To(HaveKeyWithValue(v1alpha1.TagManagedBy, "vaultsync"))
		Expect(v[0].Tags).To(HaveKeyWithValue(v1alpha1.TagOwner, ownerTag(ns, "db")))
		Expect(v[0].Tags).To(HaveKeyWithValue(v1alpha1.TagDataHash, MatchRegexp(`^[0-9a-f]{64}$`)))
		Expect(ps.Status.Owner).To(Equal(ownerTag(ns, "db")))
		Expect(ps.Status.PushedVault).To(Equal(pushVault + ".vault.azure.net"))
		Expect(ps.Status.Objects).To(ConsistOf(And(HaveField("Name", remote), HaveField("Type", v1alpha1.PushTypeSecret),
			HaveField("Version", v[0].ID), HaveField("DataHash", v[0].Tags[v1alpha1.TagDataHash]))))
		Eventually(func() []string { return pushEventReasons(ns, "db") }, timeout, 100*time.Millisecond).Should(ContainElement("Pushed"))

		// Ten reconciles of unchanged data (a label edit of the Secret wakes the controller each
		// time): each reads the object's properties, none writes a version.
		for i := range 10 {
			before := getRequests(remote)
			updateSourceSecret(ns, "db", func(s *corev1.Secret) {
				if s.Labels == nil {
					s.Labels = map[string]string{}
				}
				s.Labels["touch"] = string(rune('a' + i))
			})
			Eventually(func() int { return getRequests(remote) }, timeout, 50*time.Millisecond).Should(BeNumerically(">", before))
		}
		Consistently(versionCount(emulator.KindSecrets, remote), 2*time.Second, 200*time.Millisecond).Should(Equal(1))
	})

	It("pushes an edited Secret within seconds", func() {
		remote := ns + "-token"
		createSourceSecret(ns, "api", corev1.SecretTypeOpaque, map[string][]byte{"token": []byte("push-token-before")})
		createPush(ns, "api", pushSpec("api", pushItem("token", remote)))
		expectPushReady(ns, "api")
		start := time.Now()
		updateSourceSecret(ns, "api", func(s *corev1.Secret) { s.Data["token"] = []byte("push-token-after") })
		Eventually(latestValue(remote), 10*time.Second, 100*time.Millisecond).Should(Equal("push-token-after"))
		Expect(time.Since(start)).To(BeNumerically("<", 10*time.Second))
		Expect(versionCount(emulator.KindSecrets, remote)()).To(Equal(2))
		Eventually(func() string {
			return getPush(ns, "api").Status.Objects[0].Version
		}, timeout, 100*time.Millisecond).Should(Equal(remoteVersions(emulator.KindSecrets, remote)[1].ID))
	})

	It("refuses an object it does not own (RemoteConflict), and leaves it alone", func() {
		foreign, other := ns+"-foreign", ns+"-other-owner"
		setVaultSecret(pushVault, foreign, "someone-elses-value")
		_, err := emu.SetSecret(pushVault, other, emulator.SecretVersion{Value: "other-cluster-value",
			Tags: map[string]string{v1alpha1.TagOwner: "another-cluster/" + ns + "/x"}})
		Expect(err).NotTo(HaveOccurred())
		rememberValue("other-cluster-value")
		createSourceSecret(ns, "src", corev1.SecretTypeOpaque, map[string][]byte{"v": []byte("would-overwrite-1")})

		createPush(ns, "untagged", pushSpec("src", pushItem("v", foreign)))
		c := expectPushNotReady(ns, "untagged", "RemoteConflict")
		Expect(c.Message).To(ContainSubstring(foreign))
		Expect(c.Message).To(ContainSubstring(v1alpha1.TagOwner + "=" + ownerTag(ns, "untagged")))

		createPush(ns, "tagged", pushSpec("src", pushItem("v", other)))
		c = expectPushNotReady(ns, "tagged", "RemoteConflict")
		Expect(c.Message).To(ContainSubstring("another-cluster/" + ns + "/x"))

		Consistently(func() []string {
			return []string{latestValue(foreign)(), latestValue(other)()}
		}, 2*time.Second, 200*time.Millisecond).Should(Equal([]string{"someone-elses-value", "other-cluster-value"}))
		Expect(versionCount(emulator.KindSecrets, foreign)()).To(Equal(1))
	})

	It("with updatePolicy IfNotExists writes an object once and never updates it", func() {
		fresh, existing := ns+"-once", ns+"-there"
		setVaultSecret(pushVault, existing, "already-there-value")
		createSourceSecret(ns, "src", corev1.SecretTypeOpaque, map[string][]byte{"a": []byte("if-not-exists-1"), "b": []byte("if-not-exists-2")})
		spec := pushSpec("src", pushItem("a", fresh), pushItem("b", existing))
		spec.UpdatePolicy = v1alpha1.UpdateIfNotExists
		createPush(ns, "once", spec)
		expectPushReady(ns, "once")
		Expect(latestValue(fresh)()).To(Equal("if-not-exists-1"))
		Expect(latestValue(existing)()).To(Equal("already-there-value"))

		updateSourceSecret(ns, "src", func(s *corev1.Secret) { s.Data["a"] = []byte("if-not-exists-changed") })
		before := getRequests(fresh)
		Eventually(func() int { return getRequests(fresh) }, timeout, 50*time.Millisecond).Should(BeNumerically(">", before))
		Consistently(latestValue(fresh), 2*time.Second, 200*time.Millisecond).Should(Equal("if-not-exists-1"))
		Expect(versionCount(emulator.KindSecrets, fresh)()).To(Equal(1))

		// Found is not owned: switched to Replace, the object it only found is someone else's.
		ps := getPush(ns, "once")
		patch := client.MergeFrom(ps.DeepCopy())
		ps.Spec.UpdatePolicy = v1alpha1.UpdateReplace
		Expect(k8s.Patch(ctx, ps, patch)).To(Succeed())
		c := expectPushNotReady(ns, "once", "RemoteConflict")
		Expect(c.Message).To(ContainSubstring(existing))
		Expect(latestValue(fresh)()).To(Equal("if-not-exists-changed"), "its own object is updated")
		Expect(latestValue(existing)()).To(Equal("already-there-value"))
	})

	It("with deletionPolicy Delete soft-deletes its objects, and with Retain keeps them", func() {
		deleted, kept := ns+"-deleted", ns+"-kept"
		createSourceSecret(ns, "src", corev1.SecretTypeOpaque, map[string][]byte{"v": []byte("deletion-policy-1")})
		del := pushSpec("src", pushItem("v", deleted))
		del.DeletionPolicy = v1alpha1.DeletionDelete
		createPush(ns, "del", del)
		createPush(ns, "keep", pushSpec("src", pushItem("v", kept)))
		expectPushReady(ns, "del")
		expectPushReady(ns, "keep")
		Expect(getPush(ns, "del").Finalizers).To(ConsistOf(v1alpha1.FinalizerPushCleanup))
		Expect(getPush(ns, "keep").Finalizers).To(BeEmpty(), "Retain needs no finalizer")

		for _, name := range []string{"del", "keep"} {
			Expect(k8s.Delete(ctx, &v1alpha1.VaultPushSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(Succeed())
		}
		Eventually(func() bool {
			err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "del"}, &v1alpha1.VaultPushSecret{})
			return apierrors.IsNotFound(err)
		}, timeout, 100*time.Millisecond).Should(BeTrue())
		isDeleted, err := emu.Deleted(pushVault, emulator.KindSecrets, deleted)
		Expect(err).NotTo(HaveOccurred())
		Expect(isDeleted).To(BeTrue(), "soft-deleted, never purged")
		Consistently(latestValue(kept), time.Second, 200*time.Millisecond).Should(Equal("deletion-policy-1"))
	})

	It("never holds a deletion the vault refuses: the objects stay, with a Warning", func() {
		remote := ns + "-orphaned"
		id := "pusher-" + ns
		officer := emulator.RoleAssignment{Principal: id, Role: "Key Vault Secrets Officer"}
		createServiceAccount(ns, "pusher", addIdentity(emulator.Identity{Name: id}))
		federate(id, ns, "pusher")
		Expect(emu.AddRoleAssignment(pushVault, officer)).To(Succeed())
		createSourceSecret(ns, "src", corev1.SecretTypeOpaque, map[string][]byte{"v": []byte("orphaned-value-1")})
		spec := pushSpec("src", pushItem("v", remote))
		spec.Vault.Auth.WorkloadIdentity.ServiceAccountName = "pusher"
		spec.DeletionPolicy = v1alpha1.DeletionDelete
		createPush(ns, "orphan", spec)
		expectPushReady(ns, "orphan")
		Expect(emu.RemoveRoleAssignment(pushVault, officer)).To(Succeed())
		Expect(k8s.Delete(ctx, &v1alpha1.VaultPushSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orphan"}})).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orphan"}, &v1alpha1.VaultPushSecret{}))
		}, 10*time.Second, 100*time.Millisecond).Should(BeTrue(), "the finalizer goes at once, not after the transient-failure timeout")
		Eventually(func() []string { return pushEventReasons(ns, "orphan") }, timeout, 100*time.Millisecond).Should(ContainElement("CleanupSkipped"))
		Expect(latestValue(remote)()).To(Equal("orphaned-value-1"), "left in the vault")
	})

	It("imports a TLS Secret as a certificate with its chain in order, ca.crt appended", func() {
		remote := ns + "-tls"
		chain := pushtest.NewTLS(ns + ".example.test")
		createSourceSecret(ns, "tls", corev1.SecretTypeTLS, chain.Data())
		createPush(ns, "tls", pushSpec("tls", v1alpha1.PushDataItem{Remote: v1alpha1.PushRemoteRef{Name: remote, Type: v1alpha1.PushTypeCertificate}}))
		ps := expectPushReady(ns, "tls")
		certs := remoteVersions(emulator.KindCertificates, remote)
		Expect(certs).To(HaveLen(1))
		Expect(certs[0].Tags).To(HaveKeyWithValue(v1alpha1.TagOwner, ownerTag(ns, "tls")))
		Expect(ps.Status.Objects).To(ConsistOf(And(HaveField("Type", v1alpha1.PushTypeCertificate), HaveField("Version", certs[0].ID))))

		// Read back through the certificate's secret, as a consumer of the vault does.
		secrets := remoteVersions(emulator.KindSecrets, remote)
		Expect(secrets).To(HaveLen(1))
		Expect(secrets[0].Managed).To(BeTrue())
		Expect(secrets[0].ContentType).To(Equal("application/x-pem-file"))
		var subjects []string
		for rest := []byte(secrets[0].Value); ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type == "CERTIFICATE" {
				c, err := x509.ParseCertificate(b.Bytes)
				Expect(err).NotTo(HaveOccurred())
				subjects = append(subjects, c.Subject.CommonName)
			}
		}
		Expect(subjects).To(Equal([]string{ns + ".example.test", "vaultsync test intermediate", "vaultsync test root"}))

		// And through the Azure SDK (azsecrets), as a VaultSecret reads a certificate: tls.crt is
		// the leaf and its intermediate in order, ca.crt the root, tls.key the pushed key.
		createVS(ns, "tls-back", v1alpha1.VaultSecretSpec{
			Vault:  pushSpec("tls").Vault,
			Target: v1alpha1.SecretTarget{Type: corev1.SecretTypeTLS},
			Data:   []v1alpha1.DataItem{{Remote: v1alpha1.RemoteRef{Name: remote, Type: v1alpha1.ObjectTypeCertificate}}},
		})
		expectReady(ns, "tls-back")
		back := getSecret(ns, "tls-back")
		cn := func(certs []*x509.Certificate) (out []string) {
			for _, c := range certs {
				out = append(out, c.Subject.CommonName)
			}
			return out
		}
		Expect(cn(parseCerts(back.Data["tls.crt"]))).To(Equal([]string{ns + ".example.test", "vaultsync test intermediate"}))
		Expect(cn(parseCerts(back.Data["ca.crt"]))).To(Equal([]string{"vaultsync test root"}))
		pair, err := tls.X509KeyPair(back.Data["tls.crt"], back.Data["tls.key"])
		Expect(err).NotTo(HaveOccurred(), "tls.key is the key of the pushed leaf")
		Expect(pair.Leaf.Subject.CommonName).To(Equal(ns + ".example.test"))

		// A Secret whose key does not match its certificate is refused before anything is sent.
		other := pushtest.NewTLS("other.example.test")
		createSourceSecret(ns, "bad-tls", corev1.SecretTypeTLS, map[string][]byte{"tls.crt": chain.Crt, "tls.key": other.Key})
		createPush(ns, "bad-tls", pushSpec("bad-tls", v1alpha1.PushDataItem{Remote: v1alpha1.PushRemoteRef{Name: ns + "-bad", Type: v1alpha1.PushTypeCertificate}}))
		expectPushNotReady(ns, "bad-tls", "CertificateUnusable")
		Expect(remoteVersions(emulator.KindCertificates, ns+"-bad")).To(BeEmpty())
	})

	It("pushes a whole Secret as one JSON secret, and names a missing key", func() {
		remote := ns + "-all"
		createSourceSecret(ns, "all", corev1.SecretTypeOpaque, map[string][]byte{"user": []byte("whole-user-1"), "password": []byte("whole-password-1")})
		spec := pushSpec("all")
		spec.DataFrom = &v1alpha1.PushDataFrom{Mode: v1alpha1.DataFromWhole, Remote: v1alpha1.PushJSONRemote{Name: remote}}
		createPush(ns, "all", spec)
		expectPushReady(ns, "all")
		v := remoteVersions(emulator.KindSecrets, remote)
		Expect(v).To(HaveLen(1))
		Expect(v[0].ContentType).To(Equal("application/json"))
		var m map[string]string
		Expect(json.Unmarshal([]byte(v[0].Value), &m)).To(Succeed())
		Expect(m).To(Equal(map[string]string{"user": "whole-user-1", "password": "whole-password-1"}))

		createPush(ns, "missing", pushSpec("all", pushItem("nope", ns+"-nope")))
		c := expectPushNotReady(ns, "missing", "SourceKeyNotFound")
		Expect(c.Message).To(ContainSubstring(`"nope"`))
		createPush(ns, "no-secret", pushSpec("absent", pushItem("v", ns+"-absent")))
		expectPushNotReady(ns, "no-secret", "SourceSecretNotFound")
		createSourceSecret(ns, "absent", corev1.SecretTypeOpaque, map[string][]byte{"v": []byte("appeared-later-1")})
		expectPushReady(ns, "no-secret")
	})

	It("never writes through another namespace's identity or a connection that does not allow it", func() {
		other := newNamespace()
		createSourceSecret(ns, "src", corev1.SecretTypeOpaque, map[string][]byte{"v": []byte("isolation-value-1")})
		Expect(k8s.Create(ctx, &v1alpha1.VaultConnection{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "theirs"},
			Spec: v1alpha1.VaultConnectionSpec{URL: emu.VaultURL(pushVault), Auth: v1alpha1.VaultAuth{
				WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "app"}}}})).To(Succeed())
		cvc := &v1alpha1.ClusterVaultConnection{ObjectMeta: metav1.ObjectMeta{Name: ns + "-not-for-you"}, Spec: v1alpha1.ClusterVaultConnectionSpec{
			URL: emu.VaultURL(pushVault), Auth: v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{
				ServiceAccountName: "app", ServiceAccountNamespace: other}},
			AllowedNamespaces: v1alpha1.AllowedNamespaces{Names: []string{other}},
		}}
		Expect(k8s.Create(ctx, cvc)).To(Succeed())
		DeferCleanup(func() { _ = k8s.Delete(ctx, cvc) })

		via := func(kind v1alpha1.ConnectionKind, name, remote string) v1alpha1.VaultPushSecretSpec {
			s := pushSpec("src", pushItem("v", remote))
			s.Vault, s.ConnectionRef = nil, &v1alpha1.ConnectionRef{Kind: kind, Name: name}
			return s
		}
		createPush(ns, "their-connection", via(v1alpha1.KindVaultConnection, "theirs", ns+"-iso-a"))
		expectPushNotReady(ns, "their-connection", "ConnectionNotFound")
		createPush(ns, "not-allowed", via(v1alpha1.KindClusterVaultConnection, cvc.Name, ns+"-iso-b"))
		expectPushNotReady(ns, "not-allowed", "NamespaceNotAllowed")

		// Another namespace's ServiceAccount cannot even be named.
		spec := pushSpec("src", pushItem("v", ns+"-iso-c"))
		spec.Vault.Auth.WorkloadIdentity.ServiceAccountNamespace = other
		err := k8s.Create(ctx, &v1alpha1.VaultPushSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "their-sa"}, Spec: spec})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)

		for _, r := range []string{"-iso-a", "-iso-b", "-iso-c"} {
			Expect(emu.Count(emulator.LogFilter{Vault: pushVault, Object: ns + r})).To(BeZero(), "nothing reaches the vault")
		}
	})

	It("pushes through a ClusterVaultConnection once a relabelled namespace is allowed", func() {
		admin := newNamespace() // its ServiceAccount "app" is the connection's identity
		remote := ns + "-via-cluster"
		cvc := &v1alpha1.ClusterVaultConnection{ObjectMeta: metav1.ObjectMeta{Name: ns + "-by-label"}, Spec: v1alpha1.ClusterVaultConnectionSpec{
			URL: emu.VaultURL(pushVault), Auth: v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{
				ServiceAccountName: "app", ServiceAccountNamespace: admin}},
			AllowedNamespaces: v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"push": ns}}},
		}}
		Expect(k8s.Create(ctx, cvc)).To(Succeed())
		DeferCleanup(func() { _ = k8s.Delete(ctx, cvc) })
		createSourceSecret(ns, "src", corev1.SecretTypeOpaque, map[string][]byte{"v": []byte("via-cluster-value-1")})
		spec := pushSpec("src", pushItem("v", remote))
		spec.Vault, spec.ConnectionRef = nil, &v1alpha1.ConnectionRef{Kind: v1alpha1.KindClusterVaultConnection, Name: cvc.Name}
		createPush(ns, "via-cluster", spec)
		expectPushNotReady(ns, "via-cluster", "NamespaceNotAllowed")
		Expect(remoteVersions(emulator.KindSecrets, remote)).To(BeEmpty())

		n := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, n)).To(Succeed())
		patch := client.MergeFrom(n.DeepCopy())
		n.Labels["push"] = ns
		Expect(k8s.Patch(ctx, n, patch)).To(Succeed())
		expectPushReady(ns, "via-cluster")
		Expect(latestValue(remote)()).To(Equal("via-cluster-value-1"))
	})

	It("refuses bad specs at admission", func() {
		base := func() v1alpha1.VaultPushSecretSpec { return pushSpec("src", pushItem("v", "ok-name")) }
		// The base is valid, as are the samples: each refusal below is for the change it makes.
		Expect(k8s.Create(ctx, &v1alpha1.VaultPushSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "good"}, Spec: base()},
			client.DryRunAll)).To(Succeed())
		root, err := controlplane.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		out, err := exec.CommandContext(ctx, cp.Kubectl(), "--kubeconfig", cp.Kubeconfig, "apply", "--dry-run=server", "-n", ns,
			"-f", filepath.Join(root, "config", "samples", "push")).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		for what, mutate := range map[string]func(*v1alpha1.VaultPushSecretSpec){
			"neither data nor dataFrom": func(s *v1alpha1.VaultPushSecretSpec) { s.Data = nil },
			"bad remote name":           func(s *v1alpha1.VaultPushSecretSpec) { s.Data[0].Remote.Name = "not_valid!" },
			"duplicate remote names":    func(s *v1alpha1.VaultPushSecretSpec) { s.Data = append(s.Data, pushItem("w", "OK-NAME")) },
			"secret item without key":   func(s *v1alpha1.VaultPushSecretSpec) { s.Data[0].SecretKey = "" },
			"content type of a cert": func(s *v1alpha1.VaultPushSecretSpec) {
				s.Data[0] = v1alpha1.PushDataItem{Remote: v1alpha1.PushRemoteRef{Name: "c", Type: v1alpha1.PushTypeCertificate, ContentType: "text/plain"}}
			},
			"vault and connectionRef": func(s *v1alpha1.VaultPushSecretSpec) { s.ConnectionRef = &v1alpha1.ConnectionRef{Name: "x"} },
			"no vault":                func(s *v1alpha1.VaultPushSecretSpec) { s.Vault = nil },
			"bad secretRef":           func(s *v1alpha1.VaultPushSecretSpec) { s.SecretRef.Name = "Not_A_Name" },
			"refresh too short":       func(s *v1alpha1.VaultPushSecretSpec) { s.RefreshInterval = &metav1.Duration{Duration: time.Second} },
			"operator identity": func(s *v1alpha1.VaultPushSecretSpec) {
				s.Vault.Auth = v1alpha1.VaultAuth{OperatorIdentity: &v1alpha1.OperatorIdentityAuth{}}
			},
		} {
			spec := base()
			mutate(&spec)
			err := k8s.Create(ctx, &v1alpha1.VaultPushSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}, Spec: spec})
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", what, err)
		}
	})
})

// The periodic check takes at least a minute (the shortest refreshInterval admission allows).
var _ = Describe("VaultPushSecret drift", func() {
	It("restores an object someone else changed, at the next refresh", func() {
		ns := newNamespace()
		remote := ns + "-drift"
		createSourceSecret(ns, "src", corev1.SecretTypeOpaque, map[string][]byte{"v": []byte("drift-original-1")})
		spec := pushSpec("src", pushItem("v", remote))
		spec.RefreshInterval = &metav1.Duration{Duration: time.Minute}
		createPush(ns, "drift", spec)
		expectPushReady(ns, "drift")
		// az keyvault secret set: a new version, without vaultsync's tags.
		setVaultSecret(pushVault, remote, "drift-changed-by-hand")
		Eventually(latestValue(remote), 80*time.Second, time.Second).Should(Equal("drift-original-1"))
		v := remoteVersions(emulator.KindSecrets, remote)
		Expect(v).To(HaveLen(3))
		Expect(v[2].Tags).To(HaveKeyWithValue(v1alpha1.TagOwner, ownerTag(ns, "drift")))
		expectPushReady(ns, "drift")
	})
})
