package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/keyvault/keyvaulttest"
	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

// The Logger gets each request's context from the Key Vault client (audit itself does not import
// the client, only the request description in internal/kvtypes).
var _ keyvault.ContextObserver = (*Logger)(nil)

const (
	secretValue = "audit-test-s3cr3t-value"
	version1    = "0123456789abcdef0123456789abcdef"
)

// lines captures a logr logger's output as JSON objects.
type lines struct {
	mu  sync.Mutex
	raw []string
}

func (l *lines) logger() logr.Logger {
	return funcr.NewJSON(func(obj string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.raw = append(l.raw, obj)
	}, funcr.Options{})
}

func (l *lines) parsed(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, r := range l.raw {
		var m map[string]any
		if err := json.Unmarshal([]byte(r), &m); err != nil {
			t.Fatalf("line %q: %v", r, err)
		}
		out = append(out, m)
	}
	return out
}

func (l *lines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.raw, "\n")
}

func vault() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /secrets/db/{version...}", func(w http.ResponseWriter, r *http.Request) {
		keyvaulttest.WriteJSON(w, 200, keyvaulttest.SecretJSON("https://"+r.Host, "db", version1, secretValue, "text/plain", true, false))
	})
	mux.HandleFunc("GET /secrets/locked/{version...}", func(w http.ResponseWriter, _ *http.Request) {
		keyvaulttest.WriteError(w, 403, "Forbidden", "ForbiddenByRbac", "Caller is not authorized to perform action on resource.")
	})
	mux.HandleFunc("GET /secrets/busy/{version...}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		keyvaulttest.WriteError(w, 429, "Throttled", "", "Operations per second is over the limit (VaultRequestTypeLimitReached).")
	})
	return mux
}

func TestAuditLinePerAccess(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(vault())
	defer srv.Close()
	out := &lines{}
	auditor := New(out.logger())
	c, err := keyvault.NewClient(srv.URL, &keyvaulttest.Credential{}, "wi/ns/app", &keyvault.Options{
		ClientOptions:                        azcore.ClientOptions{Transport: srv.Transport(), Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
		Observer:                             keyvault.Observers(auditor),
	})
	g.Expect(err).NotTo(HaveOccurred())
	ctx := WithSubject(context.Background(), Subject{Namespace: "team-a", Name: "app-secrets",
		ClientID: "0b5f3d6e-1c2a-4e8b-9f7d-2a3c4b5d6e7f", TenantID: "8d1c7e4a-3f2b-4a6c-9e0d-5b7a1c2e3f40",
		Method: "workloadIdentity", ServiceAccount: "team-a/app"})

	s, err := c.GetSecret(ctx, "db", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Value).To(Equal(secretValue))
	_, err = c.GetSecret(ctx, "db", version1)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetSecret(ctx, "locked", "")
	g.Expect(err).To(MatchError(keyvault.ErrForbidden))
	_, err = c.GetSecret(ctx, "busy", "")
	g.Expect(err).To(MatchError(keyvault.ErrThrottled))

	got := out.parsed(t)
	g.Expect(got).To(HaveLen(4), "one line per access, the challenge leg left out:\n%s", out.text())
	host := strings.TrimPrefix(srv.URL, "https://")
	common := map[string]any{
		"logger": "audit", "msg": Message, "kind": "VaultSecret", "vaultSecret": "team-a/app-secrets",
		"clientId": "0b5f3d6e-1c2a-4e8b-9f7d-2a3c4b5d6e7f", "tenantId": "8d1c7e4a-3f2b-4a6c-9e0d-5b7a1c2e3f40",
		"authMethod": "workloadIdentity", "serviceAccount": "team-a/app", "vault": host,
		"operation": "GetSecret", "objectType": "secret",
	}
	want := []map[string]any{
		{"object": "db", "version": version1, "status": 200.0, "result": "Success"},
		{"object": "db", "version": version1, "status": 200.0, "result": "Success"},
		{"object": "locked", "version": "", "status": 403.0, "result": "Forbidden"},
		{"object": "busy", "version": "", "status": 429.0, "result": "Throttled"},
	}
	for i, line := range got {
		for k, v := range common {
			g.Expect(line).To(HaveKeyWithValue(k, v), "line %d", i)
		}
		for k, v := range want[i] {
			g.Expect(line).To(HaveKeyWithValue(k, v), "line %d", i)
		}
		ts, ok := line["time"].(string)
		g.Expect(ok).To(BeTrue())
		_, err := time.Parse(time.RFC3339Nano, ts)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(line).To(HaveKey("durationMs"))
	}
	text := out.text()
	g.Expect(text).NotTo(ContainSubstring(secretValue), "never a value")
	g.Expect(text).NotTo(ContainSubstring(keyvaulttest.DefaultToken), "never a token")
	g.Expect(text).NotTo(ContainSubstring("Caller is not authorized"), "never an error body")
}

func TestChallengesOptIn(t *testing.T) {
	g := NewWithT(t)
	out := &lines{}
	a := New(out.logger())
	info := kvtypes.RequestInfo{VaultHost: "demo.vault.azure.net", Operation: "GetSecret", Object: "db", StatusCode: 401, Challenge: true}
	a.ObserveRequestContext(context.Background(), info)
	g.Expect(out.parsed(t)).To(BeEmpty())
	a.Challenges = true
	a.ObserveRequestContext(context.Background(), info)
	g.Expect(out.parsed(t)).To(ConsistOf(HaveKeyWithValue("result", "Challenge")))
}

func TestWithoutSubject(t *testing.T) {
	g := NewWithT(t)
	out := &lines{}
	New(out.logger()).ObserveRequest("demo.vault.azure.net", "GetKey", 0, time.Second, errors.New("dial tcp: connection refused"))
	got := out.parsed(t)
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0]).To(And(HaveKeyWithValue("vaultSecret", ""), HaveKeyWithValue("kind", ""),
		HaveKeyWithValue("result", "NoResponse"), HaveKeyWithValue("vault", "demo.vault.azure.net")))
	g.Expect(out.text()).NotTo(ContainSubstring("connection refused"))
	var nilLogger *Logger
	nilLogger.ObserveRequestContext(context.Background(), kvtypes.RequestInfo{})
}

func TestResult(t *testing.T) {
	g := NewWithT(t)
	for info, want := range map[kvtypes.RequestInfo]string{
		{StatusCode: 204}:       "Success",
		{StatusCode: 401}:       "Unauthorized",
		{StatusCode: 404}:       "NotFound",
		{StatusCode: 409}:       "ClientError",
		{StatusCode: 503}:       "ServerError",
		{StatusCode: 302}:       "Status302",
		{Err: context.Canceled}: "Canceled",
		{Err: fmt.Errorf("x: %w", context.DeadlineExceeded)}: "DeadlineExceeded",
	} {
		g.Expect(Result(info)).To(Equal(want), "%+v", info)
	}
}

func TestSubjectFrom(t *testing.T) {
	g := NewWithT(t)
	_, ok := SubjectFrom(context.Background())
	g.Expect(ok).To(BeFalse())
	s, ok := SubjectFrom(WithSubject(context.Background(), Subject{Name: "x"}))
	g.Expect(ok).To(BeTrue())
	g.Expect(s.Name).To(Equal("x"))
}
