// Package controllers holds the reconcilers of vaultsync, one per kind. They
// decide what to do; resolving connections to authenticated Key Vault clients
// lives in internal/connector (behind the interfaces of backend.go), talking
// to Azure in internal/keyvault and internal/credentials, turning fetched
// objects into Secret data in internal/render, and writing Secrets in
// internal/secrets.
package controllers

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/audit"
	"github.com/vaultsync/vaultsync/internal/connector"
	"github.com/vaultsync/vaultsync/internal/credentials"
	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/metrics"
	"github.com/vaultsync/vaultsync/internal/rollout"
	"github.com/vaultsync/vaultsync/internal/secrets"
)

// Options configure the controllers; main binds them to flags.
type Options struct {
	// Dev enables development-only behaviour (the azureCLI auth method).
	Dev bool
	// ClusterConnections serves ClusterVaultConnections (needs cluster-wide
	// read access to them).
	ClusterConnections bool
	// NamespaceSelectors evaluates ClusterVaultConnection namespace
	// selectors (needs read access to Namespaces).
	NamespaceSelectors bool
	// ClusterVaultSecrets serves ClusterVaultSecrets (needs ClusterConnections, write access to
	// VaultSecrets and read access to Namespaces).
	ClusterVaultSecrets bool
	// VaultPushSecrets serves VaultPushSecrets: Secrets written into Key Vault (needs
	// get on the kube-system namespace unless ClusterID is set, and write access to
	// VaultPushSecrets' finalizers).
	VaultPushSecrets bool
	// ClusterID is the first part of the vaultsync-owner tag of pushed objects (empty: the UID
	// of the kube-system namespace).
	ClusterID string
	// WatchNamespaces restricts the controllers to these namespaces (empty: all).
	WatchNamespaces []string
	// MaxConcurrentReconciles is the number of VaultSecrets synced in parallel.
	MaxConcurrentReconciles int
	// HashKey is the per-installation HMAC key of status.dataHash (see LoadHashKey).
	HashKey []byte
	// VaultRequests per VaultInterval is the client-side budget per vault.
	VaultRequests int
	VaultInterval time.Duration
	// CoalesceWindow is how long a fetched object is reused for identical
	// requests of the same identity (0: only requests in flight are shared).
	CoalesceWindow time.Duration
	// BackoffMin and BackoffMax bound the retry delay after a failed sync.
	BackoffMin, BackoffMax time.Duration
	// ExpiryThreshold is how long before a synced certificate or secret
	// expires that the ExpiringSoon condition turns true.
	ExpiryThreshold time.Duration
	// SourceDeleteConfirm is how long after a 404 a second read must still
	// find a synced object gone before onSourceDeleted Delete acts.
	SourceDeleteConfirm time.Duration
	// CustomAuthorityHosts are the Entra ID authority hosts a Custom cloud may name besides
	// the Azure clouds' own.
	CustomAuthorityHosts []string
	// Events, when set, receives Key Vault events (see internal/events) and
	// turns them into immediate syncs.
	Events *EventRouter
	// AzureClientOptions are passed to the Azure SDK (tests set transports here).
	AzureClientOptions azcore.ClientOptions
}

// DefaultOptions returns the options used when no flag changes them.
func DefaultOptions() Options {
	return Options{
		MaxConcurrentReconciles: 16,
		ClusterConnections:      true,
		VaultRequests:           keyvault.DefaultBudgetRequests,
		VaultInterval:           keyvault.DefaultBudgetInterval,
		// Long enough to cover a refresh slot's burst of 1,000 VaultSecrets
		// (docs/benchmarks.md); force-sync and spec changes read afresh.
		CoalesceWindow: 10 * time.Second,
		BackoffMin:     time.Second,
		BackoffMax:     5 * time.Minute,

		ExpiryThreshold:     30 * 24 * time.Hour,
		SourceDeleteConfirm: DefaultSourceDeleteConfirm,
	}
}

