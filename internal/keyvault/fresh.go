package keyvault

import (
	"context"
	"time"
)

type freshKey struct{}

// WithFresh marks ctx so that fetches made with it are not answered from a
// result the Coalescer remembers: a user who forces a sync, or changes a
// spec, wants what the vault holds now. Identical fetches in flight are still
// shared.
func WithFresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

// IsFresh reports whether ctx was marked by WithFresh.
func IsFresh(ctx context.Context) bool {
	v, _ := ctx.Value(freshKey{}).(bool)
	return v
}

type requestTimeKey struct{}

// WithRequestTime marks ctx as answering a request made at t, earlier than
// now: a VaultSecret created at t, or a refresh that fell due at t. A result
// the Coalescer remembers answers it when it was fetched at most one
// coalescing window before t, so the VaultSecrets created together, or
// refreshed on one slot, share one read however long their syncs wait in the
// queue. A t in the future counts as now.
func WithRequestTime(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, requestTimeKey{}, t)
}

// requestTime returns the request time ctx carries, now when none is set or
// it lies after now.
func requestTime(ctx context.Context, now time.Time) time.Time {
	if t, ok := ctx.Value(requestTimeKey{}).(time.Time); ok && t.Before(now) {
		return t
	}
	return now
}
