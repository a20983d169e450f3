package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/metrics"
	"github.com/vaultsync/vaultsync/internal/rollout"
)

// Reasons of the RolloutComplete condition and its events.
const (
	ReasonRolloutRestarted = "RolloutRestarted"
	ReasonRolloutMissing   = "RolloutTargetMissing"
	ReasonRolloutPending   = "RolloutPending"
	ReasonRolloutFailed    = "RolloutFailed"
)

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
