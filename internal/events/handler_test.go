package events

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

const (
	testSecret  = "0123456789abcdef-shared"
	otherSecret = "fedcba9876543210-other!"
	vaultID     = "https://demo.vault.azure.net/secrets/db-password/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
)

// recordingSink remembers what it was told.
type recordingSink struct {
	mu     sync.Mutex
	events []Event
}

func (s *recordingSink) Notify(_ context.Context, ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
}

func (s *recordingSink) got() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// countingRecorder implements Recorder.
type countingRecorder struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *countingRecorder) ObserveEvent(eventType, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[eventType+"/"+result]++
}

func (c *countingRecorder) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[k]
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	h     *Handler
	sink  *recordingSink
	rec   *countingRecorder
	clock *fakeClock
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{sink: &recordingSink{}, rec: &countingRecorder{}, clock: &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	opts := Options{Secrets: [][]byte{[]byte(testSecret)}, Sink: f.sink, Metrics: f.rec, Now: f.clock.Now, MaxBodyBytes: 64 << 10}
	if mod != nil {
		mod(&opts)
	}
	h, err := NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	return f
}

type request struct {
	method, target, contentType, body string
	header                            map[string]string
}

func (f *fixture) do(r request) *httptest.ResponseRecorder {
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.target == "" {
		r.target = "/events"
	}
	req := httptest.NewRequest(r.method, r.target, strings.NewReader(r.body))
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	return w
}

func withKey(h map[string]string) map[string]string {
	out := map[string]string{DefaultHeader: testSecret}
	for k, v := range h {
		out[k] = v
	}
	return out
}

// egEvent builds one Event Grid schema Key Vault event.
func egEvent(id, typ, objectID string) map[string]any {
	return map[string]any{
		"id": id, "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/demo",
		"subject": "db-password", "eventType": typ, "eventTime": "2026-03-01T11:59:58.1234567Z",
		"data": map[string]any{
			"Id": objectID, "VaultName": "demo", "ObjectType": "Secret", "ObjectName": "db-password",
			"Version": "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "NBF": nil, "EXP": "1924992000",
		},
		"dataVersion": "1", "metadataVersion": "1",
	}
}

