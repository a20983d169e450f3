package keyvault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

// Sentinel errors. Every error returned by a Client is an *Error whose Unwrap yields one of these.
var (
	// ErrNotFound means the object or version does not exist (404).
	ErrNotFound = errors.New("keyvault: object not found")
	// ErrDisabled means the object exists but is disabled (403 with innererror SecretDisabled, KeyDisabled, ...).
	ErrDisabled = errors.New("keyvault: object is disabled")
	// ErrForbidden means the caller may not read the object (403: RBAC, access policy, firewall, other).
	ErrForbidden = errors.New("keyvault: access denied")
	// ErrThrottled means the vault answered 429 (after the SDK's own retries).
	ErrThrottled = errors.New("keyvault: throttled")
	// ErrUnauthorized means the vault rejected the bearer token (401).
	ErrUnauthorized = errors.New("keyvault: unauthorized")
	// ErrAuth means no token could be obtained from Microsoft Entra ID (or from the credential's own source).
	ErrAuth = errors.New("keyvault: authentication failed")
	// ErrTransient means 408, 5xx, timeouts and connection errors; worth retrying with backoff.
	ErrTransient = errors.New("keyvault: vault unavailable")
	// ErrNotCertificate means a certificate was requested but the secret is not managed by a certificate.
	ErrNotCertificate = errors.New("keyvault: object is not a certificate")
	// ErrTooMany means a listing exceeded the configured maximum number of items.
	ErrTooMany = errors.New("keyvault: too many objects")
	// ErrInvalid means the request is invalid (bad object name or version, 400 from the vault, bad vault URL).
	ErrInvalid = errors.New("keyvault: invalid request")
	// ErrUnexpected means anything else (unexpected status, TLS verification failure, ...).
	ErrUnexpected = errors.New("keyvault: unexpected error")
)

// Error describes one failed Key Vault operation. It never carries a secret value or a token.
type Error struct {
	// Op is the client operation: GetSecret, GetCertificateSecret, GetKey or ListSecrets.
	Op string
	// Vault is the vault host name.
	Vault string
	// Type, Object and Version name the object (Object is empty for listings).
	Type    kvtypes.ObjectType
	Object  string
	Version string
	// Status is the HTTP status of the vault's answer, 0 when there was none.
	Status int
	// Code and InnerCode are error.code and error.innererror.code of the vault's answer.
	Code      string
	InnerCode string
	// AADSTS is the Entra ID error number (e.g. "70021") of a token failure.
	AADSTS string
	// TokenStatus is the HTTP status of a failed token request, 0 when unknown.
	TokenStatus int
	// TokenUnanswered means a token request got no answer from the token service: the connection
	// failed, or the request's time ran out first (for example while the SDK retried a 503).
	TokenUnanswered bool
	// Message is the service's error message (one line, bounded).
	Message string
	// RetryAfter is the delay the vault asked for with a 429 or 503, if any.
	RetryAfter time.Duration
	// Kind is the sentinel (ErrNotFound, ...).
	Kind error
	// Err is the underlying cause, if any.
	Err error
}

// Unwrap returns the sentinel and the cause, so errors.Is works for both.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Error formats the failure without any secret value or token.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("keyvault: ")
	b.WriteString(e.Op)
	if e.Object != "" {
		fmt.Fprintf(&b, " %q", e.Object)
		if e.Version != "" {
			fmt.Fprintf(&b, " version %q", e.Version)
		}
	}
	if e.Vault != "" {
		b.WriteString(" on ")
		b.WriteString(e.Vault)
	}
	b.WriteString(": ")
	switch {
	case e.Status != 0:
		fmt.Fprintf(&b, "%d", e.Status)
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		if e.InnerCode != "" {
			b.WriteString(" (" + e.InnerCode + ")")
		}
	case errors.Is(e.Kind, ErrAuth):
		b.WriteString("token request failed")
		if e.AADSTS != "" {
			b.WriteString(" (AADSTS" + e.AADSTS + ")")
		}
	default:
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "keyvault: "))
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	switch {
	case e.Message != "":
		b.WriteString(": " + e.Message)
	case e.Err != nil && e.Status == 0:
		b.WriteString(": " + oneLine(e.Err.Error()))
	}
	return b.String()
}

