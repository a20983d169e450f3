package keyvault

import "context"

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