// BindFlags registers the options on fs.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", o.MaxConcurrentReconciles,
		"Number of VaultSecrets synced in parallel.")
	fs.IntVar(&o.VaultRequests, "vault-requests", o.VaultRequests,
		"Client-side request budget per vault per --vault-interval (Azure allows 4,000 per 10 s).")
	fs.DurationVar(&o.VaultInterval, "vault-interval", o.VaultInterval, "Window of the per-vault request budget.")
	fs.DurationVar(&o.CoalesceWindow, "coalesce-window", o.CoalesceWindow,
		"How long a fetched Key Vault object is reused for identical requests by the same identity.")
	fs.BoolVar(&o.ClusterConnections, "cluster-connections", o.ClusterConnections,
		"Serve ClusterVaultConnections (needs get/list/watch on them cluster-wide).")
	fs.BoolVar(&o.NamespaceSelectors, "namespace-selectors", o.NamespaceSelectors,
		"Evaluate ClusterVaultConnection allowedNamespaces.selector (needs get/list/watch on Namespaces); "+
			"off, only allowedNamespaces.names admit a namespace.")
	fs.BoolVar(&o.ClusterVaultSecrets, "cluster-vault-secrets", o.ClusterVaultSecrets,
		"Serve ClusterVaultSecrets: one VaultSecret per selected namespace (needs --cluster-connections, "+
			"create/update/delete on VaultSecrets and get/list/watch on Namespaces).")
	fs.BoolVar(&o.VaultPushSecrets, "vault-push-secrets", o.VaultPushSecrets,
		"Serve VaultPushSecrets: Secrets of a namespace written into Key Vault with that namespace's identity "+
			"(needs get on the kube-system namespace unless --cluster-id is set).")
	fs.StringVar(&o.ClusterID, "cluster-id", o.ClusterID,
		"Cluster id in the vaultsync-owner tag of objects VaultPushSecrets write (default: the kube-system namespace's UID); "+
			"give each cluster that writes to a vault its own.")
	fs.DurationVar(&o.ExpiryThreshold, "expiry-warning", o.ExpiryThreshold,
		"How long before a synced certificate or secret expires that the ExpiringSoon condition and a Warning event appear.")
	fs.DurationVar(&o.SourceDeleteConfirm, "source-delete-confirm", o.SourceDeleteConfirm,
		"With onSourceDeleted: Delete, how long after Key Vault answers 404 a second read must still find the object gone before the Secret is deleted.")
	fs.Func("custom-authority-hosts", "Comma-separated Entra ID authority host names that a Custom cloud may name "+
		"besides the Azure clouds' own (credentials are sent there; default: none).", func(v string) error {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				o.CustomAuthorityHosts = append(o.CustomAuthorityHosts, h)
			}
		}
		return nil
	})
	fs.DurationVar(&o.BackoffMax, "retry-max-delay", o.BackoffMax, "Longest delay between retries of a failing VaultSecret.")
}

// AddToScheme registers the API types the controllers use.
func AddToScheme(s *runtime.Scheme) error {
	return v1alpha1.AddToScheme(s)
}

// RestrictCache limits the manager's Secret cache to managed Secrets and
// keeps out of the cache what the controllers never read: the field sets of
// managedFields (only who wrote a Secret last, and when, is kept: see
// notOwnSecretWrite) and kubectl's last-applied-configuration annotation,
// which holds a whole copy of the object (of a Secret, its data).
func RestrictCache(o *cache.Options) {
	if o.ByObject == nil {
		o.ByObject = map[client.Object]cache.ByObject{}
	}
	o.ByObject[&corev1.Secret{}] = cache.ByObject{
		Label:     labels.SelectorFromSet(labels.Set{secrets.LabelManaged: "true"}),
		Transform: trimSecret,
	}
	if o.DefaultTransform == nil {
		o.DefaultTransform = dropManagedFields
	}
}

// dropManagedFields removes managedFields from a cached object. An object
// sent back with no managedFields (an update built from the cached copy)
// leaves the server's untouched.
func dropManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// trimSecret keeps of a cached Secret's managedFields only the writers and
// times, and drops the last-applied-configuration annotation. Cached Secrets
// are never sent back: the writer applies, creates and patches from what it
// builds.
func trimSecret(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	if len(s.ManagedFields) > 0 {
		trimmed := make([]metav1.ManagedFieldsEntry, len(s.ManagedFields))
		for i, f := range s.ManagedFields {
			trimmed[i] = metav1.ManagedFieldsEntry{Manager: f.Manager, Operation: f.Operation, Time: f.Time, Subresource: f.Subresource}
		}
		s.ManagedFields = trimmed
	}
	delete(s.Annotations, corev1.LastAppliedConfigAnnotation)
	return s, nil
}

