package controllers

import (
	"context"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/connector"
)

// Field indexes.
const (
	// indexConnectionRef indexes VaultSecrets by "<kind>/<name>" of their connectionRef, and
	// additionally by "ClusterVaultConnection" alone for those using any cluster connection.
	indexConnectionRef = "vaultsync.io/connectionRef"
	// indexCredentialSecrets indexes VaultSecrets (inline vault) and VaultConnections by the
	// names of the credential Secrets their auth reads.
	indexCredentialSecrets = "vaultsync.io/credentialSecrets" //nolint:gosec // G101: a field-index name, not a credential
)

// registerIndexes adds the field indexes the watches below use.
func registerIndexes(ctx context.Context, mgr ctrl.Manager) error {
	fi := mgr.GetFieldIndexer()
	if err := fi.IndexField(ctx, &v1alpha1.VaultSecret{}, indexConnectionRef, func(o client.Object) []string {
		return connectionRefKeys(o.(*v1alpha1.VaultSecret).Spec.ConnectionRef)
	}); err != nil {
		return err
	}
	if err := fi.IndexField(ctx, &v1alpha1.VaultSecret{}, indexCredentialSecrets, func(o client.Object) []string {
		vs := o.(*v1alpha1.VaultSecret)
		if vs.Spec.Vault == nil || vs.Spec.ConnectionRef != nil {
			return nil
		}
		return connector.CredentialSecretNames(&vs.Spec.Vault.Auth)
	}); err != nil {
		return err
	}
	return fi.IndexField(ctx, &v1alpha1.VaultConnection{}, indexCredentialSecrets, func(o client.Object) []string {
		return connector.CredentialSecretNames(&o.(*v1alpha1.VaultConnection).Spec.Auth)
	})
}

// connectionRefKeys are the index keys of an object that names a connection: "Kind/name", and
// for a ClusterVaultConnection also the kind alone, which the Namespace watches look up (a
// namespace's labels matter to every object that uses any cluster connection).
func connectionRefKeys(ref *v1alpha1.ConnectionRef) []string {
	if ref == nil {
		return nil
	}
	kind := string(ref.KindOrDefault())
	out := []string{kind + "/" + ref.Name}
	if ref.KindOrDefault() == v1alpha1.KindClusterVaultConnection {
		out = append(out, kind)
	}
	return out
}

// vaultSecretWatches adds to the VaultSecret controller the events that make a VaultSecret's
// connection version change: its VaultConnection or ClusterVaultConnection, the labels of its
// namespace (allowedNamespaces.selector), and its credential Secrets.
func vaultSecretWatches(mgr ctrl.Manager, b SecretEvents, o Options, bld *builder.Builder) *builder.Builder {
	cl := mgr.GetClient()
	bld = bld.
		Watches(&v1alpha1.VaultConnection{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return vaultSecretsUsing(ctx, cl, o.GetNamespace(), string(v1alpha1.KindVaultConnection)+"/"+o.GetName())
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	if o.ClusterConnections {
		bld = bld.Watches(&v1alpha1.ClusterVaultConnection{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return vaultSecretsUsing(ctx, cl, "", string(v1alpha1.KindClusterVaultConnection)+"/"+o.GetName())
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	}
	if o.ClusterConnections && o.NamespaceSelectors {
		bld = bld.Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return vaultSecretsUsing(ctx, cl, o.GetName(), string(v1alpha1.KindClusterVaultConnection))
		}), builder.WithPredicates(labelsChanged()))
	}
	src := b.SecretSource(func(ctx context.Context, s client.Object) []reconcile.Request {
		return dependentsOfSecret(ctx, cl, s)
	})
	if src == nil {
		return bld
	}
	return bld.WatchesRawSource(src)
}

// dependentsOfSecret lists the VaultSecrets that read a credential Secret, inline or through a
// VaultConnection of the Secret's namespace.
func dependentsOfSecret(ctx context.Context, cl client.Reader, s client.Object) []reconcile.Request {
	reqs := vaultSecretsByIndex(ctx, cl, s.GetNamespace(), indexCredentialSecrets, s.GetName())
	for _, vc := range connectionsUsingSecret(ctx, cl, s) {
		reqs = append(reqs, vaultSecretsUsing(ctx, cl, vc.Namespace, string(v1alpha1.KindVaultConnection)+"/"+vc.Name)...)
	}
	return reqs
}

func connectionsUsingSecret(ctx context.Context, cl client.Reader, s client.Object) []reconcile.Request {
	return requestsOf(ctx, cl, &v1alpha1.VaultConnectionList{}, "VaultConnections", indexCredentialSecrets,
		client.InNamespace(s.GetNamespace()), client.MatchingFields{indexCredentialSecrets: s.GetName()})
}

func vaultSecretsUsing(ctx context.Context, cl client.Reader, namespace, value string) []reconcile.Request {
	return vaultSecretsByIndex(ctx, cl, namespace, indexConnectionRef, value)
}

func vaultSecretsByIndex(ctx context.Context, cl client.Reader, namespace, index, value string) []reconcile.Request {
	return requestsOf(ctx, cl, &v1alpha1.VaultSecretList{}, "VaultSecrets", index, byIndex(namespace, index, value)...)
}

// byIndex selects the objects whose field index index holds value, in namespace (all
// namespaces when it is empty).
func byIndex(namespace, index, value string) []client.ListOption {
	opts := []client.ListOption{client.MatchingFields{index: value}}
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	return opts
}

// requestsOf lists into list with opts and returns a reconcile request per item; a failed list
// is logged (what names the kind, index the field index) and gives none.
func requestsOf(ctx context.Context, cl client.Reader, list client.ObjectList, what, index string, opts ...client.ListOption) []reconcile.Request {
	if err := cl.List(ctx, list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "listing "+what, "index", index)
		return nil
	}
	reqs := make([]reconcile.Request, 0, apimeta.LenList(list))
	_ = apimeta.EachListItem(list, func(o runtime.Object) error {
		if obj, ok := o.(client.Object); ok {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		}
		return nil
	})
	return reqs
}

