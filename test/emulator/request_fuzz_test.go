package emulator

// Fuzz targets for the emulator's request parsing: Key Vault paths and
// queries, token request form bodies with client assertions (JWTs), and the
// managed identity endpoint. Each drives the real handlers in-process.
//
//	go test ./test/emulator -run '^$' -fuzz FuzzVaultRequest -fuzztime 30s

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	fuzzTenant   = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
	fuzzClientID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	fuzzSecret   = "fuzz-client-secret"
	fuzzFedID    = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e"
	fuzzIssuer   = "https://issuer.fuzz.example"
	fuzzSubject  = "system:serviceaccount:fuzz:app"
)

var (
	fuzzOnce  sync.Once
	fuzzEmu   *Emulator
	fuzzToken string
	fuzzKey   *rsa.PrivateKey
	fuzzErr   error
)

// fuzzEmulator starts one emulator per fuzzing process, with a vault "fz",
// a client-secret identity and a federated identity whose issuer key is fuzzKey.
func fuzzEmulator(t testing.TB) *Emulator {
	fuzzOnce.Do(func() {
		fuzzKey, fuzzErr = rsa.GenerateKey(rand.Reader, 2048)
		if fuzzErr != nil {
			return
		}
		jwks, _ := json.Marshal(map[string]any{"keys": []map[string]any{{
			"kty": "RSA", "kid": "fuzz", "alg": "RS256", "use": "sig",
			"n": base64.RawURLEncoding.EncodeToString(fuzzKey.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(fuzzKey.E)).Bytes()),
		}}})
		cfg := &Config{
			TenantID: fuzzTenant,
			Identities: []Identity{
				{Name: "fz", ClientID: fuzzClientID, ClientSecrets: []string{fuzzSecret}},
				{Name: "fed", ClientID: fuzzFedID, FederatedCredentials: []FederatedCredential{{
					Name: "fuzz", Issuer: fuzzIssuer, Subject: fuzzSubject, Audience: "api://AzureADTokenExchange", JWKS: jwks,
				}}},
			},
			Vaults: []Vault{{
				Name:            "fuzzvault",
				RoleAssignments: []RoleAssignment{{Principal: "fz", Role: "Key Vault Administrator"}},
				Secrets:         []Secret{{Name: "present", SecretVersion: SecretVersion{Value: "v"}}},
				Limits:          &Limits{Requests: 1 << 30},
			}},
		}
		if fuzzErr = cfg.Validate(); fuzzErr != nil {
			return
		}
		dir, err := os.MkdirTemp("", "kv-emulator-fuzz-")
		if err != nil {
			fuzzErr = err
			return
		}
		if fuzzEmu, fuzzErr = Start(context.Background(), cfg, Options{StateDir: dir}); fuzzErr != nil {
			return
		}
		tok, err := fuzzEmu.MintToken(TokenRequest{Principal: "fz"})
		fuzzToken, fuzzErr = tok.AccessToken, err
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzEmu
}

// checkAnswer asserts what every emulator answer must be: a valid status,
// and a JSON body whenever it says so.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code < 100 || rec.Code > 599 {
		t.Fatalf("invalid status %d", rec.Code)
	}
	if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d for a client's input: %s", rec.Code, rec.Body.String())
	}
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && rec.Body.Len() > 0 && !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("invalid JSON body: %q", rec.Body.String())
	}
}

var fuzzMethods = []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodPost, http.MethodDelete, "HEAD", "BREW"}

func FuzzRouteFor(f *testing.F) {
	for _, p := range []string{"/secrets", "/secrets/a", "/secrets/a/0123456789abcdef0123456789abcdef", "/secrets/a/versions",
		"/secrets/restore", "/secrets/a/backup", "/deletedsecrets/a/recover", "/certificates/c/policy", "/keys/k/create", "//", "/secrets//x/"} {
		f.Add(uint8(0), p)
	}
	f.Fuzz(func(t *testing.T, m uint8, path string) {
		rt, ok := routeFor(fuzzMethods[int(m)%len(fuzzMethods)], path)
		if !ok {
			return
		}
		if rt.op == "" || rt.action == "" || rt.handle == nil || rt.kind == "" {
			t.Fatalf("route for %q is incomplete: %+v", path, rt)
		}
		if strings.Contains(rt.name, "/") || strings.Contains(rt.version, "/") {
			t.Fatalf("route for %q has a name or version with a slash: %+v", path, rt)
		}
	})
}

