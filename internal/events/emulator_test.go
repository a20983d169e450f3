package events_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/events"
	"github.com/vaultsync/vaultsync/internal/kvtypes"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// TestEmulatorDeliversToHandler runs the emulator's Event Grid delivery against the real Handler
// behind a Server: handshake, authentication and parsing of both schemas end to end.
func TestEmulatorDeliversToHandler(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	emu, err := emulator.Start(ctx, nil, emulator.Options{StateDir: t.TempDir()})
	g.Expect(err).NotTo(HaveOccurred())
	defer emu.Close()
	g.Expect(emu.AddVault(emulator.Vault{Name: "events-demo"})).To(Succeed())

	const secret = "emulator-shared-secret-0123"
	idx := events.NewIndex()
	idx.Add("team-a/app", []events.Ref{{VaultHost: "events-demo.vault.azure.net", ObjectName: "db-password"}})
	var mu sync.Mutex
	var got []string
	var evs []events.Event
	h, err := events.NewHandler(events.Options{
		Secrets: [][]byte{[]byte(secret)},
		Sink: events.IndexSink(idx, func(_ context.Context, key string, ev events.Event) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, key)
			evs = append(evs, ev)
		}),
	})
	g.Expect(err).NotTo(HaveOccurred())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	srv := &events.Server{Handler: h}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	endpoint := "http://" + ln.Addr().String() + events.DefaultPath

	_, err = emu.AddEventSubscription(ctx, emulator.EventSubscription{Name: "eg", Endpoint: endpoint, Secret: secret, SecretHeader: events.DefaultHeader})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = emu.AddEventSubscription(ctx, emulator.EventSubscription{Name: "ce", Endpoint: endpoint, Schema: admin.SchemaCloudEvents, Secret: secret, SecretQuery: events.DefaultQueryParameter})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = emu.AddEventSubscription(ctx, emulator.EventSubscription{Name: "wrong", Endpoint: endpoint, Secret: "not-the-secret-at-all", MaxAttempts: 1})
	g.Expect(err).To(MatchError(ContainSubstring("403")), "a wrong secret fails the handshake")

	vi, err := emu.SetSecret("events-demo", "db-password", emulator.SecretVersion{Value: "rotated"})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = emu.SetSecret("events-demo", "unrelated", emulator.SecretVersion{Value: "x"})
	g.Expect(err).NotTo(HaveOccurred())

	// Both subscriptions deliver every event (2 each); the same event id reaching the receiver
	// twice is acknowledged but passed on once.
	g.Eventually(func() []admin.EventSubscriptionStatus {
		var ok []admin.EventSubscriptionStatus
		for _, s := range emu.EventSubscriptions() {
			if s.Name != "wrong" && s.Delivered == 2 && s.Failed == 0 {
				ok = append(ok, s)
			}
		}
		return ok
	}, 10*time.Second, 20*time.Millisecond).Should(HaveLen(2))
	mu.Lock()
	g.Expect(got).To(Equal([]string{"team-a/app"}), "only the indexed object, once")
	g.Expect(evs[0]).To(And(HaveField("Type", events.TypeSecretNewVersionCreated), HaveField("VaultHost", "events-demo.vault.azure.net"),
		HaveField("ObjectType", kvtypes.TypeSecret), HaveField("ObjectName", "db-password"), HaveField("Version", vi.Version)))
	mu.Unlock()
	cancel()
	g.Eventually(done, 15*time.Second).Should(Receive(BeNil()))
}
