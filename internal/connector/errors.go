package connector

import (
	"errors"

	"github.com/vaultsync/vaultsync/internal/credentials"
)

// Reasons of refused VaultSecrets.
const (
	ReasonConnectionNotFound  = "ConnectionNotFound"
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	// ReasonClusterConnectionsDisabled: the operator runs with --cluster-connections=false.
	ReasonClusterConnectionsDisabled = "ClusterConnectionsDisabled"
)

// ErrInvalidSpec marks problems the API server cannot see, such as a vault URL outside the
// connection's cloud; the reconcilers wrap their own spec problems (a regex that does not compile)
// with it too, so that one rule classifies both.
var ErrInvalidSpec = errors.New("invalid spec")

// RefusedError marks a VaultSecret that may not use what it names (a connection it cannot see,
// a ClusterVaultConnection that does not allow its namespace). Nothing is sent to Azure for it,
// and it is retried only when the connection or the namespace changes. The reconcilers use it
// for their own refusals too.
type RefusedError struct {
	Reason  string
	Message string
}

func (e *RefusedError) Error() string { return e.Message }

// Refusal returns the reason and message of a failure that only a change of the VaultSecret, its
// connection, its namespace or its credential Secret (or, for the operator's identity, a restart)
// can fix; each of those is watched, so it is not retried with backoff. ok is false for other
// errors.
func Refusal(err error) (reason, message string, ok bool) {
	var r *RefusedError
	if errors.As(err, &r) {
		return r.Reason, r.Message, true
	}
	if errors.Is(err, credentials.ErrMethodNotAllowed) || errors.Is(err, credentials.ErrOperatorIdentityUnavailable) ||
		credentials.IsSecretMaterialError(err) {
		return credentials.Reason(err), withHint(err.Error(), credentials.Hint(err)), true
	}
	return "", "", false
}

func withHint(msg, hint string) string {
	if hint == "" {
		return msg
	}
	return msg + "; " + hint
}
