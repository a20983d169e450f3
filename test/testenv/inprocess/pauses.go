package inprocess

import (
	"time"

	"github.com/vaultsync/vaultsync/test/emulator"
)

// PauseStats describe how a client behaved after 429 answers, read from the
// emulator's request log of one vault.
type PauseStats struct {
	// Requests is the number of requests in the log.
	Requests int
	// Throttled is the number of 429 answers.
	Throttled int
	// Pauses is the number of 429 answers that started a pause.
	Pauses int
	// MaxInFlight is the largest number of 429 answers within 300 ms of a
	// pause's start: requests that were already on their way.
	MaxInFlight int
	// DuringPause counts requests that arrived later than 300 ms but earlier
	// than 950 ms after a pause started. Every Retry-After the emulator sends
	// is at least 1 s, so a client that honours it sends none.
	DuringPause int
}

// AnalyzePauses reads a vault's request log (oldest first).
func AnalyzePauses(log []emulator.LogEntry) PauseStats {
	const inFlight, minPause = 300 * time.Millisecond, 950 * time.Millisecond
	var st PauseStats
	var start time.Time
	burst := 0
	for _, e := range log {
		st.Requests++
		if e.Status == 429 {
			st.Throttled++
		}
		since := e.Time.Sub(start)
		inPause := !start.IsZero() && since < minPause
		switch {
		case e.Status == 429 && !inPause:
			st.Pauses++
			start, burst = e.Time, 1
			st.MaxInFlight = max(st.MaxInFlight, burst)
		case inPause && since <= inFlight:
			if e.Status == 429 {
				burst++
				st.MaxInFlight = max(st.MaxInFlight, burst)
			}
		case inPause:
			st.DuringPause++
		}
	}
	return st
}
