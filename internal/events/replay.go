package events

import (
	"sync"
	"time"
)

// replayCache remembers event keys for a window, bounded in size (oldest forgotten first).
type replayCache struct {
	window time.Duration
	max    int
	now    func() time.Time

	mu    sync.Mutex
	seen  map[string]time.Time
	order []replayEntry // insertion order; order[head:] is live
	head  int
}

type replayEntry struct {
	key string
	at  time.Time
}

func newReplayCache(window time.Duration, limit int, now func() time.Time) *replayCache {
	return &replayCache{window: window, max: limit, now: now, seen: map[string]time.Time{}}
}

// firstSeen records key and reports whether it was not seen within the window.
func (c *replayCache) firstSeen(key string) bool {
	if c.window <= 0 || c.max <= 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.expire(now)
	if at, ok := c.seen[key]; ok && now.Sub(at) < c.window {
		return false
	}
	c.seen[key] = now
	c.order = append(c.order, replayEntry{key: key, at: now})
	for len(c.seen) > c.max && c.head < len(c.order) {
		c.drop()
	}
	return true
}

// expire drops entries older than the window; c.mu held.
func (c *replayCache) expire(now time.Time) {
	for c.head < len(c.order) && now.Sub(c.order[c.head].at) >= c.window {
		c.drop()
	}
}

// drop forgets the oldest entry; c.mu held.
func (c *replayCache) drop() {
	e := c.order[c.head]
	c.order[c.head] = replayEntry{}
	c.head++
	if at, ok := c.seen[e.key]; ok && at.Equal(e.at) {
		delete(c.seen, e.key)
	}
	if c.head > 1024 && c.head*2 > len(c.order) {
		c.order = append([]replayEntry(nil), c.order[c.head:]...)
		c.head = 0
	}
}
