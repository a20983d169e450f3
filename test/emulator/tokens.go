package emulator

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// identity is a configured identity with its parsed credentials.
type identity struct {
	spec  Identity
	certs []*x509.Certificate
	feds  []*fedCred
}

type fedCred struct {
	spec FederatedCredential
	keys *jwksSource
}

func newIdentity(spec Identity, baseDir string) (*identity, error) {
	id := &identity{spec: spec}
	for _, cc := range spec.Certificates {
		certs, err := parseClientCertificate(cc, baseDir)
		if err != nil {
			return nil, err
		}
		id.certs = append(id.certs, certs[0])
	}
	for _, fc := range spec.FederatedCredentials {
		src, err := newJWKSSource(fc, baseDir)
		if err != nil {
			return nil, err
		}
		id.feds = append(id.feds, &fedCred{spec: fc, keys: src})
	}
	return id, nil
}

// matches reports whether a principal reference (name, client id or object id) names this identity.
func (id *identity) matches(ref string) bool {
	return strings.EqualFold(ref, id.spec.Name) || strings.EqualFold(ref, id.spec.ClientID) || strings.EqualFold(ref, id.spec.ObjectID)
}

// ---- access tokens ----

// accessClaims are the claims of the emulator's access tokens.
type accessClaims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid"`
	ObjectID string `json:"oid"`
	AppID    string `json:"appid"`
	AppIDACR string `json:"appidacr,omitempty"`
	IDType   string `json:"idtyp,omitempty"`
	Version  string `json:"ver,omitempty"`
	UTI      string `json:"uti,omitempty"`
	MIRID    string `json:"xms_mirid,omitempty"`
}

func (e *Emulator) tokenIssuer() string { return "https://sts.windows.net/" + e.tenant + "/" }

// mintToken signs an access token for id and resource.
func (e *Emulator) mintToken(id *identity, resource, method string, lifetime time.Duration) (string, time.Time, error) {
	now := time.Now().Truncate(time.Second)
	exp := now.Add(lifetime)
	acr := map[string]string{admin.AuthClientSecret: "1", admin.AuthClientCertificate: "2", admin.AuthFederated: "2"}[method]
	if acr == "" {
		acr = "0"
	}
	c := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    e.tokenIssuer(),
			Subject:   id.spec.ObjectID,
			Audience:  jwt.ClaimStrings{resource},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Minute)),
			IssuedAt:  jwt.NewNumericDate(now.Add(-5 * time.Minute)),
		},
		TenantID: e.tenant, ObjectID: id.spec.ObjectID, AppID: id.spec.ClientID, AppIDACR: acr,
		IDType: "app", Version: "1.0", UTI: newVersionID()[:22],
	}
	if mi := id.spec.ManagedIdentity; mi != nil && method == admin.AuthManagedIdentity {
		c.MIRID = mi.ResourceID
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = e.tokenKID
	t.Header["x5t"] = e.tokenKID
	s, err := t.SignedString(e.tokenKey)
	return s, exp, err
}

// tokenError is why an access token was refused by a vault.
type tokenError struct{ msg string }

func (t *tokenError) Error() string { return t.msg }

// verifyAccessToken checks signature, tenant, audience and lifetime of a bearer token for a vault of cloud c.
func (e *Emulator) verifyAccessToken(raw string, c cloud) (*accessClaims, error) {
	claims := &accessClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return &e.tokenKey.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, &tokenError{"[TokenExpired] Error validating token: 'S2S12086'."}
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, &tokenError{"[TokenNotYetValid] Error validating token: 'S2S12087'."}
	case err != nil:
		return nil, &tokenError{"AKV10000: Request is missing a Bearer or PoP token, or the token could not be validated: invalid signature or format."}
	}
	if claims.TenantID != e.tenant || claims.Issuer != e.tokenIssuer() {
		return nil, &tokenError{fmt.Sprintf("AKV10032: Invalid issuer. Expected one of %s, found %s.", e.tokenIssuer(), claims.Issuer)}
	}
	okAud := false
	for _, a := range claims.Audience {
		if strings.TrimSuffix(a, "/") == c.resource {
			okAud = true
		}
	}
	if !okAud {
		return nil, &tokenError{fmt.Sprintf("AKV10022: Invalid audience. Expected %s, found: %s.", c.resource, strings.Join(claims.Audience, ","))}
	}
	return claims, nil
}

