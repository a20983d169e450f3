package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/audit"
	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/metrics"
	"github.com/vaultsync/vaultsync/internal/rollout"
	"github.com/vaultsync/vaultsync/internal/secrets"
)

// VaultSecretReconciler keeps the Secret of each VaultSecret in sync with
// Key Vault.
type VaultSecretReconciler struct {
	Client   client.Client
	Writer   *secrets.Writer
	Vaults   VaultClients
	Recorder events.EventRecorder
	// HashKey is the per-installation HMAC key for status.dataHash.
	HashKey []byte
	// Now is the clock (tests may replace it).
	Now func() time.Time

	// slots caps the workers that may wait on one vault (set by SetupWithManager).
	slots *vaultSlots

	// Metrics records syncs, updates, rollouts and expiries (nil: none).
	Metrics *metrics.Metrics
	// Restarter restarts rolloutRestartTargets (nil: no rollouts).
	Restarter *rollout.Restarter
	// Events routes Key Vault events to the VaultSecrets that read the object (nil: none).
	Events *EventRouter
	// ExpiryThreshold is how long before expiry ExpiringSoon turns true (default 30 days).
	ExpiryThreshold time.Duration
	// ClusterConnections: ClusterVaultConnections are served (and readable).
	ClusterConnections bool
	// SourceDeleteConfirm is how long after a 404 a second read must still
	// find the object gone before onSourceDeleted Delete acts (default
	// DefaultSourceDeleteConfirm).
	SourceDeleteConfirm time.Duration
}

// +kubebuilder:rbac:groups=vaultsync.io,resources=vaultsecrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=vaultsync.io,resources=vaultsecrets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;patch

// Reconcile syncs one VaultSecret: decide whether a sync is due, fetch every
// object, render the data, write the Secret, record the outcome.
func (r *VaultSecretReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	vs := &v1alpha1.VaultSecret{}
	if err := r.Client.Get(ctx, req.NamespacedName, vs); err != nil {
		if apierrors.IsNotFound(err) {
			r.Events.forget(req.NamespacedName)
			if r.Metrics != nil {
				r.Metrics.Expiry.Delete(req.String())
				r.Metrics.Status.Delete(req.String())
			}
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !vs.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // garbage collection removes an owned Secret
	}

	// One status write at most per reconcile, and none when nothing changed.
	orig := vs.DeepCopy()
	defer func() {
		if r.Metrics != nil {
			ready := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady)
			if ready != nil {
				r.Metrics.Status.Set(req.String(), ready.Status == metav1.ConditionTrue, ready.Reason)
			}
		}
		if equality.Semantic.DeepEqual(orig.Status, vs.Status) {
			return
		}
		if err := r.Client.Status().Patch(ctx, vs, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			log.Error(err, "updating status")
		}
	}()

	existing, err := r.target(ctx, vs)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("reading target Secret: %w", err)
	}
	now := r.now()
	due, why, fresh := r.syncDue(ctx, vs, existing, now)
	hintSeq, hinted := r.Events.pending(req.String())
	if hinted && (!due || !fresh) {
		// A Key Vault event names an object this VaultSecret reads.
		due, why, fresh = true, "Key Vault event", true
		if vs.RefreshPolicyOrDefault() == v1alpha1.RefreshCreatedOnce && existing != nil {
			due = false
			r.Events.settle(req.String(), hintSeq)
		}
	}
	if !due {
		// Nothing to read; time may still have brought an expiry closer,
		// and a refused rollout may be waiting for another try.
		r.Metrics.ObserveSync(metrics.SyncSkipped, "", 0)
		r.backfillSynced(ctx, vs)
		r.evaluateExpiry(vs, now)
		if err := r.finishRollout(ctx, vs); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: r.wakeAfter(vs, now)}, nil
	}
	log.V(1).Info("syncing", "why", why)
	if fresh {
		// The user asked for what the vault holds now: no result remembered
		// from another VaultSecret's fetch a moment ago.
		ctx = keyvault.WithFresh(ctx)
	} else if at, ok := requestedAt(vs, why); ok {
		// Created together, or due on the same refresh slot: one read serves
		// them all, however long the queue takes to reach each.
		ctx = keyvault.WithRequestTime(ctx, at)
	}
	start := time.Now()
	res, attempted, err := r.sync(ctx, vs, existing, now)
	if attempted && hinted {
		r.Events.settle(req.String(), hintSeq) // a requeue before the read keeps the event
	}
	if r.Metrics != nil && attempted {
		ready := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady)
		result, reason := metrics.SyncSuccess, ""
		if ready != nil && ready.Status != metav1.ConditionTrue {
			result, reason = metrics.SyncFailure, ready.Reason
		}
		r.Metrics.ObserveSync(result, reason, time.Since(start))
	}
	if err == nil {
		if rerr := r.finishRollout(ctx, vs); rerr != nil {
			return ctrl.Result{}, rerr
		}
		if meta.IsStatusConditionTrue(vs.Status.Conditions, v1alpha1.ConditionReady) {
			// Also wake when an expiry enters the warning window, which
			// may come before the next refresh (or with none scheduled).
			if w := r.wakeAfter(vs, now); w > 0 && (res.RequeueAfter == 0 || w < res.RequeueAfter) {
				res.RequeueAfter = w
			}
		}
	}
	return res, err
}

