package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// NameVaultSecrets is the gauge of VaultSecrets by readiness and reason.
const NameVaultSecrets = "vaultsync_vaultsecrets"

// StatusTracker remembers the Ready condition of every VaultSecret the manager reconciled and
// exports their count by readiness and reason:
//
//	vaultsync_vaultsecrets{ready="true"|"false", reason}
//
// so that "syncs failing for 15 minutes" is a plain alert on a gauge, even for a VaultSecret that
// is not retried (an invalid spec). Only the leader reconciles, so other replicas export nothing.
type StatusTracker struct {
	desc *prometheus.Desc

	mu      sync.Mutex
	byOwner map[string]readyState
}

type readyState struct {
	ready  bool
	reason string
}

func newStatusTracker() *StatusTracker {
	return &StatusTracker{
		desc: prometheus.NewDesc(NameVaultSecrets,
			"VaultSecrets reconciled by this manager, by Ready status and condition reason.", []string{"ready", "reason"}, nil),
		byOwner: map[string]readyState{},
	}
}

// Set records the Ready condition of owner (namespace/name) after a reconcile.
func (t *StatusTracker) Set(owner string, ready bool, reason string) {
	if t == nil {
		return
	}
	if reason == "" {
		reason = labelNone
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byOwner[owner] = readyState{ready: ready, reason: reason}
}

// Delete forgets owner (deleted, or no longer watched).
func (t *StatusTracker) Delete(owner string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byOwner, owner)
}

// Describe implements prometheus.Collector.
func (t *StatusTracker) Describe(ch chan<- *prometheus.Desc) { ch <- t.desc }

// Collect implements prometheus.Collector.
func (t *StatusTracker) Collect(ch chan<- prometheus.Metric) {
	counts := map[readyState]int{}
	t.mu.Lock()
	for _, s := range t.byOwner {
		counts[s]++
	}
	t.mu.Unlock()
	for s, n := range counts {
		ready := "false"
		if s.ready {
			ready = "true"
		}
		ch <- prometheus.MustNewConstMetric(t.desc, prometheus.GaugeValue, float64(n), ready, s.reason)
	}
}
