package controllers

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"k8s.io/client-go/util/workqueue"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
)

// setupClusterVaultSecrets registers the ClusterVaultSecret controller. It wakes on its own spec
// changes, on changes of its copies (spec, metadata, Ready), on namespaces created, relabelled
// or deleted, and on changes of ClusterVaultConnections.
func setupClusterVaultSecrets(mgr ctrl.Manager, b NamespaceRules, o Options) error {
	cl := mgr.GetClient()
	r := &ClusterVaultSecretReconciler{Client: cl, Namespaces: b, Recorder: mgr.GetEventRecorder("vaultsync"),
		WatchNamespaces: o.WatchNamespaces}
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		return clusterVaultSecrets(ctx, cl, "")
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("clustervaultsecret").
		For(&v1alpha1.ClusterVaultSecret{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&v1alpha1.VaultSecret{}, builder.WithPredicates(copyChanged())).
		// A deleted VaultSecret someone else owned may clear a TargetConflict.
		Watches(&v1alpha1.VaultSecret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return clusterVaultSecretsNaming(ctx, cl, o.GetName())
		}), builder.WithPredicates(predicate.Funcs{
			CreateFunc:  func(event.CreateEvent) bool { return false },
			UpdateFunc:  func(event.UpdateEvent) bool { return false },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		Watches(&corev1.Namespace{}, all, builder.WithPredicates(namespaceSelectionChanged())).
		Watches(&v1alpha1.ClusterVaultConnection{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return clusterVaultSecrets(ctx, cl, o.GetName())
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](backoffMin(o), backoffMax(o)),
		}).
		Complete(r)
}

// clusterVaultSecrets lists the ClusterVaultSecrets reading through connection (all when "").
func clusterVaultSecrets(ctx context.Context, cl client.Reader, connection string) []reconcile.Request {
	var list v1alpha1.ClusterVaultSecretList
	if err := cl.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "listing ClusterVaultSecrets")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		ref := list.Items[i].Spec.Template.Spec.ConnectionRef
		if connection != "" && (ref == nil || ref.Name != connection) {
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// clusterVaultSecretsNaming lists the ClusterVaultSecrets whose copies are named name.
func clusterVaultSecretsNaming(ctx context.Context, cl client.Reader, name string) []reconcile.Request {
	var list v1alpha1.ClusterVaultSecretList
	if err := cl.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "listing ClusterVaultSecrets")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if list.Items[i].VaultSecretNameOrDefault() == name {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// namespaceSelectionChanged passes namespaces created or deleted, and label changes.
func namespaceSelectionChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
				e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
		},
	}
}

// copyChanged passes what the ClusterVaultSecret reports or corrects in a copy: spec, labels,
// annotations, its Ready condition, and deletion. A periodic sync that changes only times does
// not wake it.
func copyChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld.(*v1alpha1.VaultSecret), e.ObjectNew.(*v1alpha1.VaultSecret)
			if o.Generation != n.Generation || !maps.Equal(o.Labels, n.Labels) || !maps.Equal(o.Annotations, n.Annotations) {
				return true
			}
			co := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionReady)
			cn := meta.FindStatusCondition(n.Status.Conditions, v1alpha1.ConditionReady)
			if co == nil || cn == nil {
				return co != cn
			}
			return co.Status != cn.Status || co.Reason != cn.Reason || co.ObservedGeneration != cn.ObservedGeneration
		},
	}
}
