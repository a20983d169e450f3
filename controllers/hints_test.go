package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/connector"
	kvevents "github.com/vaultsync/vaultsync/internal/events"
	"github.com/vaultsync/vaultsync/internal/secrets"
)

// hostedVault is a fakeVault with a host and an identity, as keyvault.Client has.
type hostedVault struct {
	*fakeVault
	host string
}

func (h hostedVault) Host() string        { return h.host }
func (h hostedVault) IdentityKey() string { return "" }

// fixedVaults hands out one client; its connection never changes, and it watches no Secret.
type fixedVaults struct{ v connector.Vault }

func (f fixedVaults) For(context.Context, *v1alpha1.VaultSecret) (connector.Vault, error) {
	return f.v, nil
}

func (f fixedVaults) ConnectionVersion(context.Context, *v1alpha1.VaultSecret) string { return "" }

func (f fixedVaults) SecretSource(func(context.Context, client.Object) []reconcile.Request) source.Source {
	return nil
}

// upToDate returns a fake client holding VaultSecret team-a/db, synced and
// Ready at generation gen with refreshPolicy OnChange, and its Secret; edit
// changes the VaultSecret's status before the client is built.
func upToDate(g Gomega, key []byte, gen int64, edit func(*v1alpha1.VaultSecretStatus)) client.Client {
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(v1alpha1.AddToScheme(scheme)).To(Succeed())
	data := map[string][]byte{"password": []byte("s3cret")}
	vs := &v1alpha1.VaultSecret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "db", UID: "uid-1", Generation: gen},
		Spec: v1alpha1.VaultSecretSpec{
			Vault:         &v1alpha1.VaultRef{URL: "https://demo.vault.azure.net/"},
			RefreshPolicy: v1alpha1.RefreshOnChange,
			Data:          []v1alpha1.DataItem{{Key: "password", Remote: v1alpha1.RemoteRef{Name: "DbPassword"}}},
		},
	}
	vs.Status = v1alpha1.VaultSecretStatus{ObservedGeneration: gen, DataHash: secrets.Hash(key, data)}
	meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady,
		Status: metav1.ConditionTrue, Reason: ReasonSynced, ObservedGeneration: gen})
	if edit != nil {
		edit(&vs.Status)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "db",
			Labels:      map[string]string{secrets.LabelManaged: "true"},
			Annotations: map[string]string{secrets.AnnotationOwner: "team-a/db"}},
		Type: corev1.SecretTypeOpaque, Data: data,
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(vs, secret).WithStatusSubresource(vs).Build()
}

// A Key Vault event must survive a reconcile that could not read the vault
// (all its slots taken): the next reconcile still reads afresh for it.
func TestEventHintSurvivesABusyVault(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	key := []byte("hints-test-hash-key-of-32-bytes!")
	c := upToDate(g, key, 1, func(st *v1alpha1.VaultSecretStatus) {
		st.SyncedGeneration, st.SyncedVault = 1, "demo.vault.azure.net"
		st.LastSyncTime = &metav1.Time{Time: time.Now()}
	})
	vs := &v1alpha1.VaultSecret{}
	g.Expect(c.Get(ctx, types.NamespacedName{Namespace: "team-a", Name: "db"}, vs)).To(Succeed())

	vault := hostedVault{fakeVault: newFake(), host: "demo.vault.azure.net"}
	router := NewEventRouter()
	r := &VaultSecretReconciler{Client: c, Writer: &secrets.Writer{Client: c}, Vaults: fixedVaults{vault},
		HashKey: key, Events: router, slots: newVaultSlots(1)}
	router.index(vs, "demo.vault.azure.net")
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "team-a", Name: "db"}}

	// Up to date and OnChange: a reconcile without an event reads nothing.
	_, err := r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(vault.gets).To(BeZero())

	router.Notify(ctx, kvevents.Event{VaultHost: "demo.vault.azure.net", ObjectName: "DbPassword"})
	<-router.C                            // what the controller's channel source would take
	release, ok := r.slots.acquire(vault) // another VaultSecret holds the only slot
	g.Expect(ok).To(BeTrue())

	res, err := r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(BeNumerically(">", 0), "comes back when a slot may be free")
	g.Expect(vault.gets).To(BeZero())
	_, pending := router.pending(req.String())
	g.Expect(pending).To(BeTrue(), "the event is still pending after a reconcile that could not read")

	release()
	_, err = r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(vault.gets).To(Equal(1), "the event made a fresh read")
	_, pending = router.pending(req.String())
	g.Expect(pending).To(BeFalse(), "the read settled the event")

	_, err = r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(vault.gets).To(Equal(1), "a settled event causes no second read")
}

// An event that arrives while a read for an earlier one runs is kept.
func TestEventHintNewerThanTheReadIsKept(t *testing.T) {
	g := NewWithT(t)
	router := NewEventRouter()
	router.Index.Add("team-a/db", []kvevents.Ref{{VaultHost: "demo.vault.azure.net", ObjectName: "a"}})
	go func() {
		for range router.C {
		}
	}()
	ctx := context.Background()
	router.Notify(ctx, kvevents.Event{VaultHost: "demo.vault.azure.net", ObjectName: "a"})
	first, ok := router.pending("team-a/db")
	g.Expect(ok).To(BeTrue())
	router.Notify(ctx, kvevents.Event{VaultHost: "demo.vault.azure.net", ObjectName: "a"})
	router.settle("team-a/db", first)
	_, ok = router.pending("team-a/db")
	g.Expect(ok).To(BeTrue(), "the second event was not covered by the first read")
}

// The audit log names the method as the API and docs/metrics.md spell it.
func TestAuditSubjectSpellsTheMethodAsTheAPI(t *testing.T) {
	g := NewWithT(t)
	vs := &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "db"}}
	s := auditSubject(vs, "WorkloadIdentity/tenant-1/client-1/team-a/app")
	g.Expect(s.Method).To(Equal("workloadIdentity"))
	g.Expect(s.ServiceAccount).To(Equal("team-a/app"))
	g.Expect(s.ClientID).To(Equal("client-1"))
}

// A VaultSecret synced by a version that did not record the vault and the
// spec generation gets them on its next reconcile, so a later deletion of
// its source can count as one.
func TestSyncedVaultIsBackfilled(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	key := []byte("hints-test-hash-key-of-32-bytes!")
	c := upToDate(g, key, 3, nil) // written before syncedVault and syncedGeneration existed
	vault := hostedVault{fakeVault: newFake(), host: "demo.vault.azure.net"}
	r := &VaultSecretReconciler{Client: c, Writer: &secrets.Writer{Client: c}, Vaults: fixedVaults{vault}, HashKey: key}
	_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "team-a", Name: "db"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(vault.gets).To(BeZero(), "nothing was read")
	got := &v1alpha1.VaultSecret{}
	g.Expect(c.Get(ctx, types.NamespacedName{Namespace: "team-a", Name: "db"}, got)).To(Succeed())
	g.Expect(got.Status.SyncedVault).To(Equal("demo.vault.azure.net"))
	g.Expect(got.Status.SyncedGeneration).To(Equal(int64(3)))
}
