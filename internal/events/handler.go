// Package events receives Azure Key Vault events from Event Grid over HTTP(S) and turns them into
// hints: which (vault, object) changed. It speaks the Event Grid schema and CloudEvents 1.0, answers
// both subscription validation handshakes, authenticates every delivery with a shared secret
// compared in constant time, limits body sizes, and drops replayed events. It knows nothing of
// Kubernetes: a Sink decides what an event means (the controller enqueues the VaultSecrets that
// an Index says reference the object).
//
// Wiring:
//
//	idx := events.NewIndex()                 // kept up to date by the reconciler: idx.Add(key, refs)
//	h, err := events.NewHandler(events.Options{
//		Secrets: [][]byte{secret},           // from a Kubernetes Secret; h.SetSecrets on rotation
//		Sink:    events.IndexSink(idx, func(ctx context.Context, key string, ev events.Event) { ... }),
//		Metrics: metrics.Shared(),
//	})
//	srv := &events.Server{Addr: ":9443", Handler: h, CertFile: c, KeyFile: k}
//	mgr.Add(srv)                             // Start(ctx) blocks until ctx ends
//
// Authentication: the shared secret is accepted in the X-Vaultsync-Key header (Event Grid: a static
// delivery attribute, marked secret) or in the key query parameter of the endpoint URL
// (https://host/events?key=...). A request without either is answered 401, a wrong one 403.
// Entra-issued bearer tokens (Event Grid's Microsoft Entra webhook authentication) can be accepted
// by plugging a TokenValidator; vaultsync ships none yet.
package events

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// Defaults of Options.
const (
	DefaultHeader           = "X-Vaultsync-Key"
	DefaultQueryParameter   = "key"
	DefaultMaxBodyBytes     = 1 << 20
	DefaultReplayWindow     = time.Hour
	DefaultMaxReplayEntries = 100000
)

// Metric label values (see internal/metrics: vaultsync_events_received_total{type,result}).
const (
	resultAccepted     = "accepted"
	resultDuplicate    = "duplicate"
	resultIgnored      = "ignored"
	resultValidation   = "validation"
	resultInvalid      = "invalid"
	resultUnauthorized = "unauthorized"
	resultForbidden    = "forbidden"
	typeOther          = "other"
	typeNone           = "none"
)

// Sink receives each new Key Vault event. Notify runs on the request's goroutine before the
// delivery is acknowledged, so it must be quick (enqueue, do not fetch).
type Sink interface {
	Notify(ctx context.Context, ev Event)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, ev Event)

// Notify calls f.
func (f SinkFunc) Notify(ctx context.Context, ev Event) { f(ctx, ev) }

// Recorder counts deliveries and events; *metrics.Metrics implements it. eventType is a known Key
// Vault event type, TypeSubscriptionValidation, "other" or "none"; result is one of accepted,
// duplicate, ignored, validation, invalid, unauthorized, forbidden.
type Recorder interface {
	ObserveEvent(eventType, result string)
}

// TokenValidator validates an Entra-issued bearer token sent as Authorization: Bearer (Event
// Grid's Microsoft Entra authentication of webhooks): signature, issuer, audience (the
// application id URI of the receiver) and expiry. It is an extension point; when set, a request
// carrying a bearer token is authenticated by it alone.
type TokenValidator interface {
	ValidateToken(ctx context.Context, token string) error
}

// Options configure a Handler. Secrets (or TokenValidator) and Sink are required.
type Options struct {
	// Secrets are the accepted shared secrets (several during a rotation). Each must have at
	// least 16 bytes. SetSecrets replaces them at runtime.
	Secrets [][]byte
	// Header carries the secret (default X-Vaultsync-Key); QueryParameter too (default key).
	Header         string
	QueryParameter string
	// TokenValidator, when set, authenticates requests carrying a bearer token.
	TokenValidator TokenValidator
	// AllowUnauthenticatedHandshake answers subscription validation handshakes (the Event Grid
	// validation event and the CloudEvents OPTIONS request) that carry no credentials at all.
	// Only needed when the secret travels in a header that Event Grid does not send on the
	// handshake; a handshake reveals nothing and triggers nothing. Wrong credentials are still 403.
	AllowUnauthenticatedHandshake bool
	// AllowedOrigins limits the WebHook-Request-Origin values a CloudEvents handshake accepts
	// (case-insensitive; empty: any, e.g. eventgrid.azure.net).
	AllowedOrigins []string
	// MaxBodyBytes bounds a delivery (default 1 MiB); larger ones get 413.
	MaxBodyBytes int64
	// ReplayWindow is how long event ids are remembered (default 1h), at most MaxReplayEntries
	// (default 100,000) of them; a remembered event is acknowledged but not passed on.
	ReplayWindow     time.Duration
	MaxReplayEntries int
	// Sink receives the events.
	Sink Sink
	// Metrics, when set, counts deliveries and events.
	Metrics Recorder
	// Logger logs rejected deliveries and, at V(1), each event. Never secrets.
	Logger logr.Logger
	// Now is the clock (tests replace it).
	Now func() time.Time
}

