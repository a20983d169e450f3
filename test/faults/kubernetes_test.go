package faults

import (
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

var _ = Describe("Kubernetes faults", func() {
	It("waits out a kube-apiserver outage of 30 s and converges when it is back", func() {
		mgr := startManager("apiserver")
		defer stopManager(mgr)
		f := newFixture(newNamespace(), newVault(nil), 3, 2)
		f.expectCurrent(30 * time.Second)

		gate.Close() // the manager loses the apiserver; this process's own client does not use the gate
		closed := time.Now()
		f.rotate()
		f.forceSyncAll()
		Consistently(func() bool {
			for _, vs := range f.names {
				if !mapsEqual(secretData(f.ns, vs), f.wantGen(vs, f.gen-1)) {
					return false
				}
			}
			return true
		}, 30*time.Second, time.Second).Should(BeTrue(), "nothing changes while the apiserver is away")
		Expect(gate.Open()).To(Succeed())
		GinkgoWriter.Printf("apiserver unreachable for %s\n", time.Since(closed).Round(time.Second))
		// client-go's reflectors back off up to 30 s after failed watches.
		f.expectCurrent(90 * time.Second)
	})

	It("retries Secret writes that conflict and keeps the last good data meanwhile", func() {
		var conflicts, injected atomic.Int64
		mgr := startManager("conflicts", func(o *inprocess.ManagerOptions) {
			o.APIFault = func(r *http.Request) *http.Response {
				if conflicts.Load() == 0 || r.Method == http.MethodGet || !strings.Contains(r.URL.Path, "/secrets/") {
					return nil
				}
				injected.Add(1)
				return inprocess.ConflictResponse(r)
			}
		})
		defer stopManager(mgr)
		f := newFixture(newNamespace(), newVault(nil), 3, 2)
		f.expectCurrent(30 * time.Second)
		conflicts.Store(1)
		f.rotate()
		f.forceSyncAll()
		Eventually(injected.Load, 20*time.Second, 100*time.Millisecond).Should(BeNumerically(">=", int64(len(f.names))))
		f.expectGen(f.gen - 1)
		conflicts.Store(0)
		f.expectCurrent(converge)
		GinkgoWriter.Printf("conflicts injected: %d\n", injected.Load())
	})

	It("converges after the operator is killed mid-sync and restarted", func() {
		v := newVault(nil)
		// Slow Key Vault answers keep syncs in flight when the manager dies.
		Expect(env.Emu.SetFaults(emulator.Faults{Vaults: []emulator.VaultFault{{Vault: v, Latency: emulator.DurationOf(300 * time.Millisecond)}}})).To(Succeed())
		mgr := startManager("killed")
		f := newFixture(newNamespace(), v, 40, 2)
		Eventually(func() int {
			n := 0
			for _, vs := range f.names {
				if strings.HasPrefix(readyStatus(f.ns, vs)(), "True/") {
					n++
				}
			}
			return n
		}, 30*time.Second, 20*time.Millisecond).Should(BeNumerically(">=", 3), "some VaultSecrets are synced")
		stopManager(mgr) // abrupt: in-flight reconciles are abandoned
		mgr = startManager("restarted")
		defer stopManager(mgr)
		f.expectCurrent(60 * time.Second)
		f.rotate()
		f.forceSyncAll()
		f.expectCurrent(60 * time.Second)
	})

	It("fails over to the other replica within the lease duration, without duplicate writes", func() {
		const lease, renew, retry = 4 * time.Second, 3 * time.Second, 500 * time.Millisecond
		leaseNS := newNamespace()
		le := func(o *inprocess.ManagerOptions) {
			o.LeaderElection, o.LeaderElectionNamespace = true, leaseNS
			o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = lease, renew, retry
			o.ReleaseOnCancel = false // a killed process does not release its lease
		}
		a := startManager("replica-a", le)
		b := startManager("replica-b", le)
		var leader, follower *inprocess.Manager
		Eventually(func() bool {
			select {
			case <-a.Elected():
				leader, follower = a, b
			case <-b.Elected():
				leader, follower = b, a
			default:
				return false
			}
			return true
		}, 2*lease, 50*time.Millisecond).Should(BeTrue(), "one replica is elected")
		select {
		case <-follower.Elected():
			Fail("both replicas think they lead")
		default:
		}
		defer stopManager(follower)

		f := newFixture(newNamespace(), newVault(nil), 3, 1)
		f.expectCurrent(30 * time.Second)
		writesBefore := follower.Counter.Snapshot().Writes("secrets")
		Expect(writesBefore).To(BeZero(), "the follower writes nothing")

		stopManager(leader)
		stopped := time.Now()
		Eventually(follower.Elected(), lease+2*retry+time.Second, 50*time.Millisecond).Should(BeClosed(), "the other replica takes over")
		took := time.Since(stopped)
		GinkgoWriter.Printf("failover took %s (lease %s)\n", took.Round(10*time.Millisecond), lease)

		f.rotate()
		f.forceSyncAll()
		f.expectCurrent(converge)
		c := follower.Counter.Snapshot()
		Expect(c.Writes("secrets")).To(Equal(len(f.names)), "one write per rotated Secret, no duplicates")
		for _, vs := range f.names {
			s := &corev1.Secret{}
			Expect(env.Client.Get(bgctx, client.ObjectKey{Namespace: f.ns, Name: vs}, s)).To(Succeed())
			Expect(s.ManagedFields).To(ContainElement(HaveField("Manager", "vaultsync")))
		}
	})
})

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
