package keyvault

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/keyvault/keyvaulttest"
)

func newTestBudget(requests int, interval time.Duration) (*Budget, *fakeClock) {
	b := NewBudget(BudgetOptions{Requests: requests, Interval: interval})
	clk := newFakeClock()
	b.clock = clk
	return b, clk
}

func throttled(header, value string) *http.Response {
	h := http.Header{}
	if header != "" {
		h.Set(header, value)
	}
	return &http.Response{StatusCode: http.StatusTooManyRequests, Header: h}
}

func ok200() *http.Response { return &http.Response{StatusCode: 200, Header: http.Header{}} }

// waitAsync runs Wait in the background and reports when it returns.
func waitAsync(b *Budget, ctx context.Context, host string) chan func(*http.Response) {
	out := make(chan func(*http.Response), 1)
	go func() {
		release, err := b.Wait(ctx, host)
		if err != nil {
			close(out)
			return
		}
		out <- release
	}()
	return out
}

func TestBudgetBucketLimit(t *testing.T) {
	g := NewWithT(t)
	b, clk := newTestBudget(5, 10*time.Second) // one token every 2 s
	for i := 0; i < 5; i++ {
		release, err := b.Wait(context.Background(), "demo.vault.azure.net")
		g.Expect(err).NotTo(HaveOccurred())
		release(ok200())
	}
	sixth := waitAsync(b, context.Background(), "DEMO.vault.azure.net")
	g.Eventually(clk.Timers, 10*time.Second, time.Millisecond).Should(Equal(1))
	g.Expect(sixth).NotTo(Receive())
	// Another vault has its own bucket.
	other, err := b.Wait(context.Background(), "other.vault.azure.net")
	g.Expect(err).NotTo(HaveOccurred())
	other(nil)

	clk.Advance(time.Second)
	g.Expect(sixth).NotTo(Receive())
	clk.Advance(time.Second)
	g.Eventually(sixth, 10*time.Second).Should(Receive())
	st := b.Stats("demo.vault.azure.net")
	g.Expect(st.Admitted).To(Equal(int64(6)))
	g.Expect(st.Delayed).To(Equal(int64(1)))
}

func TestBudgetWaitHonoursContext(t *testing.T) {
	g := NewWithT(t)
	b, clk := newTestBudget(1, time.Minute)
	release, err := b.Wait(context.Background(), "demo.vault.azure.net")
	g.Expect(err).NotTo(HaveOccurred())
	release(ok200())

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := b.Wait(ctx, "demo.vault.azure.net"); errc <- err }()
	g.Eventually(clk.Timers, 10*time.Second, time.Millisecond).Should(Equal(1))
	cancel()
	g.Eventually(errc, 10*time.Second).Should(Receive(MatchError(context.Canceled)))
	g.Eventually(clk.Timers, 10*time.Second, time.Millisecond).Should(BeZero())

	// Also while paused.
	b2, clk2 := newTestBudget(100, time.Second)
	r, _ := b2.Wait(context.Background(), "demo.vault.azure.net")
	r(throttled("Retry-After", "30"))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	_, err = b2.Wait(ctx2, "demo.vault.azure.net")
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
	g.Expect(clk2.Now()).To(Equal(newFakeClock().Now())) // no time passed on the fake clock
}