// ---- JWKS for federated credentials ----

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

type publicKey struct {
	kid string
	key crypto.PublicKey
}

// parseJWKS reads a JWKS document given as a JSON object or as a JSON string holding one.
func parseJWKS(raw []byte) ([]publicKey, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = []byte(s)
	}
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	if len(doc.Keys) == 0 {
		return nil, errors.New("JWKS has no keys")
	}
	var out []publicKey
	for i, k := range doc.Keys {
		pk, err := k.public()
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		out = append(out, publicKey{kid: k.Kid, key: pk})
	}
	return out, nil
}

func (k jwk) public() (crypto.PublicKey, error) {
	dec := func(s string) ([]byte, error) { return b64url.DecodeString(strings.TrimRight(s, "=")) }
	switch k.Kty {
	case "RSA":
		n, err1 := dec(k.N)
		e, err2 := dec(k.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA key")
		}
		ev := 0
		for _, b := range e {
			ev = ev<<8 | int(b)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err1 := dec(k.X)
		y, err2 := dec(k.Y)
		if err1 != nil || err2 != nil {
			return nil, errors.New("bad EC key")
		}
		return &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}, nil
	}
	return nil, fmt.Errorf("unsupported kty %q", k.Kty)
}

// jwksSource gives the signing keys of a federated issuer: inline, or fetched (and cached for a minute).
type jwksSource struct {
	inline     []publicKey
	url        string
	caFile     string
	bearerFile string

	mu      sync.Mutex
	cached  []publicKey
	fetched time.Time
}

func newJWKSSource(fc FederatedCredential, baseDir string) (*jwksSource, error) {
	if len(fc.JWKS) > 0 && string(fc.JWKS) != "null" {
		keys, err := parseJWKS(fc.JWKS)
		if err != nil {
			return nil, err
		}
		return &jwksSource{inline: keys}, nil
	}
	return &jwksSource{url: fc.JWKSURL, caFile: resolvePath(baseDir, fc.CAFile), bearerFile: resolvePath(baseDir, fc.BearerTokenFile)}, nil
}

func (s *jwksSource) keys(ctx context.Context, refresh bool) ([]publicKey, error) {
	if s.url == "" {
		return s.inline, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !refresh && s.cached != nil && time.Since(s.fetched) < time.Minute {
		return s.cached, nil
	}
	keys, err := s.fetch(ctx)
	if err != nil {
		return nil, err
	}
	s.cached, s.fetched = keys, time.Now()
	return keys, nil
}

func (s *jwksSource) fetch(ctx context.Context) ([]publicKey, error) {
	tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	if s.caFile != "" {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates in %s", s.caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	if !isLoopbackHost(req.URL.Hostname()) {
		return nil, fmt.Errorf("refusing to fetch JWKS from non-loopback host %q", req.URL.Hostname())
	}
	if s.bearerFile != "" {
		tok, err := os.ReadFile(s.bearerFile)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS fetch from %s: HTTP %d", s.url, resp.StatusCode)
	}
	return parseJWKS(body)
}

// verifyWithKeys checks a JWT's signature against candidate keys (by kid when the token has one).
func verifyWithKeys(raw string, keys []publicKey, methods []string) (jwt.MapClaims, error) {
	lastErr := errors.New("no signing key")
	for _, k := range keys {
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
			if kid, _ := t.Header["kid"].(string); kid != "" && k.kid != "" && kid != k.kid {
				return nil, errors.New("kid mismatch")
			}
			return k.key, nil
		}, jwt.WithValidMethods(methods), jwt.WithoutClaimsValidation())
		if err == nil {
			return claims, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// keyThumbprint is a stable id of the token signing key.
func keyThumbprint(pub crypto.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	h := sha256.Sum256(der)
	return b64url.EncodeToString(h[:20])
}
