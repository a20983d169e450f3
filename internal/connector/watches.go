package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Credential Secrets are watched by name: the first time a connection reads one, a
// metadata-only watch of exactly that Secret (its namespace, field selector metadata.name)
// starts, and it runs while a VaultSecret or VaultConnection names the Secret. The operator
// therefore holds the metadata of the few Secrets connections name, and nothing of the others
// (docs/benchmarks.md: a cluster-wide metadata informer held about 1 KiB per Secret of the
// cluster), and users need not label their credential Secrets.

// Bounds of the credential watches.
const (
	// maxCredentialWatches bounds the Secrets watched at once; beyond it the least recently
	// read one stops (it starts again at its next read).
	maxCredentialWatches = maxMaterial
	// credentialWatchSync bounds the wait for a new watch's first list.
	credentialWatchSync = 30 * time.Second
	// credentialWatchSweep is how often watches of Secrets that nothing names any more stop.
	credentialWatchSweep = 5 * time.Minute
)

// secretEvent is a change seen by a credential watch.
type secretEvent int

const (
	secretCreated secretEvent = iota
	secretUpdated
	secretDeleted
)

// CredentialWatches watches the credential Secrets that connections name, one watch per
// Secret. It is a manager Runnable (the sweep of unused watches).
type CredentialWatches struct {
	client metadata.Interface
	// names, when set, reports whether anything still names a Secret (the sweep's test).
	names func(ctx context.Context, key types.NamespacedName) bool
	max   int

	mu       sync.Mutex
	watches  map[types.NamespacedName]*credentialWatch
	handlers []func(*metav1.PartialObjectMetadata, secretEvent)
	clock    func() time.Time
}

type credentialWatch struct {
	informer toolscache.SharedIndexInformer
	stop     chan struct{}
	used     time.Time
}

// NewCredentialWatches returns watches that use the metadata client c.
func NewCredentialWatches(c metadata.Interface) *CredentialWatches {
	return &CredentialWatches{client: c, max: maxCredentialWatches, clock: time.Now,
		watches: map[types.NamespacedName]*credentialWatch{}}
}

// WithNames sets the sweep's test: every credentialWatchSweep, the watch of a Secret that names
// reports nothing names any more stops. Without it, watches stop only beyond their bound.
func (w *CredentialWatches) WithNames(names func(ctx context.Context, key types.NamespacedName) bool) *CredentialWatches {
	w.names = names
	return w
}

// Get answers from the watch of the Secret key, starting it (and waiting for its first list)
// when the Secret is not watched yet. obj must be a *metav1.PartialObjectMetadata.
func (w *CredentialWatches) Get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return fmt.Errorf("credential watches hold metadata only, not %T", obj)
	}
	cw := w.watch(key)
	if !cw.informer.HasSynced() {
		sctx, cancel := context.WithTimeout(ctx, credentialWatchSync)
		synced := toolscache.WaitForCacheSync(sctx.Done(), cw.informer.HasSynced)
		cancel()
		if !synced {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("watch of Secret %s did not list it within %s", key, credentialWatchSync)
		}
	}
	item, exists, err := cw.informer.GetStore().GetByKey(key.String())
	if err != nil {
		return err
	}
	if !exists {
		return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	got, ok := item.(*metav1.PartialObjectMetadata)
	if !ok {
		return fmt.Errorf("watch of Secret %s holds %T", key, item)
	}
	gvk := m.GroupVersionKind()
	got.DeepCopyInto(m)
	m.SetGroupVersionKind(gvk)
	return nil
}

// Watching reports whether the Secret key is watched (for tests).
func (w *CredentialWatches) Watching(key types.NamespacedName) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.watches[key]
	return ok
}

// Held returns how many Secrets the watches hold (for tests).
func (w *CredentialWatches) Held() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, cw := range w.watches {
		n += len(cw.informer.GetStore().ListKeys())
	}
	return n
}

// watch returns the running watch of key, starting it if needed.
func (w *CredentialWatches) watch(key types.NamespacedName) *credentialWatch {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock()
	if cw, ok := w.watches[key]; ok {
		cw.used = now
		return cw
	}
	if len(w.watches) >= w.max {
		var oldest types.NamespacedName
		var at time.Time
		for k, cw := range w.watches {
			if at.IsZero() || cw.used.Before(at) {
				oldest, at = k, cw.used
			}
		}
		w.stopLocked(oldest)
	}
	selector := fields.OneTermEqualSelector("metadata.name", key.Name).String()
	inf := metadatainformer.NewFilteredMetadataInformer(w.client, corev1.SchemeGroupVersion.WithResource("secrets"),
		key.Namespace, 0, toolscache.Indexers{}, func(o *metav1.ListOptions) { o.FieldSelector = selector }).Informer()
	_ = inf.SetTransform(keepIdentityOnly) // fails only once the informer runs
	_, _ = inf.AddEventHandler(toolscache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if !initial { // the reader that started the watch has just seen it
				w.notify(obj, secretCreated)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, okOld := oldObj.(*metav1.PartialObjectMetadata)
			n, okNew := newObj.(*metav1.PartialObjectMetadata)
			if okOld && okNew && o.ResourceVersion != n.ResourceVersion {
				w.notify(newObj, secretUpdated)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			w.notify(obj, secretDeleted)
		},
	})
	cw := &credentialWatch{informer: inf, stop: make(chan struct{}), used: now}
	w.watches[key] = cw
	go inf.Run(cw.stop)
	return cw
}

