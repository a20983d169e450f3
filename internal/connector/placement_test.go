package connector

import (
	"context"
	"errors"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/credentials"
	"github.com/vaultsync/vaultsync/internal/keyvault/keyvaulttest"
)

// The run-time placement rules mirror the CRDs' validation, so that an object stored under an
// older CRD (or written around admission) cannot lend an identity to the wrong place.
func TestAllowedMirrorsAdmission(t *testing.T) {
	wi := func(ns string) *v1alpha1.VaultAuth {
		return &v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "app", ServiceAccountNamespace: ns}}
	}
	sp := &v1alpha1.VaultAuth{ServicePrincipal: &v1alpha1.ServicePrincipalAuth{ClientSecretRef: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}}
	mi := &v1alpha1.VaultAuth{ManagedIdentity: &v1alpha1.ManagedIdentityAuth{}}
	op := &v1alpha1.VaultAuth{OperatorIdentity: &v1alpha1.OperatorIdentityAuth{}}
	cli := &v1alpha1.VaultAuth{AzureCLI: &v1alpha1.AzureCLIAuth{}}
	cases := []struct {
		name  string
		place place
		auth  *v1alpha1.VaultAuth
		dev   bool
		want  error // nil: allowed
	}{
		{"inline workload identity", placeInline, wi(""), false, nil},
		{"inline workload identity naming its own namespace", placeInline, wi("team-a"), false, nil},
		{"inline workload identity naming another namespace", placeInline, wi("team-b"), false, credentials.ErrMethodNotAllowed},
		{"VaultConnection naming another namespace", placeNamespaced, wi("team-b"), false, credentials.ErrMethodNotAllowed},
		{"cluster workload identity with its namespace", placeCluster, wi("platform"), false, nil},
		{"cluster workload identity without namespace", placeCluster, wi(""), false, ErrInvalidSpec},
		{"inline service principal", placeInline, sp, false, nil},
		{"cluster service principal", placeCluster, sp, false, credentials.ErrMethodNotAllowed},
		{"inline managed identity", placeInline, mi, false, credentials.ErrMethodNotAllowed},
		{"VaultConnection managed identity", placeNamespaced, mi, false, credentials.ErrMethodNotAllowed},
		{"cluster managed identity", placeCluster, mi, false, nil},
		{"inline operator identity", placeInline, op, false, credentials.ErrMethodNotAllowed},
		{"cluster operator identity", placeCluster, op, false, nil},
		{"azureCLI without --dev", placeCluster, cli, false, credentials.ErrMethodNotAllowed},
		{"azureCLI with --dev", placeInline, cli, true, nil},
		{"no method", placeInline, &v1alpha1.VaultAuth{}, false, ErrInvalidSpec},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c := &Connector{Dev: tc.dev}
			err := c.allowed(&connection{Place: tc.place, Namespace: "team-a", Kind: v1alpha1.KindVaultConnection, Name: "x", Auth: tc.auth})
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(tc.want))
			if errors.Is(err, credentials.ErrMethodNotAllowed) {
				reason, _, ok := Refusal(err)
				g.Expect(ok).To(BeTrue(), "refused without backoff")
				g.Expect(reason).To(Equal("AuthMethodNotAllowed"))
			}
		})
	}
}

