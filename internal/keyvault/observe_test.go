package keyvault

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/keyvault/keyvaulttest"
	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

type subjectKey struct{}

// contextObserver records kvtypes.RequestInfo with the subject found in the context.
type contextObserver struct {
	mu    sync.Mutex
	infos []kvtypes.RequestInfo
	subs  []string
	plain int
}

func (o *contextObserver) ObserveRequest(string, string, int, time.Duration, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.plain++
}

func (o *contextObserver) ObserveRequestContext(ctx context.Context, info kvtypes.RequestInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, _ := ctx.Value(subjectKey{}).(string)
	info.Duration = 0
	o.infos = append(o.infos, info)
	o.subs = append(o.subs, s)
}

func TestContextObserver(t *testing.T) {
	g := NewWithT(t)
	srv := keyvaulttest.NewServer(vaultHandler(t))
	defer srv.Close()
	co := &contextObserver{}
	plain := &recordingObserver{}
	opts := testOptions(srv)
	opts.Observer = Observers(nil, co, plain)
	c := newTestClient(t, srv, "id-a", opts)
	ctx := context.WithValue(context.Background(), subjectKey{}, "ns/app")

	_, err := c.GetSecret(ctx, "db", "")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetSecret(ctx, "db", "ffffffffffffffffffffffffffffffff")
	g.Expect(err).To(MatchError(ErrNotFound))
	_, err = c.GetKey(ctx, "signing", "")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetCertificateSecret(ctx, "tls", "")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.ListSecrets(ctx)
	g.Expect(err).NotTo(HaveOccurred())

	host := strings.TrimPrefix(srv.URL, "https://")
	want := []kvtypes.RequestInfo{
		{VaultHost: host, Operation: "GetSecret", ObjectType: kvtypes.TypeSecret, Object: "db", StatusCode: 401, Challenge: true},
		{VaultHost: host, Operation: "GetSecret", ObjectType: kvtypes.TypeSecret, Object: "db", Version: version1, StatusCode: 200},
		{VaultHost: host, Operation: "GetSecret", ObjectType: kvtypes.TypeSecret, Object: "db", Version: "ffffffffffffffffffffffffffffffff", StatusCode: 404},
		{VaultHost: host, Operation: "GetKey", ObjectType: kvtypes.TypeKey, Object: "signing", StatusCode: 401, Challenge: true},
		{VaultHost: host, Operation: "GetKey", ObjectType: kvtypes.TypeKey, Object: "signing", Version: version1, StatusCode: 200},
		{VaultHost: host, Operation: "GetCertificateSecret", ObjectType: kvtypes.TypeCertificate, Object: "tls", Version: version1, StatusCode: 200},
	}
	co.mu.Lock()
	got, subs, plainCalls := co.infos, co.subs, co.plain
	co.mu.Unlock()
	g.Expect(plainCalls).To(BeZero(), "a ContextObserver is called instead of ObserveRequest")
	g.Expect(len(got)).To(BeNumerically(">", len(want)))
	g.Expect(got[:len(want)]).To(Equal(want))
	for _, info := range got[len(want):] {
		g.Expect(info).To(And(HaveField("Operation", "ListSecrets"), HaveField("Object", ""), HaveField("StatusCode", 200)))
	}
	for _, s := range subs {
		g.Expect(s).To(Equal("ns/app"))
	}
	// The plain observer behind Observers still sees every request.
	g.Expect(plain.all()).To(HaveLen(len(got)))
}

func TestObserversFolds(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Observers()).To(BeNil())
	g.Expect(Observers(nil, nil)).To(BeNil())
	o := &recordingObserver{}
	g.Expect(Observers(nil, o)).To(BeIdenticalTo(o))
}

func TestObjectFromPath(t *testing.T) {
	g := NewWithT(t)
	for path, want := range map[string][2]string{
		"/secrets/db/":         {"db", ""},
		"/secrets/db":          {"db", ""},
		"/secrets/db/abc":      {"db", "abc"},
		"/keys/k/v1":           {"k", "v1"},
		"/secrets/db/versions": {"db", ""},
		"/secrets":             {"", ""},
		"/deletedsecrets/db":   {"", ""},
		"/a/b/c/d":             {"", ""},
	} {
		n, v := objectFromPath(path)
		g.Expect([2]string{n, v}).To(Equal(want), path)
	}
}
