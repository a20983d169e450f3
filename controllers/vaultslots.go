package controllers

import (
	"math/rand/v2"
	"sync"
	"time"
)

// vaultSlots caps how many syncs may read one vault at the same time, so
// that a vault that is down or slow (every read waiting for timeouts and the
// SDK's retries) can hold at most that many workers and VaultSecrets of other
// vaults keep syncing: no head-of-line blocking. The slot is held only while
// Key Vault is read, not while the Secret is written. A nil *vaultSlots
// limits nothing.
type vaultSlots struct {
	max int

	mu       sync.Mutex
	inFlight map[string]int
}

// newVaultSlots allows n concurrent reads per vault (at least 1).
func newVaultSlots(n int) *vaultSlots {
	return &vaultSlots{max: max(n, 1), inFlight: map[string]int{}}
}

// vaultHost is the part of connector.Vault the slots use.
type vaultHost interface{ Host() string }

// acquire takes a slot of v's vault; ok is false when all are taken. Call
// release once the reads are done. A client without a host takes no slot.
func (s *vaultSlots) acquire(v vaultHost) (release func(), ok bool) {
	host := v.Host()
	if s == nil || host == "" {
		return func() {}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight[host] >= s.max {
		return nil, false
	}
	s.inFlight[host]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.inFlight[host]--; s.inFlight[host] <= 0 {
				delete(s.inFlight, host)
			}
		})
	}, true
}

// slotRetry is how long a VaultSecret whose vault had no free slot waits
// before it tries again: about half a second, spread.
func slotRetry() time.Duration {
	return 400*time.Millisecond + rand.N(200*time.Millisecond) //nolint:gosec // G404: jitter spreads load; it guards nothing
}
