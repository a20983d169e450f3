package controllers

import (
	"context"
	"fmt"
	"net/url"
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
	"github.com/vaultsync/vaultsync/internal/events"
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
)

// EventRouter turns Key Vault events into immediate, fresh syncs of exactly
// the VaultSecrets that reference the vault and object. The event is a hint:
// the VaultSecret re-reads Key Vault as usual, so duplicate, late or forged
// (but authenticated) events can only cause a read.
type EventRouter struct {
	Index *events.Index
	// C feeds the controller (a source.Channel).
	C chan event.GenericEvent

	mu    sync.Mutex
	hints map[string]struct{}
}

// NewEventRouter returns a router with a buffered channel.
func NewEventRouter() *EventRouter {
	return &EventRouter{Index: events.NewIndex(), C: make(chan event.GenericEvent, 4096), hints: map[string]struct{}{}}
}

// Notify implements events.Sink.
func (e *EventRouter) Notify(ctx context.Context, ev events.Event) {
	for _, key := range e.Index.Lookup(ev.VaultHost, ev.ObjectName) {
		ns, name, ok := strings.Cut(key, "/")
		if !ok {
			continue
		}
		e.mu.Lock()
		e.hints[key] = struct{}{}
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

// take reports and clears a pending event for key.
func (e *EventRouter) take(key string) bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.hints[key]
	delete(e.hints, key)
	return ok
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
	s := audit.Subject{Kind: "VaultSecret", Namespace: vs.Namespace, Name: vs.Name}
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
	s.Method, s.TenantID, s.ClientID = get(0), get(1), get(2)
	if ns, sa := get(3), get(4); sa != "" {
		s.ServiceAccount = ns + "/" + sa
	}
	return s
}

// recordExpiry sets status.expiresAt, the ExpiringSoon condition (with a
// Warning event when it turns true) and the expiry metric.
func (r *VaultSecretReconciler) recordExpiry(vs *v1alpha1.VaultSecret, res *syncResult, vaultHost string, now time.Time) {
	var earliest time.Time
	var what string
	var items []metrics.Expiry
	for key, t := range res.Expires {
		kind := metrics.ExpirySecret
		for _, c := range res.Certificates {
			if c.Key == key {
				kind = metrics.ExpiryCertificate
			}
		}
		items = append(items, metrics.Expiry{Vault: vaultHost, Kind: kind, Object: key, NotAfter: t})
		if earliest.IsZero() || t.Before(earliest) {
			earliest, what = t, key
		}
	}
	if r.Metrics != nil {
		r.Metrics.Expiry.Set(vs.Namespace+"/"+vs.Name, items)
	}
	if earliest.IsZero() {
		vs.Status.ExpiresAt = nil
		meta.RemoveStatusCondition(&vs.Status.Conditions, v1alpha1.ConditionExpiringSoon)
		return
	}
	vs.Status.ExpiresAt = &metav1.Time{Time: earliest}
	threshold := r.ExpiryThreshold
	if threshold <= 0 {
		threshold = 30 * 24 * time.Hour
	}
	was := meta.IsStatusConditionTrue(vs.Status.Conditions, v1alpha1.ConditionExpiringSoon)
	if left := earliest.Sub(now); left < threshold {
		msg := fmt.Sprintf("%q expires at %s (in %s); rotate it in Key Vault", what, earliest.UTC().Format(time.RFC3339), left.Round(time.Minute))
		if left <= 0 {
			msg = fmt.Sprintf("%q expired at %s; rotate it in Key Vault", what, earliest.UTC().Format(time.RFC3339))
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
		Message: fmt.Sprintf("the earliest expiry is %s", earliest.UTC().Format(time.RFC3339))})
}

// rollout restarts the VaultSecret's consumers for a new data version.
func (r *VaultSecretReconciler) rollout(ctx context.Context, vs *v1alpha1.VaultSecret, dataHash string) {
	if len(vs.Spec.RolloutRestartTargets) == 0 || r.Restarter == nil {
		return
	}
	targets := make([]rollout.Target, 0, len(vs.Spec.RolloutRestartTargets))
	for _, t := range vs.Spec.RolloutRestartTargets {
		targets = append(targets, rollout.Target{Kind: t.Kind, Name: t.Name})
	}
	version := dataHash
	if len(version) > 16 {
		version = version[:16]
	}
	out, err := r.Restarter.Restart(ctx, vs.Namespace, vs.Name, version, targets)
	for _, o := range out {
		switch {
		case o.Missing:
			r.event(vs, corev1.EventTypeWarning, ReasonRolloutMissing, "Rollout",
				fmt.Sprintf("%s %q does not exist in this namespace; nothing restarted", o.Target.Kind, o.Target.Name))
			r.Metrics.ObserveRollout(o.Target.Kind, "missing")
		case o.Restarted:
			r.event(vs, corev1.EventTypeNormal, ReasonRolloutRestarted, "Rollout",
				fmt.Sprintf("restarted %s %q for the new data", o.Target.Kind, o.Target.Name))
			r.Metrics.ObserveRollout(o.Target.Kind, "restarted")
		}
	}
	if err != nil {
		if len(out) < len(targets) { // Restart stops at the target that failed
			r.Metrics.ObserveRollout(targets[len(out)].Kind, metrics.RolloutFailed)
		}
		logf.FromContext(ctx).Error(err, "restarting consumers")
		r.event(vs, corev1.EventTypeWarning, ReasonRolloutMissing, "Rollout", err.Error())
	}
}

// sourceDeleted handles a Key Vault object that was synced before and is
// now gone: the SourceDeleted condition says so, and with onSourceDeleted
// Delete the Secret (or, for Merge, this VaultSecret's keys) goes too.
func (r *VaultSecretReconciler) sourceDeleted(ctx context.Context, vs *v1alpha1.VaultSecret, message string) {
	was := meta.IsStatusConditionTrue(vs.Status.Conditions, v1alpha1.ConditionSourceDeleted)
	cond := metav1.Condition{Type: v1alpha1.ConditionSourceDeleted, Status: metav1.ConditionTrue,
		Reason: ReasonSourceDeleted, ObservedGeneration: vs.Generation,
		Message: "a synced Key Vault object was deleted; the Secret keeps its last data (onSourceDeleted: Retain): " + message}
	if vs.OnSourceDeletedOrDefault() == v1alpha1.SourceDeletedDelete {
		if err := r.Writer.Remove(ctx, secretsOwner(vs), vs.TargetName(), vs.CreationPolicyOrDefault() == v1alpha1.CreationPolicyMerge); err != nil {
			logf.FromContext(ctx).Error(err, "deleting the Secret of a deleted source")
			return
		}
		cond.Reason = ReasonSecretDeleted
		cond.Message = "a synced Key Vault object was deleted, so the Secret was deleted (onSourceDeleted: Delete): " + message
		vs.Status.DataHash = ""
		vs.Status.SyncedVersions = nil
	}
	meta.SetStatusCondition(&vs.Status.Conditions, cond)
	if !was {
		r.event(vs, corev1.EventTypeWarning, cond.Reason, "Sync", cond.Message)
	}
}
