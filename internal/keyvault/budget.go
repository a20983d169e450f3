package keyvault

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Budget defaults.
const (
	DefaultBudgetRequests     = 2000
	DefaultBudgetInterval     = 10 * time.Second
	DefaultThrottlePause      = time.Second
	DefaultMaxThrottlePause   = 5 * time.Minute
	budgetPruneThreshold      = 1024
	budgetIdleIntervalsToDrop = 6
)

// BudgetOptions configures a Budget. Zero fields take the defaults.
type BudgetOptions struct {
	// Requests is the number of requests allowed per Interval to one vault (the bucket size). Default 2,000.
	Requests int
	// Interval is the refill period of the bucket. Default 10 s.
	Interval time.Duration
	// DefaultPause is how long a vault is paused after a 429 without a Retry-After header. Default 1 s.
	DefaultPause time.Duration
	// MaxPause caps the pause a Retry-After can impose. Default 5 min.
	MaxPause time.Duration
}

// BudgetStats are counters of one vault's budget.
type BudgetStats struct {
	// Admitted counts requests let through.
	Admitted int64
	// Delayed counts admitted requests that had to wait first (empty bucket, pause or probe).
	Delayed int64
	// Throttled counts 429 answers seen.
	Throttled int64
	// Pauses counts the times a 429 started or lengthened a pause.
	Pauses int64
	// Probes counts requests let through alone after a pause.
	Probes int64
	// PausedUntil is the end of the current pause (zero when none was ever set).
	PausedUntil time.Time
}

// Budget is a registry of client-side request budgets, one per vault host: a token bucket every
// request waits on, and a shared pause after a 429 so that a throttled vault sees one probe, not a
// retry storm. It is safe for concurrent use; share one per process.
type Budget struct {
	opts  BudgetOptions
	rate  float64 // tokens per second
	clock clock

	mu     sync.Mutex
	vaults map[string]*vaultBudget
}

type vaultBudget struct {
	tokens      float64
	last        time.Time
	lastUsed    time.Time
	pausedUntil time.Time
	needProbe   bool
	probing     bool
	// changed is closed (and replaced) whenever waiters should look again.
	changed chan struct{}
	stats   BudgetStats
}

// NewBudget returns an empty budget registry.
func NewBudget(opts BudgetOptions) *Budget {
	if opts.Requests <= 0 {
		opts.Requests = DefaultBudgetRequests
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultBudgetInterval
	}
	if opts.DefaultPause <= 0 {
		opts.DefaultPause = DefaultThrottlePause
	}
	if opts.MaxPause <= 0 {
		opts.MaxPause = DefaultMaxThrottlePause
	}
	return &Budget{
		opts:   opts,
		rate:   float64(opts.Requests) / opts.Interval.Seconds(),
		clock:  realClock{},
		vaults: map[string]*vaultBudget{},
	}
}

func hostKey(host string) string { return strings.ToLower(host) }

// vault returns the budget of host; b.mu must be held.
func (b *Budget) vault(host string, now time.Time) *vaultBudget {
	v, ok := b.vaults[host]
	if !ok {
		if len(b.vaults) >= budgetPruneThreshold {
			b.prune(now)
		}
		v = &vaultBudget{tokens: float64(b.opts.Requests), last: now, changed: make(chan struct{})}
		b.vaults[host] = v
	}
	v.lastUsed = now
	return v
}

// prune drops vaults idle for a while with nothing pending; b.mu must be held.
func (b *Budget) prune(now time.Time) {
	idle := budgetIdleIntervalsToDrop * b.opts.Interval
	for h, v := range b.vaults {
		if !v.probing && !now.Before(v.pausedUntil) && now.Sub(v.lastUsed) > idle {
			delete(b.vaults, h)
		}
	}
}

func (v *vaultBudget) broadcast() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// Wait blocks until a request to host may go out, or ctx ends. The caller must call the returned
// release with the response (nil when the request failed without one) once it has it.
func (b *Budget) Wait(ctx context.Context, host string) (release func(*http.Response), err error) {
	host = hostKey(host)
	delayed := false
	for {
		b.mu.Lock()
		now := b.clock.Now()
		v := b.vault(host, now)
		var wait time.Duration // 0: wait only for a change
		switch {
		case now.Before(v.pausedUntil):
			wait = v.pausedUntil.Sub(now)
		case v.probing:
		default:
			v.refill(now, float64(b.opts.Requests), b.rate)
			if v.tokens >= 1 {
				v.tokens--
				probe := v.needProbe
				if probe {
					v.needProbe, v.probing = false, true
					v.stats.Probes++
				}
				v.stats.Admitted++
				if delayed {
					v.stats.Delayed++
				}
				b.mu.Unlock()
				return b.releaser(host, probe), nil
			}
			wait = time.Duration((1 - v.tokens) / b.rate * float64(time.Second))
			if wait <= 0 {
				wait = time.Millisecond
			}
		}
		changed := v.changed
		b.mu.Unlock()
		delayed = true

		var timer <-chan time.Time
		stop := func() {}
		if wait > 0 {
			timer, stop = b.clock.After(wait)
		}
		select {
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-changed:
		case <-timer:
		}
		stop()
	}
}

func (v *vaultBudget) refill(now time.Time, capacity, rate float64) {
	if elapsed := now.Sub(v.last).Seconds(); elapsed > 0 {
		v.tokens += elapsed * rate
		if v.tokens > capacity {
			v.tokens = capacity
		}
	}
	v.last = now
}

func (b *Budget) releaser(host string, probe bool) func(*http.Response) {
	var once sync.Once
	return func(resp *http.Response) {
		once.Do(func() { b.release(host, probe, resp) })
	}
}

func (b *Budget) release(host string, probe bool, resp *http.Response) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	v := b.vault(host, now)
	notify := false
	if probe {
		v.probing = false
		notify = true
	}
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		v.stats.Throttled++
		d := retryAfter(resp.Header, now)
		if d <= 0 {
			d = b.opts.DefaultPause
		}
		if d > b.opts.MaxPause {
			d = b.opts.MaxPause
		}
		if until := now.Add(d); until.After(v.pausedUntil) {
			v.pausedUntil = until
			v.stats.Pauses++
			v.stats.PausedUntil = until
		}
		v.needProbe = true
		notify = true
	}
	if notify {
		v.broadcast()
	}
}

// PausedFor returns how long requests to host are still held back by a 429, or 0.
func (b *Budget) PausedFor(host string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.vaults[hostKey(host)]
	if !ok {
		return 0
	}
	if d := v.pausedUntil.Sub(b.clock.Now()); d > 0 {
		return d
	}
	return 0
}

// Stats returns the counters of host's budget.
func (b *Budget) Stats(host string) BudgetStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.vaults[hostKey(host)]; ok {
		return v.stats
	}
	return BudgetStats{}
}

// Policy returns an azcore per-retry policy that makes every request (and every SDK retry) wait on
// the budget of its URL's host. Add it to azcore.ClientOptions.PerRetryPolicies.
func (b *Budget) Policy() policy.Policy { return budgetPolicy{b: b} }

type budgetPolicy struct{ b *Budget }

func (p budgetPolicy) Do(req *policy.Request) (*http.Response, error) {
	release, err := p.b.Wait(req.Raw().Context(), req.Raw().URL.Host)
	if err != nil {
		return nil, err
	}
	resp, err := req.Next()
	release(resp)
	return resp, err
}
