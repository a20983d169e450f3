// Package audit writes one structured log line for each request vaultsync sends to Key Vault,
// answering "who read what, when": the time, the VaultSecret on whose behalf, the identity (client
// id, tenant, authentication method), the vault, the object and version, and the result. Lines go
// to their own logger name ("audit"), so a log pipeline can route them apart; they never hold a
// secret value, token or key.
//
// Wiring:
//
//	auditor := audit.New(ctrl.Log)                       // logger name "audit"
//	kvOpts.Observer = keyvault.Observers(metrics.Shared(), auditor)
//
// and in the reconciler, before the Key Vault reads:
//
//	ctx = audit.WithSubject(ctx, audit.Subject{Namespace: vs.Namespace, Name: vs.Name,
//		ClientID: wi.ClientID, TenantID: wi.TenantID, Method: "workloadIdentity",
//		ServiceAccount: vs.Namespace + "/" + sa})
//
// The keyvault client passes each request's context to the Logger (keyvault.ContextObserver). A
// fetch shared by the keyvault Coalescer is logged once, for the VaultSecret whose request went to
// Key Vault; callers served from the shared result cause no request and no line.
package audit

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-logr/logr"

	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

// LoggerName is the name of the audit logger (appended to the base logger's name).
const LoggerName = "audit"

// Message is the message of every audit line.
const Message = "keyvault access"

// Subject is who a Key Vault request is made for.
type Subject struct {
	// Kind is the kind of the object on whose behalf the vault is read (default VaultSecret).
	Kind string
	// Namespace and Name identify that object.
	Namespace, Name string
	// ClientID and TenantID are the Entra application (or managed identity) used.
	ClientID, TenantID string
	// Method is the authentication method, e.g. workloadIdentity.
	Method string
	// ServiceAccount is namespace/name of the Kubernetes ServiceAccount whose token was
	// exchanged, for workload identity.
	ServiceAccount string
}

type subjectKey struct{}

// WithSubject returns a context carrying s; requests made with it are logged for s.
func WithSubject(ctx context.Context, s Subject) context.Context {
	return context.WithValue(ctx, subjectKey{}, s)
}

// SubjectFrom returns the Subject in ctx.
func SubjectFrom(ctx context.Context) (Subject, bool) {
	s, ok := ctx.Value(subjectKey{}).(Subject)
	return s, ok
}

// Logger writes audit lines. It implements keyvault.Observer and keyvault.ContextObserver and
// is safe for concurrent use.
type Logger struct {
	log logr.Logger
	// Challenges also logs the unauthenticated first leg of Key Vault's challenge authentication
	// (a 401 that carries no identity); off by default.
	Challenges bool
	now        func() time.Time
}

// New returns a Logger writing to base.WithName("audit").
func New(base logr.Logger) *Logger {
	return &Logger{log: base.WithName(LoggerName), now: time.Now}
}

// ObserveRequest implements keyvault.Observer for callers without a context: the line has no
// subject.
func (l *Logger) ObserveRequest(vaultHost, operation string, statusCode int, dur time.Duration, err error) {
	l.ObserveRequestContext(context.Background(), kvtypes.RequestInfo{VaultHost: vaultHost, Operation: operation,
		StatusCode: statusCode, Duration: dur, Err: err})
}

// ObserveRequestContext implements keyvault.ContextObserver: one line per request.
func (l *Logger) ObserveRequestContext(ctx context.Context, info kvtypes.RequestInfo) {
	if l == nil || (info.Challenge && !l.Challenges) {
		return
	}
	s, _ := SubjectFrom(ctx)
	kind := s.Kind
	if kind == "" && s.Name != "" {
		kind = "VaultSecret"
	}
	owner := ""
	if s.Name != "" {
		owner = s.Namespace + "/" + s.Name
	}
	// Fixed keys; values are names, ids and codes only. The error itself is not logged: an SDK
	// error's text may quote a response body. Its class is in result.
	l.log.Info(Message,
		"time", l.now().UTC().Format(time.RFC3339Nano),
		"kind", kind,
		"vaultSecret", owner,
		"clientId", s.ClientID,
		"tenantId", s.TenantID,
		"authMethod", s.Method,
		"serviceAccount", s.ServiceAccount,
		"vault", info.VaultHost,
		"operation", info.Operation,
		"objectType", string(info.ObjectType),
		"object", info.Object,
		"version", info.Version,
		"status", info.StatusCode,
		"result", Result(info),
		"durationMs", info.Duration.Milliseconds(),
	)
}

// Result gives a fixed word for the outcome of a request: Success, Challenge, Unauthorized,
// Forbidden, NotFound, Throttled, ServerError, ClientError (other 4xx), Canceled,
// DeadlineExceeded or NoResponse.
func Result(info kvtypes.RequestInfo) string {
	switch s := info.StatusCode; {
	case s >= 200 && s < 300:
		return "Success"
	case s == http.StatusUnauthorized && info.Challenge:
		return "Challenge"
	case s == http.StatusUnauthorized:
		return "Unauthorized"
	case s == http.StatusForbidden:
		return "Forbidden"
	case s == http.StatusNotFound:
		return "NotFound"
	case s == http.StatusTooManyRequests:
		return "Throttled"
	case s >= 500:
		return "ServerError"
	case s >= 400:
		return "ClientError"
	case s != 0:
		return "Status" + strconv.Itoa(s)
	}
	switch {
	case errors.Is(info.Err, context.Canceled):
		return "Canceled"
	case errors.Is(info.Err, context.DeadlineExceeded):
		return "DeadlineExceeded"
	}
	return "NoResponse"
}
