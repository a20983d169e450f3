package events

import (
	"context"
	"slices"
	"strings"
	"sync"
)

// AnyObject as a Ref's ObjectName matches every object of the vault (for a VaultSecret that
// lists the vault rather than naming objects).
const AnyObject = "*"

// Ref is one (vault host, object name) a VaultSecret reads. Both are matched case-insensitively,
// like Key Vault does; a certificate, its secret and its key share the name.
type Ref struct {
	VaultHost  string
	ObjectName string
}

func (r Ref) normalize() Ref {
	return Ref{VaultHost: strings.ToLower(strings.TrimSpace(r.VaultHost)), ObjectName: strings.ToLower(strings.TrimSpace(r.ObjectName))}
}

// Index maps (vault host, object name) to the keys (namespace/name) of the VaultSecrets that
// read it. The reconciler calls Add after each sync (or spec change) and Remove when a VaultSecret
// goes away; a Sink calls Lookup. All operations are O(refs of the key) or O(result); it is safe
// for concurrent use.
type Index struct {
	mu    sync.RWMutex
	byKey map[string][]Ref
	byRef map[Ref]map[string]struct{}
}

// NewIndex returns an empty Index.
func NewIndex() *Index {
	return &Index{byKey: map[string][]Ref{}, byRef: map[Ref]map[string]struct{}{}}
}

// Add records that key reads refs, replacing whatever key read before (so calling it on every
// sync is cheap and correct). Empty refs is Remove.
func (i *Index) Add(key string, refs []Ref) {
	norm := make([]Ref, 0, len(refs))
	for _, r := range refs {
		n := r.normalize()
		if n.VaultHost == "" || n.ObjectName == "" || slices.Contains(norm, n) {
			continue
		}
		norm = append(norm, n)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.removeLocked(key)
	if len(norm) == 0 {
		return
	}
	i.byKey[key] = norm
	for _, r := range norm {
		keys := i.byRef[r]
		if keys == nil {
			keys = map[string]struct{}{}
			i.byRef[r] = keys
		}
		keys[key] = struct{}{}
	}
}

// Remove forgets key.
func (i *Index) Remove(key string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.removeLocked(key)
}

func (i *Index) removeLocked(key string) {
	for _, r := range i.byKey[key] {
		if keys := i.byRef[r]; keys != nil {
			delete(keys, key)
			if len(keys) == 0 {
				delete(i.byRef, r)
			}
		}
	}
	delete(i.byKey, key)
}

// Lookup returns the sorted keys of the VaultSecrets that read objectName in the vault at
// vaultHost, including those that read every object of the vault (AnyObject).
func (i *Index) Lookup(vaultHost, objectName string) []string {
	r := Ref{VaultHost: vaultHost, ObjectName: objectName}.normalize()
	i.mu.RLock()
	exact, whole := i.byRef[r], i.byRef[Ref{VaultHost: r.VaultHost, ObjectName: AnyObject}]
	out := make([]string, 0, len(exact)+len(whole))
	for k := range exact {
		out = append(out, k)
	}
	for k := range whole {
		if _, dup := exact[k]; !dup {
			out = append(out, k)
		}
	}
	i.mu.RUnlock()
	slices.Sort(out)
	return out
}

// Len returns the number of keys held.
func (i *Index) Len() int {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return len(i.byKey)
}

// IndexSink returns a Sink that calls enqueue for every VaultSecret key the index holds for the
// event's vault and object. enqueue must not block (a workqueue Add, a channel send with select).
func IndexSink(idx *Index, enqueue func(ctx context.Context, key string, ev Event)) Sink {
	return SinkFunc(func(ctx context.Context, ev Event) {
		for _, key := range idx.Lookup(ev.VaultHost, ev.ObjectName) {
			enqueue(ctx, key, ev)
		}
	})
}
