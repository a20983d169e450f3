package keyvault

import (
	"context"
	"sync"
	"time"
)

// Coalescer defaults.
const (
	DefaultCoalesceWindow     = 2 * time.Second
	DefaultCoalesceMaxEntries = 10000
	DefaultCoalesceMaxCall    = 2 * time.Minute
	// DefaultCoalesceMaxAge bounds how old a remembered result handed to a request made
	// in the past (WithRequestTime) may be, however long a burst of such requests lasts.
	DefaultCoalesceMaxAge = 5 * time.Minute
)

// CoalescerStats are the Coalescer's counters.
type CoalescerStats struct {
	// Calls counts upstream calls started.
	Calls int64
	// Shared counts fetches that joined a call already in flight.
	Shared int64
	// Reused counts fetches answered from a result remembered within the window.
	Reused int64
	// Entries is the number of results currently remembered.
	Entries int
}

// coalesceKey identifies one fetch. The identity is part of it: a result fetched with one
// identity is never handed to a caller using another.
type coalesceKey struct {
	vault    string
	identity string
	typ      string
	name     string
	version  string
}

// Coalescer single-flights identical fetches and reuses successful results for a short window.
// Errors are shared with the callers waiting at that moment but never remembered. It is safe for
// concurrent use; share one per process.
//
// A result answers a fetch when it was fetched at most one window before the fetch's request
// time: now, or the earlier instant WithRequestTime names (a VaultSecret's creation, the refresh
// slot that fell due). Requests made at the same instant are thus answered by one read however
// long the queue of their syncs takes to drain, and none gets a value older than a read at its
// request time would have been, less the window. A result stays remembered while it keeps being
// used (until one window after its last use) and at most DefaultCoalesceMaxAge after its fetch.
type Coalescer struct {
	window     time.Duration
	maxEntries int
	maxCall    time.Duration
	maxAge     time.Duration
	clock      clock

	mu        sync.Mutex
	inflight  map[coalesceKey]*flight
	recent    map[coalesceKey]remembered
	lastPrune time.Time
	stats     CoalescerStats
}

type flight struct {
	done    chan struct{}
	val     any
	err     error
	waiters int
	cancel  context.CancelFunc
	// started is when the call began: the result reflects the vault at or after it.
	started time.Time
}

type remembered struct {
	val     any
	fetched time.Time
	used    time.Time
}

// expired reports whether r may be dropped at now.
func (c *Coalescer) expired(r remembered, now time.Time) bool {
	return !now.Before(r.used.Add(c.window)) || !now.Before(r.fetched.Add(c.maxAge))
}

// NewCoalescer returns a Coalescer that reuses successful results for window (use
// DefaultCoalesceWindow); a zero window disables reuse, while identical fetches in flight are still
// shared. At most DefaultCoalesceMaxEntries results are remembered.
func NewCoalescer(window time.Duration) *Coalescer {
	if window < 0 {
		window = 0
	}
	return &Coalescer{
		window:     window,
		maxEntries: DefaultCoalesceMaxEntries,
		maxCall:    DefaultCoalesceMaxCall,
		maxAge:     max(DefaultCoalesceMaxAge, window),
		clock:      realClock{},
		inflight:   map[coalesceKey]*flight{},
		recent:     map[coalesceKey]remembered{},
	}
}

// Stats returns the counters.
func (c *Coalescer) Stats() CoalescerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = len(c.recent)
	return s
}

// Forget drops every remembered result (for example after an Event Grid notification said an object changed).
func (c *Coalescer) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.recent)
}

// do returns fn's result, sharing it with identical calls. The value must be treated as read-only.
// fn runs with a context that keeps ctx's values and ends when every waiting caller has gone.
func (c *Coalescer) do(ctx context.Context, key coalesceKey, fn func(context.Context) (any, error)) (any, error) {
	c.mu.Lock()
	now := c.clock.Now()
	if r, ok := c.recent[key]; ok {
		switch {
		case c.expired(r, now), IsFresh(ctx):
			// A fresh read replaces what is remembered: callers meanwhile join it.
			delete(c.recent, key)
		case !r.fetched.Before(requestTime(ctx, now).Add(-c.window)):
			r.used = now
			c.recent[key] = r
			c.stats.Reused++
			c.mu.Unlock()
			return r.val, nil
		}
	}
	if f, ok := c.inflight[key]; ok {
		f.waiters++
		c.stats.Shared++
		c.mu.Unlock()
		return c.wait(ctx, key, f)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.maxCall)
	f := &flight{done: make(chan struct{}), waiters: 1, cancel: cancel, started: now}
	c.inflight[key] = f
	c.stats.Calls++
	c.mu.Unlock()

	go func() {
		defer cancel()
		val, err := fn(fctx)
		c.mu.Lock()
		f.val, f.err = val, err
		if c.inflight[key] == f {
			delete(c.inflight, key)
			if err == nil && c.window > 0 {
				now := c.clock.Now()
				c.recent[key] = remembered{val: val, fetched: f.started, used: now}
				c.prune(now)
			}
		}
		c.mu.Unlock()
		close(f.done)
	}()
	return c.wait(ctx, key, f)
}

func (c *Coalescer) wait(ctx context.Context, key coalesceKey, f *flight) (any, error) {
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		c.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Nobody waits any more: stop the call, and let the next caller start afresh.
			f.cancel()
			if c.inflight[key] == f {
				delete(c.inflight, key)
			}
		}
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// prune drops expired results, and arbitrary ones beyond maxEntries; c.mu must be held.
func (c *Coalescer) prune(now time.Time) {
	if len(c.recent) <= c.maxEntries && now.Sub(c.lastPrune) < c.window {
		return
	}
	c.lastPrune = now
	for k, r := range c.recent {
		if c.expired(r, now) {
			delete(c.recent, k)
		}
	}
	for k := range c.recent {
		if len(c.recent) <= c.maxEntries {
			break
		}
		delete(c.recent, k)
	}
}
