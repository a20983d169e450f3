package metricsauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type fakeTokens struct {
	calls atomic.Int64
	users map[string]string // token -> user name
	err   error
}

func (f *fakeTokens) Create(_ context.Context, tr *authnv1.TokenReview, _ metav1.CreateOptions) (*authnv1.TokenReview, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	out := tr.DeepCopy()
	if name, ok := f.users[tr.Spec.Token]; ok {
		out.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: name, Groups: []string{"scrapers"}}}
	}
	return out, nil
}

type fakeAccess struct {
	calls   atomic.Int64
	allowed map[string]bool // user name -> may GET /metrics
	last    *authzv1.SubjectAccessReview
}

func (f *fakeAccess) Create(_ context.Context, sar *authzv1.SubjectAccessReview, _ metav1.CreateOptions) (*authzv1.SubjectAccessReview, error) {
	f.calls.Add(1)
	f.last = sar.DeepCopy()
	out := sar.DeepCopy()
	a := sar.Spec.NonResourceAttributes
	out.Status.Allowed = f.allowed[sar.Spec.User] && a != nil && a.Path == "/metrics" && a.Verb == "get"
	return out, nil
}

func TestFilterAdmitsOnlyAuthorizedTokens(t *testing.T) {
	g := NewWithT(t)
	tokens := &fakeTokens{users: map[string]string{"good": "prometheus", "nobody-token": "nobody"}}
	access := &fakeAccess{allowed: map[string]bool{"prometheus": true}}
	served := 0
	h, err := Filter(Reviewer{Tokens: tokens, Access: access})(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served++
		_, _ = w.Write([]byte("metrics"))
	}))
	g.Expect(err).NotTo(HaveOccurred())
	status := func(method, path, auth string) int {
		req := httptest.NewRequest(method, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}

	g.Expect(status("GET", "/metrics", "")).To(Equal(http.StatusUnauthorized))
	g.Expect(status("GET", "/metrics", "Basic dXNlcjpwYXNz")).To(Equal(http.StatusUnauthorized))
	g.Expect(status("GET", "/metrics", "Bearer wrong")).To(Equal(http.StatusUnauthorized))
	g.Expect(status("GET", "/metrics", "Bearer nobody-token")).To(Equal(http.StatusForbidden))
	g.Expect(status("POST", "/metrics", "Bearer good")).To(Equal(http.StatusForbidden), "the verb is the method's")
	g.Expect(served).To(BeZero())
	g.Expect(status("GET", "/metrics", "bearer good")).To(Equal(http.StatusOK))
	g.Expect(served).To(Equal(1))
	g.Expect(access.last.Spec.User).To(Equal("prometheus"))
	g.Expect(access.last.Spec.Groups).To(Equal([]string{"scrapers"}))

	// Answers are remembered: scrapes cost no review while they last.
	tr, sar := tokens.calls.Load(), access.calls.Load()
	for range 5 {
		g.Expect(status("GET", "/metrics", "Bearer good")).To(Equal(http.StatusOK))
		g.Expect(status("GET", "/metrics", "Bearer wrong")).To(Equal(http.StatusUnauthorized))
	}
	g.Expect(tokens.calls.Load()).To(Equal(tr))
	g.Expect(access.calls.Load()).To(Equal(sar))
}

func TestFilterFailsClosedWhenTheAPIServerFails(t *testing.T) {
	g := NewWithT(t)
	tokens := &fakeTokens{err: errors.New("connection refused")}
	h, err := Filter(Reviewer{Tokens: tokens, Access: &fakeAccess{}})(logr.Discard(), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Fatal("served without a review")
	}))
	g.Expect(err).NotTo(HaveOccurred())
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Authorization", "Bearer good")
	for range 2 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		g.Expect(rec.Code).To(Equal(http.StatusInternalServerError))
		g.Expect(rec.Body.String()).NotTo(ContainSubstring("good"), "the token is never echoed")
	}
	g.Expect(tokens.calls.Load()).To(Equal(int64(2)), "errors are not remembered")
}

