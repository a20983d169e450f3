package emulator

import (
	"crypto/sha1" //nolint:gosec // x5t thumbprints are SHA-1
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

const jwtBearerType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLeeway is the clock skew Entra ID tolerates on client assertions.
const assertionLeeway = 5 * time.Minute

// aadError is an Entra ID error answer.
type aadError struct {
	status int
	err    string // OAuth error: invalid_client, invalid_request, ...
	code   int    // AADSTS number
	msg    string
}

func (a *aadError) write(w http.ResponseWriter, r *http.Request, entry *admin.LogEntry) {
	trace, corr := newGUID(), r.Header.Get("client-request-id")
	if corr == "" {
		corr = newGUID()
	}
	now := time.Now().UTC()
	desc := fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", a.code, a.msg, trace, corr, now.Format("2006-01-02 15:04:05Z"))
	entry.Status, entry.ErrorCode = a.status, fmt.Sprintf("AADSTS%d", a.code)
	writeJSON(w, a.status, map[string]any{
		"error":             a.err,
		"error_description": desc,
		"error_codes":       []int{a.code},
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         "https://login.microsoftonline.com/error?code=" + strconv.Itoa(a.code),
	})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// tokenServiceFault applies the token service fault; it reports whether the request was answered.
func (e *Emulator) tokenServiceFault(w http.ResponseWriter, r *http.Request, entry *admin.LogEntry) bool {
	e.mu.Lock()
	var f admin.TokenServiceFault
	if e.faults.TokenService != nil {
		f = *e.faults.TokenService
	}
	e.mu.Unlock()
	if f.Latency != nil && f.Latency.Duration > 0 {
		select {
		case <-time.After(f.Latency.Duration):
		case <-r.Context().Done():
		}
	}
	if !f.Down {
		return false
	}
	if f.Mode == admin.TokenDownReset {
		entry.Status, entry.ErrorCode = 0, "ConnectionReset"
		_ = dropConnection(w)
		return true
	}
	(&aadError{http.StatusServiceUnavailable, "temporarily_unavailable", 90033,
		"A transient error has occurred. Please try again."}).write(w, r, entry)
	return true
}

// serveEntra answers the Entra ID endpoints of cloud c.
func (e *Emulator) serveEntra(w http.ResponseWriter, r *http.Request, c cloud) {
	entry := &admin.LogEntry{Service: admin.ServiceEntra, Host: c.loginHost, Method: r.Method, Path: r.URL.Path}
	defer e.record(entry)
	if e.tokenServiceFault(w, r, entry) {
		return
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	base := "https://" + c.loginHost
	switch {
	case r.Method == http.MethodGet && len(segs) == 3 && segs[1] == "discovery" && segs[2] == "instance":
		entry.Operation = "InstanceDiscovery"
		tenant := e.tenant
		if ae := r.URL.Query().Get("authorization_endpoint"); ae != "" {
			if u, err := url.Parse(ae); err == nil {
				if p := strings.Split(strings.Trim(u.Path, "/"), "/"); len(p) > 0 && p[0] != "" {
					tenant = p[0]
				}
			}
		}
		entry.Status = http.StatusOK
		writeJSON(w, http.StatusOK, map[string]any{
			"tenant_discovery_endpoint": base + "/" + tenant + "/v2.0/.well-known/openid-configuration",
			"api-version":               "1.1",
			"metadata": []map[string]any{{
				"preferred_network": c.loginHost, "preferred_cache": c.loginHost, "aliases": []string{c.loginHost},
			}},
		})
	case r.Method == http.MethodGet && (slices.Equal(segs[1:], []string{"v2.0", ".well-known", "openid-configuration"}) ||
		slices.Equal(segs[1:], []string{".well-known", "openid-configuration"})):
		entry.Operation = "OpenIDConfiguration"
		tenant, aerr := e.resolveTenant(segs[0], true)
		if aerr != nil {
			aerr.write(w, r, entry)
			return
		}
		entry.Status = http.StatusOK
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":                        base + "/" + tenant + "/oauth2/v2.0/token",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"jwks_uri":                              base + "/" + tenant + "/discovery/v2.0/keys",
			"response_modes_supported":              []string{"query", "fragment", "form_post"},
			"subject_types_supported":               []string{"pairwise"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
			"issuer":                                base + "/" + tenant + "/v2.0",
			"request_uri_parameter_supported":       false,
			"authorization_endpoint":                base + "/" + tenant + "/oauth2/v2.0/authorize",
			"device_authorization_endpoint":         base + "/" + tenant + "/oauth2/v2.0/devicecode",
			"end_session_endpoint":                  base + "/" + tenant + "/oauth2/v2.0/logout",
			"tenant_region_scope":                   "WW",
			"cloud_instance_name":                   strings.TrimPrefix(c.loginHost, "login."),
			"cloud_graph_host_name":                 "graph.windows.net",
			"msgraph_host":                          "graph.microsoft.com",
		})
	case r.Method == http.MethodGet && len(segs) == 4 && segs[1] == "discovery" && segs[3] == "keys":
		entry.Operation = "Keys"
		if _, aerr := e.resolveTenant(segs[0], true); aerr != nil {
			aerr.write(w, r, entry)
			return
		}
		entry.Status = http.StatusOK
		pub := &e.tokenKey.PublicKey
		writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
			"kty": "RSA", "use": "sig", "kid": e.tokenKID, "x5t": e.tokenKID, "alg": "RS256",
			"n": b64url.EncodeToString(pub.N.Bytes()), "e": b64url.EncodeToString(bigEndian(pub.E)),
			"issuer": e.tokenIssuer(),
		}}})
	case r.Method == http.MethodPost && len(segs) >= 3 && segs[1] == "oauth2" && (segs[2] == "token" || (len(segs) == 4 && segs[2] == "v2.0" && segs[3] == "token")):
		entry.Operation = "Token"
		e.serveToken(w, r, c, segs[0], entry)
	default:
		entry.Operation = "Unknown"
		(&aadError{http.StatusNotFound, "invalid_request", 900561, "The endpoint only accepts POST requests or the path is not an emulated Entra ID endpoint."}).write(w, r, entry)
	}
}