// Handler is the http.Handler receiving Event Grid deliveries. It serves every path it is mounted
// on: POST delivers events, OPTIONS is the CloudEvents handshake.
type Handler struct {
	opts    Options
	secrets atomic.Pointer[[][sha256.Size]byte]
	replay  *replayCache
}

// NewHandler checks opts and returns a Handler.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Sink == nil {
		return nil, errors.New("events: a Sink is required")
	}
	if opts.Header == "" {
		opts.Header = DefaultHeader
	}
	if opts.QueryParameter == "" {
		opts.QueryParameter = DefaultQueryParameter
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.ReplayWindow == 0 {
		opts.ReplayWindow = DefaultReplayWindow
	}
	if opts.MaxReplayEntries <= 0 {
		opts.MaxReplayEntries = DefaultMaxReplayEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts, replay: newReplayCache(opts.ReplayWindow, opts.MaxReplayEntries, opts.Now)}
	if err := h.SetSecrets(opts.Secrets...); err != nil {
		return nil, err
	}
	if len(opts.Secrets) == 0 && opts.TokenValidator == nil {
		return nil, errors.New("events: a shared secret or a TokenValidator is required")
	}
	return h, nil
}

// MinSecretBytes is the shortest accepted shared secret.
const MinSecretBytes = 16

// SetSecrets replaces the accepted shared secrets (for a rotation, pass the old and the new one
// until Event Grid uses the new one). It is safe to call while serving.
func (h *Handler) SetSecrets(secrets ...[]byte) error {
	digests := make([][sha256.Size]byte, 0, len(secrets))
	for i, s := range secrets {
		if len(s) < MinSecretBytes {
			return fmt.Errorf("events: shared secret %d is shorter than %d bytes", i, MinSecretBytes)
		}
		digests = append(digests, sha256.Sum256(s))
	}
	h.secrets.Store(&digests)
	return nil
}

type authResult int

const (
	authOK authResult = iota
	authMissing
	authWrong
)

// authenticate checks the bearer token (with a TokenValidator), else the shared secret from the
// header or the query parameter. Digests of equal length are compared in constant time against
// every accepted secret.
func (h *Handler) authenticate(r *http.Request) authResult {
	if tv := h.opts.TokenValidator; tv != nil {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			if tv.ValidateToken(r.Context(), strings.TrimSpace(tok)) != nil {
				return authWrong
			}
			return authOK
		}
	}
	var given []string
	if v := r.Header.Values(h.opts.Header); len(v) > 0 {
		given = append(given, v...)
	}
	if v, ok := r.URL.Query()[h.opts.QueryParameter]; ok {
		given = append(given, v...)
	}
	if len(given) == 0 {
		return authMissing
	}
	accepted := *h.secrets.Load()
	match := 0
	for _, g := range given {
		d := sha256.Sum256([]byte(g))
		for i := range accepted {
			match |= subtle.ConstantTimeCompare(d[:], accepted[i][:])
		}
	}
	if match == 1 {
		return authOK
	}
	return authWrong
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		h.serveDelivery(w, r)
	case http.MethodOptions:
		h.serveHandshake(w, r)
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		h.fail(w, r, http.StatusMethodNotAllowed, typeNone, resultInvalid, "use POST to deliver events (OPTIONS for the CloudEvents handshake)")
	}
}

// serveHandshake answers the CloudEvents 1.0 webhook validation (abuse protection) request.
func (h *Handler) serveHandshake(w http.ResponseWriter, r *http.Request) {
	origin := strings.TrimSpace(r.Header.Get("WebHook-Request-Origin"))
	if origin == "" {
		h.fail(w, r, http.StatusBadRequest, typeNone, resultInvalid, "an OPTIONS request must carry WebHook-Request-Origin")
		return
	}
	switch h.authenticate(r) {
	case authMissing:
		if !h.opts.AllowUnauthenticatedHandshake {
			h.fail(w, r, http.StatusUnauthorized, typeNone, resultUnauthorized, "missing credentials: send the shared secret in the "+h.opts.Header+" header or the "+h.opts.QueryParameter+" query parameter")
			return
		}
	case authWrong:
		h.fail(w, r, http.StatusForbidden, typeNone, resultForbidden, "wrong credentials")
		return
	}
	if !h.originAllowed(origin) {
		h.fail(w, r, http.StatusForbidden, typeNone, resultForbidden, "WebHook-Request-Origin is not allowed")
		return
	}
	w.Header().Set("WebHook-Allowed-Origin", origin)
	w.Header().Set("WebHook-Allowed-Rate", "*")
	w.Header().Set("Allow", "POST, OPTIONS")
	w.WriteHeader(http.StatusOK)
	h.count(TypeSubscriptionValidation, resultValidation)
	h.opts.Logger.V(1).Info("answered CloudEvents handshake", "origin", origin)
}