func (w *CredentialWatches) notify(obj any, ev secretEvent) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return
	}
	w.mu.Lock()
	handlers := slices.Clone(w.handlers)
	w.mu.Unlock()
	for _, h := range handlers {
		h(m, ev)
	}
}

// subscribe adds a handler of every watch's events.
func (w *CredentialWatches) subscribe(h func(*metav1.PartialObjectMetadata, secretEvent)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handlers = append(w.handlers, h)
}

func (w *CredentialWatches) stopLocked(key types.NamespacedName) {
	if cw, ok := w.watches[key]; ok {
		close(cw.stop)
		delete(w.watches, key)
	}
}

// Start runs the sweep until ctx ends, then stops every watch.
func (w *CredentialWatches) Start(ctx context.Context) error {
	t := time.NewTicker(credentialWatchSweep)
	defer t.Stop()
	defer func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for k := range w.watches {
			w.stopLocked(k)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.sweep(ctx)
		}
	}
}

// NeedLeaderElection is false: every replica reads credentials.
func (w *CredentialWatches) NeedLeaderElection() bool { return false }

// sweep stops the watches of Secrets that no VaultSecret or VaultConnection names any more.
func (w *CredentialWatches) sweep(ctx context.Context) {
	if w.names == nil {
		return
	}
	w.mu.Lock()
	keys := make([]types.NamespacedName, 0, len(w.watches))
	for k := range w.watches {
		keys = append(keys, k)
	}
	w.mu.Unlock()
	for _, k := range keys {
		if w.names(ctx, k) {
			continue
		}
		w.mu.Lock()
		w.stopLocked(k)
		w.mu.Unlock()
	}
}

// credentialSource turns the events of the credential watches into reconcile requests of one
// controller. A deleted Secret is forgotten (its data and the credentials built from it) before
// fn runs.
type credentialSource struct {
	c  *Connector
	fn func(ctx context.Context, secret client.Object) []reconcile.Request
}

// Start subscribes the controller's queue to the watches' events.
func (s credentialSource) Start(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	if s.c == nil || s.c.Watches == nil {
		return errors.New("credential source without watches")
	}
	log := logf.FromContext(ctx)
	s.c.Watches.subscribe(func(m *metav1.PartialObjectMetadata, ev secretEvent) {
		if ctx.Err() != nil {
			return
		}
		log.V(1).Info("credential Secret changed", "secret", m.Namespace+"/"+m.Name)
		if ev == secretDeleted {
			s.c.forgetSecret(m.Namespace, m.Name)
		}
		// Otherwise the next read sees the new resourceVersion, reads the data again and
		// drops the credential when the material changed (not for a label edit).
		for _, r := range s.fn(ctx, m) {
			q.Add(r)
		}
	})
	return nil
}

func (s credentialSource) String() string { return "credential Secrets" }

// SecretSource returns a source that wakes a controller when a Secret watched by name changes
// (a credential Secret of a connection, or a Secret a VaultPushSecret pushes): fn maps the Secret
// (metadata only) to the requests to enqueue. It is nil when the Connector has no watches.
func (c *Connector) SecretSource(fn func(ctx context.Context, secret client.Object) []reconcile.Request) source.Source {
	if c.Watches == nil {
		return nil
	}
	return credentialSource{c: c, fn: fn}
}

// WatchSecret makes sure the Secret key is watched by name (metadata only), so that its changes
// reach the SecretSources; the watch of a Secret that does not exist yet sees its creation. It
// returns a not-found error for a missing Secret, and nil when the Connector has no watches.
func (c *Connector) WatchSecret(ctx context.Context, key client.ObjectKey) error {
	if c.Watches == nil {
		return nil
	}
	return c.Watches.Get(ctx, key, newSecretMetadata())
}

// keepIdentityOnly reduces a credential Secret's metadata to what the
// connections need (namespace, name, uid, resourceVersion). Annotations go
// too: kubectl's last-applied-configuration annotation holds a whole Secret,
// data included.
func keepIdentityOnly(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Namespace: m.Namespace, Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp,
	}}, nil
}
