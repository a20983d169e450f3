package emulator

import (
	"sync"
	"time"
)

// Default per-vault budget: 4,000 requests per 10 seconds.
const (
	defaultBudget = 4000
	defaultWindow = 10 * time.Second
)

// limiter is a per-vault request budget over a sliding or fixed window. Refused requests do not count.
type limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	fixed  bool
	times  []time.Time // sliding: accepted request times, oldest first
	start  time.Time   // fixed: window start
	count  int         // fixed: accepted requests in the window
}

func newLimiter(l *Limits) *limiter {
	lim := &limiter{max: defaultBudget, window: defaultWindow}
	if l != nil {
		if l.Requests > 0 {
			lim.max = l.Requests
		}
		if l.Window != nil && l.Window.Duration > 0 {
			lim.window = l.Window.Duration
		}
		lim.fixed = l.Mode == "fixed"
	}
	return lim
}

// allow counts a request, or refuses it and says how long to wait.
func (l *limiter) allow(now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fixed {
		if now.Sub(l.start) >= l.window {
			l.start, l.count = now, 0
		}
		if l.count >= l.max {
			return false, l.start.Add(l.window).Sub(now)
		}
		l.count++
		return true, 0
	}
	cut := now.Add(-l.window)
	i := 0
	for i < len(l.times) && !l.times[i].After(cut) {
		i++
	}
	l.times = l.times[i:]
	if len(l.times) >= l.max {
		return false, l.times[0].Add(l.window).Sub(now)
	}
	l.times = append(l.times, now)
	return true, 0
}
