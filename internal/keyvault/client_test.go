package keyvault

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/keyvault/keyvaulttest"
)

const version1 = "0123456789abcdef0123456789abcdef"

// vaultHandler serves a few objects like Key Vault does.
func vaultHandler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /secrets/db/{version...}", func(w http.ResponseWriter, r *http.Request) {
		v := r.PathValue("version")
		if v == "" {
			v = version1
		}
		if v != version1 {
			keyvaulttest.WriteError(w, 404, "SecretNotFound", "", "A secret with (name/id) db/"+v+" was not found in this key vault.")
			return
		}
		body := keyvaulttest.SecretJSON("https://"+r.Host, "db", v, secretValue, "text/plain", true, false)
		body["attributes"].(map[string]any)["exp"] = 1893456000
		body["attributes"].(map[string]any)["nbf"] = 1767225600
		keyvaulttest.WriteJSON(w, 200, body)
	})
	mux.HandleFunc("GET /secrets/tls/{version...}", func(w http.ResponseWriter, r *http.Request) {
		keyvaulttest.WriteJSON(w, 200, keyvaulttest.SecretJSON("https://"+r.Host, "tls", version1,
			base64.StdEncoding.EncodeToString([]byte("not really a pfx")), "application/x-pkcs12", true, true))
	})
	mux.HandleFunc("GET /keys/signing/{version...}", func(w http.ResponseWriter, r *http.Request) {
		keyvaulttest.WriteJSON(w, 200, map[string]any{
			"key": map[string]any{
				"kid": "https://" + r.Host + "/keys/signing/" + version1, "kty": "EC", "crv": "P-256",
				"key_ops": []string{"sign", "verify"},
				"x":       base64.RawURLEncoding.EncodeToString([]byte{1, 2, 3}),
				"y":       base64.RawURLEncoding.EncodeToString([]byte{4, 5, 6}),
			},
			"attributes": map[string]any{"enabled": false, "exp": 1893456000, "created": 1767225600, "updated": 1767225600},
			"tags":       map[string]string{"use": "jwt"},
		})
	})
	mux.HandleFunc("GET /secrets", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("api-version") == "" {
			t.Errorf("list without api-version: %s", r.URL)
		}
		page := 0
		fmt.Sscan(r.URL.Query().Get("$skiptoken"), &page)
		var items []map[string]any
		for i := 0; i < 3; i++ {
			n := page*3 + i
			items = append(items, map[string]any{
				"id":         fmt.Sprintf("https://%s/secrets/s%d", r.Host, n),
				"attributes": map[string]any{"enabled": n%2 == 0, "updated": 1767225600},
				"tags":       map[string]string{"n": fmt.Sprint(n)},
				"managed":    n == 4,
			})
		}
		var next any
		if page < 2 {
			next = fmt.Sprintf("https://%s/secrets?api-version=%s&$skiptoken=%d&maxresults=3", r.Host, r.URL.Query().Get("api-version"), page+1)
		}
		keyvaulttest.WriteJSON(w, 200, map[string]any{"value": items, "nextLink": next})
	})
	return mux
}

func TestGetSecretConverts(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(vaultHandler(t))
	defer srv.Close()
	c := newTestClient(t, srv, "id-a", nil)

	s, err := c.GetSecret(context.Background(), "db", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Name).To(Equal("db"))
	g.Expect(s.Version).To(Equal(version1))
	g.Expect(s.ID).To(Equal(srv.URL + "/secrets/db/" + version1))
	g.Expect(s.Value).To(Equal(secretValue))
	g.Expect(s.ContentType).To(Equal("text/plain"))
	g.Expect(s.Tags).To(Equal(map[string]string{"team": "a"}))
	g.Expect(s.Enabled).To(BeTrue())
	g.Expect(s.Managed).To(BeFalse())
	g.Expect(s.Expires).NotTo(BeNil())
	g.Expect(s.Expires.Unix()).To(Equal(int64(1893456000)))
	g.Expect(s.NotBefore.Unix()).To(Equal(int64(1767225600)))
	g.Expect(s.String()).NotTo(ContainSubstring(secretValue))
	g.Expect(fmt.Sprint(s)).NotTo(ContainSubstring(secretValue))

	s, err = c.GetSecret(context.Background(), "db", version1)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Version).To(Equal(version1))
	g.Expect(srv.Count("/secrets/db/")).To(Equal(1))
	g.Expect(srv.Count("/secrets/db/" + version1)).To(Equal(1))

	_, err = c.GetSecret(context.Background(), "db", "ffffffffffffffffffffffffffffffff")
	g.Expect(err).To(MatchError(ErrNotFound))
	g.Expect(err.Error()).To(ContainSubstring(`GetSecret "db" version "ffffffffffffffffffffffffffffffff" on 127.0.0.1`))
}

