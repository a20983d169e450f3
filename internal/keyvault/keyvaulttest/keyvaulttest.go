// Package keyvaulttest offers a minimal Key Vault stand-in for unit tests: a loopback TLS server
// that performs the challenge handshake the SDK expects, a counting fake credential and helpers
// to answer like Key Vault. For protocol-faithful tests use test/emulator instead.
package keyvaulttest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// DefaultTenantID is the tenant named in the server's challenge.
const DefaultTenantID = "00000000-0000-0000-0000-0000000000aa"

// DefaultToken is the bearer token the fake Credential hands out and the server accepts.
const DefaultToken = "fake-access-token-do-not-log"

// Server is a TLS test server that answers requests without a bearer token with a Key Vault
// challenge and passes authorized ones to Handler.
type Server struct {
	*httptest.Server
	// TenantID is named in the challenge (default DefaultTenantID).
	TenantID string
	// Token is the bearer token accepted (default DefaultToken); others get 401 Unauthorized.
	Token string

	mu      sync.Mutex
	handler http.Handler
	counts  map[string]int
}

// NewServer starts a server; close it with Close.
func NewServer(handler http.Handler) *Server {
	s := &Server{TenantID: DefaultTenantID, Token: DefaultToken, handler: handler, counts: map[string]int{}}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	return s
}

// SetHandler replaces the handler of authorized requests.
func (s *Server) SetHandler(h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

// Count returns how many authorized requests reached path (for example "/secrets/db/").
func (s *Server) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/`+s.TenantID+`", resource="https://vault.azure.net"`)
		WriteError(w, http.StatusUnauthorized, "Unauthorized", "", "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	if auth != "Bearer "+s.Token {
		WriteError(w, http.StatusUnauthorized, "Unauthorized", "", "AKV10032: Invalid issuer.")
		return
	}
	s.mu.Lock()
	s.counts[r.URL.Path]++
	h := s.handler
	s.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h.ServeHTTP(w, r)
}

// Transport returns an azcore transport that trusts the server.
func (s *Server) Transport() policy.Transporter { return s.Client() }

// WriteError answers like Key Vault: {"error":{"code","message","innererror":{"code"}}}.
func WriteError(w http.ResponseWriter, status int, code, inner, message string) {
	body := map[string]any{"code": code, "message": message}
	if inner != "" {
		body["innererror"] = map[string]string{"code": inner}
	}
	WriteJSON(w, status, map[string]any{"error": body})
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// SecretJSON renders a secret bundle as Key Vault does.
func SecretJSON(vaultURL, name, version, value, contentType string, enabled, managed bool) map[string]any {
	now := time.Now().Unix()
	out := map[string]any{
		"id":    strings.TrimSuffix(vaultURL, "/") + "/secrets/" + name + "/" + version,
		"value": value,
		"attributes": map[string]any{
			"enabled": enabled, "created": now, "updated": now,
			"recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90,
		},
		"tags": map[string]string{"team": "a"},
	}
	if contentType != "" {
		out["contentType"] = contentType
	}
	if managed {
		out["managed"] = true
		out["kid"] = strings.TrimSuffix(vaultURL, "/") + "/keys/" + name + "/" + version
	}
	return out
}

// Credential is a fake azcore.TokenCredential that counts its calls.
type Credential struct {
	// Token is returned by GetToken (default DefaultToken).
	Token string
	// Err, when set, is returned instead of a token.
	Err   error
	calls atomic.Int64
}

// GetToken returns Token or Err.
func (c *Credential) GetToken(_ context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	if c.Err != nil {
		return azcore.AccessToken{}, c.Err
	}
	tok := c.Token
	if tok == "" {
		tok = DefaultToken
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Calls returns how often GetToken ran.
func (c *Credential) Calls() int64 { return c.calls.Load() }
