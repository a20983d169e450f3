package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

// VSState is what the Tracker knows of one VaultSecret.
type VSState struct {
	Generation int64
	// Ready is the Ready condition's status and reason for the current generation ("" when none yet).
	Ready, Reason, Message string
	// FirstReady is when the tracker first saw Ready=True.
	FirstReady time.Time
	// Syncs counts distinct status.lastSyncTime values seen.
	Syncs              int
	LastSync, NextSync time.Time
	DataHash           string
	lastSyncSeen       metav1.Time
}

// Tracker follows every VaultSecret through a watch of its own (not the
// manager's), so waiting for thousands of objects costs no repeated LISTs.
type Tracker struct {
	mu      sync.Mutex
	objs    map[types.NamespacedName]*VSState
	changed chan struct{}
	cancel  context.CancelFunc
}

// NewTracker starts a tracker on the control plane of e.
func NewTracker(ctx context.Context, e *inprocess.Env) (*Tracker, error) {
	c, err := cache.New(e.CP.Config, cache.Options{Scheme: e.Scheme})
	if err != nil {
		return nil, err
	}
	inf, err := c.GetInformer(ctx, &v1alpha1.VaultSecret{})
	if err != nil {
		return nil, err
	}
	t := &Tracker{objs: map[types.NamespacedName]*VSState{}, changed: make(chan struct{})}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { t.observe(o) },
		UpdateFunc: func(_, o any) { t.observe(o) },
		DeleteFunc: func(o any) {
			if vs, ok := o.(*v1alpha1.VaultSecret); ok {
				t.mu.Lock()
				delete(t.objs, types.NamespacedName{Namespace: vs.Namespace, Name: vs.Name})
				t.notifyLocked()
				t.mu.Unlock()
			}
		},
	}); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	go func() { _ = c.Start(cctx) }()
	if !c.WaitForCacheSync(ctx) {
		cancel()
		return nil, fmt.Errorf("tracker cache did not sync")
	}
	return t, nil
}

// Stop stops the tracker's watch.
func (t *Tracker) Stop() { t.cancel() }

func (t *Tracker) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *Tracker) observe(o any) {
	vs, ok := o.(*v1alpha1.VaultSecret)
	if !ok {
		return
	}
	now := time.Now()
	key := types.NamespacedName{Namespace: vs.Namespace, Name: vs.Name}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.objs[key]
	if s == nil {
		s = &VSState{}
		t.objs[key] = s
	}
	s.Generation = vs.Generation
	s.Ready, s.Reason, s.Message = "", "", ""
	if c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.ObservedGeneration == vs.Generation {
		s.Ready, s.Reason, s.Message = string(c.Status), c.Reason, c.Message
		if c.Status == metav1.ConditionTrue && s.FirstReady.IsZero() {
			s.FirstReady = now
		}
	}
	if ls := vs.Status.LastSyncTime; ls != nil && !ls.Equal(&s.lastSyncSeen) {
		s.lastSyncSeen = *ls
		s.Syncs++
		s.LastSync = ls.Time
	}
	s.NextSync = time.Time{}
	if vs.Status.NextSyncTime != nil {
		s.NextSync = vs.Status.NextSyncTime.Time
	}
	s.DataHash = vs.Status.DataHash
	t.notifyLocked()
}

// Snapshot returns a copy of every VaultSecret's state.
func (t *Tracker) Snapshot() map[types.NamespacedName]VSState {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[types.NamespacedName]VSState, len(t.objs))
	for k, v := range t.objs {
		out[k] = *v
	}
	return out
}

// View is the tracker's state, read under its lock; do not keep it.
type View map[types.NamespacedName]*VSState

// WaitFor evaluates cond after changes (at most every 50 ms) until it
// returns true or ctx ends.
func (t *Tracker) WaitFor(ctx context.Context, cond func(View) bool) error {
	for {
		t.mu.Lock()
		ch := t.changed
		ok := cond(View(t.objs))
		t.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-time.After(time.Second):
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Count returns how many VaultSecrets of namespace (all when "") satisfy pred.
func (v View) Count(namespace string, pred func(*VSState) bool) int {
	n := 0
	for k, s := range v {
		if (namespace == "" || k.Namespace == namespace) && pred(s) {
			n++
		}
	}
	return n
}

// IsReady is a predicate for Count.
func IsReady(s *VSState) bool { return s.Ready == string(metav1.ConditionTrue) }
