package faults

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

// fixture is a namespace with VaultSecrets on one vault; each VaultSecret
// reads its own secrets, so no fetch is shared between them.
type fixture struct {
	ns, vault string
	names     []string
	items     map[string]map[string]string // VaultSecret -> key -> object
	gen       int
}

func newFixture(ns, vault string, n, perVS int) *fixture {
	GinkgoHelper()
	f := &fixture{ns: ns, vault: vault, items: map[string]map[string]string{}}
	for i := range n {
		vs := fmt.Sprintf("vs-%d", i)
		items := map[string]string{}
		for j := range perVS {
			items[fmt.Sprintf("k%d", j)] = fmt.Sprintf("%s-%s-%d-%d", vault, ns, i, j)
		}
		f.names = append(f.names, vs)
		f.items[vs] = items
	}
	f.rotate()
	for _, vs := range f.names {
		createVS(ns, vs, vault, f.items[vs])
	}
	return f
}

// rotate puts a new value into every object of the fixture.
func (f *fixture) rotate() {
	GinkgoHelper()
	f.gen++
	for _, vs := range f.names {
		for _, o := range f.items[vs] {
			setSecret(f.vault, o, f.value(o))
		}
	}
}

func (f *fixture) value(object string) string { return fmt.Sprintf("%s=v%d", object, f.gen) }

// want is the data each Secret holds once it has the current values.
func (f *fixture) want(vs string) map[string]string {
	out := map[string]string{}
	for k, o := range f.items[vs] {
		out[k] = f.value(o)
	}
	return out
}

func (f *fixture) wantGen(vs string, gen int) map[string]string {
	out := map[string]string{}
	for k, o := range f.items[vs] {
		out[k] = fmt.Sprintf("%s=v%d", o, gen)
	}
	return out
}

func (f *fixture) forceSyncAll() {
	GinkgoHelper()
	for _, vs := range f.names {
		forceSync(f.ns, vs)
	}
}

func (f *fixture) expectCurrent(within time.Duration) {
	GinkgoHelper()
	for _, vs := range f.names {
		expectData(f.ns, vs, f.want(vs), within)
		expectReady(f.ns, vs, within)
	}
}

// expectGen checks that every Secret still holds generation gen.
func (f *fixture) expectGen(gen int) {
	GinkgoHelper()
	for _, vs := range f.names {
		Expect(secretData(f.ns, vs)).To(Equal(f.wantGen(vs, gen)), "Secret %s/%s keeps its last good data", f.ns, vs)
	}
}

// expectReason waits until every VaultSecret of the fixture is Ready=False with one of reasons.
func (f *fixture) expectReason(within time.Duration, reasons ...string) {
	GinkgoHelper()
	var want []any
	for _, r := range reasons {
		want = append(want, "False/"+r)
	}
	for _, vs := range f.names {
		Eventually(readyStatus(f.ns, vs), within, 100*time.Millisecond).Should(BeElementOf(want...), "VaultSecret %s/%s", f.ns, vs)
	}
}

