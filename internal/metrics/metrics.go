// Package metrics defines vaultsync's Prometheus metrics. Every metric is registered on
// controller-runtime's registry (served by the manager's metrics endpoint) and none carries a
// per-object label: the label values of each metric come from small fixed sets, or from the vault
// host (capped, see MaxVaults). docs/metrics.md lists every metric with its cardinality.
//
// Wiring, once per process:
//
//	m := metrics.Shared() // registered on sigs.k8s.io/controller-runtime/pkg/metrics.Registry
//	kvOpts.Observer = m    // keyvault.Observer: request counts, latency, throttling
//	creds := credentials.NewCache(n).WithObserver(m) // credentials.TokenObserver: Entra ID token requests
//
// and from the controllers:
//
//	m.ObserveSync(metrics.SyncSuccess, reason, time.Since(start))
//	m.SecretUpdated()
//	m.Expiry.Set(owner, []metrics.Expiry{{Vault: host, Kind: metrics.ExpiryCertificate, Object: name, NotAfter: t}})
//	m.Status.Set(owner, ready, reason) // and m.Status.Delete(owner), m.Expiry.Delete(owner) when it is gone
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metric names.
const (
	NameKeyVaultRequests      = "vaultsync_keyvault_requests_total"
	NameKeyVaultDuration      = "vaultsync_keyvault_request_duration_seconds"
	NameTokenRequests         = "vaultsync_token_requests_total"
	NameSyncs                 = "vaultsync_sync_total"
	NameSyncDuration          = "vaultsync_sync_duration_seconds"
	NameSecretUpdates         = "vaultsync_secret_updates_total"
	NamePushes                = "vaultsync_push_total"
	NamePushedVersions        = "vaultsync_push_versions_written_total"
	NameEventsReceived        = "vaultsync_events_received_total"
	NameRollouts              = "vaultsync_rollouts_total"
	NameThrottled             = "vaultsync_throttled_total"
	NameCertificateExpiry     = "vaultsync_certificate_expiry_timestamp_seconds"
	NameSecretExpiry          = "vaultsync_secret_expiry_timestamp_seconds"
	NameExpiryTrackedObjects  = "vaultsync_expiry_tracked_objects"
	NameVaultLabelOverflowed  = "vaultsync_metrics_vault_label_overflow_total"
	defaultMaxVaults          = 100
	labelOther                = "other"
	labelNone                 = "none"
	labelError                = "error"
	labelUnknownOperation     = "unknown"
	defaultMaxTrackedExpiries = 100000
)

// Label values of vaultsync_sync_total{result}.
const (
	SyncSuccess = "success"
	SyncFailure = "failure"
	// SyncSkipped is a reconcile that found nothing to do (no Key Vault request).
	SyncSkipped = "skipped"
)

// Label values of vaultsync_push_total{result}.
const (
	// PushWritten: a VaultPushSecret wrote at least one new version.
	PushWritten = "written"
	// PushUnchanged: every object already held the data; nothing was written.
	PushUnchanged = "unchanged"
	// PushFailure: the push failed (the reason label says why).
	PushFailure = "failure"
)

// Label values of vaultsync_token_requests_total{result}.
const (
	TokenSuccess = "success"
	TokenFailure = "failure"
)

// Label values of vaultsync_events_received_total{result}.
const (
	// EventAccepted: a known Key Vault event handed to the sink.
	EventAccepted = "accepted"
	// EventDuplicate: an event id seen within the replay window; ignored.
	EventDuplicate = "duplicate"
	// EventIgnored: an authenticated event of a type vaultsync does not act on.
	EventIgnored = "ignored"
	// EventValidation: a subscription validation handshake answered.
	EventValidation = "validation"
	// EventInvalid: a delivery rejected as malformed (400, 413, 415).
	EventInvalid = "invalid"
	// EventUnauthorized: a delivery without credentials (401).
	EventUnauthorized = "unauthorized"
	// EventForbidden: a delivery with wrong credentials (403).
	EventForbidden = "forbidden"
)

// Label values of vaultsync_rollouts_total{result}.
const (
	RolloutRestarted = "restarted"
	RolloutNotFound  = "not_found"
	RolloutFailed    = "failed"
	// rolloutMissing is what callers may pass for a workload that does not exist.
	rolloutMissing = "missing"
)

