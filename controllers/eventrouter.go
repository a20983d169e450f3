package controllers

import (
	"context"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	kvevents "github.com/vaultsync/vaultsync/internal/events"
)

// EventRouter turns Key Vault events into immediate, fresh syncs of exactly
// the VaultSecrets that reference the vault and object. The event is a hint:
// the VaultSecret re-reads Key Vault as usual, so duplicate, late or forged
// (but authenticated) events can only cause a read.
type EventRouter struct {
	Index *kvevents.Index
	// C feeds the controller (a source.Channel).
	C chan event.GenericEvent

	mu    sync.Mutex
	seq   uint64
	hints map[string]uint64 // VaultSecret -> sequence number of its latest event
	// ready is closed once the index holds every VaultSecret (see Restore).
	ready     chan struct{}
	readyOnce sync.Once
}

// NewEventRouter returns a router with a buffered channel.
func NewEventRouter() *EventRouter {
	return &EventRouter{Index: kvevents.NewIndex(), C: make(chan event.GenericEvent, 4096),
		hints: map[string]uint64{}, ready: make(chan struct{})}
}

// Notify implements kvevents.Sink.
func (e *EventRouter) Notify(ctx context.Context, ev kvevents.Event) {
	for _, key := range e.Index.Lookup(ev.VaultHost, ev.ObjectName) {
		ns, name, ok := strings.Cut(key, "/")
		if !ok {
			continue
		}
		e.mu.Lock()
		e.seq++
		e.hints[key] = e.seq
		e.mu.Unlock()
		obj := &v1alpha1.VaultSecret{}
		obj.Namespace, obj.Name = ns, name
		select {
		case e.C <- event.GenericEvent{Object: obj}:
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
			// The controller is saturated; the hint stays and the next
			// reconcile of this VaultSecret picks it up; polling covers the rest.
			logf.FromContext(ctx).Info("event queue full; relying on the next reconcile", "vaultsecret", key)
		}
	}
}

// pending reports whether an event for key waits to be acted on, and its
// sequence number for settle.
func (e *EventRouter) pending(key string) (uint64, bool) {
	if e == nil {
		return 0, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	seq, ok := e.hints[key]
	return seq, ok
}

// settle clears the event seq of key once Key Vault was read for it. An
// event that arrived meanwhile (a newer seq) stays pending, and so does the
// event of a reconcile that had to come back later without reading.
func (e *EventRouter) settle(key string, seq uint64) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hints[key] == seq {
		delete(e.hints, key)
	}
}

// Ready is closed once Restore has indexed every VaultSecret; the events
// endpoint starts listening only then, so no delivery meets an empty index.
func (e *EventRouter) Ready() <-chan struct{} { return e.ready }

func (e *EventRouter) markReady() {
	if e != nil {
		e.readyOnce.Do(func() { close(e.ready) })
	}
}

// index records which (vault host, object) pairs a VaultSecret reads.
func (e *EventRouter) index(vs *v1alpha1.VaultSecret, host string) {
	if e == nil || host == "" {
		return
	}
	var refs []kvevents.Ref
	for _, d := range vs.Spec.Data {
		refs = append(refs, kvevents.Ref{VaultHost: host, ObjectName: d.Remote.Name})
	}
	for _, d := range vs.Spec.DataFrom {
		switch {
		case d.Remote != nil:
			refs = append(refs, kvevents.Ref{VaultHost: host, ObjectName: d.Remote.Name})
		case d.Find != nil:
			refs = append(refs, kvevents.Ref{VaultHost: host, ObjectName: kvevents.AnyObject})
		}
	}
	e.Index.Add(vs.Namespace+"/"+vs.Name, refs)
}

func (e *EventRouter) forget(key types.NamespacedName) {
	if e == nil {
		return
	}
	e.Index.Remove(key.String())
	e.mu.Lock()
	delete(e.hints, key.String())
	e.mu.Unlock()
}