func TestResolveAndConnectionVersion(t *testing.T) {
	g := NewWithT(t)
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(v1alpha1.AddToScheme(scheme)).To(Succeed())
	vcA := &v1alpha1.VaultConnection{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "prod", UID: "uid-a", Generation: 1},
		Spec: v1alpha1.VaultConnectionSpec{URL: "https://a.vault.azure.net/", Auth: v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "app"}}}}
	cvc := &v1alpha1.ClusterVaultConnection{ObjectMeta: metav1.ObjectMeta{Name: "shared", UID: "uid-c", Generation: 1},
		Spec: v1alpha1.ClusterVaultConnectionSpec{URL: "https://s.vault.azure.net/", Auth: v1alpha1.VaultAuth{ManagedIdentity: &v1alpha1.ManagedIdentityAuth{}},
			AllowedNamespaces: v1alpha1.AllowedNamespaces{Names: []string{"team-a"},
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}}}}
	nsB := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}}
	cl := fake.NewClientBuilder().WithScheme(scheme).WithObjects(vcA, cvc, nsB).Build()
	c := &Connector{Client: cl, ClusterConnections: true, NamespaceSelectors: true}
	ctx := context.Background()
	vs := func(ns string, ref *v1alpha1.ConnectionRef) *v1alpha1.VaultSecret {
		return &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vs"}, Spec: v1alpha1.VaultSecretSpec{ConnectionRef: ref}}
	}

	conn, err := c.resolve(ctx, vs("team-a", &v1alpha1.ConnectionRef{Name: "prod"}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(conn.Namespace).To(Equal("team-a"))
	g.Expect(conn.URL).To(Equal("https://a.vault.azure.net/"))

	// team-b names team-a's VaultConnection: it is looked up in team-b.
	_, err = c.resolve(ctx, vs("team-b", &v1alpha1.ConnectionRef{Name: "prod"}))
	reason, msg, ok := Refusal(err)
	g.Expect(ok).To(BeTrue())
	g.Expect(reason).To(Equal(ReasonConnectionNotFound))
	g.Expect(msg).To(ContainSubstring(`namespace "team-b"`))

	cluster := &v1alpha1.ConnectionRef{Kind: v1alpha1.KindClusterVaultConnection, Name: "shared"}
	_, err = c.resolve(ctx, vs("team-a", cluster))
	g.Expect(err).NotTo(HaveOccurred(), "allowed by name")
	before := c.ConnectionVersion(ctx, vs("team-b", cluster))
	_, err = c.resolve(ctx, vs("team-b", cluster))
	reason, _, _ = Refusal(err)
	g.Expect(reason).To(Equal(ReasonNamespaceNotAllowed))

	nsB.Labels = map[string]string{"tier": "gold"}
	g.Expect(cl.Update(ctx, nsB)).To(Succeed())
	_, err = c.resolve(ctx, vs("team-b", cluster))
	g.Expect(err).NotTo(HaveOccurred(), "allowed by labels")
	after := c.ConnectionVersion(ctx, vs("team-b", cluster))
	g.Expect(after).NotTo(Equal(before), "being allowed changes the version")

	g.Expect(cl.Get(ctx, client.ObjectKeyFromObject(cvc), cvc)).To(Succeed())
	cvc.Spec.URL = "https://other.vault.azure.net/"
	cvc.Generation = 2
	g.Expect(cl.Update(ctx, cvc)).To(Succeed())
	g.Expect(c.ConnectionVersion(ctx, vs("team-b", cluster))).NotTo(Equal(after), "a new generation changes the version")

	_, err = c.resolve(ctx, vs("team-a", &v1alpha1.ConnectionRef{Kind: v1alpha1.KindClusterVaultConnection, Name: "missing"}))
	reason, _, _ = Refusal(err)
	g.Expect(reason).To(Equal(ReasonConnectionNotFound))

	// An inline vault without credential Secrets has no version, so VaultSecrets written before
	// connections existed do not sync again after an upgrade.
	inline := &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "vs"}, Spec: v1alpha1.VaultSecretSpec{
		Vault: &v1alpha1.VaultRef{URL: "https://a.vault.azure.net/", Auth: v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "app"}}}}}
	g.Expect(c.ConnectionVersion(ctx, inline)).To(BeEmpty())
}