// backfillSynced fills status.syncedVault and status.syncedGeneration of a
// VaultSecret synced by a version that did not record them, once: Ready for
// its current generation means its Secret holds what that spec reads.
// Without them a deleted source would never count as deleted.
func (r *VaultSecretReconciler) backfillSynced(ctx context.Context, vs *v1alpha1.VaultSecret) {
	if vs.Status.SyncedGeneration != 0 || vs.Status.DataHash == "" || vs.Status.ObservedGeneration != vs.Generation {
		return
	}
	ready := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != vs.Generation {
		return
	}
	if host := restoreHost(ctx, r.Client, vs, r.ClusterConnections); host != "" {
		vs.Status.SyncedVault, vs.Status.SyncedGeneration = host, vs.Generation
	}
}

// wakeAfter is when an up-to-date VaultSecret needs its next look: its
// scheduled refresh, or the moment its earliest expiry enters the warning
// window, whichever comes first (0: never).
func (r *VaultSecretReconciler) wakeAfter(vs *v1alpha1.VaultSecret, now time.Time) time.Duration {
	var next time.Duration
	if vs.Status.NextSyncTime != nil {
		next = max(vs.Status.NextSyncTime.Sub(now), time.Millisecond)
	}
	if vs.Status.ExpiresAt != nil && !meta.IsStatusConditionTrue(vs.Status.Conditions, v1alpha1.ConditionExpiringSoon) {
		if at := vs.Status.ExpiresAt.Sub(now) - r.expiryThreshold() + time.Second; at > 0 && (next == 0 || at < next) {
			next = at
		}
	}
	return next
}

// Reasons syncDue gives that decide how old a shared Key Vault result may be.
const (
	whySpecChanged = "spec changed"
	whyRefreshDue  = "refresh interval elapsed"
)