// credentialError marks an error returned by the TokenCredential a Client was built with.
// ctxErr is the error of the request's context when the credential failed, if it had ended.
type credentialError struct {
	err    error
	ctxErr error
}

func (c *credentialError) Error() string { return c.err.Error() }
func (c *credentialError) Unwrap() error { return c.err }

// authReasoner is implemented by credential errors that know their condition reason
// (for example internal/credentials' ServiceAccountNotFound).
type authReasoner interface {
	AuthReason() string
	AuthHint() string
}

// Retryable reports whether err is worth retrying soon with backoff (the vault or the token
// service is unavailable or throttling) rather than at the normal refresh interval after the user
// fixed something (not found, disabled, forbidden, bad credentials, invalid request).
func Retryable(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return err != nil
	}
	//nolint:errorlint // Kind holds a bare sentinel, never a wrapped error: == is exact
	switch e.Kind {
	case ErrTransient, ErrThrottled, ErrUnexpected:
		return true
	case ErrAuth:
		return tokenServiceUnavailable(e)
	}
	return false
}

func tokenServiceUnavailable(e *Error) bool {
	return e.TokenUnanswered || e.TokenStatus >= 500 || e.TokenStatus == http.StatusTooManyRequests || e.TokenStatus == http.StatusRequestTimeout
}

// msalTransportFailures are the texts MSAL gives a token service request that got no HTTP answer
// (apps/internal/oauth/ops/internal/comm). azidentity keeps only the text of such an error
// (AuthenticationFailedError without RawResponse, and no wrapped cause), so the text is all there
// is: "ClientSecretCredential: unable to resolve an endpoint: server response error:\n context
// deadline exceeded" when Entra ID failed during authority discovery.
var msalTransportFailures = []string{"server response error", "could not read the body of an HTTP Response"}

