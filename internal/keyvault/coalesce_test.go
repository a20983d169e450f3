package keyvault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/keyvault/keyvaulttest"
)

// gatedHandler blocks every request until the gate is opened.
type gatedHandler struct {
	gate  chan struct{}
	inner http.Handler
}

func (h *gatedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	<-h.gate
	h.inner.ServeHTTP(w, r)
}

func TestCoalescerSharesIdenticalFetches(t *testing.T) {
	g := NewWithT(t)
	h := &gatedHandler{gate: make(chan struct{}), inner: vaultHandler(t)}
	srv := keyvaulttest.NewServer(h)
	defer srv.Close()
	co := NewCoalescer(DefaultCoalesceWindow)
	opts := testOptions(srv)
	opts.Coalescer = co
	c := newTestClient(t, srv, "ns-a/identity", opts)

	const n = 50
	var wg sync.WaitGroup
	results := make([]*Secret, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.GetSecret(context.Background(), "db", "")
		}()
	}
	g.Eventually(func() int64 { return co.Stats().Shared }, 10*time.Second, 5*time.Millisecond).Should(Equal(int64(n - 1)))
	close(h.gate)
	wg.Wait()

	g.Expect(srv.Count("/secrets/db/")).To(Equal(1))
	g.Expect(co.Stats().Calls).To(Equal(int64(1)))
	for i := 0; i < n; i++ {
		g.Expect(errs[i]).NotTo(HaveOccurred())
		g.Expect(results[i].Value).To(Equal(secretValue))
	}
	// Every caller gets its own copy.
	results[0].Tags["team"] = "changed"
	g.Expect(results[1].Tags["team"]).To(Equal("a"))

	// Within the window the result is reused without a request.
	again, err := c.GetSecret(context.Background(), "db", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again.Tags["team"]).To(Equal("a"))
	g.Expect(srv.Count("/secrets/db/")).To(Equal(1))
	g.Expect(co.Stats().Reused).To(Equal(int64(1)))
}

func TestCoalescerKeepsIdentitiesApart(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(vaultHandler(t))
	defer srv.Close()
	co := NewCoalescer(time.Minute)
	opts := testOptions(srv)
	opts.Coalescer = co
	a := newTestClient(t, srv, "ns-a/identity", opts)
	b := newTestClient(t, srv, "ns-b/identity", opts)

	_, err := a.GetSecret(context.Background(), "db", "")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = b.GetSecret(context.Background(), "db", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(srv.Count("/secrets/db/")).To(Equal(2))
	// Same identity, other type or version: separate as well.
	_, err = a.GetCertificateSecret(context.Background(), "tls", "")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = a.GetSecret(context.Background(), "db", version1)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = a.GetSecret(context.Background(), "db", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(srv.Count("/secrets/db/")).To(Equal(2))
	g.Expect(co.Stats().Calls).To(Equal(int64(4)))
}

func TestCoalescerWindowExpires(t *testing.T) {
	g := NewWithT(t)
	clk := newFakeClock()
	co := NewCoalescer(2 * time.Second)
	co.clock = clk
	var calls atomic.Int64
	fetch := func(context.Context) (any, error) { return calls.Add(1), nil }
	key := coalesceKey{vault: "v", identity: "i", typ: "secret", name: "n"}

	v, err := co.do(context.Background(), key, fetch)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(v).To(Equal(int64(1)))
	clk.Advance(1900 * time.Millisecond)
	v, _ = co.do(context.Background(), key, fetch)
	g.Expect(v).To(Equal(int64(1)))
	clk.Advance(200 * time.Millisecond)
	v, _ = co.do(context.Background(), key, fetch)
	g.Expect(v).To(Equal(int64(2)))
	g.Expect(calls.Load()).To(Equal(int64(2)))

	off := NewCoalescer(0)
	_, _ = off.do(context.Background(), key, fetch) // only the call count matters here
	_, _ = off.do(context.Background(), key, fetch)
	g.Expect(calls.Load()).To(Equal(int64(4)))
	g.Expect(off.Stats().Entries).To(BeZero())
}

func TestCoalescerDoesNotCacheErrors(t *testing.T) {
	g := NewWithT(t)
	co := NewCoalescer(time.Minute)
	key := coalesceKey{vault: "v", identity: "i", typ: "secret", name: "n"}
	boom := errors.New("boom")

	// In flight, the error is shared.
	gate := make(chan struct{})
	var calls atomic.Int64
	fail := func(context.Context) (any, error) { calls.Add(1); <-gate; return nil, boom }
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = co.do(context.Background(), key, fail) }()
	}
	g.Eventually(func() int64 { return co.Stats().Shared }, 10*time.Second, 5*time.Millisecond).Should(Equal(int64(4)))
	close(gate)
	wg.Wait()
	g.Expect(calls.Load()).To(Equal(int64(1)))
	for _, err := range errs {
		g.Expect(err).To(MatchError(boom))
	}
	// Afterwards, it is not remembered.
	_, err := co.do(context.Background(), key, fail)
	g.Expect(err).To(MatchError(boom))
	g.Expect(calls.Load()).To(Equal(int64(2)))
	g.Expect(co.Stats().Entries).To(BeZero())
}