func ceEvent(id, typ, objectID string) map[string]any {
	return map[string]any{
		"specversion": "1.0", "id": id, "source": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/demo",
		"subject": "db-password", "type": typ, "time": "2026-03-01T11:59:58Z",
		"data": map[string]any{"Id": objectID, "VaultName": "demo", "ObjectType": "Secret", "ObjectName": "db-password",
			"Version": "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "NBF": 1700000000, "EXP": nil},
	}
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func validationBody(code string) string {
	return jsonOf([]any{map[string]any{
		"id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66", "topic": "/subscriptions/s", "subject": "",
		"eventType": TypeSubscriptionValidation, "eventTime": "2026-03-01T12:00:00Z", "metadataVersion": "1", "dataVersion": "1",
		"data": map[string]any{"validationCode": code, "validationUrl": "https://rp-eastus2.eventgrid.azure.net/validate?id=x"},
	}})
}

func TestHandler(t *testing.T) {
	secretEvent := jsonOf([]any{egEvent("e1", TypeSecretNewVersionCreated, vaultID)})
	wantSecretEvent := Event{
		Type: TypeSecretNewVersionCreated, VaultHost: "demo.vault.azure.net", ObjectType: kvtypes.TypeSecret,
		ObjectName: "db-password", Version: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", ID: "e1",
		Source:  "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/demo",
		Time:    time.Date(2026, 3, 1, 11, 59, 58, 123456700, time.UTC),
		Expires: ptr(time.Unix(1924992000, 0).UTC()),
	}
	for name, tc := range map[string]struct {
		opts       func(*Options)
		req        request
		status     int
		bodyHas    string
		header     map[string]string
		events     []Event // nil: expect none
		metricKey  string
		eventCheck func(g Gomega, evs []Event)
	}{
		"Event Grid handshake": {
			req:    request{contentType: "application/json", body: validationBody("512d38b6-c7b8-40c8-89fe-f46f9e9622b6"), header: withKey(map[string]string{"aeg-event-type": "SubscriptionValidation"})},
			status: 200, bodyHas: `{"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}`, metricKey: TypeSubscriptionValidation + "/validation",
		},
		"Event Grid handshake with the key in the query": {
			req:    request{target: "/events?key=" + testSecret, contentType: "application/json", body: validationBody("abc")},
			status: 200, bodyHas: `"validationResponse":"abc"`,
		},
		"Event Grid handshake without credentials": {
			req:    request{contentType: "application/json", body: validationBody("abc")},
			status: 401, bodyHas: "missing credentials", metricKey: "none/unauthorized",
		},
		"Event Grid handshake without credentials, allowed": {
			opts:   func(o *Options) { o.AllowUnauthenticatedHandshake = true },
			req:    request{contentType: "application/json", body: validationBody("abc")},
			status: 200, bodyHas: `"validationResponse":"abc"`,
		},
		"events without credentials are never allowed": {
			opts:   func(o *Options) { o.AllowUnauthenticatedHandshake = true },
			req:    request{contentType: "application/json", body: secretEvent},
			status: 401,
		},
		"Event Grid handshake with a wrong key": {
			opts:   func(o *Options) { o.AllowUnauthenticatedHandshake = true },
			req:    request{contentType: "application/json", body: validationBody("abc"), header: map[string]string{DefaultHeader: otherSecret}},
			status: 403,
		},
		"CloudEvents handshake": {
			req:       request{method: http.MethodOptions, header: withKey(map[string]string{"WebHook-Request-Origin": "eventgrid.azure.net"})},
			status:    200,
			header:    map[string]string{"WebHook-Allowed-Origin": "eventgrid.azure.net"},
			metricKey: TypeSubscriptionValidation + "/validation",
		},
		"CloudEvents handshake, key in the query": {
			req:    request{method: http.MethodOptions, target: "/events?key=" + testSecret, header: map[string]string{"WebHook-Request-Origin": "eventgrid.azure.net"}},
			status: 200, header: map[string]string{"WebHook-Allowed-Origin": "eventgrid.azure.net"},
		},
		"CloudEvents handshake without origin": {
			req:    request{method: http.MethodOptions, header: withKey(nil)},
			status: 400, bodyHas: "WebHook-Request-Origin",
		},
		"CloudEvents handshake without credentials": {
			req:    request{method: http.MethodOptions, header: map[string]string{"WebHook-Request-Origin": "eventgrid.azure.net"}},
			status: 401,
		},
		"CloudEvents handshake from a foreign origin": {
			opts:   func(o *Options) { o.AllowedOrigins = []string{"eventgrid.azure.net"} },
			req:    request{method: http.MethodOptions, header: withKey(map[string]string{"WebHook-Request-Origin": "evil.example.com"})},
			status: 403,
		},
		"good secret in the header": {
			req:    request{contentType: "application/json", body: secretEvent, header: withKey(nil)},
			status: 200, bodyHas: `"accepted":1`, events: []Event{wantSecretEvent}, metricKey: TypeSecretNewVersionCreated + "/accepted",
			eventCheck: func(g Gomega, evs []Event) {
				g.Expect(evs[0].Expires).To(HaveValue(Equal(time.Unix(1924992000, 0).UTC())))
				g.Expect(evs[0].NotBefore).To(BeNil())
			},
		},
		"good secret in the query": {
			req:    request{target: "/events?key=" + testSecret, contentType: "application/json; charset=utf-8", body: secretEvent},
			status: 200, events: []Event{wantSecretEvent},
		},
		"second secret during a rotation": {
			opts:   func(o *Options) { o.Secrets = [][]byte{[]byte(testSecret), []byte(otherSecret)} },
			req:    request{contentType: "application/json", body: secretEvent, header: map[string]string{DefaultHeader: otherSecret}},
			status: 200, events: []Event{wantSecretEvent},
		},
		"custom header name": {
			opts:   func(o *Options) { o.Header = "aeg-vaultsync-key" },
			req:    request{contentType: "application/json", body: secretEvent, header: map[string]string{"Aeg-Vaultsync-Key": testSecret}},
			status: 200, events: []Event{wantSecretEvent},
		},
		"wrong secret": {
			req:    request{contentType: "application/json", body: secretEvent, header: map[string]string{DefaultHeader: otherSecret}},
			status: 403, bodyHas: "wrong credentials", metricKey: "none/forbidden",
		},
		"wrong secret that is a prefix of the right one": {
			req:    request{contentType: "application/json", body: secretEvent, header: map[string]string{DefaultHeader: testSecret[:10]}},
			status: 403,
		},
		"wrong secret in the query beside none in the header": {
			req:    request{target: "/events?key=nope", contentType: "application/json", body: secretEvent},
			status: 403,
		},
		"missing secret": {
			req:    request{contentType: "application/json", body: secretEvent},
			status: 401, bodyHas: DefaultHeader,
		},
		"oversized body": {
			req:    request{contentType: "application/json", body: "[" + strings.Repeat(" ", 64<<10) + "]", header: withKey(nil)},
			status: 413, metricKey: "none/invalid",
		},
		"malformed JSON": {
			req:    request{contentType: "application/json", body: `[{"id":`, header: withKey(nil)},
			status: 400, bodyHas: "malformed delivery",
		},
		"not an array": {
			req:    request{contentType: "application/json", body: `"hello"`, header: withKey(nil)},
			status: 400,
		},
		"empty array": {
			req:    request{contentType: "application/json", body: `[]`, header: withKey(nil)},
			status: 400, bodyHas: "no events",
		},
		"event without id": {
			req:    request{contentType: "application/json", body: `[{"eventType":"Microsoft.KeyVault.SecretNewVersionCreated","data":{}}]`, header: withKey(nil)},
			status: 400, bodyHas: "needs id and eventType",
		},
		"unknown content type": {
			req:    request{contentType: "text/plain", body: secretEvent, header: withKey(nil)},
			status: 415, bodyHas: "unsupported Content-Type",
		},
		"no content type": {
			req:    request{body: secretEvent, header: withKey(nil)},
			status: 415,
		},
		"GET": {
			req:    request{method: http.MethodGet, header: withKey(nil)},
			status: 405, header: map[string]string{"Allow": "POST, OPTIONS"},
		},
		"unknown event type ignored": {
			req: request{contentType: "application/json", header: withKey(nil),
				body: jsonOf([]any{egEvent("e9", "Microsoft.KeyVault.VaultAccessPolicyChanged", vaultID)})},
			status: 200, bodyHas: `"ignored":1`, metricKey: "other/ignored",
		},
		"Key Vault event without a usable object": {
			req: request{contentType: "application/json", header: withKey(nil),
				body: `[{"id":"x","eventType":"Microsoft.KeyVault.SecretNewVersionCreated","subject":"bad name!","data":{"Id":"not a url"}}]`},
			status: 200, bodyHas: `"invalid":1`,
		},
		"CloudEvent, single": {
			req: request{contentType: "application/cloudevents+json; charset=utf-8", header: withKey(nil),
				body: jsonOf(ceEvent("c1", TypeSecretNewVersionCreated, vaultID))},
			status: 200,
			events: []Event{{Type: TypeSecretNewVersionCreated, VaultHost: "demo.vault.azure.net", ObjectType: kvtypes.TypeSecret,
				ObjectName: "db-password", Version: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", ID: "c1",
				Source: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/demo", Time: time.Date(2026, 3, 1, 11, 59, 58, 0, time.UTC),
				NotBefore: ptr(time.Unix(1700000000, 0).UTC())}},
		},
		"CloudEvent with the wrong specversion": {
			req: request{contentType: "application/cloudevents+json", header: withKey(nil),
				body: strings.Replace(jsonOf(ceEvent("c1", TypeSecretNewVersionCreated, vaultID)), `"1.0"`, `"0.3"`, 1)},
			status: 400, bodyHas: "specversion",
		},
		"CloudEvents batch with mixed types": {
			req: request{contentType: "application/cloudevents-batch+json", header: withKey(nil),
				body: jsonOf([]any{
					ceEvent("b1", TypeSecretNewVersionCreated, vaultID),
					ceEvent("b2", TypeCertificateNearExpiry, "https://demo.vault.azure.net/certificates/tls/aaaa"),
					ceEvent("b3", "Microsoft.Storage.BlobCreated", vaultID),
					ceEvent("b4", TypeKeyExpired, "https://demo.vault.azure.net/keys/signing/bbbb"),
				})},
			status: 200, bodyHas: `{"accepted":3,"duplicates":0,"ignored":1,"invalid":0}`,
			eventCheck: func(g Gomega, evs []Event) {
				g.Expect(evs).To(HaveLen(3))
				g.Expect(evs[0].Type).To(Equal(TypeSecretNewVersionCreated))
				g.Expect(evs[1]).To(And(HaveField("Type", TypeCertificateNearExpiry), HaveField("ObjectType", kvtypes.TypeCertificate),
					HaveField("ObjectName", "db-password"), HaveField("Version", "0f1e2d3c4b5a69788796a5b4c3d2e1f0")))
				g.Expect(evs[2]).To(And(HaveField("ObjectType", kvtypes.TypeKey), HaveField("VaultHost", "demo.vault.azure.net")))
			},
		},
		"Event Grid batch with mixed types": {
			req: request{contentType: "application/json", header: withKey(nil),
				body: jsonOf([]any{
					egEvent("m1", TypeSecretNewVersionCreated, vaultID),
					egEvent("m2", TypeCertificateNewVersionCreated, "https://demo.vault.azure.net/certificates/db-password/cccc"),
					egEvent("m3", TypeKeyNewVersionCreated, "https://demo.vault.azure.net/keys/db-password/dddd"),
					egEvent("m4", TypeSecretNearExpiry, vaultID),
					egEvent("m5", TypeSecretExpired, vaultID),
					egEvent("m6", TypeCertificateExpired, vaultID),
					egEvent("m7", TypeKeyNearExpiry, vaultID),
					egEvent("m8", "Microsoft.KeyVault.VaultAccessPolicyChanged", vaultID),
				})},
			status: 200, bodyHas: `{"accepted":7,"duplicates":0,"ignored":1,"invalid":0}`,
			eventCheck: func(g Gomega, evs []Event) {
				var types []string
				for _, e := range evs {
					types = append(types, e.Type)
				}
				g.Expect(types).To(Equal([]string{TypeSecretNewVersionCreated, TypeCertificateNewVersionCreated, TypeKeyNewVersionCreated,
					TypeSecretNearExpiry, TypeSecretExpired, TypeCertificateExpired, TypeKeyNearExpiry}))
			},
		},
		"duplicate ids within one batch": {
			req: request{contentType: "application/json", header: withKey(nil),
				body: jsonOf([]any{egEvent("d1", TypeSecretNewVersionCreated, vaultID), egEvent("d1", TypeSecretNewVersionCreated, vaultID)})},
			status: 200, bodyHas: `"accepted":1,"duplicates":1`, events: []Event{{}}, metricKey: TypeSecretNewVersionCreated + "/duplicate",
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t, tc.opts)
			w := f.do(tc.req)
			g.Expect(w.Code).To(Equal(tc.status), "body: %s", w.Body.String())
			if tc.bodyHas != "" {
				g.Expect(w.Body.String()).To(ContainSubstring(tc.bodyHas))
			}
			for k, v := range tc.header {
				g.Expect(w.Header().Get(k)).To(Equal(v), k)
			}
			if w.Code >= 400 {
				g.Expect(w.Header().Get("Content-Type")).To(Equal("application/json"))
				var e map[string]string
				g.Expect(json.Unmarshal(w.Body.Bytes(), &e)).To(Succeed())
				g.Expect(e["error"]).NotTo(BeEmpty())
				g.Expect(w.Body.String()).NotTo(ContainSubstring(testSecret), "errors never echo secrets")
			}
			got := f.sink.got()
			switch {
			case tc.eventCheck != nil:
				g.Expect(got).NotTo(BeEmpty())
				tc.eventCheck(g, got)
			case tc.events == nil:
				g.Expect(got).To(BeEmpty())
			case len(tc.events) == 1 && tc.events[0].Type == "":
				g.Expect(got).To(HaveLen(1))
			default:
				g.Expect(got).To(Equal(tc.events))
			}
			if tc.metricKey != "" {
				g.Expect(f.rec.get(tc.metricKey)).To(BeNumerically(">=", 1), "counts: %v", f.rec.counts)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestOversizedWithoutContentLength(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, nil)
	body := "[" + strings.Repeat(" ", 65<<10) + "]"
	req := httptest.NewRequest(http.MethodPost, "/events", io.NopCloser(strings.NewReader(body)))
	req.ContentLength = -1 // chunked: the limit applies while reading
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(DefaultHeader, testSecret)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	g.Expect(w.Code).To(Equal(http.StatusRequestEntityTooLarge))
}

func TestReplayProtection(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, func(o *Options) { o.ReplayWindow = 10 * time.Minute })
	body := jsonOf([]any{egEvent("r1", TypeSecretNewVersionCreated, vaultID)})
	post := func() *httptest.ResponseRecorder {
		return f.do(request{contentType: "application/json", body: body, header: withKey(nil)})
	}
	g.Expect(post().Body.String()).To(ContainSubstring(`"accepted":1`))
	// Event Grid redelivers when it missed the acknowledgement: 200, but the sink hears it once.
	w := post()
	g.Expect(w.Code).To(Equal(200))
	g.Expect(w.Body.String()).To(ContainSubstring(`"duplicates":1`))
	g.Expect(f.sink.got()).To(HaveLen(1))
	g.Expect(f.rec.get(TypeSecretNewVersionCreated + "/duplicate")).To(Equal(1))

	// The same id from another topic is another event.
	other := egEvent("r1", TypeSecretNewVersionCreated, vaultID)
	other["topic"] = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/other"
	g.Expect(f.do(request{contentType: "application/json", body: jsonOf([]any{other}), header: withKey(nil)}).Body.String()).To(ContainSubstring(`"accepted":1`))

	// After the window the id is forgotten.
	f.clock.Add(11 * time.Minute)
	g.Expect(post().Body.String()).To(ContainSubstring(`"accepted":1`))
	g.Expect(f.sink.got()).To(HaveLen(3))
}

func TestSetSecretsRotates(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, nil)
	body := jsonOf([]any{egEvent("s1", TypeSecretNewVersionCreated, vaultID)})
	g.Expect(f.h.SetSecrets([]byte(otherSecret))).To(Succeed())
	g.Expect(f.do(request{contentType: "application/json", body: body, header: withKey(nil)}).Code).To(Equal(403))
	g.Expect(f.do(request{contentType: "application/json", body: body, header: map[string]string{DefaultHeader: otherSecret}}).Code).To(Equal(200))
	g.Expect(f.h.SetSecrets([]byte("short"))).To(MatchError(ContainSubstring("shorter than")))
}

func TestNewHandlerValidates(t *testing.T) {
	g := NewWithT(t)
	_, err := NewHandler(Options{Secrets: [][]byte{[]byte(testSecret)}})
	g.Expect(err).To(MatchError(ContainSubstring("Sink")))
	_, err = NewHandler(Options{Sink: &recordingSink{}})
	g.Expect(err).To(MatchError(ContainSubstring("shared secret")))
	_, err = NewHandler(Options{Sink: &recordingSink{}, Secrets: [][]byte{[]byte("x")}})
	g.Expect(err).To(HaveOccurred())
}

// tokenValidator accepts one token.
type tokenValidator struct{ good string }

func (v tokenValidator) ValidateToken(_ context.Context, tok string) error {
	if tok != v.good {
		return fmt.Errorf("bad token")
	}
	return nil
}

func TestTokenValidatorExtensionPoint(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, func(o *Options) { o.TokenValidator = tokenValidator{good: "entra-token"} })
	body := jsonOf([]any{egEvent("t1", TypeSecretNewVersionCreated, vaultID)})
	g.Expect(f.do(request{contentType: "application/json", body: body, header: map[string]string{"Authorization": "Bearer entra-token"}}).Code).To(Equal(200))
	g.Expect(f.do(request{contentType: "application/json", body: body, header: map[string]string{"Authorization": "Bearer forged"}}).Code).To(Equal(403))
	// Without a bearer token the shared secret still works.
	g.Expect(f.do(request{contentType: "application/json", body: jsonOf([]any{egEvent("t2", TypeSecretNewVersionCreated, vaultID)}), header: withKey(nil)}).Code).To(Equal(200))
}

func TestConcurrentDeliveriesOfOneEvent(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, nil)
	body := jsonOf([]any{egEvent("c1", TypeSecretNewVersionCreated, vaultID)})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.do(request{contentType: "application/json", body: body, header: withKey(nil)})
		}()
	}
	wg.Wait()
	g.Expect(f.sink.got()).To(HaveLen(1))
}
