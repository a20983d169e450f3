package controllers

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
)

func slotVS(ns, object string) *v1alpha1.VaultSecret {
	return &v1alpha1.VaultSecret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "x"},
		Spec: v1alpha1.VaultSecretSpec{
			Vault: &v1alpha1.VaultRef{URL: "https://v.vault.azure.net/"},
			Data:  []v1alpha1.DataItem{{Key: "k", Remote: v1alpha1.RemoteRef{Name: object}}},
		},
	}
}

func TestRefreshSlot(t *testing.T) {
	g := NewWithT(t)
	const interval = time.Hour
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	vs := slotVS("a", "db")
	for i := range 200 {
		now := base.Add(time.Duration(i) * 7 * time.Minute)
		next := refreshSlot(vs, now, interval)
		g.Expect(next.Sub(now)).To(BeNumerically(">=", interval/2))
		g.Expect(next.Sub(now)).To(BeNumerically("<=", 3*interval/2))
		// Every slot of one VaultSecret sits on the same grid, and the one
		// after a sync at the slot is exactly one interval later.
		g.Expect(next.Sub(refreshSlot(vs, base, interval)) % interval).To(BeZero())
		g.Expect(refreshSlot(vs, next.Add(3*time.Second), interval)).To(Equal(next.Add(interval)))
	}
	// Same reads, same identity, different names and creation times: same grid.
	other := slotVS("a", "db")
	other.Name = "y"
	g.Expect(refreshSlot(other, base.Add(17*time.Second), interval)).To(Equal(refreshSlot(vs, base, interval)))
	// Different objects are spread over the interval.
	seen := map[time.Duration]bool{}
	for i := range 50 {
		seen[refreshSlot(slotVS("a", fmt.Sprintf("o%d", i)), base, interval).Sub(base).Truncate(6*time.Minute)] = true
	}
	g.Expect(len(seen)).To(BeNumerically(">=", 7), "50 VaultSecrets with distinct objects land in most tenths of the interval")
	g.Expect(refreshSlot(vs, base, 0)).To(Equal(base))
}

func TestLastWrittenByUs(t *testing.T) {
	g := NewWithT(t)
	at := func(s int) *metav1.Time { t := metav1.NewTime(time.Unix(int64(s), 0)); return &t }
	obj := func(entries ...metav1.ManagedFieldsEntry) *v1alpha1.VaultSecret {
		o := &v1alpha1.VaultSecret{}
		o.ManagedFields = entries
		return o
	}
	g.Expect(lastWrittenByUs(obj())).To(BeFalse())
	g.Expect(lastWrittenByUs(obj(metav1.ManagedFieldsEntry{Manager: "vaultsync", Time: at(10)}))).To(BeTrue())
	g.Expect(lastWrittenByUs(obj(metav1.ManagedFieldsEntry{Manager: "vaultsync:merge-a", Time: at(10)}))).To(BeTrue())
	g.Expect(lastWrittenByUs(obj(metav1.ManagedFieldsEntry{Manager: "vaultsync", Time: at(10)}, metav1.ManagedFieldsEntry{Manager: "kubectl-edit", Time: at(11)}))).To(BeFalse())
	g.Expect(lastWrittenByUs(obj(metav1.ManagedFieldsEntry{Manager: "kubectl-edit", Time: at(9)}, metav1.ManagedFieldsEntry{Manager: "vaultsync", Time: at(11)}))).To(BeTrue())
	g.Expect(lastWrittenByUs(obj(metav1.ManagedFieldsEntry{Manager: "vaultsync", Time: at(10)}, metav1.ManagedFieldsEntry{Manager: "kubectl-edit", Time: at(10)}))).To(BeFalse(),
		"a tie with someone else's write wakes the owner")
	g.Expect(lastWrittenByUs(obj(metav1.ManagedFieldsEntry{Manager: "vaultsyncer", Time: at(10)}))).To(BeFalse())
}

type hostVault struct {
	Vault
	host string
}

func (h hostVault) Host() string { return h.host }

func TestVaultSlots(t *testing.T) {
	g := NewWithT(t)
	s := newVaultSlots(2)
	a, b := hostVault{host: "a.vault.azure.net"}, hostVault{host: "b.vault.azure.net"}
	r1, ok := s.acquire(a)
	g.Expect(ok).To(BeTrue())
	r2, ok := s.acquire(a)
	g.Expect(ok).To(BeTrue())
	_, ok = s.acquire(a)
	g.Expect(ok).To(BeFalse(), "a third read of the same vault waits")
	rb, ok := s.acquire(b)
	g.Expect(ok).To(BeTrue(), "another vault is not blocked")
	r1()
	r1() // release is idempotent
	r3, ok := s.acquire(a)
	g.Expect(ok).To(BeTrue())
	r2()
	r3()
	rb()
	g.Expect(s.inFlight).To(BeEmpty())
	// Without a host, or without limits, nothing is limited.
	var none *vaultSlots
	_, ok = none.acquire(a)
	g.Expect(ok).To(BeTrue())
	_, ok = newVaultSlots(0).acquire(a)
	g.Expect(ok).To(BeTrue())
	g.Expect(slotRetry()).To(And(BeNumerically(">=", 400*time.Millisecond), BeNumerically("<", 600*time.Millisecond)))
}