// syncDue decides whether Key Vault must be read now, and whether the read
// must bypass results shared between VaultSecrets. It never is due for a
// VaultSecret that is up to date, so operator restarts and unrelated events
// cost nothing.
func (r *VaultSecretReconciler) syncDue(ctx context.Context, vs *v1alpha1.VaultSecret, existing *corev1.Secret, now time.Time) (due bool, why string, fresh bool) {
	ready := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady)
	policy := vs.RefreshPolicyOrDefault()
	if policy == v1alpha1.RefreshCreatedOnce && ready != nil && ready.Status == metav1.ConditionTrue && existing != nil {
		return false, "", false // written once; never updated while it exists
	}
	switch {
	case vs.Status.ObservedGeneration != vs.Generation || ready == nil:
		// A new VaultSecret may share a result another one fetched within
		// the coalescing window; a changed spec reads afresh.
		return true, whySpecChanged, vs.Status.ObservedGeneration != 0 || ready != nil
	case vs.Annotations[v1alpha1.AnnotationForceSync] != vs.Status.LastForceSync:
		return true, "force-sync requested", true
	case ready.Status != metav1.ConditionTrue:
		return true, "retrying after failure", true
	case connectionChanged(ctx, r.Vaults, vs):
		return true, "connection or its credentials changed", false
	case existing == nil:
		return true, "target Secret missing", false
	case r.drifted(vs, existing):
		return true, "target Secret changed by someone else", false
	case policy != v1alpha1.RefreshPeriodic:
		return false, "", false // only spec changes, events and force-syncs
	case vs.Status.NextSyncTime == nil:
		return vs.RefreshIntervalOrDefault() > 0, "no sync scheduled", false
	case !now.Before(vs.Status.NextSyncTime.Time):
		return true, whyRefreshDue, false
	}
	return false, "", false
}

// target returns the VaultSecret's Secret (nil: none). A VaultSecret that
// owns its Secret and has never written it answers from the cache alone: a
// Secret of that name that vaultsync does not manage (the cache never holds
// one) makes the writer's create fail, and the writer then reads it and
// refuses it (TargetConflict). Once a conflict was seen, or once the
// VaultSecret has written its Secret, a cache miss reads live, so a conflict,
// or a Secret deleted or unlabelled by hand, is seen before Key Vault is read.
func (r *VaultSecretReconciler) target(ctx context.Context, vs *v1alpha1.VaultSecret) (*corev1.Secret, error) {
	ready := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady)
	conflict := ready != nil && ready.Reason == ReasonTargetConflict
	if vs.Status.DataHash == "" && !conflict && vs.CreationPolicyOrDefault() != v1alpha1.CreationPolicyMerge {
		return r.Writer.Cached(ctx, vs.Namespace, vs.TargetName())
	}
	return r.Writer.Get(ctx, vs.Namespace, vs.TargetName())
}

// requestedAt is when a sync that syncDue found due (for the reason why)
// was asked for, if earlier than the reconcile: a new VaultSecret's
// creation, or the refresh slot that fell due.
func requestedAt(vs *v1alpha1.VaultSecret, why string) (time.Time, bool) {
	switch {
	case why == whySpecChanged && vs.Status.ObservedGeneration == 0:
		return vs.CreationTimestamp.Time, !vs.CreationTimestamp.IsZero()
	case why == whyRefreshDue && vs.Status.NextSyncTime != nil:
		return vs.Status.NextSyncTime.Time, true
	}
	return time.Time{}, false
}

// drifted reports whether the Secret no longer holds what was last written.
func (r *VaultSecretReconciler) drifted(vs *v1alpha1.VaultSecret, s *corev1.Secret) bool {
	data := s.Data
	if vs.CreationPolicyOrDefault() == v1alpha1.CreationPolicyMerge {
		data = secrets.Subset(s.Data, secrets.MergeKeys(s, vs.Name))
	} else if s.Labels[secrets.LabelManaged] != "true" || s.Annotations[secrets.AnnotationOwner] != vs.Namespace+"/"+vs.Name {
		return true
	}
	return secrets.Hash(r.HashKey, data) != vs.Status.DataHash
}