func FuzzVaultRequest(f *testing.F) {
	f.Add(uint8(0), "/secrets/present", "api-version=7.4", []byte(nil), true)
	f.Add(uint8(0), "/secrets", "api-version=7.4&maxresults=1", []byte(nil), true)
	f.Add(uint8(0), "/secrets", "api-version=7.4&%24skiptoken=eyJvIjoxfQ&maxresults=25", []byte(nil), true)
	f.Add(uint8(0), "/secrets", "api-version=7.4&$skiptoken=!!!&maxresults=0", []byte(nil), true)
	f.Add(uint8(1), "/secrets/new", "api-version=7.4", []byte(`{"value":"x","contentType":"text/plain","tags":{"a":"b"},"attributes":{"enabled":false,"exp":1}}`), true)
	f.Add(uint8(2), "/secrets/present", "api-version=7.4", []byte(`{"attributes":{"enabled":true},"tags":null}`), true)
	f.Add(uint8(3), "/secrets/restore", "api-version=7.4", []byte(`{"value":"bm90IGEgYmFja3Vw"}`), true)
	f.Add(uint8(3), "/keys/k/create", "api-version=7.4", []byte(`{"kty":"EC","crv":"P-256","key_ops":["sign"]}`), true)
	f.Add(uint8(1), "/keys/k", "api-version=7.4", []byte(`{"key":{"kty":"RSA","n":"AQAB","e":"AQAB"}}`), true)
	f.Add(uint8(3), "/certificates/c/import", "api-version=7.4", []byte(`{"value":"MIIB","pwd":"x","policy":{"secret_props":{"contentType":"application/x-pem-file"}}}`), true)
	f.Add(uint8(4), "/secrets/present", "", []byte(nil), false)
	f.Fuzz(func(t *testing.T, m uint8, path, query string, body []byte, validToken bool) {
		e := fuzzEmulator(t)
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#") {
			path = "/" + url.PathEscape(path)
		}
		u := &url.URL{Scheme: "https", Host: "fuzzvault.vault.azure.net", Path: path, RawQuery: query}
		r := httptest.NewRequest(fuzzMethods[int(m)%len(fuzzMethods)], "https://fuzzvault.vault.azure.net/", bytes.NewReader(body))
		r.URL = u
		r.Host = u.Host
		if validToken {
			r.Header.Set("Authorization", "Bearer "+fuzzToken)
		} else {
			r.Header.Set("Authorization", "Bearer "+string(body))
		}
		rec := httptest.NewRecorder()
		e.serveTunnel(rec, r)
		checkAnswer(t, rec)
		if !validToken && rec.Code != http.StatusUnauthorized && rec.Code != http.StatusNotFound && rec.Code != http.StatusTooManyRequests {
			t.Fatalf("a request without a valid token got %d", rec.Code)
		}
	})
}

// assertion signs claims with fuzzKey, or returns the unsigned JWT's prefix on failure.
func assertion(claims jwt.MapClaims, header map[string]any) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(fuzzKey)
	if err != nil {
		return ""
	}
	return s
}