func TestCoalescerCallerCancellation(t *testing.T) {
	g := NewWithT(t)
	co := NewCoalescer(time.Minute)
	key := coalesceKey{vault: "v", identity: "i", typ: "secret", name: "n"}
	gate := make(chan struct{})
	upstreamCtx := make(chan context.Context, 1)
	fetch := func(ctx context.Context) (any, error) {
		upstreamCtx <- ctx
		select {
		case <-gate:
			return "value", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	// The leader gives up; the follower still gets the value.
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() { _, err := co.do(leaderCtx, key, fetch); leaderErr <- err }()
	upCtx := <-upstreamCtx
	followerVal := make(chan any, 1)
	go func() { v, _ := co.do(context.Background(), key, fetch); followerVal <- v }()
	g.Eventually(func() int64 { return co.Stats().Shared }, 10*time.Second, 5*time.Millisecond).Should(Equal(int64(1)))
	cancelLeader()
	g.Expect(<-leaderErr).To(MatchError(context.Canceled))
	g.Expect(upCtx.Err()).NotTo(HaveOccurred())
	close(gate)
	g.Expect(<-followerVal).To(Equal("value"))

	// When every caller gives up, the upstream call is canceled, and the next caller starts afresh.
	key2 := coalesceKey{vault: "v", identity: "i", typ: "secret", name: "other"}
	gate2 := make(chan struct{})
	block := func(ctx context.Context) (any, error) {
		upstreamCtx <- ctx
		select {
		case <-gate2:
			return "late", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := co.do(ctx, key2, block); done <- err }()
	upCtx = <-upstreamCtx
	cancel()
	g.Expect(<-done).To(MatchError(context.Canceled))
	g.Eventually(upCtx.Done(), 10*time.Second).Should(BeClosed())
	v, err := co.do(context.Background(), key2, func(context.Context) (any, error) { return "fresh", nil })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(v).To(Equal("fresh"))
}

func TestCoalescerBoundsMemory(t *testing.T) {
	g := NewWithT(t)
	clk := newFakeClock()
	co := NewCoalescer(time.Minute)
	co.clock = clk
	co.maxEntries = 10
	ok := func(context.Context) (any, error) { return "v", nil }
	for i := 0; i < 25; i++ {
		_, err := co.do(context.Background(), coalesceKey{vault: "v", identity: "i", name: fmt.Sprint(i)}, ok)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(co.Stats().Entries).To(BeNumerically("<=", 10))

	// Expired entries go at the next prune.
	clk.Advance(2 * time.Minute)
	_, _ = co.do(context.Background(), coalesceKey{vault: "v", identity: "i", name: "new"}, ok)
	g.Expect(co.Stats().Entries).To(Equal(1))
	co.Forget()
	g.Expect(co.Stats().Entries).To(BeZero())
}

// A burst of requests made at one instant (VaultSecrets created together, or
// due on one refresh slot) is answered by one read however long it lasts,
// while a request made later still needs a result from its own window.
func TestCoalescerRequestTimeSharesOneReadAcrossABurst(t *testing.T) {
	g := NewWithT(t)
	clk := newFakeClock()
	co := NewCoalescer(2 * time.Second)
	co.clock = clk
	var calls atomic.Int64
	fetch := func(context.Context) (any, error) { return calls.Add(1), nil }
	key := coalesceKey{vault: "v", identity: "i", typ: "secret", name: "n"}
	slot := clk.Now()
	atSlot := WithRequestTime(context.Background(), slot)

	// 60 s of syncs requested at the slot, one every second: one read.
	for range 60 {
		v, err := co.do(atSlot, key, fetch)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(v).To(Equal(int64(1)))
		clk.Advance(time.Second)
	}
	g.Expect(calls.Load()).To(Equal(int64(1)))

	// A request made now (no request time, or a later one) reads again.
	v, _ := co.do(context.Background(), key, fetch)
	g.Expect(v).To(Equal(int64(2)))
	v, _ = co.do(WithRequestTime(context.Background(), slot.Add(time.Minute)), key, fetch)
	g.Expect(v).To(Equal(int64(2)))
	// A request time in the future counts as now.
	clk.Advance(3 * time.Second)
	v, _ = co.do(WithRequestTime(context.Background(), clk.Now().Add(time.Hour)), key, fetch)
	g.Expect(v).To(Equal(int64(3)))
	// A fresh read ignores the request time.
	v, _ = co.do(WithFresh(WithRequestTime(context.Background(), slot)), key, fetch)
	g.Expect(v).To(Equal(int64(4)))
}

// An unused result goes one window after its last use, and a used one at
// DefaultCoalesceMaxAge after its read: a long-past request time never gets
// an older value than that.
func TestCoalescerRequestTimeIsBounded(t *testing.T) {
	g := NewWithT(t)
	clk := newFakeClock()
	co := NewCoalescer(2 * time.Second)
	co.clock = clk
	var calls atomic.Int64
	fetch := func(context.Context) (any, error) { return calls.Add(1), nil }
	key := coalesceKey{vault: "v", identity: "i", typ: "secret", name: "n"}
	long := WithRequestTime(context.Background(), clk.Now().Add(-time.Hour))

	_, _ = co.do(long, key, fetch)
	clk.Advance(2 * time.Second) // not used for a window: gone
	v, _ := co.do(long, key, fetch)
	g.Expect(v).To(Equal(int64(2)))
	for end := clk.Now().Add(DefaultCoalesceMaxAge); clk.Now().Before(end); {
		clk.Advance(time.Second)
		_, _ = co.do(long, key, fetch)
	}
	// Kept alive by use, but read again once it is DefaultCoalesceMaxAge old.
	g.Expect(calls.Load()).To(Equal(int64(3)))
	g.Expect(co.Stats().Entries).To(Equal(1))
}

// Sharing across a burst never crosses identities: the same object read by
// two identities at the same request time costs two reads.
func TestCoalescerRequestTimeKeepsIdentitiesApart(t *testing.T) {
	g := NewWithT(t)
	clk := newFakeClock()
	co := NewCoalescer(2 * time.Second)
	co.clock = clk
	at := WithRequestTime(context.Background(), clk.Now())
	read := func(who string) func(context.Context) (any, error) {
		return func(context.Context) (any, error) { return who, nil }
	}
	for range 10 {
		a, _ := co.do(at, coalesceKey{vault: "v", identity: "ns-a/sa", typ: "secret", name: "n"}, read("a"))
		b, _ := co.do(at, coalesceKey{vault: "v", identity: "ns-b/sa", typ: "secret", name: "n"}, read("b"))
		g.Expect(a).To(Equal("a"))
		g.Expect(b).To(Equal("b"))
		clk.Advance(time.Second)
	}
	g.Expect(co.Stats().Calls).To(Equal(int64(2)))
}
