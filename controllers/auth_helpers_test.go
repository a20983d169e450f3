package controllers_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/emulator"
)

// Helpers of the authentication, connection and isolation specs.

const tokenAudience = "api://AzureADTokenExchange"

// newGUID returns a random GUID for an emulator identity.
func newGUID() string {
	b := make([]byte, 16)
	_, err := rand.Read(b)
	Expect(err).NotTo(HaveOccurred())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// addIdentity registers an emulator identity (name must be unique in the suite), optionally
// with a role on vaults, and returns its client id.
func addIdentity(spec emulator.Identity, readableVaults ...string) string {
	GinkgoHelper()
	if spec.ClientID == "" {
		spec.ClientID = newGUID()
	}
	Expect(emu.AddIdentity(spec)).To(Succeed())
	for _, v := range readableVaults {
		Expect(emu.AddRoleAssignment(v, emulator.RoleAssignment{Principal: spec.Name, Role: "Key Vault Secrets User"})).To(Succeed())
	}
	return spec.ClientID
}

// federate trusts the tokens of ServiceAccount ns/sa for the identity.
func federate(identity, ns, sa string) {
	GinkgoHelper()
	Expect(emu.AddFederatedCredential(identity, emulator.FederatedCredential{
		Name: ns + "-" + sa, Issuer: issuer, Subject: "system:serviceaccount:" + ns + ":" + sa,
		Audience: tokenAudience, JWKS: jwks,
	})).To(Succeed())
}

// createServiceAccount creates a ServiceAccount annotated with a client id (none when empty).
func createServiceAccount(ns, name, clientID string) {
	GinkgoHelper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if clientID != "" {
		sa.Annotations = map[string]string{
			"azure.workload.identity/client-id": clientID,
			"azure.workload.identity/tenant-id": tenantID,
		}
	}
	Expect(k8s.Create(ctx, sa)).To(Succeed())
}

// createNamespace creates a namespace with labels.
func createNamespace(name string, labels map[string]string) {
	GinkgoHelper()
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})).To(Succeed())
}

// createCredentialSecret creates a Secret the user writes (not labelled, not cached by the manager).
func createCredentialSecret(ns, name string, data map[string][]byte) *corev1.Secret {
	GinkgoHelper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
	Expect(k8s.Create(ctx, s)).To(Succeed())
	return s
}

// updateCredentialSecret replaces the data of a credential Secret.
func updateCredentialSecret(ns, name string, data map[string][]byte) {
	GinkgoHelper()
	s := getSecret(ns, name)
	s.Data = data
	Expect(k8s.Update(ctx, s)).To(Succeed())
}

// setVaultSecret sets a secret in a vault of the emulator and remembers its value for the leak check.
func setVaultSecret(vault, name, value string) {
	GinkgoHelper()
	rememberValue(value)
	_, err := emu.SetSecret(vault, name, emulator.SecretVersion{Value: value})
	Expect(err).NotTo(HaveOccurred())
}

// vsVia is a VaultSecret spec reading one secret through a connection.
func vsVia(kind v1alpha1.ConnectionKind, conn, key, remote string) v1alpha1.VaultSecretSpec {
	return v1alpha1.VaultSecretSpec{
		ConnectionRef: &v1alpha1.ConnectionRef{Kind: kind, Name: conn},
		Data:          []v1alpha1.DataItem{{Key: key, Remote: v1alpha1.RemoteRef{Name: remote}}},
	}
}

// vsInline is a VaultSecret spec reading one secret from an inline vault.
func vsInline(vaultURL string, auth v1alpha1.VaultAuth, key, remote string) v1alpha1.VaultSecretSpec {
	return v1alpha1.VaultSecretSpec{
		Vault: &v1alpha1.VaultRef{URL: vaultURL, Auth: auth},
		Data:  []v1alpha1.DataItem{{Key: key, Remote: v1alpha1.RemoteRef{Name: remote}}},
	}
}

// createVSExact creates a VaultSecret without filling in a default vault.
func createVSExact(ns, name string, spec v1alpha1.VaultSecretSpec) {
	GinkgoHelper()
	Expect(k8s.Create(ctx, &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec})).To(Succeed())
}

// connectionReady returns the Ready condition of a connection once it reflects its generation.
func connectionReady(obj client.Object) func() *metav1.Condition {
	return currentReady(client.ObjectKeyFromObject(obj), obj, func(o client.Object) []metav1.Condition {
		switch o := o.(type) {
		case *v1alpha1.VaultConnection:
			return o.Status.Conditions
		case *v1alpha1.ClusterVaultConnection:
			return o.Status.Conditions
		}
		return nil
	})
}

// expectConnection waits until a connection's Ready condition has the reason.
func expectConnection(obj client.Object, reason string) *metav1.Condition {
	GinkgoHelper()
	var got *metav1.Condition
	Eventually(func() string {
		got = connectionReady(obj)()
		if got == nil {
			return ""
		}
		return got.Reason
	}, timeout, 100*time.Millisecond).Should(Equal(reason), "%T %s", obj, obj.GetName())
	return got
}

// azureCalls counts the requests of the emulator's log since a time that match the filter.
func azureCalls(f emulator.LogFilter, since time.Time) int {
	f.Since = since
	return emu.Count(f)
}

// tokenRequests counts Entra token requests of an identity since a time.
func tokenRequests(identity string, since time.Time) int {
	return azureCalls(emulator.LogFilter{Service: "entra", Operation: "Token", Identity: identity}, since)
}

// expectLoopback fails unless rawURL points at a loopback address.
func expectLoopback(rawURL string) {
	GinkgoHelper()
	u, err := url.Parse(rawURL)
	Expect(err).NotTo(HaveOccurred())
	ip := net.ParseIP(u.Hostname())
	Expect(ip).NotTo(BeNil(), "%s must be an IP address", rawURL)
	Expect(ip.IsLoopback()).To(BeTrue(), "%s must be a loopback address", rawURL)
}

// selfSignedRSA returns an RSA key and a self-signed certificate for a client certificate.
func selfSignedRSA(cn string) (*rsa.PrivateKey, *x509.Certificate, []byte) {
	GinkgoHelper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// updateLatest reads obj afresh, applies change and writes it, again from a
// fresh read when the write conflicts. The controllers write the status of
// the objects the specs edit, so an update from an earlier read can lose the
// race with a status write; a spec must not fail on that.
func updateLatest[T client.Object](obj T, change func(T)) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change(obj)
		return k8s.Update(ctx, obj)
	})).To(Succeed())
}
