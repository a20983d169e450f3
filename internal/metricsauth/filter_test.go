package metricsauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

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