var _ = Describe("Key Vault and Entra ID faults", Ordered, func() {
	var mgr *inprocess.Manager
	BeforeAll(func() { mgr = startManager("kv") })
	AfterAll(func() { stopManager(mgr) })

	It("rides out a 429 storm: every request waits for Retry-After, one probe, no retry storm", func() {
		// 20 requests per 2 s; 30 VaultSecrets × 2 distinct secrets need 60.
		v := newVault(&emulator.Limits{Requests: 20, Window: emulator.DurationOf(2 * time.Second)})
		start := time.Now()
		f := newFixture(newNamespace(), v, 30, 2)
		f.expectCurrent(90 * time.Second)
		f.rotate()
		f.forceSyncAll()
		f.expectCurrent(90 * time.Second)
		st := inprocess.AnalyzePauses(env.Emu.Requests(emulator.LogFilter{Service: "keyvault", Vault: v, Since: start}))
		GinkgoWriter.Printf("429 storm: %+v\n", st)
		Expect(st.Throttled).To(BeNumerically(">", 0), "the vault did throttle")
		Expect(st.DuringPause).To(BeZero(), "no request may reach a throttled vault before Retry-After")
	})

	It("keeps the last good data through 5xx bursts and says KeyVaultUnavailable", func() {
		v := newVault(nil)
		f := newFixture(newNamespace(), v, 5, 2)
		f.expectCurrent(30 * time.Second)
		Expect(env.Emu.SetFaults(emulator.Faults{Vaults: []emulator.VaultFault{{Vault: v, Status: 503}}})).To(Succeed())
		f.rotate()
		f.forceSyncAll()
		f.expectReason(30*time.Second, "KeyVaultUnavailable")
		f.expectGen(f.gen - 1)
		env.Emu.ClearFaults()
		f.expectCurrent(converge)
	})

	It("keeps the last good data while Key Vault answers slower than the client waits", func() {
		v := newVault(nil)
		f := newFixture(newNamespace(), v, 3, 2)
		f.expectCurrent(30 * time.Second)
		Expect(env.Emu.SetFaults(emulator.Faults{Vaults: []emulator.VaultFault{{Vault: v, Latency: emulator.DurationOf(3 * tryTimeout)}}})).To(Succeed())
		f.rotate()
		f.forceSyncAll()
		f.expectReason(60*time.Second, "KeyVaultUnavailable", "KeyVaultError")
		f.expectGen(f.gen - 1)
		env.Emu.ClearFaults()
		f.expectCurrent(converge)
	})

	It("serves a healthy vault while another one is down (no head-of-line blocking)", func() {
		down := newVault(nil)
		healthy := newVault(nil)
		fd := newFixture(newNamespace(), down, 20, 1)
		fh := newFixture(newNamespace(), healthy, 5, 1)
		fd.expectCurrent(30 * time.Second)
		fh.expectCurrent(30 * time.Second)
		Expect(env.Emu.SetFaults(emulator.Faults{Vaults: []emulator.VaultFault{{Vault: down, Status: 503, Latency: emulator.DurationOf(time.Second)}}})).To(Succeed())
		fd.rotate()
		fd.forceSyncAll()
		fh.rotate()
		fh.forceSyncAll()
		fh.expectCurrent(10 * time.Second)
		fd.expectReason(60*time.Second, "KeyVaultUnavailable")
		fd.expectGen(fd.gen - 1)
		env.Emu.ClearFaults()
		fd.expectCurrent(converge)
	})

	It("keeps working on cached tokens while Entra ID is down, and names the token service for new identities", func() {
		v := newVault(nil)
		old := newFixture(newNamespace(), v, 2, 1)
		old.expectCurrent(30 * time.Second)
		Expect(env.Emu.SetFaults(emulator.Faults{TokenService: &emulator.TokenServiceFault{Down: true, Mode: admin.TokenDownUnavailable}})).To(Succeed())
		old.rotate()
		old.forceSyncAll()
		old.expectCurrent(30 * time.Second)
		fresh := newFixture(newNamespace(), v, 2, 1)
		// The credential fails while resolving the authority (the SDK's retries of
		// the 503 outlast the try timeout): that is the token service's outage too.
		fresh.expectReason(60*time.Second, "TokenServiceUnavailable")
		for _, vs := range fresh.names {
			msg := ready(fresh.ns, vs).Message
			GinkgoWriter.Printf("Entra down, %s: %s\n", vs, msg)
			Expect(msg).To(ContainSubstring("token request failed"), "the condition says the token request failed")
			Expect(msg).To(ContainSubstring("retries with backoff"), "the hint says it is retried, not which id to check")
		}
		for _, vs := range fresh.names {
			Expect(secretData(fresh.ns, vs)).To(BeNil(), "nothing is written without a token")
		}
		env.Emu.ClearFaults()
		fresh.expectCurrent(converge)
	})

	It("renews tokens that expire mid-run without a failed sync", func() {
		v := newVault(nil)
		// A new namespace is a new identity: its first token already has the short lifetime.
		Expect(env.Emu.SetFaults(emulator.Faults{TokenLifetime: emulator.DurationOf(2 * time.Second)})).To(Succeed())
		before := env.Emu.Count(emulator.LogFilter{Service: "entra", Operation: "Token", Status: 200})
		f := newFixture(newNamespace(), v, 3, 1)
		f.expectCurrent(30 * time.Second)
		for range 4 {
			f.rotate()
			f.forceSyncAll()
			f.expectCurrent(30 * time.Second)
			// The fault is time itself: let the 2 s token expire before the next round.
			time.Sleep(2500 * time.Millisecond)
		}
		Expect(env.Emu.Count(emulator.LogFilter{Service: "entra", Operation: "Token", Status: 200})-before).To(BeNumerically(">=", 3),
			"expired tokens were replaced")
		for _, vs := range f.names {
			Expect(readyStatus(f.ns, vs)()).To(HavePrefix("True/"))
		}
	})
})
