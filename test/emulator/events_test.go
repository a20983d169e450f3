package emulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// received is one request the test receiver got.
type received struct {
	method, contentType, query string
	header                     http.Header
	body                       []byte
	failed                     bool // answered 503
}

// receiver is a minimal webhook: it answers both handshakes, checks an optional secret header and
// records everything. fail makes the next n deliveries answer 503.
type receiver struct {
	*httptest.Server
	mu        sync.Mutex
	reqs      []received
	fail      int
	wrongCode bool
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, received{method: req.Method, contentType: req.Header.Get("Content-Type"), query: req.URL.RawQuery, header: req.Header.Clone(), body: body})
	fail := r.fail > 0 && req.Header.Get("aeg-event-type") == "Notification"
	if fail {
		r.fail--
		r.reqs[len(r.reqs)-1].failed = true
	}
	wrong := r.wrongCode
	r.mu.Unlock()
	switch {
	case req.Method == http.MethodOptions:
		w.Header().Set("WebHook-Allowed-Origin", req.Header.Get("WebHook-Request-Origin"))
		return
	case req.Header.Get("aeg-event-type") == "SubscriptionValidation":
		var evs []struct {
			Data struct {
				ValidationCode string `json:"validationCode"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &evs)
		code := evs[0].Data.ValidationCode
		if wrong {
			code = "nope"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"validationResponse": code})
		return
	case fail:
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// notifications returns the acknowledged events (Event Grid schema: each body is an array of one;
// CloudEvents: one object), decoded.
func (r *receiver) notifications() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, q := range r.reqs {
		if q.method != http.MethodPost || q.header.Get("aeg-event-type") != "Notification" || q.failed {
			continue
		}
		if strings.HasPrefix(q.contentType, "application/cloudevents+json") {
			var ev map[string]any
			if json.Unmarshal(q.body, &ev) == nil {
				out = append(out, ev)
			}
			continue
		}
		var evs []map[string]any
		if json.Unmarshal(q.body, &evs) == nil {
			out = append(out, evs...)
		}
	}
	return out
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

func subscriptionStatus(name string) func() emulator.EventSubscriptionStatus {
	return func() emulator.EventSubscriptionStatus {
		for _, s := range emu.EventSubscriptions() {
			if s.Name == name {
				return s
			}
		}
		return emulator.EventSubscriptionStatus{}
	}
}

func TestEventsEventGridSchema(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	rcv := newReceiver(t)
	vaultName, other := uniqueName("ev"), uniqueName("ev")
	g.Expect(emu.AddVault(emulator.Vault{Name: vaultName, Secrets: []emulator.Secret{{Name: "seeded", SecretVersion: emulator.SecretVersion{Value: "x"}}}})).To(Succeed())
	g.Expect(emu.AddVault(emulator.Vault{Name: other})).To(Succeed())
	name := uniqueName("sub")
	st, err := emu.AddEventSubscription(ctx, emulator.EventSubscription{Name: name, Endpoint: rcv.URL + "/events", Vaults: []string{vaultName}, Secret: "0123456789abcdef-secret"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.State).To(Equal(admin.SubscriptionValidated))
	g.Expect(st.Secret).To(Equal("<redacted>"))
	g.Expect(st.SecretHeader).To(Equal("X-Vaultsync-Key"))
	hs := rcv.requests()
	g.Expect(hs).To(HaveLen(1), "the handshake, and no event for seeded versions")
	g.Expect(hs[0].header.Get("X-Vaultsync-Key")).To(Equal("0123456789abcdef-secret"))
	g.Expect(string(hs[0].body)).To(ContainSubstring("Microsoft.EventGrid.SubscriptionValidationEvent"))

	vi, err := emu.SetSecret(vaultName, "db-password", emulator.SecretVersion{Value: "v1", Expires: ptr(time.Unix(1924992000, 0))})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = emu.SetSecret(other, "db-password", emulator.SecretVersion{Value: "elsewhere"})
	g.Expect(err).NotTo(HaveOccurred())
	cert, err := emu.ImportCertificate(vaultName, emulator.Certificate{Name: "tls", Generate: &emulator.GenerateCertificate{Subject: "CN=app.example.test", KeyType: "EC", Curve: "P-256"}})
	g.Expect(err).NotTo(HaveOccurred())
	key, err := emu.CreateKey(vaultName, emulator.Key{Name: "signing", Kty: "EC", Curve: "P-256"})
	g.Expect(err).NotTo(HaveOccurred())

	g.Eventually(subscriptionStatus(name), 10*time.Second, 20*time.Millisecond).Should(HaveField("Delivered", 3))
	evs := rcv.notifications()
	g.Expect(evs).To(HaveLen(3), "the other vault's change and the certificate's managed secret and key are not events")
	host := vaultName + ".vault.azure.net"
	g.Expect(evs[0]).To(And(HaveKeyWithValue("eventType", "Microsoft.KeyVault.SecretNewVersionCreated"),
		HaveKeyWithValue("subject", "db-password"), HaveKeyWithValue("dataVersion", "1"),
		HaveKeyWithValue("topic", HaveSuffix("/providers/Microsoft.KeyVault/vaults/"+vaultName))))
	g.Expect(evs[0]["data"]).To(Equal(map[string]any{
		"Id": "https://" + host + "/secrets/db-password/" + vi.Version, "VaultName": vaultName, "ObjectType": "Secret",
		"ObjectName": "db-password", "Version": vi.Version, "NBF": nil, "EXP": 1924992000.0,
	}))
	g.Expect(evs[1]).To(HaveKeyWithValue("eventType", "Microsoft.KeyVault.CertificateNewVersionCreated"))
	g.Expect(evs[1]["data"]).To(And(HaveKeyWithValue("Id", "https://"+host+"/certificates/tls/"+cert.Version), HaveKeyWithValue("ObjectType", "Certificate")))
	g.Expect(evs[2]).To(HaveKeyWithValue("eventType", "Microsoft.KeyVault.KeyNewVersionCreated"))
	g.Expect(evs[2]["data"]).To(HaveKeyWithValue("Version", key.Version))
	for _, r := range rcv.requests()[1:] {
		g.Expect(r.contentType).To(Equal("application/json; charset=utf-8"))
		g.Expect(r.header.Get("X-Vaultsync-Key")).To(Equal("0123456789abcdef-secret"))
		g.Expect(r.header.Get("aeg-delivery-count")).To(Equal("0"))
		g.Expect(string(r.body)).NotTo(ContainSubstring(`"v1"`), "events never carry values")
	}
	st = subscriptionStatus(name)()
	g.Expect(st).To(And(HaveField("Published", 3), HaveField("Attempts", 3), HaveField("Failed", 0), HaveField("LastStatus", 200)))

	// A version set through the data plane (the SDK) is an event too.
	appName, clientID := uniqueName("evapp"), guid()
	g.Expect(emu.AddIdentity(emulator.Identity{Name: appName, ClientID: clientID, ClientSecrets: []string{"s"}})).To(Succeed())
	g.Expect(emu.AddRoleAssignment(vaultName, emulator.RoleAssignment{Principal: appName, Role: "Key Vault Secrets Officer"})).To(Succeed())
	cred, err := azidentity.NewClientSecretCredential(emu.TenantID(), clientID, "s", nil)
	g.Expect(err).NotTo(HaveOccurred())
	resp, err := secretsClient(t, "https://"+host, cred).SetSecret(ctx, "api-key", azsecrets.SetSecretParameters{Value: ptr("k1")}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(subscriptionStatus(name), 10*time.Second, 20*time.Millisecond).Should(HaveField("Delivered", 4))
	last := rcv.notifications()[3]
	g.Expect(last["data"]).To(HaveKeyWithValue("Version", resp.ID.Version()))

	g.Expect(emu.RemoveEventSubscription(name)).To(Succeed())
	g.Expect(emu.RemoveEventSubscription(name)).To(MatchError(emulator.ErrNotFound))
	_, err = emu.SetSecret(vaultName, "db-password", emulator.SecretVersion{Value: "v2"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Consistently(func() int { return len(rcv.notifications()) }, 300*time.Millisecond, 50*time.Millisecond).Should(Equal(4))
}

func TestEventsCloudEventsSchemaAndRetry(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	rcv := newReceiver(t)
	vaultName := uniqueName("ce")
	g.Expect(emu.AddVault(emulator.Vault{Name: vaultName})).To(Succeed())
	name := uniqueName("sub")
	st, err := emu.AddEventSubscription(ctx, emulator.EventSubscription{Name: name, Endpoint: rcv.URL + "/events?x=1", Schema: admin.SchemaCloudEvents,
		Vaults: []string{vaultName}, Secret: "query-secret-0123456789", SecretQuery: "key", RetryDelay: emulator.DurationOf(time.Millisecond),
		EventTypes: []string{admin.EventSecretNewVersionCreated, admin.EventSecretNearExpiry}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.State).To(Equal(admin.SubscriptionValidated))
	hs := rcv.requests()[0]
	g.Expect(hs.method).To(Equal(http.MethodOptions))
	g.Expect(hs.header.Get("WebHook-Request-Origin")).To(Equal("eventgrid.azure.net"))
	g.Expect(hs.query).To(ContainSubstring("key=query-secret-0123456789"))
	g.Expect(hs.query).To(ContainSubstring("x=1"))

	rcv.mu.Lock()
	rcv.fail = 2
	rcv.mu.Unlock()
	vi, err := emu.SetSecret(vaultName, "db", emulator.SecretVersion{Value: "one"})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = emu.CreateKey(vaultName, emulator.Key{Name: "k", Kty: "EC"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(subscriptionStatus(name), 10*time.Second, 20*time.Millisecond).Should(And(HaveField("Delivered", 1), HaveField("Attempts", 3)))
	g.Expect(subscriptionStatus(name)()).To(HaveField("Published", 1), "the key event is filtered out by type")
	var counts []string
	for _, r := range rcv.requests() {
		if r.method == http.MethodPost {
			counts = append(counts, r.header.Get("aeg-delivery-count"))
			g.Expect(r.contentType).To(Equal("application/cloudevents+json; charset=utf-8"))
		}
	}
	g.Expect(counts).To(Equal([]string{"0", "1", "2"}))
	ev := rcv.notifications()[0]
	g.Expect(ev).To(And(HaveKeyWithValue("specversion", "1.0"), HaveKeyWithValue("type", admin.EventSecretNewVersionCreated),
		HaveKeyWithValue("subject", "db"), HaveKeyWithValue("source", HaveSuffix("/vaults/"+vaultName)), HaveKey("id"), HaveKey("time")))
	g.Expect(ev["data"]).To(HaveKeyWithValue("Version", vi.Version))

	// Expiry events can be published on demand; unknown objects and types are refused.
	g.Expect(emu.PublishEvent(vaultName, emulator.PublishEvent{Type: admin.EventSecretNearExpiry, Object: "db"})).To(Succeed())
	g.Eventually(subscriptionStatus(name), 10*time.Second, 20*time.Millisecond).Should(HaveField("Delivered", 2))
	g.Expect(rcv.notifications()[1]).To(HaveKeyWithValue("type", admin.EventSecretNearExpiry))
	g.Expect(emu.PublishEvent(vaultName, emulator.PublishEvent{Type: admin.EventSecretNearExpiry, Object: "missing"})).To(MatchError(emulator.ErrNotFound))
	g.Expect(emu.PublishEvent(vaultName, emulator.PublishEvent{Type: "Microsoft.KeyVault.Nope", Object: "db"})).To(MatchError(ContainSubstring("unknown")))

	// A receiver that keeps failing: the event is given up after MaxAttempts.
	rcv.mu.Lock()
	rcv.fail = 100
	rcv.mu.Unlock()
	_, err = emu.SetSecret(vaultName, "db", emulator.SecretVersion{Value: "two"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(subscriptionStatus(name), 10*time.Second, 20*time.Millisecond).Should(And(HaveField("Failed", 1), HaveField("LastStatus", 503),
		HaveField("Error", ContainSubstring("503"))))
	g.Expect(subscriptionStatus(name)()).To(HaveField("Attempts", 3+1+3))
}

func TestEventsFailedHandshake(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	rcv := newReceiver(t)
	rcv.wrongCode = true
	vaultName := uniqueName("fh")
	g.Expect(emu.AddVault(emulator.Vault{Name: vaultName})).To(Succeed())
	name := uniqueName("sub")
	_, err := emu.AddEventSubscription(ctx, emulator.EventSubscription{Name: name, Endpoint: rcv.URL, Vaults: []string{vaultName}, MaxAttempts: 1})
	g.Expect(err).To(MatchError(ContainSubstring("validationResponse")))
	g.Expect(subscriptionStatus(name)()).To(HaveField("State", admin.SubscriptionFailed))
	_, err = emu.SetSecret(vaultName, "db", emulator.SecretVersion{Value: "one"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(subscriptionStatus(name), 10*time.Second, 20*time.Millisecond).Should(HaveField("Failed", 1))
	g.Expect(rcv.notifications()).To(BeEmpty())

	// A receiver that refuses the handshake (wrong secret, say) fails it too.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer refusing.Close()
	_, err = emu.AddEventSubscription(ctx, emulator.EventSubscription{Name: uniqueName("sub"), Endpoint: refusing.URL, Schema: admin.SchemaCloudEvents})
	g.Expect(err).To(MatchError(ContainSubstring("403")))
}

func TestEventSubscriptionValidation(t *testing.T) {
	ctx := ctxT(t)
	for name, tc := range map[string]struct {
		sub  emulator.EventSubscription
		want string
	}{
		"not loopback":      {emulator.EventSubscription{Name: "a", Endpoint: "https://example.com/events"}, "not on loopback"},
		"metadata endpoint": {emulator.EventSubscription{Name: "a", Endpoint: "http://169.254.169.254/metadata"}, "not on loopback"},
		"no name":           {emulator.EventSubscription{Endpoint: "http://127.0.0.1:1/"}, "name"},
		"bad scheme":        {emulator.EventSubscription{Name: "a", Endpoint: "ftp://127.0.0.1/"}, "endpoint"},
		"bad schema":        {emulator.EventSubscription{Name: "a", Endpoint: "http://127.0.0.1:1/", Schema: "Custom"}, "schema"},
		"bad type":          {emulator.EventSubscription{Name: "a", Endpoint: "http://127.0.0.1:1/", EventTypes: []string{"Microsoft.Storage.BlobCreated"}}, "eventTypes[0]"},
		"bad attempts":      {emulator.EventSubscription{Name: "a", Endpoint: "http://127.0.0.1:1/", MaxAttempts: 11}, "maxAttempts"},
		"bad header":        {emulator.EventSubscription{Name: "a", Endpoint: "http://127.0.0.1:1/", Secret: "s", SecretHeader: "X Key"}, "secretHeader"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := emu.AddEventSubscription(ctx, tc.sub)
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
	g := NewWithT(t)
	_, err := emulator.ParseConfig([]byte("eventSubscriptions:\n- {name: a, endpoint: 'http://127.0.0.1:1/'}\n- {name: A, endpoint: 'http://127.0.0.1:2/'}\n"))
	g.Expect(err).To(MatchError(ContainSubstring("eventSubscriptions[1].name")))
	cfg, err := emulator.ParseConfig([]byte("eventSubscriptions:\n- {name: a, endpoint: 'http://[::1]:1/', schema: CloudEvents, retryDelay: 1s}\n"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg.EventSubscriptions[0].MaxAttempts).To(Equal(3))
}

func TestEventsAdminAPI(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	ac := admin.NewClient(os.Getenv("KV_EMULATOR_ADMIN"))
	rcv := newReceiver(t)
	vaultName := uniqueName("ea")
	g.Expect(ac.AddVault(ctx, admin.Vault{Name: vaultName})).To(Succeed())
	name := uniqueName("sub")
	st, err := ac.AddEventSubscription(ctx, admin.EventSubscription{Name: name, Endpoint: rcv.URL, Vaults: []string{vaultName}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.State).To(Equal(admin.SubscriptionValidated))
	_, err = ac.AddEventSubscription(ctx, admin.EventSubscription{Name: name, Endpoint: rcv.URL})
	g.Expect(err).To(MatchError(ContainSubstring("already exists")))

	_, err = ac.SetSecret(ctx, vaultName, "db", admin.SecretVersion{Value: "one"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ac.PublishEvent(ctx, vaultName, admin.PublishEvent{Type: admin.EventSecretExpired, Object: "db"})).To(Succeed())
	g.Eventually(func() (admin.EventSubscriptionStatus, error) {
		list, err := ac.EventSubscriptions(ctx)
		for _, s := range list {
			if s.Name == name {
				return s, err
			}
		}
		return admin.EventSubscriptionStatus{}, err
	}, 10*time.Second, 20*time.Millisecond).Should(And(HaveField("Delivered", 2), HaveField("Pending", 0)))
	g.Expect(ac.RemoveEventSubscription(ctx, name)).To(Succeed())
	var apiErr *admin.APIError
	err = ac.RemoveEventSubscription(ctx, name)
	g.Expect(err).To(BeAssignableToTypeOf(apiErr))
	g.Expect(err.(*admin.APIError).Status).To(Equal(http.StatusNotFound)) //nolint:errorlint // the test asserts just above that the concrete type comes back unwrapped
}
