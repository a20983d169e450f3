package controllers

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/connector"
)

// What the reconcilers ask of the credential backend (internal/connector), each in its own
// interface, and Backend, all of them: the Connector implements it, and a fake of one reconciler
// must implement everything that reconciler uses. Nothing here is optional, and no reconciler
// type-asserts the backend (or a client it returned) for more.
//
// The clients they return (connector.Vault, connector.PushVault) are declared beside the
// Connector: Go matches method results exactly, so the Connector's methods and these interfaces
// must name the same types.

// SecretEvents wakes a controller on changes of the Secrets the backend watches by name.
type SecretEvents interface {
	// SecretSource returns a source that calls fn with the metadata of each watched Secret that
	// changed, and enqueues the requests fn returns; nil when the backend watches nothing.
	SecretSource(fn func(ctx context.Context, secret client.Object) []reconcile.Request) source.Source
}

// VaultClients is what the VaultSecret reconciler uses.
type VaultClients interface {
	// For returns a client of the VaultSecret's vault, authenticated as the identity its spec
	// names, and records in vs.Status.ConnectionVersion the version of the connection it used.
	// The client's Host keys the per-vault slots, the event index and status.syncedVault; its
	// IdentityKey names the identity in the audit log.
	For(ctx context.Context, vs *v1alpha1.VaultSecret) (connector.Vault, error)
	// ConnectionVersion returns what For would record now, from caches only: when it differs
	// from status, the connection or its credential Secrets changed and the VaultSecret syncs.
	ConnectionVersion(ctx context.Context, vs *v1alpha1.VaultSecret) string
	SecretEvents
}

// PushVaults is what the VaultPushSecret reconciler uses.
type PushVaults interface {
	// ForPush returns a client of the VaultPushSecret's vault, with the same resolution and
	// isolation rules as For.
	ForPush(ctx context.Context, ps *v1alpha1.VaultPushSecret) (connector.PushVault, error)
	// WatchSecret starts the watch of a Secret by name (the Secret a VaultPushSecret pushes),
	// so that its SecretSource wakes the VaultPushSecret when it changes.
	WatchSecret(ctx context.Context, key client.ObjectKey) error
	SecretEvents
}

// Connections is what the VaultConnection and ClusterVaultConnection reconcilers use.
type Connections interface {
	// Preflight checks a VaultConnection or ClusterVaultConnection as a VaultSecret would use it
	// (a token, then the probe object); identity describes its identity, also on failure.
	Preflight(ctx context.Context, conn client.Object) (identity string, err error)
	// ForgetConnection drops the credential of a deleted connection (unless another one uses it).
	ForgetConnection(kind v1alpha1.ConnectionKind, namespace, name string)
	SecretEvents
}

// NamespaceRules is what the ClusterVaultSecret reconciler uses: the rule the VaultSecret
// controller applies to each copy, so that a namespace a connection refuses gets no copy.
type NamespaceRules interface {
	NamespaceAllowed(ctx context.Context, allowed *v1alpha1.AllowedNamespaces, namespace string) (bool, error)
}

// Backend is everything the reconcilers use of the credential backend.
type Backend interface {
	VaultClients
	PushVaults
	Connections
	NamespaceRules
}

var _ Backend = (*connector.Connector)(nil)

// errInvalidSpec marks problems the API server cannot see, such as a regex that does not
// compile or keys that collide only after a rewrite. It is the backend's sentinel, so that
// classify has one rule for both.
var errInvalidSpec = connector.ErrInvalidSpec

// Reasons of refusals the backend decides.
const (
	ReasonConnectionNotFound         = connector.ReasonConnectionNotFound
	ReasonNamespaceNotAllowed        = connector.ReasonNamespaceNotAllowed
	ReasonClusterConnectionsDisabled = connector.ReasonClusterConnectionsDisabled
)

// connectionChanged reports whether the VaultSecret's connection or credential Secrets changed
// since its last sync; the VaultSecret reconciler then syncs again.
func connectionChanged(ctx context.Context, v VaultClients, vs *v1alpha1.VaultSecret) bool {
	return v.ConnectionVersion(ctx, vs) != vs.Status.ConnectionVersion
}