// A connection whose identity changes, or that is deleted, drops the credential it used, unless
// another connection still uses the same identity.
func TestConnectionCredentialsAreDropped(t *testing.T) {
	g := NewWithT(t)
	c := &Connector{Credentials: credentials.NewCache(10)}
	create := func() (azcore.TokenCredential, error) { return &keyvaulttest.Credential{}, nil }
	k1 := credentials.Key{Method: credentials.MethodManagedIdentity, ClientID: "one"}
	k2 := credentials.Key{Method: credentials.MethodManagedIdentity, ClientID: "two"}
	prod := &connection{Place: placeNamespaced, Kind: v1alpha1.KindVaultConnection, Namespace: "team-a", Name: "prod"}
	other := &connection{Place: placeCluster, Kind: v1alpha1.KindClusterVaultConnection, Name: "shared"}
	for _, k := range []credentials.Key{k1, k2} {
		_, err := c.Credentials.GetOrCreate(k, create)
		g.Expect(err).NotTo(HaveOccurred())
	}
	c.remember(prod, k1)
	c.remember(other, k2)
	c.remember(prod, k2) // prod's spec changed: k1 is no longer used by anyone
	g.Expect(c.Credentials.Len()).To(Equal(1))
	c.ForgetConnection(v1alpha1.KindVaultConnection, "team-a", "prod")
	g.Expect(c.Credentials.Len()).To(Equal(1), "shared is still using k2")
	c.ForgetConnection(v1alpha1.KindClusterVaultConnection, "", "shared")
	g.Expect(c.Credentials.Len()).To(BeZero())
	c.remember(&connection{Place: placeInline}, k1) // inline vaults are not tracked
	c.ForgetConnection(v1alpha1.KindVaultConnection, "team-a", "gone")
}

// Without --cluster-connections a ClusterVaultConnection is refused without
// being read; without --namespace-selectors only listed names are admitted.
func TestClusterConnectionFlags(t *testing.T) {
	g := NewWithT(t)
	cvc := &v1alpha1.ClusterVaultConnection{ObjectMeta: metav1.ObjectMeta{Name: "shared", UID: "uid-c", Generation: 1},
		Spec: v1alpha1.ClusterVaultConnectionSpec{URL: "https://s.vault.azure.net/", Auth: v1alpha1.VaultAuth{ManagedIdentity: &v1alpha1.ManagedIdentityAuth{}},
			AllowedNamespaces: v1alpha1.AllowedNamespaces{Names: []string{"team-a"},
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}}}}
	gold := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-g", Labels: map[string]string{"tier": "gold"}}}
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(v1alpha1.AddToScheme(scheme)).To(Succeed())
	cl := fake.NewClientBuilder().WithScheme(scheme).WithObjects(cvc, gold).Build()
	ctx := context.Background()
	ref := &v1alpha1.ConnectionRef{Kind: v1alpha1.KindClusterVaultConnection, Name: "shared"}
	vs := func(ns string) *v1alpha1.VaultSecret {
		return &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vs"}, Spec: v1alpha1.VaultSecretSpec{ConnectionRef: ref}}
	}

	off := &Connector{Client: cl}
	_, err := off.resolve(ctx, vs("team-a"))
	reason, _, _ := Refusal(err)
	g.Expect(reason).To(Equal(ReasonClusterConnectionsDisabled))

	names := &Connector{Client: cl, ClusterConnections: true}
	_, err = names.resolve(ctx, vs("team-a"))
	g.Expect(err).NotTo(HaveOccurred(), "a listed name needs no Namespace read")
	_, err = names.resolve(ctx, vs("team-g"))
	reason, msg, _ := Refusal(err)
	g.Expect(reason).To(Equal(ReasonNamespaceNotAllowed))
	g.Expect(msg).To(ContainSubstring("--namespace-selectors"))

	selectors := &Connector{Client: cl, ClusterConnections: true, NamespaceSelectors: true}
	_, err = selectors.resolve(ctx, vs("team-g"))
	g.Expect(err).NotTo(HaveOccurred(), "the label matches")
}

// The metadata cache of Secrets keeps nothing but identity: kubectl's
// last-applied annotation would otherwise keep Secret data in memory.
func TestSecretMetadataKeepsIdentityOnly(t *testing.T) {
	g := NewWithT(t)
	in := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Namespace: "team-a", Name: "creds", UID: "u1", ResourceVersion: "42",
		Labels:        map[string]string{"a": "b"},
		Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"c2VjcmV0"}}`},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}}
	out, err := keepIdentityOnly(in)
	g.Expect(err).NotTo(HaveOccurred())
	m := out.(*metav1.PartialObjectMetadata)
	g.Expect(m.Annotations).To(BeEmpty())
	g.Expect(m.Labels).To(BeEmpty())
	g.Expect(m.ManagedFields).To(BeEmpty())
	g.Expect([]string{m.Namespace, m.Name, string(m.UID), m.ResourceVersion}).To(Equal([]string{"team-a", "creds", "u1", "42"}))
}
