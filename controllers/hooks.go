package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/audit"
	"github.com/vaultsync/vaultsync/internal/credentials"
	"github.com/vaultsync/vaultsync/internal/events"
	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/metrics"
	"github.com/vaultsync/vaultsync/internal/rollout"
)

// Reasons of the conditions and events this file decides.
const (
	ReasonExpiringSoon     = "ExpiringSoon"
	ReasonNotExpiring      = "NotExpiring"
	ReasonSourceDeleted    = "SourceDeleted"
	ReasonSourcePresent    = "SourcePresent"
	ReasonSecretDeleted    = "SecretDeleted"
	ReasonRolloutRestarted = "RolloutRestarted"
	ReasonRolloutMissing   = "RolloutTargetMissing"
	ReasonRolloutPending   = "RolloutPending"
	ReasonRolloutFailed    = "RolloutFailed"
	ReasonSourceMissing    = "SourceMissing"
)

// DefaultSourceDeleteConfirm is how long after a 404 a second read must
// still find the object gone before onSourceDeleted: Delete deletes the
// Secret.
const DefaultSourceDeleteConfirm = 30 * time.Second

// EventRouter turns Key Vault events into immediate, fresh syncs of exactly
// the VaultSecrets that reference the vault and object. The event is a hint:
// the VaultSecret re-reads Key Vault as usual, so duplicate, late or forged
// (but authenticated) events can only cause a read.
type EventRouter struct {
	Index *events.Index
	// C feeds the controller (a source.Channel).
	C chan event.GenericEvent

	mu    sync.Mutex
	seq   uint64
	hints map[string]uint64 // VaultSecret -> sequence number of its latest event
	// ready is closed once the index holds every VaultSecret (see Restore).
	ready     chan struct{}
	readyOnce sync.Once
}

// NewEventRouter returns a router with a buffered channel.
func NewEventRouter() *EventRouter {
	return &EventRouter{Index: events.NewIndex(), C: make(chan event.GenericEvent, 4096),
		hints: map[string]uint64{}, ready: make(chan struct{})}
}

// Notify implements events.Sink.
func (e *EventRouter) Notify(ctx context.Context, ev events.Event) {
	for _, key := range e.Index.Lookup(ev.VaultHost, ev.ObjectName) {
		ns, name, ok := strings.Cut(key, "/")
		if !ok {
			continue
		}
		e.mu.Lock()
		e.seq++
		e.hints[key] = e.seq
		e.mu.Unlock()
		obj := &v1alpha1.VaultSecret{}
		obj.Namespace, obj.Name = ns, name
		select {
		case e.C <- event.GenericEvent{Object: obj}:
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
			// The controller is saturated; the hint stays and the next
			// reconcile of this VaultSecret picks it up; polling covers the rest.
			logf.FromContext(ctx).Info("event queue full; relying on the next reconcile", "vaultsecret", key)
		}
	}
}

// pending reports whether an event for key waits to be acted on, and its
// sequence number for settle.
func (e *EventRouter) pending(key string) (uint64, bool) {
	if e == nil {
		return 0, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	seq, ok := e.hints[key]
	return seq, ok
}

// settle clears the event seq of key once Key Vault was read for it. An
// event that arrived meanwhile (a newer seq) stays pending, and so does the
// event of a reconcile that had to come back later without reading.
func (e *EventRouter) settle(key string, seq uint64) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hints[key] == seq {
		delete(e.hints, key)
	}
}

// Ready is closed once Restore has indexed every VaultSecret; the events
// endpoint starts listening only then, so no delivery meets an empty index.
func (e *EventRouter) Ready() <-chan struct{} { return e.ready }

func (e *EventRouter) markReady() {
	if e != nil {
		e.readyOnce.Do(func() { close(e.ready) })
	}
}

// index records which (vault host, object) pairs a VaultSecret reads.
func (e *EventRouter) index(vs *v1alpha1.VaultSecret, host string) {
	if e == nil || host == "" {
		return
	}
	var refs []events.Ref
	for _, d := range vs.Spec.Data {
		refs = append(refs, events.Ref{VaultHost: host, ObjectName: d.Remote.Name})
	}
	for _, d := range vs.Spec.DataFrom {
		switch {
		case d.Remote != nil:
			refs = append(refs, events.Ref{VaultHost: host, ObjectName: d.Remote.Name})
		case d.Find != nil:
			refs = append(refs, events.Ref{VaultHost: host, ObjectName: events.AnyObject})
		}
	}
	e.Index.Add(vs.Namespace+"/"+vs.Name, refs)
}

func (e *EventRouter) forget(key types.NamespacedName) {
	if e == nil {
		return
	}
	e.Index.Remove(key.String())
	e.mu.Lock()
	delete(e.hints, key.String())
	e.mu.Unlock()
}