func TestBudgetRetryAfterPausesEveryone(t *testing.T) {
	g := NewWithT(t)
	b, clk := newTestBudget(100, time.Second)
	const host = "demo.vault.azure.net"

	first, err := b.Wait(context.Background(), host)
	g.Expect(err).NotTo(HaveOccurred())
	inflight, err := b.Wait(context.Background(), host)
	g.Expect(err).NotTo(HaveOccurred())
	first(throttled("Retry-After", "5"))
	g.Expect(b.PausedFor(host)).To(Equal(5 * time.Second))
	inflight(throttled("Retry-After", "3")) // a shorter Retry-After does not shorten the pause
	g.Expect(b.PausedFor(host)).To(Equal(5 * time.Second))

	waiters := []chan func(*http.Response){}
	for i := 0; i < 3; i++ {
		waiters = append(waiters, waitAsync(b, context.Background(), host))
	}
	g.Eventually(clk.Timers, 10*time.Second, time.Millisecond).Should(Equal(3))
	clk.Advance(4 * time.Second)
	g.Consistently(func() int64 { return b.Stats(host).Admitted }, 100*time.Millisecond).Should(Equal(int64(2)))

	// After the pause exactly one request probes.
	clk.Advance(time.Second)
	g.Eventually(func() int64 { return b.Stats(host).Probes }, 10*time.Second, time.Millisecond).Should(Equal(int64(1)))
	g.Consistently(func() int64 { return b.Stats(host).Admitted }, 100*time.Millisecond).Should(Equal(int64(3)))
	var probe func(*http.Response)
	var rest []chan func(*http.Response)
	for _, w := range waiters {
		select {
		case probe = <-w:
		default:
			rest = append(rest, w)
		}
	}
	g.Expect(probe).NotTo(BeNil())
	g.Expect(rest).To(HaveLen(2))

	// The probe is throttled again: a new pause, another single probe.
	probe(throttled("retry-after-ms", "1500"))
	g.Expect(b.PausedFor(host)).To(Equal(1500 * time.Millisecond))
	g.Eventually(clk.Timers, 10*time.Second, time.Millisecond).Should(Equal(2))
	clk.Advance(1500 * time.Millisecond)
	g.Eventually(func() int64 { return b.Stats(host).Probes }, 10*time.Second, time.Millisecond).Should(Equal(int64(2)))
	var probe2 func(*http.Response)
	var last chan func(*http.Response)
	for _, w := range rest {
		select {
		case probe2 = <-w:
		default:
			last = w
		}
	}
	g.Expect(probe2).NotTo(BeNil())
	g.Consistently(last, 100*time.Millisecond).ShouldNot(Receive())

	// The probe succeeds: everyone proceeds.
	probe2(ok200())
	g.Eventually(last, 10*time.Second).Should(Receive())
	st := b.Stats(host)
	g.Expect(st.Throttled).To(Equal(int64(3)))
	g.Expect(st.Pauses).To(Equal(int64(2)))
	g.Expect(st.Admitted).To(Equal(int64(5)))
	g.Expect(b.PausedFor(host)).To(BeZero())

	// A 429 without Retry-After pauses for the default.
	r, _ := b.Wait(context.Background(), host)
	r(throttled("", ""))
	g.Expect(b.PausedFor(host)).To(Equal(DefaultThrottlePause))
}

func TestBudgetPolicyCoversSDKRetries(t *testing.T) {
	g := NewWithT(t)
	var hits atomic.Int64
	srv := keyvaulttest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("retry-after-ms", "20")
			keyvaulttest.WriteError(w, 429, "Throttled", "", "Operations per 10 seconds exceeded: VaultRequestTypeLimitReached")
			return
		}
		vaultHandler(t).ServeHTTP(w, r)
	}))
	defer srv.Close()
	budget := NewBudget(BudgetOptions{})
	opts := testOptions(srv)
	opts.ClientOptions.Retry = policy.RetryOptions{MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: time.Second}
	opts.Budget = budget
	c := newTestClient(t, srv, "id-a", opts)

	s, err := c.GetSecret(context.Background(), "db", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Value).To(Equal(secretValue))
	st := budget.Stats(c.Host())
	g.Expect(st.Admitted).To(Equal(int64(3))) // challenge, throttled, retry
	g.Expect(st.Throttled).To(Equal(int64(1)))
	g.Expect(st.Pauses).To(Equal(int64(1)))
	g.Expect(st.Probes).To(Equal(int64(1)))

	// With retries exhausted the caller sees ErrThrottled and the pause.
	hits.Store(0)
	srv.SetHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120") // beyond MaxRetryDelay: the SDK gives up at once
		keyvaulttest.WriteError(w, 429, "Throttled", "", "VaultRequestTypeLimitReached")
	}))
	_, err = c.GetKey(context.Background(), "signing", "")
	g.Expect(err).To(MatchError(ErrThrottled))
	g.Expect(budget.PausedFor(c.Host())).To(BeNumerically(">", 100*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.GetSecret(ctx, "db", version1)
	g.Expect(err).To(MatchError(ErrTransient))
	g.Expect(err).To(MatchError(context.DeadlineExceeded))

	// Budget.Policy works on its own too.
	g.Expect(budget.Policy()).NotTo(BeNil())
}
