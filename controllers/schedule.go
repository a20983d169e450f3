package controllers

import (
	"encoding/json"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/secrets"
)

// refreshSlot returns when the next periodic sync of vs is due. Refreshes
// sit on a grid of period interval whose phase depends only on what the
// VaultSecret reads and as whom (namespace, vault or connection, auth,
// object references). VaultSecrets that read the same objects with the same
// identity therefore refresh at the same instant and share one Key Vault
// read per object through the Coalescer, however many of them there are,
// while VaultSecrets that read different objects are spread evenly over the
// whole interval (a ±10% jitter per VaultSecret spread them over a fifth of
// it and made 1,000 VaultSecrets sharing 3 secrets cost about 40 reads per
// cycle instead of 3). The first refresh after a sync comes between half and
// one and a half intervals later; the following ones exactly one interval
// apart.
func refreshSlot(vs *v1alpha1.VaultSecret, now time.Time, interval time.Duration) time.Time {
	if interval <= 0 {
		return now
	}
	phase := int64(readsHash(vs) % uint64(interval)) //nolint:gosec // G115: interval > 0 here and the remainder is below it, so it fits an int64
	base := now.Add(interval / 2).UnixNano()
	off := (base - phase) % int64(interval)
	if off < 0 {
		off += int64(interval)
	}
	next := base
	if off != 0 {
		next += int64(interval) - off
	}
	return time.Unix(0, next)
}

// readsHash identifies what a VaultSecret reads and as whom.
func readsHash(vs *v1alpha1.VaultSecret) uint64 {
	h := fnv.New64a()
	write := func(v any) {
		b, _ := json.Marshal(v)
		_, _ = h.Write(b)
		_, _ = h.Write([]byte{0})
	}
	write(vs.Namespace)
	write(vs.Spec.Vault)
	write(vs.Spec.ConnectionRef)
	refs := make([]string, 0, len(vs.Spec.Data))
	for _, d := range vs.Spec.Data {
		refs = append(refs, string(d.Remote.TypeOrDefault())+"/"+d.Remote.Name+"/"+d.Remote.Version)
	}
	sort.Strings(refs)
	write(refs)
	write(vs.Spec.DataFrom)
	return h.Sum64()
}

// notOwnSecretWrite drops Secret events caused by vaultsync's own writes.
// The reconcile that wrote the Secret already records the result; a
// reconcile started by the event would read the VaultSecret from a cache
// that may not hold that status yet, take the Secret for drifted and sync
// (and write status, and send an event) a second time. Writes by anyone
// else, and deletions, still wake the owner.
func notOwnSecretWrite() predicate.Funcs {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !lastWrittenByUs(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool { return !lastWrittenByUs(e.ObjectNew) },
	}
}

// lastWrittenByUs reports whether the most recent managed-fields entry (all
// of them, when several share the latest second) belongs to vaultsync.
func lastWrittenByUs(o client.Object) bool {
	var latest *metav1.Time
	ours := false
	for _, f := range o.GetManagedFields() {
		if f.Time == nil {
			continue
		}
		mine := f.Manager == secrets.FieldOwner || strings.HasPrefix(f.Manager, secrets.FieldOwner+":")
		switch {
		case latest == nil || f.Time.After(latest.Time):
			latest, ours = f.Time, mine
		case f.Time.Equal(latest):
			ours = ours && mine
		}
	}
	return latest != nil && ours
}