// auditSubject describes the identity a VaultSecret reads with, for the
// audit log. identityKey is the credential cache key
// (method/tenant/client/namespace/serviceaccount/...), path-escaped.
func auditSubject(vs *v1alpha1.VaultSecret, identityKey string) audit.Subject {
	return auditSubjectOf("VaultSecret", vs.Namespace, vs.Name, identityKey)
}

// auditSubjectOf is auditSubject for an object of any kind (VaultPushSecrets write with it).
func auditSubjectOf(kind, namespace, name, identityKey string) audit.Subject {
	s := audit.Subject{Kind: kind, Namespace: namespace, Name: name}
	parts := strings.Split(identityKey, "/")
	get := func(i int) string {
		if i >= len(parts) {
			return ""
		}
		v, err := url.PathUnescape(parts[i])
		if err != nil {
			return ""
		}
		return v
	}
	// The audit log spells the method as the API does (workloadIdentity).
	s.Method, s.TenantID, s.ClientID = credentials.Key{Method: get(0)}.AuthMethod(), get(1), get(2)
	if ns, sa := get(3), get(4); sa != "" {
		s.ServiceAccount = ns + "/" + sa
	}
	return s
}

// recordExpiry records the expiries of a sync in status (expiries,
// expiresAt), then the ExpiringSoon condition and the expiry metric from it.
func (r *VaultSecretReconciler) recordExpiry(vs *v1alpha1.VaultSecret, res *syncResult, now time.Time) {
	certs := map[string]bool{}
	for _, c := range res.Certificates {
		certs[c.Key] = true
	}
	var list []v1alpha1.ExpiryStatus
	for key, t := range res.Expires {
		kind := string(metrics.ExpirySecret)
		if certs[key] {
			kind = string(metrics.ExpiryCertificate)
		}
		list = append(list, v1alpha1.ExpiryStatus{Key: key, Kind: kind, NotAfter: metav1.Time{Time: t}})
	}
	slices.SortFunc(list, func(a, b v1alpha1.ExpiryStatus) int {
		if c := a.NotAfter.Compare(b.NotAfter.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	vs.Status.Expiries = list
	vs.Status.ExpiresAt = nil
	if len(list) > 0 {
		vs.Status.ExpiresAt = &metav1.Time{Time: list[0].NotAfter.Time}
	}
	r.restoreExpiry(vs)
	r.evaluateExpiry(vs, now)
}

// expiries returns what status says of the synced objects' expiry. Status
// written before status.expiries existed still yields its certificates and
// its earliest expiry.
func expiries(vs *v1alpha1.VaultSecret) []v1alpha1.ExpiryStatus {
	if len(vs.Status.Expiries) > 0 || vs.Status.ExpiresAt == nil {
		return vs.Status.Expiries
	}
	var out []v1alpha1.ExpiryStatus
	earliestIsCert := false
	for _, c := range vs.Status.Certificates {
		out = append(out, v1alpha1.ExpiryStatus{Key: c.Key, Kind: string(metrics.ExpiryCertificate), NotAfter: c.NotAfter})
		earliestIsCert = earliestIsCert || c.NotAfter.Equal(vs.Status.ExpiresAt)
	}
	if !earliestIsCert {
		out = append(out, v1alpha1.ExpiryStatus{Kind: string(metrics.ExpirySecret), NotAfter: *vs.Status.ExpiresAt})
	}
	return out
}

// restoreExpiry sets the expiry metric of vs from its status, so that the
// gauges hold data after a restart or a failover without a sync.
func (r *VaultSecretReconciler) restoreExpiry(vs *v1alpha1.VaultSecret) {
	if r.Metrics == nil {
		return
	}
	host := vs.Status.SyncedVault
	if host == "" {
		host = specVaultHost(vs)
	}
	var items []metrics.Expiry
	for _, e := range expiries(vs) {
		items = append(items, metrics.Expiry{Vault: host, Kind: metrics.ExpiryKind(e.Kind), Object: e.Key, NotAfter: e.NotAfter.Time})
	}
	r.Metrics.Expiry.Set(vs.Namespace+"/"+vs.Name, items)
}

// specVaultHost is the host of an inline vault URL ("" for a connection).
func specVaultHost(vs *v1alpha1.VaultSecret) string {
	if vs.Spec.Vault == nil {
		return ""
	}
	return urlHost(vs.Spec.Vault.URL)
}

// urlHost is the host name of a vault URL ("" when it does not parse).
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func (r *VaultSecretReconciler) expiryThreshold() time.Duration {
	if r.ExpiryThreshold > 0 {
		return r.ExpiryThreshold
	}
	return 30 * 24 * time.Hour
}

// evaluateExpiry sets the ExpiringSoon condition from status, with a
// Warning event when it turns true. It runs after every sync and on every
// reconcile without one, and the reconciler wakes when the earliest expiry
// enters the warning window, so the condition turns true on time even for
// a VaultSecret that is never refreshed.
func (r *VaultSecretReconciler) evaluateExpiry(vs *v1alpha1.VaultSecret, now time.Time) {
	list := expiries(vs)
	if len(list) == 0 {
		meta.RemoveStatusCondition(&vs.Status.Conditions, v1alpha1.ConditionExpiringSoon)
		return
	}
	earliest := list[0]
	for _, e := range list[1:] {
		if e.NotAfter.Before(&earliest.NotAfter) {
			earliest = e
		}
	}
	what := fmt.Sprintf("%q", earliest.Key)
	if earliest.Key == "" {
		what = "a synced secret"
	}
	at := earliest.NotAfter.UTC().Format(time.RFC3339)
	was := meta.IsStatusConditionTrue(vs.Status.Conditions, v1alpha1.ConditionExpiringSoon)
	if left := earliest.NotAfter.Sub(now); left < r.expiryThreshold() {
		msg := fmt.Sprintf("%s expires at %s (in %s); rotate it in Key Vault", what, at, left.Round(time.Minute))
		if left <= 0 {
			msg = fmt.Sprintf("%s expired at %s; rotate it in Key Vault", what, at)
		}
		if c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionExpiringSoon); was && strings.HasPrefix(c.Message, what+" expire") && strings.Contains(c.Message, at) {
			// Same object, same expiry: keep the message of the transition
			// (one that changed with every reconcile would write status
			// every time).
			return
		}
		meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionExpiringSoon,
			Status: metav1.ConditionTrue, Reason: ReasonExpiringSoon, ObservedGeneration: vs.Generation, Message: msg})
		if !was {
			r.event(vs, corev1.EventTypeWarning, ReasonExpiringSoon, "Check", msg)
		}
		return
	}
	meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionExpiringSoon,
		Status: metav1.ConditionFalse, Reason: ReasonNotExpiring, ObservedGeneration: vs.Generation,
		Message: fmt.Sprintf("the earliest expiry is %s at %s", what, at)})
}

