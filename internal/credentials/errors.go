package credentials

import (
	"errors"
	"fmt"
)

// Sentinel errors.
var (
	// ErrServiceAccountNotFound means the ServiceAccount to mint a token for does not exist.
	ErrServiceAccountNotFound = errors.New("credentials: service account not found")
	// ErrTokenRequestForbidden means the operator may not create tokens for the ServiceAccount.
	ErrTokenRequestForbidden = errors.New("credentials: token request forbidden")
	// ErrTokenRequest means any other TokenRequest failure.
	ErrTokenRequest = errors.New("credentials: token request failed")
	// ErrMissingClientID means neither the spec nor the ServiceAccount annotation gives a client id.
	ErrMissingClientID = errors.New("credentials: no client id")
	// ErrMissingTenantID means neither the spec nor the ServiceAccount annotation gives a tenant id.
	ErrMissingTenantID = errors.New("credentials: no tenant id")
)

// Condition reasons of credential errors.
const (
	ReasonServiceAccountNotFound = "ServiceAccountNotFound"
	ReasonTokenRequestForbidden  = "TokenRequestForbidden"
	ReasonTokenRequestFailed     = "TokenRequestFailed"
	ReasonMissingClientID        = "MissingClientID"
	ReasonMissingTenantID        = "MissingTenantID"
)

// Error is a credential failure for one ServiceAccount. Unwrap yields the sentinel and the cause.
// It implements AuthReason and AuthHint, which internal/keyvault's Reason and Hint use when the
// failure surfaces through a vault request.
type Error struct {
	Kind           error
	Namespace      string
	ServiceAccount string
	Err            error
}

// Error formats the failure; it never includes a token.
func (e *Error) Error() string {
	msg := e.Kind.Error()
	if e.ServiceAccount != "" {
		msg += fmt.Sprintf(" (service account %s/%s)", e.Namespace, e.ServiceAccount)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the sentinel and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// AuthReason returns a fixed CamelCase condition reason.
func (e *Error) AuthReason() string {
	switch e.Kind {
	case ErrServiceAccountNotFound:
		return ReasonServiceAccountNotFound
	case ErrTokenRequestForbidden:
		return ReasonTokenRequestForbidden
	case ErrMissingClientID:
		return ReasonMissingClientID
	case ErrMissingTenantID:
		return ReasonMissingTenantID
	}
	return ReasonTokenRequestFailed
}

// AuthHint returns the user's next step.
func (e *Error) AuthHint() string {
	switch e.Kind {
	case ErrServiceAccountNotFound:
		return fmt.Sprintf("create the ServiceAccount %q in namespace %q, or reference an existing one", e.ServiceAccount, e.Namespace)
	case ErrTokenRequestForbidden:
		return "allow the operator to create serviceaccounts/token in this namespace (the chart's ClusterRole grants it)"
	case ErrMissingClientID:
		return "set the client id in the spec, or annotate the ServiceAccount with " + AnnotationClientID
	case ErrMissingTenantID:
		return "set the tenant id in the spec, or annotate the ServiceAccount with " + AnnotationTenantID
	}
	return "the Kubernetes API refused the service-account token request; it is retried"
}

// Reason returns the condition reason of a credentials error, or "" when err is not one.
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.AuthReason()
	}
	return ""
}

// Hint returns the user's next step for a credentials error, or "".
func Hint(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.AuthHint()
	}
	return ""
}