// Setup registers every controller with the manager.
func Setup(mgr ctrl.Manager, o Options) error {
	if len(o.HashKey) < 32 {
		return errors.New("controllers: a hash key of at least 32 bytes is required (see LoadHashKey)")
	}
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	m := metrics.Shared()
	auditor := audit.New(ctrl.Log)
	kvOpts := &keyvault.Options{
		Observer:      keyvault.Observers(m, auditor),
		ClientOptions: o.AzureClientOptions,
		Budget:        keyvault.NewBudget(keyvault.BudgetOptions{Requests: o.VaultRequests, Interval: o.VaultInterval}),
		Coalescer:     keyvault.NewCoalescer(o.CoalesceWindow),
	}
	metaClient, err := metadata.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return err
	}
	credWatches := connector.NewCredentialWatches(metaClient).WithNames(credentialSecretNamed(mgr.GetClient(), o.VaultPushSecrets))
	if err := mgr.Add(credWatches); err != nil {
		return err
	}
	backend := &connector.Connector{
		Client:      mgr.GetClient(),
		Live:        mgr.GetAPIReader(),
		Watches:     credWatches,
		Tokens:      credentials.NewKubeTokenRequester(cs),
		Credentials: credentials.NewCache(credentials.DefaultCacheSize).WithObserver(m),
		Clients:     keyvault.NewClientCache(keyvault.DefaultClientCacheSize, kvOpts),
		CredOptions: &credentials.Options{ClientOptions: o.AzureClientOptions},
		Dev:         o.Dev,

		AuthorityHosts: o.CustomAuthorityHosts,

		ClusterConnections: o.ClusterConnections,
		NamespaceSelectors: o.ClusterConnections && o.NamespaceSelectors,
	}
	if err := setupConnections(context.Background(), mgr, backend, o); err != nil {
		return err
	}
	if o.ClusterVaultSecrets {
		if !o.ClusterConnections {
			return errors.New("controllers: --cluster-vault-secrets needs --cluster-connections: a ClusterVaultSecret reads through a ClusterVaultConnection")
		}
		if err := setupClusterVaultSecrets(mgr, backend, o); err != nil {
			return err
		}
	}
	if o.VaultPushSecrets {
		id, err := ResolveClusterID(context.Background(), mgr.GetAPIReader(), o.ClusterID)
		if err != nil {
			return err
		}
		if err := setupVaultPushSecrets(context.Background(), mgr, backend, o, id); err != nil {
			return err
		}
	}
	r := &VaultSecretReconciler{
		Client: mgr.GetClient(),
		Writer: &secrets.Writer{Client: mgr.GetClient(), Live: mgr.GetAPIReader(),
			MergeOwnerExists: vaultSecretExists(mgr.GetClient())},
		Vaults:   backend,
		Recorder: mgr.GetEventRecorder("vaultsync"),
		HashKey:  o.HashKey,

		Metrics:         m,
		Restarter:       &rollout.Restarter{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()},
		Events:          o.Events,
		ExpiryThreshold: o.ExpiryThreshold,

		SourceDeleteConfirm: o.SourceDeleteConfirm,
		ClusterConnections:  o.ClusterConnections,
	}
	if err := mgr.Add(&restorer{cache: mgr.GetCache(), r: r}); err != nil {
		return err
	}
	return r.SetupWithManager(mgr, o)
}

// SetupWithManager registers the VaultSecret controller: VaultSecrets wake
// it on spec and force-sync changes, managed Secrets on any change (drift).
func (r *VaultSecretReconciler) SetupWithManager(mgr ctrl.Manager, o Options) error {
	if o.BackoffMin <= 0 {
		o.BackoffMin = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Minute
	}
	// One vault may hold at most three quarters of the workers (see vaultSlots).
	r.slots = newVaultSlots(o.MaxConcurrentReconciles * 3 / 4)
	bld := ctrl.NewControllerManagedBy(mgr).
		Named("vaultsecret").
		For(&v1alpha1.VaultSecret{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{},
			annotationChanged(v1alpha1.AnnotationForceSync),
		))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			var reqs []reconcile.Request
			for _, nn := range secrets.OwnersOf(o) {
				reqs = append(reqs, reconcile.Request{NamespacedName: nn})
			}
			return reqs
		}), builder.WithPredicates(notOwnSecretWrite()))
	bld = vaultSecretWatches(mgr, r.Vaults, o, bld) // connections, their namespaces and credential Secrets
	if r.Events != nil {
		bld = bld.WatchesRawSource(source.Channel(r.Events.C, &handler.EnqueueRequestForObject{}))
	}
	return bld.
		WithOptions(controller.Options{
			MaxConcurrentReconciles: o.MaxConcurrentReconciles,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](o.BackoffMin, o.BackoffMax),
		}).
		Complete(r)
}

// annotationChanged passes updates that change one annotation.
func annotationChanged(key string) predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetAnnotations()[key] != e.ObjectNew.GetAnnotations()[key]
		},
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// LoadHashKey returns the installation's HMAC key for status.dataHash, kept
// in a Secret of the operator's namespace and created on first start. c must
// be an uncached client (the manager's cache is not running yet and would not
// hold an unlabelled Secret anyway).
func LoadHashKey(ctx context.Context, c client.Client, namespace, name string) ([]byte, error) {
	const dataKey = "key"
	s := &corev1.Secret{}
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)
	if err == nil {
		if k := s.Data[dataKey]; len(k) >= 32 {
			return k, nil
		}
		return nil, fmt.Errorf("secret %s/%s has no %q of at least 32 bytes; delete it to have a new one created", namespace, name, dataKey)
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading hash key secret %s/%s: %w", namespace, name, err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	s = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{
			"app.kubernetes.io/name": "vaultsync", "app.kubernetes.io/component": "hash-key",
		}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{dataKey: key},
	}
	if err := c.Create(ctx, s); err != nil {
		if apierrors.IsAlreadyExists(err) { // another replica won the race
			return LoadHashKey(ctx, c, namespace, name)
		}
		return nil, fmt.Errorf("creating hash key secret %s/%s: %w", namespace, name, err)
	}
	return key, nil
}

// vaultSecretExists answers from the cache whether a VaultSecret exists.
func vaultSecretExists(c client.Reader) func(ctx context.Context, namespace, name string) (bool, error) {
	return func(ctx context.Context, namespace, name string) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &v1alpha1.VaultSecret{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}
}
