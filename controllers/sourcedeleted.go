package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/keyvault"
)

// Reasons of the SourceDeleted condition and its events.
const (
	ReasonSourceDeleted = "SourceDeleted"
	ReasonSourcePresent = "SourcePresent"
	ReasonSecretDeleted = "SecretDeleted"
	ReasonSourceMissing = "SourceMissing"
)

// DefaultSourceDeleteConfirm is how long after a 404 a second read must
// still find the object gone before onSourceDeleted: Delete deletes the
// Secret.
const DefaultSourceDeleteConfirm = 30 * time.Second

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