// startRollout marks the consumers of vs for a restart for its current
// data; finishRollout does it.
func (r *VaultSecretReconciler) startRollout(vs *v1alpha1.VaultSecret) {
	if len(vs.Spec.RolloutRestartTargets) == 0 || r.Restarter == nil {
		return
	}
	meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionRolloutComplete,
		Status: metav1.ConditionFalse, Reason: ReasonRolloutPending, ObservedGeneration: vs.Generation,
		Message: "restarting the rolloutRestartTargets for the new data"})
}

// finishRollout restarts the consumers of vs while its RolloutComplete
// condition says a restart for the current data is outstanding. A refused
// or failed patch leaves the condition False and returns an error, so the
// workqueue retries with backoff until the restart succeeds or the target
// is gone; each target restarts once per data version whatever the retries.
func (r *VaultSecretReconciler) finishRollout(ctx context.Context, vs *v1alpha1.VaultSecret) error {
	c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionRolloutComplete)
	if c == nil || c.Status != metav1.ConditionFalse || r.Restarter == nil {
		return nil
	}
	if len(vs.Spec.RolloutRestartTargets) == 0 {
		meta.RemoveStatusCondition(&vs.Status.Conditions, v1alpha1.ConditionRolloutComplete)
		return nil
	}
	targets := make([]rollout.Target, 0, len(vs.Spec.RolloutRestartTargets))
	for _, t := range vs.Spec.RolloutRestartTargets {
		targets = append(targets, rollout.Target{Kind: t.Kind, Name: t.Name})
	}
	version := vs.Status.DataHash
	if len(version) > 16 {
		version = version[:16]
	}
	out, err := r.Restarter.Restart(ctx, vs.Namespace, vs.Name, version, targets)
	var restarted []string
	for _, o := range out {
		switch {
		case o.Missing:
			r.event(vs, corev1.EventTypeWarning, ReasonRolloutMissing, "Rollout",
				fmt.Sprintf("%s %q does not exist in this namespace; nothing restarted", o.Target.Kind, o.Target.Name))
			r.Metrics.ObserveRollout(o.Target.Kind, "missing")
		case o.Restarted:
			restarted = append(restarted, fmt.Sprintf("%s %q", o.Target.Kind, o.Target.Name))
			r.event(vs, corev1.EventTypeNormal, ReasonRolloutRestarted, "Rollout",
				fmt.Sprintf("restarted %s %q for the new data", o.Target.Kind, o.Target.Name))
			r.Metrics.ObserveRollout(o.Target.Kind, "restarted")
		}
	}
	if err != nil {
		if len(out) < len(targets) { // Restart stops at the target that failed
			r.Metrics.ObserveRollout(targets[len(out)].Kind, metrics.RolloutFailed)
		}
		msg := "restarting the rolloutRestartTargets failed; retrying: " + err.Error()
		if c.Reason != ReasonRolloutFailed || c.Message != msg {
			r.event(vs, corev1.EventTypeWarning, ReasonRolloutFailed, "Rollout", msg)
		}
		meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionRolloutComplete,
			Status: metav1.ConditionFalse, Reason: ReasonRolloutFailed, ObservedGeneration: vs.Generation, Message: msg})
		return errSyncFailed{reason: ReasonRolloutFailed}
	}
	msg := "every rolloutRestartTarget runs with the current data"
	if len(restarted) > 0 {
		msg = "restarted " + strings.Join(restarted, ", ") + " for the current data"
	}
	meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionRolloutComplete,
		Status: metav1.ConditionTrue, Reason: ReasonRolloutRestarted, ObservedGeneration: vs.Generation, Message: msg})
	return nil
}