// labelsChanged passes updates that change an object's labels, and deletions.
func labelsChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels())
		},
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// setupConnections registers the indexes and the VaultConnection and ClusterVaultConnection
// controllers.
func setupConnections(ctx context.Context, mgr ctrl.Manager, b Connections, o Options) error {
	if err := registerIndexes(ctx, mgr); err != nil {
		return err
	}
	limiter := func() workqueue.TypedRateLimiter[reconcile.Request] {
		return workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](backoffMin(o), backoffMax(o))
	}
	recorder := mgr.GetEventRecorder("vaultsync")
	vc := &ConnectionReconciler{Client: mgr.GetClient(), Connections: b, Recorder: recorder, Kind: v1alpha1.KindVaultConnection}
	bld := ctrl.NewControllerManagedBy(mgr).
		Named("vaultconnection").
		For(&v1alpha1.VaultConnection{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{RateLimiter: limiter()})
	cl := mgr.GetClient()
	if src := b.SecretSource(func(ctx context.Context, s client.Object) []reconcile.Request {
		return connectionsUsingSecret(ctx, cl, s)
	}); src != nil {
		bld = bld.WatchesRawSource(src)
	}
	if err := bld.Complete(vc); err != nil {
		return err
	}
	if !o.ClusterConnections {
		return nil
	}
	cvc := &ConnectionReconciler{Client: mgr.GetClient(), Connections: b, Recorder: recorder, Kind: v1alpha1.KindClusterVaultConnection}
	return ctrl.NewControllerManagedBy(mgr).
		Named("clustervaultconnection").
		For(&v1alpha1.ClusterVaultConnection{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{RateLimiter: limiter()}).
		Complete(cvc)
}

func backoffMin(o Options) time.Duration {
	if o.BackoffMin > 0 {
		return o.BackoffMin
	}
	return time.Second
}

func backoffMax(o Options) time.Duration {
	if o.BackoffMax > 0 {
		return o.BackoffMax
	}
	return 5 * time.Minute
}

// credentialSecretNamed reports whether a VaultSecret (inline vault) or a VaultConnection of the
// Secret's namespace names it, or, when pushes is set, a VaultPushSecret (the Secret it pushes or
// a credential Secret of its inline vault); on a failed list it answers true (the watch stays).
func credentialSecretNamed(cl client.Reader, pushes bool) func(ctx context.Context, key types.NamespacedName) bool {
	return func(ctx context.Context, key types.NamespacedName) bool {
		in, by := client.InNamespace(key.Namespace), client.MatchingFields{indexCredentialSecrets: key.Name}
		var vcs v1alpha1.VaultConnectionList
		if err := cl.List(ctx, &vcs, in, by, client.Limit(1)); err != nil || len(vcs.Items) > 0 {
			return true
		}
		var vss v1alpha1.VaultSecretList
		if err := cl.List(ctx, &vss, in, by, client.Limit(1)); err != nil || len(vss.Items) > 0 {
			return true
		}
		if pushes {
			var pss v1alpha1.VaultPushSecretList
			if err := cl.List(ctx, &pss, in, client.MatchingFields{indexPushSecrets: key.Name}, client.Limit(1)); err != nil || len(pss.Items) > 0 {
				return true
			}
		}
		return false
	}
}