// MaxVaults bounds the number of distinct values of every vault label; requests to further vaults
// are counted under vault="other" (and in vaultsync_metrics_vault_label_overflow_total).
const MaxVaults = defaultMaxVaults

// Metrics holds the collectors. Its methods are safe for concurrent use and cheap; a nil *Metrics
// ignores every call, so callers need no nil checks.
type Metrics struct {
	keyVaultRequests *prometheus.CounterVec
	keyVaultDuration *prometheus.HistogramVec
	tokenRequests    *prometheus.CounterVec
	syncs            *prometheus.CounterVec
	syncDuration     *prometheus.HistogramVec
	secretUpdates    prometheus.Counter
	pushes           *prometheus.CounterVec
	pushedVersions   prometheus.Counter
	eventsReceived   *prometheus.CounterVec
	rollouts         *prometheus.CounterVec
	throttled        *prometheus.CounterVec
	vaultOverflow    prometheus.Counter

	// Expiry tracks the expiry of synced certificates and secrets (see ExpiryTracker).
	Expiry *ExpiryTracker
	// Status tracks the Ready condition of the VaultSecrets (see StatusTracker).
	Status *StatusTracker

	vaults *vaultLabels
}

var (
	defaultOnce sync.Once
	defaultM    *Metrics
)

// Shared returns the process-wide Metrics registered on controller-runtime's registry. It panics
// if a collector of the same name is already registered there by someone else.
func Shared() *Metrics {
	defaultOnce.Do(func() {
		m, err := New(ctrlmetrics.Registry)
		if err != nil {
			panic(err)
		}
		defaultM = m
	})
	return defaultM
}

