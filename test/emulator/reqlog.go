package emulator

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// maxLogEntries bounds the request log; the oldest entries are dropped first.
const maxLogEntries = 100000

func (e *Emulator) record(entry *admin.LogEntry) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	e.seq++
	entry.Seq = e.seq
	if entry.Time.IsZero() {
		entry.Time = time.Now()
	}
	e.log = append(e.log, *entry)
	if len(e.log) > maxLogEntries {
		e.log = slices.Clone(e.log[len(e.log)-maxLogEntries:])
	}
}

// Requests returns the logged requests that match the filter, oldest first.
func (e *Emulator) Requests(f LogFilter) []LogEntry {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	var out []LogEntry
	for _, en := range e.log {
		if f.Match(en) {
			out = append(out, en)
		}
	}
	return out
}

// Count returns the number of logged requests that match the filter.
func (e *Emulator) Count(f LogFilter) int {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	n := 0
	for _, en := range e.log {
		if f.Match(en) {
			n++
		}
	}
	return n
}

// Counters aggregates the log per service, vault, operation, identity, auth method and status.
func (e *Emulator) Counters() []Counter {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	idx := map[Counter]int{}
	for _, en := range e.log {
		k := Counter{Service: en.Service, Vault: en.Vault, Operation: en.Operation, Identity: en.Identity, AuthMethod: en.AuthMethod, Status: en.Status}
		idx[k]++
	}
	out := make([]Counter, 0, len(idx))
	for k, n := range idx {
		k.Count = n
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Counter) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Vault, b.Vault), strings.Compare(a.Operation, b.Operation),
			strings.Compare(a.Identity, b.Identity), strings.Compare(a.AuthMethod, b.AuthMethod), cmp.Compare(a.Status, b.Status))
	})
	return out
}

// ResetLog empties the request log (counters included).
func (e *Emulator) ResetLog() {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	e.log = nil
}
