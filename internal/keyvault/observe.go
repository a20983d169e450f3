package keyvault

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

// ContextObserver is an optional extension of Observer. When the Options' Observer implements
// it, ObserveRequestContext is called instead of ObserveRequest, with the context of the request:
// it carries the values the caller of GetSecret etc. put there (for example audit.WithSubject).
// A fetch shared through the Coalescer carries the context values of the caller that started it;
// the callers that joined it or reused its result cause no request and so no call.
type ContextObserver interface {
	Observer
	ObserveRequestContext(ctx context.Context, info kvtypes.RequestInfo)
}

// Observers fans each request out to every non-nil observer, calling ObserveRequestContext on
// those that implement ContextObserver and ObserveRequest on the others. It returns nil when
// there are none.
func Observers(obs ...Observer) Observer {
	var m multiObserver
	for _, o := range obs {
		if o != nil {
			m = append(m, o)
		}
	}
	switch len(m) {
	case 0:
		return nil
	case 1:
		return m[0]
	}
	return m
}

type multiObserver []Observer

func (m multiObserver) ObserveRequest(vaultHost, operation string, statusCode int, dur time.Duration, err error) {
	for _, o := range m {
		o.ObserveRequest(vaultHost, operation, statusCode, dur, err)
	}
}

func (m multiObserver) ObserveRequestContext(ctx context.Context, info kvtypes.RequestInfo) {
	for _, o := range m {
		if co, ok := o.(ContextObserver); ok {
			co.ObserveRequestContext(ctx, info)
		} else {
			o.ObserveRequest(info.VaultHost, info.Operation, info.StatusCode, info.Duration, info.Err)
		}
	}
}

// observe reports one request to o; called by requestPolicy.
func observe(o Observer, host string, req *policy.Request, resp *http.Response, err error, dur time.Duration) {
	ctx := req.Raw().Context()
	op, _ := ctx.Value(opKey{}).(string)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	co, ok := o.(ContextObserver)
	if !ok {
		o.ObserveRequest(host, op, status, dur, err)
		return
	}
	info := kvtypes.RequestInfo{VaultHost: host, Operation: op, ObjectType: opObjectType(op), StatusCode: status, Duration: dur, Err: err,
		Challenge: req.Raw().Header.Get("Authorization") == ""}
	info.Object, info.Version = objectFromPath(req.Raw().URL.Path)
	if info.Object != "" && info.Version == "" && status == http.StatusOK {
		info.Version = versionFromBody(resp)
	}
	co.ObserveRequestContext(ctx, info)
}

func opObjectType(op string) kvtypes.ObjectType {
	switch op {
	case opGetCertificateSecret, opGetCertificateInfo, opImportCertificate, opDeleteCertificate:
		return kvtypes.TypeCertificate
	case opGetKey:
		return kvtypes.TypeKey
	}
	return kvtypes.TypeSecret
}

// objectFromPath reads /{secrets|keys|certificates}/{name}[/{version}].
func objectFromPath(p string) (name, version string) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 {
		return "", ""
	}
	switch parts[0] {
	case "secrets", "keys", "certificates":
	default:
		return "", ""
	}
	if len(parts) == 3 && parts[2] != "versions" && parts[2] != "import" {
		version = parts[2]
	}
	return parts[1], version
}

// versionFromBody reads the version from the id (secrets) or key.kid (keys) of a buffered answer.
// Only those two fields are decoded; nothing else of the body is kept.
func versionFromBody(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	body, err := runtime.Payload(resp)
	if err != nil || len(body) == 0 {
		return ""
	}
	var ids struct {
		ID  string `json:"id"`
		Key struct {
			KID string `json:"kid"`
		} `json:"key"`
	}
	if json.Unmarshal(body, &ids) != nil {
		return ""
	}
	id := ids.ID
	if id == "" {
		id = ids.Key.KID
	}
	i := strings.Index(id, "://")
	if i < 0 {
		return ""
	}
	rest := id[i+3:]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		_, v := objectFromPath(rest[j:])
		return v
	}
	return ""
}