func (h *Handler) originAllowed(origin string) bool {
	if len(h.opts.AllowedOrigins) == 0 {
		return true
	}
	for _, o := range h.opts.AllowedOrigins {
		if strings.EqualFold(o, origin) || o == "*" {
			return true
		}
	}
	return false
}

// Summary is the JSON body acknowledging a delivery (Event Grid ignores it; it helps debugging).
type Summary struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Ignored    int `json:"ignored"`
	Invalid    int `json:"invalid"`
}

func (h *Handler) serveDelivery(w http.ResponseWriter, r *http.Request) {
	auth := h.authenticate(r)
	switch auth {
	case authWrong:
		h.fail(w, r, http.StatusForbidden, typeNone, resultForbidden, "wrong credentials")
		return
	case authMissing:
		if !h.opts.AllowUnauthenticatedHandshake {
			h.fail(w, r, http.StatusUnauthorized, typeNone, resultUnauthorized, "missing credentials: send the shared secret in the "+h.opts.Header+" header or the "+h.opts.QueryParameter+" query parameter")
			return
		}
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != ContentTypeJSON && mt != ContentTypeCloudEvent && mt != ContentTypeCloudEventsBatch) {
		h.fail(w, r, http.StatusUnsupportedMediaType, typeNone, resultInvalid,
			fmt.Sprintf("unsupported Content-Type %q: want %s (Event Grid schema), %s or %s", ct, ContentTypeJSON, ContentTypeCloudEvent, ContentTypeCloudEventsBatch))
		return
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		h.fail(w, r, http.StatusRequestEntityTooLarge, typeNone, resultInvalid, fmt.Sprintf("the body is larger than %d bytes", h.opts.MaxBodyBytes))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(w, r, http.StatusRequestEntityTooLarge, typeNone, resultInvalid, fmt.Sprintf("the body is larger than %d bytes", h.opts.MaxBodyBytes))
			return
		}
		h.fail(w, r, http.StatusBadRequest, typeNone, resultInvalid, "reading the body failed")
		return
	}
	batch, err := Parse(ct, body)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ErrUnsupportedMediaType) {
			status = http.StatusUnsupportedMediaType
		}
		h.fail(w, r, status, typeNone, resultInvalid, err.Error())
		return
	}
	if auth == authMissing {
		// Only a pure handshake may come without credentials.
		if batch.ValidationCode == "" || len(batch.Events) > 0 || len(batch.Ignored) > 0 || batch.Invalid > 0 {
			h.fail(w, r, http.StatusUnauthorized, typeNone, resultUnauthorized, "missing credentials: send the shared secret in the "+h.opts.Header+" header or the "+h.opts.QueryParameter+" query parameter")
			return
		}
	}
	if batch.ValidationCode != "" {
		h.count(TypeSubscriptionValidation, resultValidation)
		h.opts.Logger.Info("answered Event Grid subscription validation")
		writeJSON(w, http.StatusOK, map[string]string{"validationResponse": batch.ValidationCode})
		return
	}
	var sum Summary
	for _, t := range batch.Ignored {
		sum.Ignored++
		h.count(typeOther, resultIgnored)
		h.opts.Logger.V(1).Info("ignored event", "type", truncate(t, 100))
	}
	for range batch.Invalid {
		sum.Invalid++
		h.count(typeOther, resultInvalid)
	}
	if batch.Invalid > 0 {
		h.opts.Logger.Info("ignored Key Vault events without a usable vault or object", "count", batch.Invalid)
	}
	for _, ev := range batch.Events {
		if !h.replay.firstSeen(ev.Source + "\x00" + ev.ID) {
			sum.Duplicates++
			h.count(ev.Type, resultDuplicate)
			h.opts.Logger.V(1).Info("ignored replayed event", "id", ev.ID, "type", ev.Type)
			continue
		}
		sum.Accepted++
		h.count(ev.Type, resultAccepted)
		h.opts.Logger.V(1).Info("event", "type", ev.Type, "vault", ev.VaultHost, "object", ev.ObjectName, "version", ev.Version, "id", ev.ID)
		h.opts.Sink.Notify(r.Context(), ev)
	}
	writeJSON(w, http.StatusOK, sum)
}

func (h *Handler) count(eventType, result string) {
	if h.opts.Metrics != nil {
		h.opts.Metrics.ObserveEvent(eventType, result)
	}
}

// fail answers a rejected request with {"error": message} and counts it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, eventType, result, message string) {
	h.count(eventType, result)
	h.opts.Logger.Info("rejected Event Grid request", "status", status, "reason", message, "remote", r.RemoteAddr)
	writeJSON(w, status, map[string]string{"error": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
