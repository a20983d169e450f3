// Package metricsauth guards the metrics endpoint: a request needs a bearer token that the
// kube-apiserver accepts (TokenReview) whose user may GET the path (SubjectAccessReview of a
// non-resource URL), as controller-runtime's filters.WithAuthenticationAndAuthorization does.
// That filter builds on k8s.io/apiserver, which links CEL, gRPC and OpenTelemetry into the
// manager (11 MB of a 66 MB binary, about 12 MiB of resident memory; docs/benchmarks.md); this
// one needs only the two typed clients.
package metricsauth

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1 "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// How long answers are remembered (controller-runtime's values), and how many.
const (
	authnTTL       = time.Minute
	authnDeniedTTL = 10 * time.Second
	allowTTL       = 5 * time.Minute
	denyTTL        = 30 * time.Second
	reviewTimeout  = 10 * time.Second
	maxRemembered  = 1024
)

// Reviewer asks the kube-apiserver about tokens and access; the typed clients implement it.
type Reviewer struct {
	Tokens authenticationv1.TokenReviewInterface
	Access authorizationv1.SubjectAccessReviewInterface
}

// New returns the filter for a manager's metrics server.
func New(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	authn, err := authenticationv1.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	authz, err := authorizationv1.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	return Filter(Reviewer{Tokens: authn.TokenReviews(), Access: authz.SubjectAccessReviews()}), nil
}

// Filter returns a metrics server filter that asks r.
func Filter(r Reviewer) metricsserver.Filter {
	g := newGuard(r, time.Now)
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			g.serve(log, next, w, req)
		}), nil
	}
}

func newGuard(r Reviewer, now func() time.Time) *guard {
	return &guard{r: r, users: map[[32]byte]userEntry{}, decisions: map[string]decisionEntry{}, now: now}
}

type userEntry struct {
	user    *authnv1.UserInfo // nil: the token was refused
	expires time.Time
}

type decisionEntry struct {
	allowed bool
	expires time.Time
}

type guard struct {
	r   Reviewer
	now func() time.Time

	mu        sync.Mutex
	users     map[[32]byte]userEntry // by SHA-256 of the token: no token is kept
	decisions map[string]decisionEntry
}

func (g *guard) serve(log logr.Logger, next http.Handler, w http.ResponseWriter, req *http.Request) {
	token := bearer(req)
	if token == "" {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	user, err := g.authenticate(req.Context(), token)
	if err != nil {
		log.Error(err, "Authentication failed")
		http.Error(w, "Authentication failed", http.StatusInternalServerError)
		return
	}
	if user == nil {
		log.V(4).Info("Authentication failed")
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	verb := strings.ToLower(req.Method)
	allowed, err := g.authorize(req.Context(), user, verb, req.URL.Path)
	if err != nil {
		log.Error(err, "Authorization failed", "user", user.Username)
		http.Error(w, "Authorization for user "+user.Username+" failed", http.StatusInternalServerError)
		return
	}
	if !allowed {
		log.V(4).Info("Authorization denied", "user", user.Username, "verb", verb, "path", req.URL.Path)
		http.Error(w, "Authorization denied for user "+user.Username, http.StatusForbidden)
		return
	}
	next.ServeHTTP(w, req)
}

// bearer returns the request's bearer token, "" when there is none.
func bearer(req *http.Request) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(req.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// authenticate returns the token's user, nil when the kube-apiserver refuses the token.
func (g *guard) authenticate(ctx context.Context, token string) (*authnv1.UserInfo, error) {
	key := sha256.Sum256([]byte(token))
	now := g.now()
	g.mu.Lock()
	e, ok := g.users[key]
	g.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.user, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	res, err := g.r.Tokens.Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	e = userEntry{expires: now.Add(authnDeniedTTL)}
	if res.Status.Authenticated && res.Status.Error == "" {
		u := res.Status.User
		e = userEntry{user: &u, expires: now.Add(authnTTL)}
	}
	g.mu.Lock()
	if len(g.users) >= maxRemembered {
		clear(g.users)
	}
	g.users[key] = e
	g.mu.Unlock()
	return e.user, nil
}

// authorize reports whether user may use verb on the non-resource path.
func (g *guard) authorize(ctx context.Context, user *authnv1.UserInfo, verb, path string) (bool, error) {
	key := decisionKey(user, verb, path)
	now := g.now()
	g.mu.Lock()
	e, ok := g.decisions[key]
	g.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.allowed, nil
	}
	extra := make(map[string]authzv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	res, err := g.r.Access.Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra,
		NonResourceAttributes: &authzv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	e = decisionEntry{allowed: res.Status.Allowed && !res.Status.Denied, expires: now.Add(denyTTL)}
	if e.allowed {
		e.expires = now.Add(allowTTL)
	}
	g.mu.Lock()
	if len(g.decisions) >= maxRemembered {
		clear(g.decisions)
	}
	g.decisions[key] = e
	g.mu.Unlock()
	return e.allowed, nil
}

// decisionKey identifies a question to the authorizer: the whole user, the verb and the path.
// Every string is written with its length in front, so no choice of user name, group, extra
// value or request path (a path may hold any byte, %00 included) can make two different
// questions share a key.
func decisionKey(u *authnv1.UserInfo, verb, path string) string {
	h := sha256.New()
	field := func(s string) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	for _, s := range []string{u.Username, u.UID, verb, path} {
		field(s)
	}
	groups := slices.Clone(u.Groups)
	slices.Sort(groups)
	field(strconv.Itoa(len(groups)))
	for _, s := range groups {
		field(s)
	}
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	field(strconv.Itoa(len(keys)))
	for _, k := range keys {
		field(k)
		field(strconv.Itoa(len(u.Extra[k])))
		for _, v := range u.Extra[k] {
			field(v)
		}
	}
	return string(h.Sum(nil))
}