// sync reads Key Vault and writes the Secret. attempted is false only for
// a VaultSecret that must come back later because its vault is busy: it
// neither read nor failed.
func (r *VaultSecretReconciler) sync(ctx context.Context, vs *v1alpha1.VaultSecret, existing *corev1.Secret, now time.Time) (result ctrl.Result, attempted bool, err error) {
	log := logf.FromContext(ctx)
	owner := secretsOwner(vs)
	policy := secrets.Policy(vs.CreationPolicyOrDefault())

	// Ownership first: a conflict needs no call to Azure.
	if err := secrets.CheckOwnership(existing, owner, policy); err != nil {
		result, err = r.fail(ctx, vs, err, "")
		return result, true, err
	}

	vault, err := r.Vaults.For(ctx, vs)
	if err != nil {
		result, err = r.fail(ctx, vs, err, "")
		return result, true, err
	}
	vaultHost := vault.Host()
	r.Events.index(vs, vaultHost)
	ctx = audit.WithSubject(ctx, auditSubject(vs, vault.IdentityKey()))
	release, ok := r.slots.acquire(vault)
	if !ok {
		// Most workers already wait on this vault (it is slow or down):
		// leave the worker to VaultSecrets of other vaults, come back soon.
		return ctrl.Result{RequeueAfter: slotRetry()}, false, nil
	}
	res, err := assemble(ctx, vault, &vs.Spec)
	release()
	if err != nil {
		result, err = r.fail(ctx, vs, err, vaultHost)
		return result, true, err
	}
	for _, w := range res.Warnings {
		r.event(vs, corev1.EventTypeWarning, ReasonCertificateChain, "Check", w)
	}

	desired := secrets.Desired{
		Name:        vs.TargetName(),
		Type:        vs.SecretTypeOrDefault(),
		Policy:      policy,
		Labels:      vs.Spec.Target.Labels,
		Annotations: vs.Spec.Target.Annotations,
		Data:        res.Data,
	}
	written, err := r.Writer.Apply(ctx, owner, existing, desired)
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			return ctrl.Result{}, true, err // a concurrent write: retry from the top
		}
		result, err = r.fail(ctx, vs, err, vaultHost)
		return result, true, err
	}

	prevHash := vs.Status.DataHash
	// A sync that succeeds after a failure is announced; the first one is
	// not (Ready=True with reason Synced says it, and an Event per new
	// VaultSecret would be a third apiserver write for each).
	recovered := meta.IsStatusConditionFalse(vs.Status.Conditions, v1alpha1.ConditionReady)
	newHash := secrets.Hash(r.HashKey, res.Data)
	// The data changed when its HMAC did, unless the Secret already held
	// exactly this data: then only the HMAC key changed (a lost or rotated
	// hash-key Secret), and nothing must be announced or restarted.
	changed := prevHash != "" && prevHash != newHash && !holdsData(vs, existing, res.Data)
	interval := vs.RefreshIntervalOrDefault()

	vs.Status.ObservedGeneration = vs.Generation
	vs.Status.SyncedGeneration = vs.Generation
	vs.Status.SyncedVault = vaultHost
	vs.Status.LastForceSync = vs.Annotations[v1alpha1.AnnotationForceSync]
	vs.Status.LastSyncTime = &metav1.Time{Time: now}
	vs.Status.SyncedVersions = res.Versions
	vs.Status.DataHash = newHash
	vs.Status.Certificates = res.Certificates
	vs.Status.NextSyncTime = nil
	if interval > 0 && vs.RefreshPolicyOrDefault() == v1alpha1.RefreshPeriodic {
		next := refreshSlot(vs, now, interval)
		vs.Status.NextSyncTime = &metav1.Time{Time: next}
		result.RequeueAfter = next.Sub(now)
	}
	meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonSynced,
		ObservedGeneration: vs.Generation,
		Message:            fmt.Sprintf("Secret %q holds %d keys from %s", desired.Name, len(res.Data), sourceOf(vs)),
	})

	if c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionSourceDeleted); c != nil && c.Status != metav1.ConditionFalse {
		meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionSourceDeleted,
			Status: metav1.ConditionFalse, Reason: ReasonSourcePresent, ObservedGeneration: vs.Generation,
			Message: "every Key Vault object is present"})
	}
	r.recordExpiry(vs, res, now)
	if written.Written && r.Metrics != nil {
		r.Metrics.SecretUpdated()
	}

	switch {
	case changed:
		r.event(vs, corev1.EventTypeNormal, ReasonUpdated, "Sync", fmt.Sprintf("Secret %q updated with new Key Vault versions", desired.Name))
		// The data changed: its consumers restart, once for this version
		// (finishRollout does it, and retries it until it succeeds).
		r.startRollout(vs)
	case recovered:
		r.event(vs, corev1.EventTypeNormal, ReasonSynced, "Sync", fmt.Sprintf("Secret %q synced from Key Vault after a failure", desired.Name))
	}
	log.V(1).Info("synced", "secret", desired.Name, "written", written.Written, "keys", len(res.Data))
	return result, true, nil
}

