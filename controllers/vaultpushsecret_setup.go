package controllers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/audit"
	"github.com/vaultsync/vaultsync/internal/connector"
	"github.com/vaultsync/vaultsync/internal/credentials"
	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/metrics"
)

// Field indexes of VaultPushSecrets.
const (
	// indexPushSecrets indexes VaultPushSecrets by the Secrets they read: spec.secretRef and the
	// credential Secrets of an inline vault.
	indexPushSecrets = "vaultsync.io/pushSecrets" //nolint:gosec // G101: a field-index name, not a credential
	// indexPushConnectionRef indexes VaultPushSecrets like indexConnectionRef does VaultSecrets.
	indexPushConnectionRef = "vaultsync.io/pushConnectionRef"
)

// clusterIDPattern bounds --cluster-id so that the vaultsync-owner tag (cluster id, namespace of
// at most 63 and name of at most 127 characters) stays within Key Vault's 256.
var clusterIDPattern = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9._]{0,61}[A-Za-z0-9])?$`)

// ResolveClusterID returns id when set (checked), or else the UID of the kube-system namespace:
// stable for the cluster's life, and different in every cluster.
func ResolveClusterID(ctx context.Context, c client.Reader, id string) (string, error) {
	if id == "" {
		ns := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: metav1.NamespaceSystem}, ns); err != nil {
			return "", fmt.Errorf("reading the kube-system namespace for the cluster id (or set --cluster-id): %w", err)
		}
		id = string(ns.UID)
	}
	if !clusterIDPattern.MatchString(id) {
		return "", fmt.Errorf("cluster id %q: 1 to 63 letters, digits, '-', '.' and '_', starting and ending with a letter or digit", id)
	}
	return id, nil
}

// setupVaultPushSecrets registers the VaultPushSecret controller. A VaultPushSecret wakes on its
// spec changes and deletion, on any change of the Secrets it reads (each watched by name,
// metadata only, like the credential Secrets of connections: no Secret data is cached and no
// other Secret is watched), and on changes of its connection.
func setupVaultPushSecrets(ctx context.Context, mgr ctrl.Manager, b PushVaults, o Options, clusterID string) error {
	fi := mgr.GetFieldIndexer()
	if err := fi.IndexField(ctx, &v1alpha1.VaultPushSecret{}, indexPushSecrets, func(obj client.Object) []string {
		ps := obj.(*v1alpha1.VaultPushSecret)
		names := []string{ps.Spec.SecretRef.Name}
		if ps.Spec.Vault != nil {
			names = append(names, connector.CredentialSecretNames(&ps.Spec.Vault.Auth)...)
		}
		slices.Sort(names)
		return slices.Compact(names)
	}); err != nil {
		return err
	}
	if err := fi.IndexField(ctx, &v1alpha1.VaultPushSecret{}, indexPushConnectionRef, func(obj client.Object) []string {
		return connectionRefKeys(obj.(*v1alpha1.VaultPushSecret).Spec.ConnectionRef)
	}); err != nil {
		return err
	}
	r := &VaultPushSecretReconciler{
		Client: mgr.GetClient(), Live: mgr.GetAPIReader(), Vaults: b,
		Recorder: mgr.GetEventRecorder("vaultsync"), HashKey: o.HashKey, ClusterID: clusterID, Metrics: metrics.Shared(),
	}
	cl := mgr.GetClient()
	bld := ctrl.NewControllerManagedBy(mgr).
		Named("vaultpushsecret").
		For(&v1alpha1.VaultPushSecret{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionStarted()))).
		Watches(&v1alpha1.VaultConnection{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
			return pushSecretsByIndex(ctx, cl, obj.GetNamespace(), indexPushConnectionRef, string(v1alpha1.KindVaultConnection)+"/"+obj.GetName())
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	if o.ClusterConnections {
		bld = bld.Watches(&v1alpha1.ClusterVaultConnection{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
			return pushSecretsByIndex(ctx, cl, "", indexPushConnectionRef, string(v1alpha1.KindClusterVaultConnection)+"/"+obj.GetName())
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	}
	if o.ClusterConnections && o.NamespaceSelectors {
		// A relabelled namespace may now be allowed (or refused) by a ClusterVaultConnection.
		bld = bld.Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
			return pushSecretsByIndex(ctx, cl, obj.GetName(), indexPushConnectionRef, string(v1alpha1.KindClusterVaultConnection))
		}), builder.WithPredicates(labelsChanged()))
	}
	if src := b.SecretSource(func(ctx context.Context, s client.Object) []reconcile.Request {
		// The Secret pushed, a credential Secret of an inline vault, or one of a
		// VaultConnection of the namespace.
		reqs := pushSecretsByIndex(ctx, cl, s.GetNamespace(), indexPushSecrets, s.GetName())
		for _, vc := range connectionsUsingSecret(ctx, cl, s) {
			reqs = append(reqs, pushSecretsByIndex(ctx, cl, vc.Namespace, indexPushConnectionRef,
				string(v1alpha1.KindVaultConnection)+"/"+vc.Name)...)
		}
		return reqs
	}); src != nil {
		bld = bld.WatchesRawSource(src)
	}
	return bld.WithOptions(controller.Options{
		MaxConcurrentReconciles: max(1, o.MaxConcurrentReconciles/4),
		RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](backoffMin(o), backoffMax(o)),
	}).Complete(r)
}

func pushSecretsByIndex(ctx context.Context, cl client.Reader, namespace, index, value string) []reconcile.Request {
	return requestsOf(ctx, cl, &v1alpha1.VaultPushSecretList{}, "VaultPushSecrets", index, byIndex(namespace, index, value)...)
}

// deletionStarted passes the update that sets an object's deletionTimestamp.
func deletionStarted() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetDeletionTimestamp() == nil && e.ObjectNew.GetDeletionTimestamp() != nil
		},
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// cleanup runs when a VaultPushSecret is being deleted. With deletionPolicy Delete it deletes
// (never purges) the objects status.objects lists that still carry this VaultPushSecret's owner
// tag, then lets the VaultPushSecret go. It never holds a deletion for ever: a failure that
// retrying cannot fix (no identity any more, no right to delete, a refused connection) or a
// transient one that lasts longer than CleanupTimeout leaves the objects in the vault, with a
// Warning event that names them.
func (r *VaultPushSecretReconciler) cleanup(ctx context.Context, ps *v1alpha1.VaultPushSecret) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ps, v1alpha1.FinalizerPushCleanup) {
		return ctrl.Result{}, nil
	}
	log := logf.FromContext(ctx)
	if ps.DeletionPolicyOrDefault() == v1alpha1.DeletionDelete && len(ps.Status.Objects) > 0 {
		if err := r.deleteRemote(ctx, ps); err != nil {
			timeout := r.CleanupTimeout
			if timeout <= 0 {
				timeout = 10 * time.Minute
			}
			if cleanupRetryable(err) && r.now().Sub(ps.DeletionTimestamp.Time) < timeout {
				log.Info("deleting Key Vault objects failed; retrying", "reason", keyvault.Reason(err))
				return ctrl.Result{}, errSyncFailed{reason: "cleanup"}
			}
			_, message, _ := classifyPush(err)
			r.event(ps, corev1.EventTypeWarning, ReasonCleanupSkipped, "Delete", fmt.Sprintf(
				"deletionPolicy Delete could not delete the Key Vault objects (%s); they stay in the vault: delete them by hand", message))
			log.Info("leaving Key Vault objects in place", "reason", "cleanup failed")
		}
	}
	patch := client.MergeFrom(ps.DeepCopy())
	controllerutil.RemoveFinalizer(ps, v1alpha1.FinalizerPushCleanup)
	if err := r.Client.Patch(ctx, ps, patch); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("removing finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}

// cleanupRetryable reports whether a failed cleanup may succeed if tried again: a Key Vault or
// token service failure that passes (throttling, an outage, a timeout), or an API server error.
// A refused connection, a missing ServiceAccount or credential Secret (often already deleted with
// the namespace) and a denied deletion do not pass by waiting.
func cleanupRetryable(err error) bool {
	if _, _, ok := connector.Refusal(err); ok {
		return false
	}
	var kv *keyvault.Error
	if errors.As(err, &kv) {
		return keyvault.Retryable(err)
	}
	return credentials.Reason(err) == "" && !errors.Is(err, errInvalidSpec)
}

// deleteRemote deletes the objects of status.objects that are still this VaultPushSecret's.
func (r *VaultPushSecretReconciler) deleteRemote(ctx context.Context, ps *v1alpha1.VaultPushSecret) error {
	vault, err := r.Vaults.ForPush(ctx, ps)
	if err != nil {
		return err
	}
	ctx = audit.WithSubject(ctx, auditSubjectOf("VaultPushSecret", ps.Namespace, ps.Name, vault.IdentityKey()))
	owner := ps.Status.Owner
	for _, o := range ps.Status.Objects {
		info, err := remoteInfo(ctx, vault, o.Type, o.Name)
		if errors.Is(err, keyvault.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if owner == "" || info.Tags[v1alpha1.TagOwner] != owner {
			r.event(ps, corev1.EventTypeWarning, ReasonCleanupSkipped, "Delete", fmt.Sprintf(
				"Key Vault %s %q on %s is left in place: its latest version does not carry %s=%s", o.Type, o.Name, vault.Host(), v1alpha1.TagOwner, owner))
			continue
		}
		if o.Type == v1alpha1.PushTypeCertificate {
			err = vault.DeleteCertificate(ctx, o.Name)
		} else {
			err = vault.DeleteSecret(ctx, o.Name)
		}
		if err != nil && !errors.Is(err, keyvault.ErrNotFound) {
			return err
		}
		logf.FromContext(ctx).Info("deleted", "vault", vault.Host(), "object", string(o.Type)+" "+o.Name)
		r.event(ps, corev1.EventTypeNormal, ReasonRemoteDeleted, "Delete", fmt.Sprintf("deleted Key Vault %s %q on %s (soft-deleted: recoverable for the vault's retention period)", o.Type, o.Name, vault.Host()))
	}
	return nil
}
