package emulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// route is a recognised Key Vault operation.
type route struct {
	op      string // operation id, e.g. GetSecret
	action  string // data action, e.g. secrets/getSecret
	kind    string
	name    string
	version string
	handle  func(c *call) (int, any, *kvError)
}

// call is one Key Vault request being served.
type call struct {
	e      *Emulator
	v      *vault
	r      *http.Request
	rt     route
	body   []byte
	caller *identity
	now    time.Time
}

// routeFor maps method and path to an operation.
func routeFor(method, path string) (route, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	n := len(segs)
	if n == 0 || segs[0] == "" {
		return route{}, false
	}
	at := func(i int) string {
		if i < n {
			return segs[i]
		}
		return ""
	}
	rt := route{name: at(1)}
	switch segs[0] {
	case kindSecrets:
		rt.kind = kindSecrets
		switch {
		case method == http.MethodGet && n == 1:
			rt.op, rt.action, rt.handle = "GetSecrets", "secrets/readMetadata", listSecrets
		case method == http.MethodPost && n == 2 && segs[1] == "restore":
			rt.op, rt.action, rt.handle, rt.name = "RestoreSecret", "secrets/restore", restoreSecret, ""
		case method == http.MethodGet && n == 3 && segs[2] == "versions":
			rt.op, rt.action, rt.handle = "GetSecretVersions", "secrets/readMetadata", listSecretVersions
		case method == http.MethodGet && (n == 2 || n == 3):
			rt.op, rt.action, rt.handle, rt.version = "GetSecret", "secrets/getSecret", getSecret, at(2)
		case method == http.MethodPut && n == 2:
			rt.op, rt.action, rt.handle = "SetSecret", "secrets/setSecret", setSecret
		case method == http.MethodPatch && (n == 2 || n == 3):
			rt.op, rt.action, rt.handle, rt.version = "UpdateSecret", "secrets/update", updateSecret, at(2)
		case method == http.MethodDelete && n == 2:
			rt.op, rt.action, rt.handle = "DeleteSecret", "secrets/delete", deleteObjectHandler
		case method == http.MethodPost && n == 3 && segs[2] == "backup":
			rt.op, rt.action, rt.handle = "BackupSecret", "secrets/backup", backupSecret
		default:
			return rt, false
		}
	case "deletedsecrets", "deletedkeys", "deletedcertificates":
		rt.kind = strings.TrimPrefix(segs[0], "deleted")
		noun := map[string]string{kindSecrets: "Secret", kindKeys: "Key", kindCertificates: "Certificate"}[rt.kind]
		switch {
		case method == http.MethodGet && n == 1:
			rt.op, rt.action, rt.handle = "GetDeleted"+noun+"s", segs[0]+"/read", listDeleted
		case method == http.MethodGet && n == 2:
			rt.op, rt.action, rt.handle = "GetDeleted"+noun, segs[0]+"/read", getDeleted
		case method == http.MethodDelete && n == 2:
			rt.op, rt.action, rt.handle = "PurgeDeleted"+noun, segs[0]+"/delete", purgeDeleted
		case method == http.MethodPost && n == 3 && segs[2] == "recover":
			rt.op, rt.action, rt.handle = "RecoverDeleted"+noun, segs[0]+"/recover", recoverDeleted
		default:
			return rt, false
		}
	case kindCertificates:
		rt.kind = kindCertificates
		switch {
		case method == http.MethodGet && n == 1:
			rt.op, rt.action, rt.handle = "GetCertificates", "certificates/read", listCertificates
		case method == http.MethodGet && n == 3 && segs[2] == "versions":
			rt.op, rt.action, rt.handle = "GetCertificateVersions", "certificates/read", listCertificateVersions
		case method == http.MethodGet && n == 3 && segs[2] == "policy":
			rt.op, rt.action, rt.handle = "GetCertificatePolicy", "certificates/read", getCertificatePolicy
		case method == http.MethodGet && (n == 2 || n == 3):
			rt.op, rt.action, rt.handle, rt.version = "GetCertificate", "certificates/read", getCertificate, at(2)
		case method == http.MethodPost && n == 3 && segs[2] == "import":
			rt.op, rt.action, rt.handle = "ImportCertificate", "certificates/import", importCertificate
		case method == http.MethodPatch && (n == 2 || n == 3):
			rt.op, rt.action, rt.handle, rt.version = "UpdateCertificate", "certificates/update", updateCertificate, at(2)
		case method == http.MethodDelete && n == 2:
			rt.op, rt.action, rt.handle = "DeleteCertificate", "certificates/delete", deleteObjectHandler
		default:
			return rt, false
		}
	case kindKeys:
		rt.kind = kindKeys
		switch {
		case method == http.MethodGet && n == 1:
			rt.op, rt.action, rt.handle = "GetKeys", "keys/read", listKeys
		case method == http.MethodGet && n == 3 && segs[2] == "versions":
			rt.op, rt.action, rt.handle = "GetKeyVersions", "keys/read", listKeyVersions
		case method == http.MethodGet && (n == 2 || n == 3):
			rt.op, rt.action, rt.handle, rt.version = "GetKey", "keys/read", getKey, at(2)
		case method == http.MethodPost && n == 3 && segs[2] == "create":
			rt.op, rt.action, rt.handle = "CreateKey", "keys/create", createKey
		case method == http.MethodPut && n == 2:
			rt.op, rt.action, rt.handle = "ImportKey", "keys/import", importKey
		case method == http.MethodPatch && (n == 2 || n == 3):
			rt.op, rt.action, rt.handle, rt.version = "UpdateKey", "keys/update", updateKey, at(2)
		case method == http.MethodDelete && n == 2:
			rt.op, rt.action, rt.handle = "DeleteKey", "keys/delete", deleteObjectHandler
		default:
			return rt, false
		}
	default:
		return rt, false
	}
	return rt, true
}