// resolveTenant accepts the configured tenant id (and, for discovery, "common"/"organizations").
func (e *Emulator) resolveTenant(t string, discovery bool) (string, *aadError) {
	if strings.EqualFold(t, e.tenant) {
		return e.tenant, nil
	}
	if discovery && (t == "common" || t == "organizations") {
		return e.tenant, nil
	}
	return "", &aadError{http.StatusBadRequest, "invalid_request", 90002,
		fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", t)}
}

// knownResource returns the canonical Key Vault resource of a requested resource.
func knownResource(res string) (string, bool) {
	res = strings.TrimSuffix(res, "/")
	for _, c := range clouds {
		if strings.EqualFold(res, c.resource) {
			return c.resource, true
		}
	}
	return "", false
}

func (e *Emulator) serveToken(w http.ResponseWriter, r *http.Request, c cloud, tenantSeg string, entry *admin.LogEntry) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		(&aadError{http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded."}).write(w, r, entry)
		return
	}
	if _, aerr := e.resolveTenant(tenantSeg, false); aerr != nil {
		aerr.write(w, r, entry)
		return
	}
	f := r.PostForm
	clientID := f.Get("client_id")
	entry.AppID = clientID
	if clientID == "" {
		(&aadError{http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."}).write(w, r, entry)
		return
	}
	if gt := f.Get("grant_type"); gt != "client_credentials" {
		(&aadError{http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'. The emulator supports client_credentials only.", gt)}).write(w, r, entry)
		return
	}
	resource := ""
	if strings.Contains(r.URL.Path, "/v2.0/") {
		for _, s := range strings.Fields(f.Get("scope")) {
			if strings.HasSuffix(s, "/.default") {
				resource = strings.TrimSuffix(s, "/.default")
			}
		}
		if resource == "" {
			(&aadError{http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", f.Get("scope"))}).write(w, r, entry)
			return
		}
	} else {
		resource = f.Get("resource")
	}
	canon, ok := knownResource(resource)
	if !ok {
		(&aadError{http.StatusBadRequest, "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", resource, e.tenant)}).write(w, r, entry)
		return
	}
	_ = canon
	e.mu.Lock()
	var id *identity
	for _, x := range e.identities {
		if strings.EqualFold(x.spec.ClientID, clientID) {
			id = x
		}
	}
	lifetime := e.tokenLifetimeLocked()
	e.mu.Unlock()
	if id == nil {
		(&aadError{http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, e.tenant)}).write(w, r, entry)
		return
	}
	entry.Identity, entry.ObjectID = id.spec.Name, id.spec.ObjectID
	var method string
	switch {
	case f.Has("client_secret"):
		method = admin.AuthClientSecret
		entry.AuthMethod = method
		if !secretMatches(id, f.Get("client_secret")) {
			(&aadError{http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)}).write(w, r, entry)
			return
		}
	case f.Has("client_assertion"):
		if f.Get("client_assertion_type") != jwtBearerType {
			(&aadError{http.StatusBadRequest, "invalid_request", 700025, fmt.Sprintf("Client assertion type must be %s.", jwtBearerType)}).write(w, r, entry)
			return
		}
		assertion := f.Get("client_assertion")
		tok, _, err := jwt.NewParser().ParseUnverified(assertion, jwt.MapClaims{})
		if err != nil {
			entry.AuthMethod = admin.AuthFederated
			(&aadError{http.StatusBadRequest, "invalid_request", 50027, "JWT token is invalid or malformed."}).write(w, r, entry)
			return
		}
		_, s256 := tok.Header["x5t#S256"]
		_, s1 := tok.Header["x5t"]
		if s256 || s1 {
			method = admin.AuthClientCertificate
			entry.AuthMethod = method
			if aerr := e.checkCertAssertion(id, tok, assertion, "https://"+c.loginHost+"/"+tenantSeg); aerr != nil {
				aerr.write(w, r, entry)
				return
			}
		} else {
			method = admin.AuthFederated
			entry.AuthMethod = method
			if aerr := e.checkFederatedAssertion(r, id, assertion); aerr != nil {
				aerr.write(w, r, entry)
				return
			}
		}
	default:
		(&aadError{http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}).write(w, r, entry)
		return
	}
	at, _, err := e.mintToken(id, resource, method, lifetime)
	if err != nil {
		(&aadError{http.StatusInternalServerError, "server_error", 50000, "There was an error issuing a token."}).write(w, r, entry)
		return
	}
	secs := int(lifetime / time.Second)
	entry.Status = http.StatusOK
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": at})
}

func (e *Emulator) tokenLifetimeLocked() time.Duration {
	if e.faults.TokenLifetime != nil && e.faults.TokenLifetime.Duration > 0 {
		return e.faults.TokenLifetime.Duration
	}
	return e.lifetime
}

func secretMatches(id *identity, s string) bool {
	ok := false
	for _, want := range id.spec.ClientSecrets {
		if subtle.ConstantTimeCompare([]byte(want), []byte(s)) == 1 {
			ok = true
		}
	}
	return ok
}

// decodeThumb reads a thumbprint in standard or URL base64, with or without padding.
func decodeThumb(s string) []byte {
	s = strings.TrimRight(s, "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

// checkCertAssertion verifies a client certificate assertion (MSAL: PS256 with x5t#S256, or RS256 with x5t).
func (e *Emulator) checkCertAssertion(id *identity, tok *jwt.Token, raw, authority string) *aadError {
	var want []byte
	var pick func([]byte) []byte
	if v, ok := tok.Header["x5t#S256"].(string); ok {
		want, pick = decodeThumb(v), func(der []byte) []byte { h := sha256.Sum256(der); return h[:] }
	} else {
		v, _ := tok.Header["x5t"].(string)
		want, pick = decodeThumb(v), func(der []byte) []byte { h := sha1.Sum(der); return h[:] } //nolint:gosec
	}
	e.mu.Lock()
	certs := slices.Clone(id.certs)
	e.mu.Unlock()
	var keys []publicKey
	for _, c := range certs {
		if subtle.ConstantTimeCompare(pick(c.Raw), want) == 1 {
			keys = append(keys, publicKey{key: c.PublicKey})
		}
	}
	if len(keys) == 0 {
		return &aadError{http.StatusUnauthorized, "invalid_client", 700027, fmt.Sprintf("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'.]", strings.ToUpper(fmt.Sprintf("%x", want)), id.spec.ClientID)}
	}
	claims, err := verifyWithKeys(raw, keys, []string{"PS256", "RS256", "PS384", "PS512", "RS384", "RS512", "ES256", "ES384"})
	if err != nil {
		return &aadError{http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation."}
	}
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	if !strings.EqualFold(iss, id.spec.ClientID) || !strings.EqualFold(sub, id.spec.ClientID) {
		return &aadError{http.StatusUnauthorized, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials."}
	}
	auds, _ := claims.GetAudience()
	okAud := false
	for _, a := range auds {
		a = strings.TrimSuffix(a, "/")
		if strings.EqualFold(a, authority+"/oauth2/v2.0/token") || strings.EqualFold(a, authority+"/oauth2/token") || strings.EqualFold(a, authority) {
			okAud = true
		}
	}
	if !okAud {
		return &aadError{http.StatusUnauthorized, "invalid_client", 70005, fmt.Sprintf("The client assertion audience %q is not the token endpoint %s/oauth2/v2.0/token.", strings.Join(auds, ","), authority)}
	}
	if aerr := checkAssertionTimes(claims); aerr != nil {
		return aerr
	}
	return nil
}

func checkAssertionTimes(claims jwt.MapClaims) *aadError {
	now := time.Now()
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil || now.After(exp.Add(assertionLeeway)) {
		return &aadError{http.StatusBadRequest, "invalid_client", 700024, "Client assertion is not within its valid time range."}
	}
	if nbf, err := claims.GetNotBefore(); err == nil && nbf != nil && now.Add(assertionLeeway).Before(nbf.Time) {
		return &aadError{http.StatusBadRequest, "invalid_client", 700024, "Client assertion is not within its valid time range."}
	}
	return nil
}

// Federated credential mismatches, as Entra ID words them. Since late 2023 Entra ID names the claim that
// matched no federated credential: the issuer (700211), the audience (700212) or the subject (700213),
// and, since federated credentials match case-sensitively (2024-2025), 7002138 for a subject that
// matches only when letter case is ignored. The generic 70021 lists all three claims.
const (
	fedDocs        = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
	fedCheck       = "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. " + fedDocs
	fedCaseChanged = "https://learn.microsoft.com/en-us/entra/identity-platform/reference-breaking-changes#august-2024"
)

func federationMismatch(code int, msg string) *aadError {
	return &aadError{http.StatusUnauthorized, "invalid_client", code, msg}
}

// checkFederatedAssertion verifies a workload identity assertion against the identity's federated
// credentials: issuer first (exact), then the signature and lifetime with that issuer's keys, then the
// subject (exact), then the audience.
func (e *Emulator) checkFederatedAssertion(r *http.Request, id *identity, raw string) *aadError {
	unverified := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, unverified); err != nil {
		return &aadError{http.StatusBadRequest, "invalid_request", 50027, "JWT token is invalid or malformed."}
	}
	iss, _ := unverified["iss"].(string)
	sub, _ := unverified["sub"].(string)
	auds, _ := unverified.GetAudience()
	e.mu.Lock()
	feds := slices.Clone(id.feds)
	e.mu.Unlock()
	if len(feds) == 0 {
		// Nothing to compare a claim with: the generic answer, naming all three claims.
		return federationMismatch(70021, fmt.Sprintf(
			"No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'. %s",
			iss, sub, strings.Join(auds, ","), fedDocs))
	}
	var candidates []*fedCred
	for _, f := range feds {
		if f.spec.Issuer == iss {
			candidates = append(candidates, f)
		}
	}
	if len(candidates) == 0 {
		return federationMismatch(700211, fmt.Sprintf("No matching federated identity record found for presented assertion issuer '%s'. %s", iss, fedCheck))
	}
	methods := []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
	var claims jwt.MapClaims
	var lastErr error
	for _, f := range candidates {
		keys, err := f.keys.keys(r.Context(), false)
		if err == nil {
			claims, err = verifyWithKeys(raw, keys, methods)
			if err != nil && f.keys.url != "" {
				if keys, err = f.keys.keys(r.Context(), true); err == nil {
					claims, err = verifyWithKeys(raw, keys, methods)
				}
			}
		}
		if err == nil {
			break
		}
		lastErr = err
	}
	if claims == nil {
		return &aadError{http.StatusBadRequest, "invalid_client", 50013, fmt.Sprintf("Assertion failed signature validation. [Reason - %v, issuer '%s']", lastErr, iss)}
	}
	if aerr := checkAssertionTimes(claims); aerr != nil {
		aerr.code, aerr.msg = 700024, "Client assertion is not within its valid time range."
		return aerr
	}
	var subjects []*fedCred
	foldedMatch := false
	for _, f := range candidates {
		switch {
		case f.spec.Subject == sub:
			subjects = append(subjects, f)
		case strings.EqualFold(f.spec.Subject, sub):
			foldedMatch = true
		}
	}
	if len(subjects) == 0 && foldedMatch {
		return federationMismatch(7002138, fmt.Sprintf(
			"No matching federated identity record found for presented assertion subject '%s'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison. "+
				"Check your federated identity credential Subject, Audience and Issuer against the presented assertion. See documentation at: %s. See breaking change notification and remediation at: %s.",
			sub, fedDocs, fedCaseChanged))
	}
	if len(subjects) == 0 {
		return federationMismatch(700213, fmt.Sprintf("No matching federated identity record found for presented assertion subject '%s'. %s", sub, fedCheck))
	}
	for _, f := range subjects {
		if slices.Contains(auds, f.spec.Audience) {
			return nil
		}
	}
	return federationMismatch(700212, fmt.Sprintf("No matching federated identity record found for presented assertion audience '%s'. %s", strings.Join(auds, ","), fedCheck))
}

// serveManagedIdentity is the App Service managed identity endpoint (GET /msi/token, plain HTTP on loopback).
func (e *Emulator) serveManagedIdentity(w http.ResponseWriter, r *http.Request) {
	entry := &admin.LogEntry{Service: admin.ServiceManagedIdentity, Host: r.Host, Method: r.Method, Path: r.URL.Path, Operation: "ManagedIdentityToken", AuthMethod: admin.AuthManagedIdentity}
	defer e.record(entry)
	fail := func(status int, code, msg string) {
		entry.Status, entry.ErrorCode = status, code
		writeJSON(w, status, map[string]any{"statusCode": status, "message": msg, "correlationId": newGUID(), "error": code, "error_description": msg})
	}
	if r.Method != http.MethodGet {
		fail(http.StatusMethodNotAllowed, "invalid_request", "Only GET is supported.")
		return
	}
	h, present := r.Header["X-Identity-Header"]
	if !present {
		fail(http.StatusBadRequest, "invalid_request", "The X-IDENTITY-HEADER header is missing.")
		return
	}
	if len(h) != 1 || subtle.ConstantTimeCompare([]byte(h[0]), []byte(e.identityHeader)) != 1 {
		fail(http.StatusUnauthorized, "unauthorized_client", "The X-IDENTITY-HEADER value is not valid.")
		return
	}
	if e.tokenServiceFault(w, r, entry) {
		return
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v != "2019-08-01" {
		fail(http.StatusBadRequest, "invalid_request", fmt.Sprintf("api-version %q is not supported; use 2019-08-01.", v))
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		fail(http.StatusBadRequest, "invalid_request", "The resource parameter is required.")
		return
	}
	if _, ok := knownResource(resource); !ok {
		fail(http.StatusBadRequest, "invalid_resource", fmt.Sprintf("AADSTS500011: The resource principal named %s was not found in the tenant.", resource))
		return
	}
	e.mu.Lock()
	var id *identity
	sel := ""
	for _, key := range []string{"client_id", "object_id", "principal_id", "mi_res_id", "msi_res_id"} {
		if v := q.Get(key); v != "" {
			sel = key + "=" + v
			for _, x := range e.identities {
				mi := x.spec.ManagedIdentity
				if mi == nil {
					continue
				}
				switch key {
				case "client_id":
					if strings.EqualFold(x.spec.ClientID, v) {
						id = x
					}
				case "object_id", "principal_id":
					if strings.EqualFold(x.spec.ObjectID, v) {
						id = x
					}
				default:
					if mi.ResourceID != "" && strings.EqualFold(mi.ResourceID, v) {
						id = x
					}
				}
			}
			break
		}
	}
	if sel == "" {
		for _, x := range e.identities {
			if x.spec.ManagedIdentity != nil && x.spec.ManagedIdentity.Type == admin.SystemAssigned {
				id = x
			}
		}
	}
	lifetime := e.tokenLifetimeLocked()
	e.mu.Unlock()
	if id == nil {
		what := "No system-assigned managed identity is configured."
		if sel != "" {
			what = fmt.Sprintf("No managed identity matches %s.", sel)
		}
		fail(http.StatusBadRequest, "invalid_request", what)
		return
	}
	entry.Identity, entry.AppID, entry.ObjectID = id.spec.Name, id.spec.ClientID, id.spec.ObjectID
	at, exp, err := e.mintToken(id, resource, admin.AuthManagedIdentity, lifetime)
	if err != nil {
		fail(http.StatusInternalServerError, "server_error", "token signing failed")
		return
	}
	entry.Status = http.StatusOK
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": at, "expires_on": strconv.FormatInt(exp.Unix(), 10), "resource": resource,
		"token_type": "Bearer", "client_id": id.spec.ClientID,
	})
}