func TestGetCertificateSecretAndKey(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(vaultHandler(t))
	defer srv.Close()
	c := newTestClient(t, srv, "id-a", nil)

	cert, err := c.GetCertificateSecret(context.Background(), "tls", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cert.Managed).To(BeTrue())
	g.Expect(cert.ContentType).To(Equal("application/x-pkcs12"))
	g.Expect(cert.KeyID).To(Equal(srv.URL + "/keys/tls/" + version1))

	k, err := c.GetKey(context.Background(), "signing", "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k.Name).To(Equal("signing"))
	g.Expect(k.Version).To(Equal(version1))
	g.Expect(k.Kty).To(Equal("EC"))
	g.Expect(k.Crv).To(Equal("P-256"))
	g.Expect(k.X).To(Equal([]byte{1, 2, 3}))
	g.Expect(k.Y).To(Equal([]byte{4, 5, 6}))
	g.Expect(k.N).To(BeNil())
	g.Expect(k.KeyOps).To(Equal([]string{"sign", "verify"}))
	g.Expect(k.Enabled).To(BeFalse())
	g.Expect(k.Expires.Unix()).To(Equal(int64(1893456000)))
	g.Expect(k.Tags).To(HaveKeyWithValue("use", "jwt"))
}

func TestListSecretsPagesAndBounds(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(vaultHandler(t))
	defer srv.Close()
	c := newTestClient(t, srv, "id-a", nil)

	items, err := c.ListSecrets(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(items).To(HaveLen(9))
	for i, it := range items {
		g.Expect(it.Name).To(Equal(fmt.Sprintf("s%d", i)))
		g.Expect(it.Version).To(BeEmpty())
		g.Expect(it.Enabled).To(Equal(i%2 == 0))
		g.Expect(it.Managed).To(Equal(i == 4))
		g.Expect(it.Tags).To(HaveKeyWithValue("n", fmt.Sprint(i)))
		g.Expect(it.Updated).NotTo(BeNil())
	}
	g.Expect(srv.Count("/secrets")).To(Equal(3))

	opts := testOptions(srv)
	opts.MaxListItems = 5
	small := newTestClient(t, srv, "id-a", opts)
	_, err = small.ListSecrets(context.Background())
	g.Expect(err).To(MatchError(ErrTooMany))
	g.Expect(Reason(err)).To(Equal("TooManySecrets"))
}

type recordedRequest struct {
	host, op string
	status   int
	err      error
}

type recordingObserver struct {
	mu   sync.Mutex
	reqs []recordedRequest
}

func (o *recordingObserver) ObserveRequest(host, op string, status int, dur time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reqs = append(o.reqs, recordedRequest{host, op, status, err})
}

func (o *recordingObserver) all() []recordedRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]recordedRequest(nil), o.reqs...)
}

func TestObserverSeesEveryRequest(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(vaultHandler(t))
	defer srv.Close()
	obs := &recordingObserver{}
	opts := testOptions(srv)
	opts.Observer = obs
	c := newTestClient(t, srv, "id-a", opts)

	_, err := c.GetSecret(context.Background(), "db", "")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetKey(context.Background(), "signing", "")
	g.Expect(err).NotTo(HaveOccurred())
	host := strings.TrimPrefix(srv.URL, "https://")
	g.Expect(obs.all()).To(Equal([]recordedRequest{
		{host, "GetSecret", 401, nil}, // challenge round trip
		{host, "GetSecret", 200, nil},
		{host, "GetKey", 401, nil}, // the keys client has its own challenge state
		{host, "GetKey", 200, nil},
	}))
}

func TestClientCache(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(vaultHandler(t))
	defer srv.Close()
	cache := NewClientCache(2, testOptions(srv))
	credA, credB := &keyvaulttest.Credential{}, &keyvaulttest.Credential{}

	a1, err := cache.Get(srv.URL, credA, "id-a")
	g.Expect(err).NotTo(HaveOccurred())
	a2, err := cache.Get(srv.URL+"/", credA, "id-a")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a2).To(BeIdenticalTo(a1))

	a3, err := cache.Get(srv.URL, credB, "id-a") // the identity's credential was rebuilt
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a3).NotTo(BeIdenticalTo(a1))
	g.Expect(cache.Len()).To(Equal(1))

	b, err := cache.Get(srv.URL, credA, "id-b")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cache.Get(srv.URL, credA, "id-a") // refresh id-a (a3 stays, as credB... is replaced by credA)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cache.Get(srv.URL, credA, "id-c") // evicts the least recently used: id-b
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cache.Len()).To(Equal(2))
	b2, err := cache.Get(srv.URL, credA, "id-b")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b2).NotTo(BeIdenticalTo(b))

	g.Expect(cache.DropIdentities(func(k string) bool { return k == "id-b" })).To(Equal(1))
	g.Expect(cache.Len()).To(Equal(1))
	_, err = cache.Get("http://insecure", credA, "id-a")
	g.Expect(err).To(MatchError(ErrInvalid))
}