// writeKVError writes a Key Vault error body.
func writeKVError(w http.ResponseWriter, err *kvError) {
	inner := map[string]any(nil)
	if err.inner != "" {
		inner = map[string]any{"code": err.inner}
	}
	body := map[string]any{"code": err.code, "message": err.msg}
	if inner != nil {
		body["innererror"] = inner
	}
	writeJSON(w, err.status, map[string]any{"error": body})
}

// serveVault serves one Key Vault data-plane request.
func (e *Emulator) serveVault(w http.ResponseWriter, r *http.Request, host string) {
	start := time.Now()
	entry := &admin.LogEntry{Service: admin.ServiceVault, Host: host, Method: r.Method, Path: r.URL.Path}
	defer func() {
		e.record(entry)
		e.log0.Info("keyvault request", "vault", entry.Vault, "operation", entry.Operation, "object", entry.Object,
			"version", entry.Version, "identity", entry.Identity, "status", entry.Status, "duration", time.Since(start).Round(time.Millisecond))
	}()
	e.mu.Lock()
	v := e.vaults[host]
	e.mu.Unlock()
	fail := func(err *kvError) {
		entry.Status, entry.ErrorCode, entry.InnerCode = err.status, err.code, err.inner
		writeKVError(w, err)
	}
	if v == nil {
		fail(&kvError{http.StatusNotFound, "VaultNotFound", "", "No vault is emulated at " + host})
		return
	}
	entry.Vault = v.name
	rt, ok := routeFor(r.Method, r.URL.Path)
	entry.Operation, entry.Object, entry.Version = rt.op, rt.name, rt.version
	if !ok {
		entry.Operation = "Unknown"
		fail(&kvError{http.StatusNotFound, "NotFound", "", fmt.Sprintf("The operation %s %s is not emulated.", r.Method, r.URL.Path)})
		return
	}
	// Budget: requests answered 429 do not count.
	if okBudget, wait := v.limiter.allow(start); !okBudget {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		fail(&kvError{http.StatusTooManyRequests, "Throttled", "",
			fmt.Sprintf("Operations per second is over the limit of %d requests per %s for this vault (VaultRequestTypeLimitReached). Retry after the time in the Retry-After header.", v.limiter.max, v.limiter.window)})
		return
	}
	if ferr := e.vaultFault(r, v.name, rt.op); ferr != nil {
		fail(ferr)
		return
	}
	// Authentication: the challenge comes before anything looks at the body.
	authz := r.Header.Get("Authorization")
	challenge := func(msg string) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://%s/%s", resource="%s"`, v.cloud.loginHost, e.tenant, v.cloud.resource))
		fail(&kvError{http.StatusUnauthorized, "Unauthorized", "", msg})
	}
	raw, isBearer := strings.CutPrefix(authz, "Bearer ")
	if authz == "" || !isBearer || raw == "" {
		challenge("AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	claims, err := e.verifyAccessToken(strings.TrimSpace(raw), v.cloud)
	if err != nil {
		challenge(err.Error())
		return
	}
	entry.AppID, entry.ObjectID = claims.AppID, claims.ObjectID
	c := &call{e: e, v: v, r: r, rt: rt, now: time.Now()}
	if r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
		if err != nil {
			fail(badParameter("Cannot read the request body."))
			return
		}
		c.body = body
	}
	e.mu.Lock()
	for _, id := range e.identities {
		if strings.EqualFold(id.spec.ObjectID, claims.ObjectID) {
			c.caller = id
		}
	}
	if c.caller != nil {
		entry.Identity = c.caller.spec.Name
	}
	if kerr := e.authorizeLocked(c, claims); kerr != nil {
		e.mu.Unlock()
		fail(kerr)
		return
	}
	status, body, kerr := rt.handle(c)
	e.mu.Unlock()
	if kerr != nil {
		fail(kerr)
		return
	}
	entry.Status = status
	if body == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, body)
}