// holdsData reports whether the Secret as it was before this sync already
// held data (for Merge: this VaultSecret's keys).
func holdsData(vs *v1alpha1.VaultSecret, existing *corev1.Secret, data map[string][]byte) bool {
	if existing == nil {
		return false
	}
	have := existing.Data
	if vs.CreationPolicyOrDefault() == v1alpha1.CreationPolicyMerge {
		have = secrets.Subset(existing.Data, secrets.MergeKeys(existing, vs.Name))
	}
	if len(have) != len(data) {
		return false
	}
	for k, v := range data {
		if got, ok := have[k]; !ok || !bytes.Equal(got, v) {
			return false
		}
	}
	return true
}

// fail records a failed sync. The target Secret is never touched on this
// path: it keeps its last good data.
//
// vaultHost is the vault that was read ("" when the failure came before).
func (r *VaultSecretReconciler) fail(ctx context.Context, vs *v1alpha1.VaultSecret, err error, vaultHost string) (ctrl.Result, error) {
	reason, message, retry := classify(err)
	var prev *metav1.Condition
	if c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		prev = c.DeepCopy() // SetStatusCondition below changes the slice in place
	}
	vs.Status.ObservedGeneration = vs.Generation
	vs.Status.LastForceSync = vs.Annotations[v1alpha1.AnnotationForceSync]
	meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason,
		ObservedGeneration: vs.Generation, Message: message,
	})
	if prev == nil || prev.Status != metav1.ConditionFalse || prev.Reason != reason || prev.Message != message {
		r.event(vs, corev1.EventTypeWarning, ReasonSyncFailed, "Sync", message)
	}
	if errors.Is(err, keyvault.ErrNotFound) {
		if after, ok := r.sourceDeleted(ctx, vs, err, vaultHost, message); ok {
			logf.FromContext(ctx).Info("sync failed", "reason", reason, "retry", "confirming a deleted source")
			return ctrl.Result{RequeueAfter: after}, nil
		}
	}
	logf.FromContext(ctx).Info("sync failed", "reason", reason, "retry", retry)
	switch retry {
	case retryBackoff:
		// The workqueue's rate limiter backs off exponentially.
		return ctrl.Result{}, errSyncFailed{reason: reason}
	case retryAfterInterval:
		if d := vs.RefreshIntervalOrDefault(); d > 0 {
			return ctrl.Result{RequeueAfter: jitter(d)}, nil
		}
	}
	return ctrl.Result{}, nil
}

// errSyncFailed makes the workqueue back off without logging the details
// twice (they are in the condition and the event).
type errSyncFailed struct{ reason string }

func (e errSyncFailed) Error() string { return "sync failed: " + e.reason }

func (r *VaultSecretReconciler) event(vs *v1alpha1.VaultSecret, typ, reason, action, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(vs, nil, typ, reason, action, "%s", note)
	}
}

func (r *VaultSecretReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// jitter spreads refreshes by ±10%, so VaultSecrets created together do not
// hit Key Vault together forever.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64())) //nolint:gosec // G404: jitter spreads load; it guards nothing
}

func secretsOwner(vs *v1alpha1.VaultSecret) secrets.Owner {
	return secrets.Owner{
		Namespace: vs.Namespace, Name: vs.Name, UID: vs.UID,
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "VaultSecret",
	}
}