// tokenUnanswered reports whether a credential failed without an answer from the token service:
// the connection failed or the request's time ran out. A TLS verification failure is not an
// outage, and neither is a failure the credential itself explains (authReasoner, e.g. a missing
// ServiceAccount).
func tokenUnanswered(err error, credErr *credentialError) bool {
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) && authErr.RawResponse != nil {
		return false // Entra ID answered; its status and code decide
	}
	var ar authReasoner
	if errors.As(err, &ar) && ar.AuthReason() != "" {
		return false
	}
	msg := err.Error()
	if isTLSError(err) || strings.Contains(msg, "x509: ") || strings.Contains(msg, "tls: ") {
		return false
	}
	if credErr != nil && credErr.ctxErr != nil {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || isNetworkError(err) {
		return true
	}
	for _, m := range msalTransportFailures {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// mapError turns any error of the SDK into an *Error, once.
func mapError(op, vault string, typ kvtypes.ObjectType, name, version string, err error) error {
	if err == nil {
		return nil
	}
	var kv *Error
	if errors.As(err, &kv) {
		return err
	}
	e := &Error{Op: op, Vault: vault, Type: typ, Object: name, Version: version, Err: err}
	var respErr *azcore.ResponseError
	var authErr *azidentity.AuthenticationFailedError
	var credErr *credentialError
	switch {
	case errors.As(err, &respErr):
		e.Status = respErr.StatusCode
		e.Code = respErr.ErrorCode
		if resp := respErr.RawResponse; resp != nil {
			e.RetryAfter = retryAfter(resp.Header, time.Now())
			if body, perr := runtime.Payload(resp); perr == nil {
				code, inner, msg := parseKeyVaultError(body)
				if code != "" {
					e.Code = code
				}
				e.InnerCode, e.Message = inner, msg
			}
		}
		e.Kind = kindForStatus(e.Status, e.InnerCode)
	case errors.As(err, &authErr), errors.As(err, &credErr):
		// Before the context case: a credential that ran out of time waited for the token
		// service, not for the vault.
		e.Kind = ErrAuth
		e.AADSTS, e.Message = aadstsOf(err)
		if errors.As(err, &authErr) && authErr.RawResponse != nil {
			e.TokenStatus = authErr.RawResponse.StatusCode
		}
		errors.As(err, &credErr)
		e.TokenUnanswered = tokenUnanswered(err, credErr)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Kind = ErrTransient
	case isTLSError(err):
		e.Kind = ErrUnexpected
	case isNetworkError(err):
		e.Kind = ErrTransient
	default:
		e.Kind = ErrUnexpected
	}
	return e
}

func kindForStatus(status int, inner string) error {
	switch {
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusForbidden && strings.HasSuffix(inner, "Disabled"):
		return ErrDisabled
	case status == http.StatusForbidden:
		return ErrForbidden
	case status == http.StatusUnauthorized:
		return ErrUnauthorized
	case status == http.StatusTooManyRequests:
		return ErrThrottled
	case status == http.StatusBadRequest:
		return ErrInvalid
	case status == http.StatusRequestTimeout || status >= 500:
		return ErrTransient
	default:
		return ErrUnexpected
	}
}

// parseKeyVaultError reads {"error":{"code","message","innererror":{"code"}}}.
func parseKeyVaultError(body []byte) (code, inner, msg string) {
	var doc struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return "", "", ""
	}
	if doc.Error.InnerError != nil {
		inner = doc.Error.InnerError.Code
	}
	return doc.Error.Code, inner, oneLine(doc.Error.Message)
}

var aadstsPattern = regexp.MustCompile(`AADSTS(\d+)`)

// aadstsOf finds the Entra error number and a one-line description of a token failure.
func aadstsOf(err error) (code, msg string) {
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) && authErr.RawResponse != nil {
		if body, perr := runtime.Payload(authErr.RawResponse); perr == nil {
			var doc struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
				Codes       []int  `json:"error_codes"`
			}
			if json.Unmarshal(body, &doc) == nil {
				msg = entraMessage(doc.Description)
				if len(doc.Codes) > 0 {
					return strconv.Itoa(doc.Codes[0]), msg
				}
				if m := aadstsPattern.FindStringSubmatch(doc.Description); m != nil {
					return m[1], msg
				}
				if msg == "" {
					msg = doc.Error
				}
				return "", msg
			}
		}
	}
	text := err.Error()
	if m := aadstsPattern.FindStringSubmatch(text); m != nil {
		code = m[1]
	}
	if authErr == nil || authErr.RawResponse == nil {
		// One line, but not cut at the SDK's line breaks: "server response error:\n context
		// deadline exceeded" keeps its cause.
		msg = entraMessage(strings.Join(strings.Fields(text), " "))
	}
	return code, msg
}

// entraMessage keeps the stable part of an Entra error description: without the AADSTS prefix
// (Error prints it) and without trace and correlation ids, so condition messages do not churn.
func entraMessage(desc string) string {
	desc = strings.TrimSpace(aadstsPrefix.ReplaceAllString(desc, ""))
	for _, cut := range []string{"\r", "\n", " Trace ID:"} {
		if i := strings.Index(desc, cut); i >= 0 {
			desc = desc[:i]
		}
	}
	return oneLine(desc)
}

var aadstsPrefix = regexp.MustCompile(`^AADSTS\d+:\s*`)

func isTLSError(err error) bool {
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &invalid) || errors.As(err, &verify)
}

func isNetworkError(err error) bool {
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &netErr) || errors.As(err, &opErr) || errors.As(err, &dnsErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// oneLine keeps the first line of s, bounded to 300 bytes.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// retryAfter reads retry-after-ms, x-ms-retry-after-ms and Retry-After (seconds or HTTP date),
// in the order azcore uses.
func retryAfter(h http.Header, now time.Time) time.Duration {
	for _, name := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if v := h.Get(name); v != "" {
			if ms, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && ms > 0 {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