// authorizeLocked checks the caller's role assignments for the route's data action.
func (e *Emulator) authorizeLocked(c *call, claims *accessClaims) *kvError {
	if c.caller != nil {
		for _, ra := range c.v.roles {
			if !c.caller.matches(ra.Principal) {
				continue
			}
			if ra.Scope != "" {
				kind, name, _ := strings.Cut(ra.Scope, "/")
				if kind != c.rt.kind || !strings.EqualFold(name, c.rt.name) {
					continue
				}
			}
			if roles[strings.ToLower(ra.Role)].allows(c.rt.action) {
				return nil
			}
		}
	}
	resource := "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/emulator/providers/microsoft.keyvault/vaults/" + c.v.name
	if c.rt.name != "" {
		resource += "/" + c.rt.kind + "/" + c.rt.name
	}
	return &kvError{http.StatusForbidden, "Forbidden", "ForbiddenByRbac", fmt.Sprintf(
		"Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=%s;oid=%s;iss=%s\r\nAction: '%s'\r\nResource: '%s'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: %s;location=emulator\r\n",
		claims.AppID, claims.ObjectID, claims.Issuer, longAction(c.rt.action), resource, c.v.name)}
}

// vaultFault applies injected latency and errors; it returns the error to answer with, if any.
func (e *Emulator) vaultFault(r *http.Request, vaultName, op string) *kvError {
	e.mu.Lock()
	var latency time.Duration
	status := 0
	for i := range e.faults.Vaults {
		f := &e.faults.Vaults[i]
		if (f.Vault != "" && !strings.EqualFold(f.Vault, vaultName)) || (f.Operation != "" && !strings.EqualFold(f.Operation, op)) || f.Count < 0 {
			continue
		}
		if f.Latency != nil {
			latency += f.Latency.Duration
		}
		if f.Status != 0 && status == 0 && (f.ErrorRate <= 0 || e.rnd.Float64() < f.ErrorRate) {
			status = f.Status
		}
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				f.Count = -1 // used up
			}
		}
	}
	e.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
		}
	}
	if status == 0 {
		return nil
	}
	code := map[int]string{400: "BadParameter", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 429: "Throttled",
		500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}[status]
	if code == "" {
		code = http.StatusText(status)
	}
	return &kvError{status, code, "InjectedFault", fmt.Sprintf("Injected fault: %d %s.", status, http.StatusText(status))}
}

// ---- paging ----

const maxPage = 25

// page cuts a list into a page with an absolute nextLink carrying api-version, $skiptoken and maxresults.
func (c *call) page(items []any) (int, any, *kvError) {
	q := c.r.URL.Query() // parses %24skiptoken as $skiptoken
	size := maxPage
	if s := q.Get("maxresults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPage {
			return 0, nil, badParameter("maxresults must be an integer between 1 and %d, got %q.", maxPage, s)
		}
		size = n
	}
	offset := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		var st struct {
			Offset int `json:"o"`
		}
		if err != nil || json.Unmarshal(b, &st) != nil || st.Offset < 0 {
			return 0, nil, badParameter("The $skiptoken is not valid.")
		}
		offset = st.Offset
	}
	if offset > len(items) {
		offset = len(items)
	}
	end := min(offset+size, len(items))
	value := items[offset:end]
	if value == nil {
		value = []any{}
	}
	body := map[string]any{"value": value, "nextLink": nil}
	if end < len(items) || (c.v.emptyLastPage && offset < len(items)) {
		tok, _ := json.Marshal(map[string]int{"o": end})
		apiVersion := q.Get("api-version")
		body["nextLink"] = "https://" + c.v.host + c.r.URL.Path + "?api-version=" + url.QueryEscape(apiVersion) +
			"&$skiptoken=" + base64.RawURLEncoding.EncodeToString(tok) + "&maxresults=" + strconv.Itoa(size)
	}
	return http.StatusOK, body, nil
}