// New creates the collectors and registers them on reg (tests pass a fresh
// prometheus.NewRegistry(); nil registers nothing).
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		keyVaultRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameKeyVaultRequests,
			Help: "HTTP requests sent to Key Vault, SDK retries and challenge round trips included, by vault host, operation and HTTP status code (\"error\" when no response arrived).",
		}, []string{"vault", "operation", "code"}),
		keyVaultDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameKeyVaultDuration,
			Help:    "Duration of HTTP requests sent to Key Vault, by vault host and operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"vault", "operation"}),
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameTokenRequests,
			Help: "Entra ID token requests made for VaultSecrets, by authentication method and result (success, failure).",
		}, []string{"method", "result"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameSyncs,
			Help: "VaultSecret syncs by result (success, failure, skipped) and condition reason.",
		}, []string{"result", "reason"}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameSyncDuration,
			Help:    "Duration of VaultSecret syncs (Key Vault reads, rendering and the Secret write), by result.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"result"}),
		secretUpdates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameSecretUpdates,
			Help: "Kubernetes Secrets created or whose data changed.",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NamePushes,
			Help: "VaultPushSecret pushes by result (written, unchanged, failure) and condition reason.",
		}, []string{"result", "reason"}),
		pushedVersions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NamePushedVersions,
			Help: "Key Vault secret and certificate versions written by VaultPushSecrets.",
		}),
		eventsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameEventsReceived,
			Help: "Event Grid deliveries and events received, by event type (\"other\" for types vaultsync does not know, \"none\" for deliveries rejected before parsing) and result.",
		}, []string{"type", "result"}),
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameRollouts,
			Help: "Rollout restarts of consuming workloads, by kind (Deployment, StatefulSet, DaemonSet) and result (restarted, not_found, failed).",
		}, []string{"kind", "result"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameThrottled,
			Help: "Key Vault answers 429 (throttled), by vault host.",
		}, []string{"vault"}),
		vaultOverflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameVaultLabelOverflowed,
			Help: "Observations counted under vault=\"other\" because more than the maximum number of distinct vault hosts were seen.",
		}),
		vaults: newVaultLabels(defaultMaxVaults),
	}
	m.Expiry = newExpiryTracker(m.vaults, defaultMaxTrackedExpiries)
	m.Status = newStatusTracker()
	if reg != nil {
		for _, c := range []prometheus.Collector{m.keyVaultRequests, m.keyVaultDuration, m.tokenRequests, m.syncs,
			m.syncDuration, m.secretUpdates, m.pushes, m.pushedVersions, m.eventsReceived, m.rollouts, m.throttled, m.vaultOverflow, m.Expiry, m.Status} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// vault returns the label value for a vault host, "other" beyond the cap.
func (m *Metrics) vault(host string) string {
	v, overflow := m.vaults.label(host)
	if overflow {
		m.vaultOverflow.Inc()
	}
	return v
}

// ObserveRequest records one HTTP request to Key Vault; it implements keyvault.Observer.
// statusCode 0 (no response) is counted as code="error"; 429 also counts as throttled.
func (m *Metrics) ObserveRequest(vaultHost, operation string, statusCode int, dur time.Duration, _ error) {
	if m == nil {
		return
	}
	vault := m.vault(vaultHost)
	if operation == "" {
		operation = labelUnknownOperation
	}
	code := labelError
	if statusCode > 0 {
		code = strconv.Itoa(statusCode)
	}
	m.keyVaultRequests.WithLabelValues(vault, operation, code).Inc()
	m.keyVaultDuration.WithLabelValues(vault, operation).Observe(dur.Seconds())
	if statusCode == 429 {
		m.throttled.WithLabelValues(vault).Inc()
	}
}

// ObserveTokenRequest records an Entra ID token request made with method (such as
// "workloadIdentity"); err nil counts as success.
func (m *Metrics) ObserveTokenRequest(method string, err error) {
	if m == nil {
		return
	}
	result := TokenSuccess
	if err != nil {
		result = TokenFailure
	}
	if method == "" {
		method = labelNone
	}
	m.tokenRequests.WithLabelValues(method, result).Inc()
}

// ObserveSync records a sync's result (SyncSuccess, SyncFailure or SyncSkipped), its condition
// reason (a fixed CamelCase word such as "Synced" or "SecretNotFound"; never a message) and
// duration. A skipped reconcile read and wrote nothing, so it has no duration: it is counted
// only, and does not pull the sync latency towards zero.
func (m *Metrics) ObserveSync(result, reason string, dur time.Duration) {
	if m == nil {
		return
	}
	if reason == "" {
		reason = labelNone
	}
	m.syncs.WithLabelValues(result, reason).Inc()
	if result != SyncSkipped {
		m.syncDuration.WithLabelValues(result).Observe(dur.Seconds())
	}
}

// SecretUpdated counts a Kubernetes Secret created or whose data changed.
func (m *Metrics) SecretUpdated() {
	if m == nil {
		return
	}
	m.secretUpdates.Inc()
}

// ObserveEvent counts an Event Grid event or delivery. eventType must be one of a fixed set (the
// events package passes a known Key Vault event type, "other" or "none").
func (m *Metrics) ObserveEvent(eventType, result string) {
	if m == nil {
		return
	}
	if eventType == "" {
		eventType = labelNone
	}
	m.eventsReceived.WithLabelValues(eventType, result).Inc()
}

// ObserveRollout counts a rollout restart of a workload of kind (Deployment, StatefulSet or
// DaemonSet) with result RolloutRestarted, RolloutNotFound or RolloutFailed. "missing" (the
// word of rollout.Outcome.Missing) is counted as RolloutNotFound.
func (m *Metrics) ObserveRollout(kind, result string) {
	if m == nil {
		return
	}
	if result == rolloutMissing {
		result = RolloutNotFound
	}
	m.rollouts.WithLabelValues(kind, result).Inc()
}

// vaultLabels hands out at most max distinct vault label values.
type vaultLabels struct {
	max  int
	mu   sync.RWMutex
	seen map[string]struct{}
}

func newVaultLabels(limit int) *vaultLabels {
	return &vaultLabels{max: limit, seen: map[string]struct{}{}}
}

// label returns host if it is (or can become) one of the tracked values, else "other".
func (v *vaultLabels) label(host string) (string, bool) {
	if host == "" {
		return labelNone, false
	}
	v.mu.RLock()
	_, ok := v.seen[host]
	v.mu.RUnlock()
	if ok {
		return host, false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.seen[host]; ok {
		return host, false
	}
	if len(v.seen) >= v.max {
		return labelOther, true
	}
	v.seen[host] = struct{}{}
	return host, false
}

// ObservePush records a VaultPushSecret push: its result (PushWritten, PushUnchanged or
// PushFailure), its condition reason (a fixed CamelCase word, never a message) and the number of
// versions it wrote.
func (m *Metrics) ObservePush(result, reason string, written int) {
	if m == nil {
		return
	}
	if reason == "" {
		reason = labelNone
	}
	m.pushes.WithLabelValues(result, reason).Inc()
	if written > 0 {
		m.pushedVersions.Add(float64(written))
	}
}
