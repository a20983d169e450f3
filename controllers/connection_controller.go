package controllers

import (
	"context"
	"fmt"
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
	"github.com/vaultsync/vaultsync/internal/connector"
)

// Reasons of a connection's Ready condition besides those of sync failures.
const (
	// ReasonConnected: a token was acquired (and the probe object read, when one is named).
	ReasonConnected = "Connected"
	// ReasonCheckFailed is the reason of the Warning event of a failed check; the condition
	// carries the precise reason.
	ReasonCheckFailed = "CheckFailed"
)

// DefaultConnectionCheckInterval is how often a Ready connection is checked again. The check
// reuses the cached Entra token, so it costs a token request only when the token is due anyway.
const DefaultConnectionCheckInterval = 30 * time.Minute

// ConnectionReconciler runs the preflight check of VaultConnections or ClusterVaultConnections
// (one reconciler per kind) and reports it in status.
type ConnectionReconciler struct {
	Client client.Client
	// Connections checks connections and forgets deleted ones (the credential backend).
	Connections Connections
	Recorder    events.EventRecorder
	// Kind is the kind this reconciler handles.
	Kind v1alpha1.ConnectionKind
	// Interval between checks of a Ready connection (DefaultConnectionCheckInterval when 0).
	Interval time.Duration
	// Now is the clock (tests may replace it).
	Now func() time.Time
}

// +kubebuilder:rbac:groups=vaultsync.io,resources=vaultconnections;clustervaultconnections,verbs=get;list;watch
// +kubebuilder:rbac:groups=vaultsync.io,resources=vaultconnections/status;clustervaultconnections/status,verbs=get;update;patch
// Namespaces (get;list;watch) are read only with --namespace-selectors; the
// chart grants them in a separate ClusterRole when that is on.

// Reconcile checks one connection: resolve its identity, acquire a token, read the probe object.
func (r *ConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj, spec, status, err := r.get(ctx, req)
	if err != nil || obj == nil {
		return ctrl.Result{}, err
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, nil
	}
	origObj, ok := obj.DeepCopyObject().(client.Object)
	if !ok {
		return ctrl.Result{}, fmt.Errorf("cannot copy %T", obj)
	}
	orig := status.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(*orig, *status) {
			return
		}
		if err := r.Client.Status().Patch(ctx, obj, client.MergeFrom(origObj)); err != nil && !apierrors.IsNotFound(err) {
			logf.FromContext(ctx).Error(err, "updating status")
		}
	}()

	now := r.now()
	status.ObservedGeneration = obj.GetGeneration()
	status.LastCheckTime = &metav1.Time{Time: now}
	identity, err := r.Connections.Preflight(ctx, obj)
	wasReady := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
	if err != nil {
		return r.fail(ctx, obj, identity, status, wasReady, err)
	}
	status.Identity = identity
	msg := fmt.Sprintf("token acquired for %s (%s)", spec.url, identity)
	if p := spec.probe; p != nil {
		msg = fmt.Sprintf("token acquired and %s %q read from %s (%s)", connector.TypeOrSecret(p.Type), p.Name, spec.url, identity)
	}
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonConnected,
		ObservedGeneration: obj.GetGeneration(), Message: msg,
	})
	if wasReady == nil || wasReady.Status != metav1.ConditionTrue {
		r.event(obj, corev1.EventTypeNormal, ReasonConnected, msg)
	}
	return ctrl.Result{RequeueAfter: jitter(r.interval())}, nil
}

func (r *ConnectionReconciler) fail(ctx context.Context, obj client.Object, identity string, status *v1alpha1.ConnectionStatus,
	prev *metav1.Condition, err error) (ctrl.Result, error) {
	reason, message, retry := classify(err)
	var before metav1.Condition
	if prev != nil {
		before = *prev
	}
	status.Identity = identity
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason,
		ObservedGeneration: obj.GetGeneration(), Message: message,
	})
	if prev == nil || before.Status != metav1.ConditionFalse || before.Reason != reason {
		r.event(obj, corev1.EventTypeWarning, ReasonCheckFailed, reason+": "+message)
	}
	logf.FromContext(ctx).Info("connection check failed", "reason", reason)
	switch retry {
	case retryBackoff:
		return ctrl.Result{}, errSyncFailed{reason: reason}
	case retryAfterInterval:
		return ctrl.Result{RequeueAfter: jitter(r.interval())}, nil
	}
	return ctrl.Result{}, nil
}

// checkedSpec is what a connection's messages name: its vault and probe object.
type checkedSpec struct {
	url   string
	probe *v1alpha1.ConnectionProbe
}

// get reads the connection object; nil when it is gone (its credential is then dropped).
func (r *ConnectionReconciler) get(ctx context.Context, req ctrl.Request) (client.Object, checkedSpec, *v1alpha1.ConnectionStatus, error) {
	switch r.Kind {
	case v1alpha1.KindClusterVaultConnection:
		cvc := &v1alpha1.ClusterVaultConnection{}
		if err := r.Client.Get(ctx, req.NamespacedName, cvc); err != nil {
			if apierrors.IsNotFound(err) {
				r.Connections.ForgetConnection(r.Kind, "", req.Name)
			}
			return nil, checkedSpec{}, nil, client.IgnoreNotFound(err)
		}
		return cvc, checkedSpec{url: cvc.Spec.URL, probe: cvc.Spec.Probe}, &cvc.Status, nil
	default:
		vc := &v1alpha1.VaultConnection{}
		if err := r.Client.Get(ctx, req.NamespacedName, vc); err != nil {
			if apierrors.IsNotFound(err) {
				r.Connections.ForgetConnection(r.Kind, req.Namespace, req.Name)
			}
			return nil, checkedSpec{}, nil, client.IgnoreNotFound(err)
		}
		return vc, checkedSpec{url: vc.Spec.URL, probe: vc.Spec.Probe}, &vc.Status, nil
	}
}

func (r *ConnectionReconciler) event(obj client.Object, typ, reason, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, typ, reason, "Check", "%s", note)
	}
}

func (r *ConnectionReconciler) interval() time.Duration {
	if r.Interval > 0 {
		return r.Interval
	}
	return DefaultConnectionCheckInterval
}

func (r *ConnectionReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