// ---- shared handlers ----

func (c *call) decode(v any) *kvError {
	if len(c.body) == 0 {
		return badParameter("The request body is empty.")
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		return badParameter("The request body is not valid JSON: %v", err)
	}
	return nil
}

func deleteObjectHandler(c *call) (int, any, *kvError) {
	o, kerr := c.v.deleteObject(c.rt.kind, c.rt.name, c.now)
	if kerr != nil {
		return 0, nil, kerr
	}
	ver := o.latest()
	switch c.rt.kind {
	case kindKeys:
		return http.StatusOK, c.v.keyJSON(o, ver, true), nil
	case kindCertificates:
		return http.StatusOK, c.v.certJSON(o, ver, true), nil
	}
	return http.StatusOK, c.v.secretJSON(o, ver, nil, true), nil
}

func listDeleted(c *call) (int, any, *kvError) {
	var items []any
	for _, o := range sorted(c.v.collection(c.rt.kind).deleted) {
		ver := o.latest()
		switch c.rt.kind {
		case kindKeys:
			items = append(items, c.v.keyJSON(o, ver, false))
		case kindCertificates:
			items = append(items, c.v.certJSON(o, ver, false))
		default:
			items = append(items, c.v.secretJSON(o, ver, nil, false))
		}
	}
	return c.page(items)
}

func getDeleted(c *call) (int, any, *kvError) {
	o := c.v.collection(c.rt.kind).getDeleted(c.rt.name)
	if o == nil {
		return 0, nil, deletedNotFound(c.rt.kind, c.rt.name)
	}
	ver := o.latest()
	switch c.rt.kind {
	case kindKeys:
		return http.StatusOK, c.v.keyJSON(o, ver, true), nil
	case kindCertificates:
		return http.StatusOK, c.v.certJSON(o, ver, true), nil
	}
	return http.StatusOK, c.v.secretJSON(o, ver, nil, true), nil
}

func purgeDeleted(c *call) (int, any, *kvError) {
	if kerr := c.v.purgeObject(c.rt.kind, c.rt.name); kerr != nil {
		return 0, nil, kerr
	}
	return http.StatusNoContent, nil, nil
}

func recoverDeleted(c *call) (int, any, *kvError) {
	o, kerr := c.v.recoverObject(c.rt.kind, c.rt.name)
	if kerr != nil {
		return 0, nil, kerr
	}
	ver := o.latest()
	switch c.rt.kind {
	case kindKeys:
		return http.StatusOK, c.v.keyJSON(o, ver, true), nil
	case kindCertificates:
		return http.StatusOK, c.v.certJSON(o, ver, true), nil
	}
	return http.StatusOK, c.v.secretJSON(o, ver, nil, true), nil
}

// jsonTime is a unix-seconds attribute in a request body.
type reqAttrs struct {
	Enabled   *bool  `json:"enabled"`
	NotBefore *int64 `json:"nbf"`
	Expires   *int64 `json:"exp"`
}

func unixPtr(p *int64) *time.Time {
	if p == nil {
		return nil
	}
	t := time.Unix(*p, 0)
	return &t
}

// applyUpdate changes version properties from a PATCH body.
func applyUpdate(ver *version, a *reqAttrs, tags map[string]string, tagsSet bool, contentType *string, now time.Time) {
	if a != nil {
		if a.Enabled != nil {
			ver.enabled = *a.Enabled
		}
		if a.NotBefore != nil {
			ver.nbf = unixPtr(a.NotBefore)
		}
		if a.Expires != nil {
			ver.exp = unixPtr(a.Expires)
		}
	}
	if tagsSet {
		ver.tags = tags
	}
	if contentType != nil {
		ver.contentType = *contentType
	}
	ver.updated = now
}