func FuzzTokenRequest(f *testing.F) {
	// The federated assertions need the key, which exists once the emulator does.
	fuzzEmulator(f)
	now := time.Now()
	good := assertion(jwt.MapClaims{"iss": fuzzIssuer, "sub": fuzzSubject, "aud": "api://AzureADTokenExchange",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Unix(), "iat": now.Unix()}, nil)
	x5t := assertion(jwt.MapClaims{"iss": fuzzClientID, "sub": fuzzClientID, "aud": "https://login.microsoftonline.com/" + fuzzTenant + "/oauth2/v2.0/token",
		"exp": now.Add(time.Hour).Unix()}, map[string]any{"x5t#S256": "AAAA"})
	form := func(v url.Values) string { return v.Encode() }
	scope := "https://vault.azure.net/.default"
	f.Add("/"+fuzzTenant+"/oauth2/v2.0/token", form(url.Values{"grant_type": {"client_credentials"}, "client_id": {fuzzClientID}, "client_secret": {fuzzSecret}, "scope": {scope}}))
	f.Add("/"+fuzzTenant+"/oauth2/v2.0/token", form(url.Values{"grant_type": {"client_credentials"}, "client_id": {fuzzClientID}, "client_secret": {"wrong"}, "scope": {scope}}))
	f.Add("/"+fuzzTenant+"/oauth2/token", form(url.Values{"grant_type": {"client_credentials"}, "client_id": {fuzzClientID}, "client_secret": {fuzzSecret}, "resource": {"https://vault.azure.net"}}))
	f.Add("/"+fuzzTenant+"/oauth2/v2.0/token", form(url.Values{"grant_type": {"client_credentials"}, "client_id": {fuzzFedID}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {good}}))
	f.Add("/"+fuzzTenant+"/oauth2/v2.0/token", form(url.Values{"grant_type": {"client_credentials"}, "client_id": {fuzzClientID}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {x5t}}))
	f.Add("/"+fuzzTenant+"/oauth2/v2.0/token", "client_id=%zz&grant_type=client_credentials")
	f.Add("/common/v2.0/.well-known/openid-configuration", "")
	f.Add("/common/discovery/instance", "")
	f.Fuzz(func(t *testing.T, path, body string) {
		e := fuzzEmulator(t)
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#") {
			path = "/" + url.PathEscape(path)
		}
		method := http.MethodPost
		if strings.Contains(path, "well-known") || strings.Contains(path, "discovery") {
			method = http.MethodGet
		}
		r := httptest.NewRequest(method, "https://login.microsoftonline.com/", strings.NewReader(body))
		r.URL = &url.URL{Scheme: "https", Host: "login.microsoftonline.com", Path: path}
		r.Host = r.URL.Host
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		e.serveTunnel(rec, r)
		checkAnswer(t, rec)
		if rec.Code == http.StatusOK && method == http.MethodPost {
			// A token only for the right client secret or a correctly signed federated assertion.
			v, _ := url.ParseQuery(body)
			okSecret := strings.EqualFold(v.Get("client_id"), fuzzClientID) && v.Get("client_secret") == fuzzSecret
			okFed := strings.EqualFold(v.Get("client_id"), fuzzFedID) && v.Get("client_assertion") != ""
			if !okSecret && !okFed {
				t.Fatalf("token issued for %q", body)
			}
		}
	})
}

func FuzzManagedIdentity(f *testing.F) {
	f.Add("api-version=2019-08-01&resource=https://vault.azure.net", true)
	f.Add("api-version=2019-08-01&resource=https://vault.azure.net&client_id="+fuzzClientID, true)
	f.Add("api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net%2F&mi_res_id=%2Fsubscriptions%2Fx", true)
	f.Add("resource=&api-version=", false)
	f.Fuzz(func(t *testing.T, query string, header bool) {
		e := fuzzEmulator(t)
		r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/msi/token", nil)
		r.URL.RawQuery = query
		if header {
			r.Header.Set("X-IDENTITY-HEADER", e.IdentityHeader())
		}
		rec := httptest.NewRecorder()
		e.serveManagedIdentity(rec, r)
		checkAnswer(t, rec)
		if !header && rec.Code != http.StatusBadRequest {
			t.Fatalf("a request without X-IDENTITY-HEADER got %d", rec.Code)
		}
		if rec.Code == http.StatusOK {
			t.Fatalf("a token for an identity that is no managed identity: %q", query)
		}
	})
}