// TestDecisionKeyTellsQuestionsApart: the authorizer's answers are remembered by key, so two
// questions that share a key would let one user's allowed scrape answer another's. The pairs
// below would collide under a key that joined the fields with separator bytes.
func TestDecisionKeyTellsQuestionsApart(t *testing.T) {
	g := NewWithT(t)
	user := func(name, uid string, groups []string, extra map[string]authnv1.ExtraValue) *authnv1.UserInfo {
		return &authnv1.UserInfo{Username: name, UID: uid, Groups: groups, Extra: extra}
	}
	type question struct {
		u          *authnv1.UserInfo
		verb, path string
	}
	pairs := [][2]question{
		{{user("alice", "", []string{"admins"}, nil), "get", "/metrics"},
			{user("alice", "", nil, nil), "get", "/metrics\x00admins\x01"}},
		{{user("a\x00b", "", nil, nil), "get", "/metrics"},
			{user("a", "b", nil, nil), "get", "/metrics"}},
		{{user("alice", "", []string{"a", "b"}, nil), "get", "/metrics"},
			{user("alice", "", []string{"a\x01b"}, nil), "get", "/metrics"}},
		{{user("alice", "", nil, map[string]authnv1.ExtraValue{"k": {"v1", "v2"}}), "get", "/metrics"},
			{user("alice", "", nil, map[string]authnv1.ExtraValue{"k": {"v1\x03v2"}}), "get", "/metrics"}},
		{{user("alice", "", []string{"k"}, nil), "get", "/metrics"},
			{user("alice", "", nil, map[string]authnv1.ExtraValue{"k": nil}), "get", "/metrics"}},
		{{user("alice", "", nil, nil), "get", "/metrics"},
			{user("alice", "", nil, nil), "post", "/metrics"}},
	}
	for i, p := range pairs {
		a, b := decisionKey(p[0].u, p[0].verb, p[0].path), decisionKey(p[1].u, p[1].verb, p[1].path)
		g.Expect(a).NotTo(Equal(b), "pair %d", i)
	}
	// The order of groups and of extra keys does not matter.
	g.Expect(decisionKey(user("alice", "", []string{"a", "b"}, map[string]authnv1.ExtraValue{"x": {"1"}, "y": {"2"}}), "get", "/metrics")).
		To(Equal(decisionKey(user("alice", "", []string{"b", "a"}, map[string]authnv1.ExtraValue{"y": {"2"}, "x": {"1"}}), "get", "/metrics")))
}

// TestRememberedAnswersExpire: a refused token is reviewed again after 10 s, an accepted one
// after a minute; a refusal of access is asked again after 30 s and a grant after 5 minutes, so
// a revoked permission stops scrapes within that time.
func TestRememberedAnswersExpire(t *testing.T) {
	g := NewWithT(t)
	tokens := &fakeTokens{users: map[string]string{"good": "prometheus"}}
	access := &fakeAccess{allowed: map[string]bool{"prometheus": true}}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	guard := newGuard(Reviewer{Tokens: tokens, Access: access}, func() time.Time { return now })
	ctx := context.Background()

	u, err := guard.authenticate(ctx, "late")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(u).To(BeNil())
	tokens.users["late"] = "prometheus" // the token becomes valid (say, its clock skew ends)
	now = now.Add(authnDeniedTTL - time.Second)
	u, _ = guard.authenticate(ctx, "late")
	g.Expect(u).To(BeNil(), "a refusal is remembered for %s", authnDeniedTTL)
	now = now.Add(time.Second)
	u, _ = guard.authenticate(ctx, "late")
	g.Expect(u).NotTo(BeNil(), "and asked again after it")

	delete(tokens.users, "late") // the token is revoked
	now = now.Add(authnTTL - time.Second)
	u, _ = guard.authenticate(ctx, "late")
	g.Expect(u).NotTo(BeNil(), "an accepted token is remembered for %s", authnTTL)
	now = now.Add(time.Second)
	u, _ = guard.authenticate(ctx, "late")
	g.Expect(u).To(BeNil(), "and reviewed again after it")

	user := &authnv1.UserInfo{Username: "prometheus"}
	ok, err := guard.authorize(ctx, user, "get", "/metrics")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeTrue())
	access.allowed["prometheus"] = false // the ClusterRoleBinding is removed
	now = now.Add(allowTTL - time.Second)
	ok, _ = guard.authorize(ctx, user, "get", "/metrics")
	g.Expect(ok).To(BeTrue(), "a grant is remembered for %s", allowTTL)
	now = now.Add(time.Second)
	ok, _ = guard.authorize(ctx, user, "get", "/metrics")
	g.Expect(ok).To(BeFalse(), "and asked again after it")
	access.allowed["prometheus"] = true
	now = now.Add(denyTTL - time.Second)
	ok, _ = guard.authorize(ctx, user, "get", "/metrics")
	g.Expect(ok).To(BeFalse(), "a refusal is remembered for %s", denyTTL)
	now = now.Add(time.Second)
	ok, _ = guard.authorize(ctx, user, "get", "/metrics")
	g.Expect(ok).To(BeTrue(), "and asked again after it")

	// Another user never gets prometheus's remembered grant.
	ok, _ = guard.authorize(ctx, &authnv1.UserInfo{Username: "nobody"}, "get", "/metrics")
	g.Expect(ok).To(BeFalse())
}