// sourceDeleted handles a 404 from Key Vault. It is a deleted source only
// when it comes from the vault the Secret was last synced from, for the spec
// it was synced with (a spec or a connection that now names another vault
// or object is a mistake to report, not a deletion). The SourceDeleted
// condition then says so; with onSourceDeleted Delete the Secret (or, for
// Merge, this VaultSecret's keys) goes too, but only once a second read at
// least SourceDeleteConfirm later still finds nothing. ok is true with the
// delay after which the confirming read is due.
func (r *VaultSecretReconciler) sourceDeleted(ctx context.Context, vs *v1alpha1.VaultSecret, err error, vaultHost, message string) (after time.Duration, ok bool) {
	if vs.Status.DataHash == "" || vaultHost == "" || vs.Status.SyncedVault != vaultHost ||
		vs.Status.SyncedGeneration != vs.Generation {
		return 0, false
	}
	object := ""
	var kv *keyvault.Error
	if errors.As(err, &kv) {
		object = kv.Object
	}
	prev := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionSourceDeleted)
	if vs.OnSourceDeletedOrDefault() != v1alpha1.SourceDeletedDelete {
		if prev == nil || prev.Status != metav1.ConditionTrue {
			msg := "a synced Key Vault object was deleted; the Secret keeps its last data (onSourceDeleted: Retain): " + message
			meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionSourceDeleted,
				Status: metav1.ConditionTrue, Reason: ReasonSourceDeleted, ObservedGeneration: vs.Generation, Message: msg})
			r.event(vs, corev1.EventTypeWarning, ReasonSourceDeleted, "Sync", msg)
		}
		return 0, false
	}
	if prev != nil && prev.Status == metav1.ConditionTrue {
		return 0, false // already deleted
	}
	wait := r.SourceDeleteConfirm
	if wait <= 0 {
		wait = DefaultSourceDeleteConfirm
	}
	marker := fmt.Sprintf("Key Vault %s answered 404 for %q", vaultHost, object)
	if prev == nil || prev.Status != metav1.ConditionUnknown || !strings.HasPrefix(prev.Message, marker) {
		meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionSourceDeleted,
			Status: metav1.ConditionUnknown, Reason: ReasonSourceMissing, ObservedGeneration: vs.Generation,
			Message: fmt.Sprintf("%s; reading it again in %s before deleting the Secret (onSourceDeleted: Delete)", marker, wait)})
		return wait, true
	}
	// The condition's time has a resolution of seconds (it is truncated when
	// status is written): one more second keeps the full delay.
	if left := prev.LastTransitionTime.Add(wait + time.Second).Sub(r.now()); left > 0 {
		return left, true // a read came early (a force-sync, an event): wait for the full delay
	}
	if err := r.Writer.Remove(ctx, secretsOwner(vs), vs.TargetName(), vs.CreationPolicyOrDefault() == v1alpha1.CreationPolicyMerge); err != nil {
		logf.FromContext(ctx).Error(err, "deleting the Secret of a deleted source")
		return 0, false
	}
	msg := "a synced Key Vault object was deleted, so the Secret was deleted (onSourceDeleted: Delete): " + message
	meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionSourceDeleted,
		Status: metav1.ConditionTrue, Reason: ReasonSecretDeleted, ObservedGeneration: vs.Generation, Message: msg})
	r.event(vs, corev1.EventTypeWarning, ReasonSecretDeleted, "Sync", msg)
	vs.Status.DataHash = ""
	vs.Status.SyncedVersions = nil
	return 0, false
}
