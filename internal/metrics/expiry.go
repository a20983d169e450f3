package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ExpiryKind is the kind of object whose expiry is tracked.
type ExpiryKind string

const (
	// ExpiryCertificate is a certificate's notAfter.
	ExpiryCertificate ExpiryKind = "certificate"
	// ExpirySecret is a secret's exp attribute.
	ExpirySecret ExpiryKind = "secret"
)

// Expiry is the expiry of one object synced by a VaultSecret.
type Expiry struct {
	// Vault is the vault host, e.g. demo.vault.azure.net.
	Vault string
	Kind  ExpiryKind
	// Object is the object name (kept in memory only, never a label).
	Object   string
	NotAfter time.Time
}

// ExpiryTracker remembers the expiry of every object the VaultSecrets synced and exports, per
// vault, the earliest one:
//
//	vaultsync_certificate_expiry_timestamp_seconds{vault} (certificates' notAfter)
//	vaultsync_secret_expiry_timestamp_seconds{vault}      (secrets' exp)
//	vaultsync_expiry_tracked_objects                      (entries held)
//
// The per-object detail stays in memory and in each VaultSecret's status: one series per vault
// keeps the cardinality bounded, and an alert on the earliest expiry fires as soon as any object of
// the vault is due. The minimum is computed at scrape time. It is safe for concurrent use.
type ExpiryTracker struct {
	vaults   *vaultLabels
	max      int
	certDesc *prometheus.Desc
	secDesc  *prometheus.Desc
	numDesc  *prometheus.Desc

	mu      sync.Mutex
	byOwner map[string][]Expiry
	count   int
}

func newExpiryTracker(vaults *vaultLabels, limit int) *ExpiryTracker {
	return &ExpiryTracker{
		vaults: vaults,
		max:    limit,
		certDesc: prometheus.NewDesc(NameCertificateExpiry,
			"Earliest notAfter (Unix seconds) among the certificates synced from the vault.", []string{"vault"}, nil),
		secDesc: prometheus.NewDesc(NameSecretExpiry,
			"Earliest exp attribute (Unix seconds) among the secrets with an expiry synced from the vault.", []string{"vault"}, nil),
		numDesc: prometheus.NewDesc(NameExpiryTrackedObjects,
			"Objects whose expiry is tracked.", nil, nil),
		byOwner: map[string][]Expiry{},
	}
}

// Set replaces what is known of owner (a VaultSecret as namespace/name): items are the expiries
// of the objects it synced last; entries with a zero NotAfter are skipped. An empty items is
// Delete. Beyond an overall bound (100,000 entries) new owners are not tracked.
func (t *ExpiryTracker) Set(owner string, items []Expiry) {
	if t == nil {
		return
	}
	kept := make([]Expiry, 0, len(items))
	for _, it := range items {
		if !it.NotAfter.IsZero() && (it.Kind == ExpiryCertificate || it.Kind == ExpirySecret) {
			kept = append(kept, it)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.byOwner[owner]
	if len(kept) == 0 {
		if old != nil {
			t.count -= len(old)
			delete(t.byOwner, owner)
		}
		return
	}
	if t.count-len(old)+len(kept) > t.max {
		return
	}
	t.count += len(kept) - len(old)
	t.byOwner[owner] = kept
}

// Delete forgets owner (its VaultSecret was deleted or syncs nothing with an expiry).
func (t *ExpiryTracker) Delete(owner string) { t.Set(owner, nil) }

// Describe implements prometheus.Collector.
func (t *ExpiryTracker) Describe(ch chan<- *prometheus.Desc) {
	ch <- t.certDesc
	ch <- t.secDesc
	ch <- t.numDesc
}

// Collect implements prometheus.Collector.
func (t *ExpiryTracker) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		vault string
		kind  ExpiryKind
	}
	earliest := map[key]time.Time{}
	t.mu.Lock()
	count := t.count
	for _, items := range t.byOwner {
		for _, it := range items {
			k := key{it.Vault, it.Kind}
			if cur, ok := earliest[k]; !ok || it.NotAfter.Before(cur) {
				earliest[k] = it.NotAfter
			}
		}
	}
	t.mu.Unlock()
	// Fold vaults beyond the label cap into "other", keeping the earliest.
	folded := map[key]time.Time{}
	for k, v := range earliest {
		label, _ := t.vaults.label(k.vault)
		fk := key{label, k.kind}
		if cur, ok := folded[fk]; !ok || v.Before(cur) {
			folded[fk] = v
		}
	}
	for k, v := range folded {
		desc := t.certDesc
		if k.kind == ExpirySecret {
			desc = t.secDesc
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v.Unix()), k.vault)
	}
	ch <- prometheus.MustNewConstMetric(t.numDesc, prometheus.GaugeValue, float64(count))
}
