package inprocess

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"
)

// Invariant watches every managed Secret (label vaultsync.io/managed=true)
// through its own watch and records a violation whenever a version of a
// Secret the test declared (Expect) lacks one of its keys, holds a key it
// should not, or holds a value that was never a value of its Key Vault
// object (Allow), and whenever such a Secret is deleted. Every version the
// apiserver sends is checked, so a partial or emptied Secret cannot slip
// between two polls.
type Invariant struct {
	mu         sync.Mutex
	expect     map[types.NamespacedName]map[string]string // key -> object
	values     map[string]map[string]bool                 // object -> legitimate values
	versions   map[types.NamespacedName]int
	violations []string
	cancel     context.CancelFunc
}

// NewInvariant starts watching managed Secrets.
func (e *Env) NewInvariant(ctx context.Context) (*Invariant, error) {
	inv := &Invariant{
		expect:   map[types.NamespacedName]map[string]string{},
		values:   map[string]map[string]bool{},
		versions: map[types.NamespacedName]int{},
	}
	f := informers.NewSharedInformerFactoryWithOptions(e.Clientset, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = "vaultsync.io/managed=true"
	}))
	inf := f.Core().V1().Secrets().Informer()
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { inv.check(o) },
		UpdateFunc: func(_, o any) { inv.check(o) },
		DeleteFunc: func(o any) {
			if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if s, ok := o.(*corev1.Secret); ok {
				inv.deleted(s)
			}
		},
	}); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	inv.cancel = cancel
	f.Start(cctx.Done())
	for _, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			cancel()
			return nil, fmt.Errorf("invariant watch did not sync")
		}
	}
	return inv, nil
}

// Stop ends the watch.
func (inv *Invariant) Stop() { inv.cancel() }

// Expect declares that Secret namespace/name must always hold exactly the
// keys of items, each with a value of the named Key Vault object.
func (inv *Invariant) Expect(namespace, name string, items map[string]string) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.expect[types.NamespacedName{Namespace: namespace, Name: name}] = maps.Clone(items)
}

// Forget stops checking a Secret (before a test deletes it on purpose).
func (inv *Invariant) Forget(namespace, name string) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	delete(inv.expect, types.NamespacedName{Namespace: namespace, Name: name})
}

// Allow records value as a legitimate value of a Key Vault object; call it
// before the value is put into the vault.
func (inv *Invariant) Allow(object, value string) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.values[object] == nil {
		inv.values[object] = map[string]bool{}
	}
	inv.values[object][value] = true
}

func (inv *Invariant) check(o any) {
	s, ok := o.(*corev1.Secret)
	if !ok {
		return
	}
	key := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	items, ok := inv.expect[key]
	if !ok {
		return
	}
	inv.versions[key]++
	for k, object := range items {
		v, present := s.Data[k]
		switch {
		case !present:
			inv.violations = append(inv.violations, fmt.Sprintf("%s@%s lost key %q", key, s.ResourceVersion, k))
		case !inv.values[object][string(v)]:
			inv.violations = append(inv.violations, fmt.Sprintf("%s@%s key %q holds a value (%d bytes) that %q never had", key, s.ResourceVersion, k, len(v), object))
		}
	}
	for k := range s.Data {
		if _, want := items[k]; !want {
			inv.violations = append(inv.violations, fmt.Sprintf("%s@%s holds unexpected key %q", key, s.ResourceVersion, k))
		}
	}
}

func (inv *Invariant) deleted(s *corev1.Secret) {
	key := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if _, ok := inv.expect[key]; ok {
		inv.violations = append(inv.violations, fmt.Sprintf("%s was deleted", key))
	}
}

// Violations returns every violation so far.
func (inv *Invariant) Violations() []string {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return slices.Clone(inv.violations)
}

// Versions returns how many versions of Secrets the test declared were checked.
func (inv *Invariant) Versions() int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	n := 0
	for _, v := range inv.versions {
		n += v
	}
	return n
}

// Summary describes the violations, for a failure message.
func (inv *Invariant) Summary() string {
	v := inv.Violations()
	if len(v) > 20 {
		v = append(v[:20], fmt.Sprintf("... and %d more", len(v)-20))
	}
	return strings.Join(v, "\n")
}
