package inprocess

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Request classifies one request sent to the kube-apiserver.
type Request struct {
	// Verb is get, list, watch, create, update, patch, delete or deletecollection.
	Verb string
	// Resource is the resource, with "/subresource" when there is one
	// (secrets, vaultsecrets/status, serviceaccounts/token, events).
	Resource string
}

// IsWrite reports whether the request changes state.
func (r Request) IsWrite() bool {
	switch r.Verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

func (r Request) String() string { return r.Verb + " " + r.Resource }

// APICounter is an http.RoundTripper wrapper that counts requests by verb
// and resource. Install it with rest.Config.Wrap (see Wrap).
type APICounter struct {
	mu     sync.Mutex
	counts map[Request]int
}

// NewAPICounter returns an empty counter.
func NewAPICounter() *APICounter { return &APICounter{counts: map[Request]int{}} }

// Wrap returns a function for rest.Config.Wrap.
func (c *APICounter) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		c.add(Classify(req))
		return rt.RoundTrip(req)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (c *APICounter) add(r Request) {
	c.mu.Lock()
	c.counts[r]++
	c.mu.Unlock()
}

// Snapshot returns a copy of the counts.
func (c *APICounter) Snapshot() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// Counts are request counts by kind.
type Counts map[Request]int

// Sub returns c minus before.
func (c Counts) Sub(before Counts) Counts {
	out := Counts{}
	for k, v := range c {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Get returns the count of verb on resource.
func (c Counts) Get(verb, resource string) int { return c[Request{Verb: verb, Resource: resource}] }

// Writes returns the number of writes to resource ("" for all resources).
func (c Counts) Writes(resource string) int {
	n := 0
	for k, v := range c {
		if k.IsWrite() && (resource == "" || k.Resource == resource) {
			n += v
		}
	}
	return n
}

// Reads returns the number of get and list requests (watches excluded) to
// resource ("" for all resources).
func (c Counts) Reads(resource string) int {
	n := 0
	for k, v := range c {
		if (k.Verb == "get" || k.Verb == "list") && (resource == "" || k.Resource == resource) {
			n += v
		}
	}
	return n
}

// Verb returns the number of requests with verb, on any resource.
func (c Counts) Verb(verb string) int {
	n := 0
	for k, v := range c {
		if k.Verb == verb {
			n += v
		}
	}
	return n
}

// Total returns the number of requests, watches excluded.
func (c Counts) Total() int {
	n := 0
	for k, v := range c {
		if k.Verb != "watch" {
			n += v
		}
	}
	return n
}

func (c Counts) String() string {
	keys := slices.SortedFunc(maps.Keys(c), func(a, b Request) int { return strings.Compare(a.String(), b.String()) })
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, c[k])
	}
	return strings.TrimSpace(b.String())
}

// Classify names a kube-apiserver request's verb and resource from its
// method and path, like the apiserver's request info does for the common
// cases (/api/v1/..., /apis/group/version/..., namespaced or not).
func Classify(r *http.Request) Request {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		segs = segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		segs = segs[3:]
	default:
		return Request{Verb: strings.ToLower(r.Method), Resource: "nonresource:" + r.URL.Path}
	}
	if len(segs) >= 2 && segs[0] == "namespaces" && len(segs) > 2 {
		segs = segs[2:]
	}
	if len(segs) == 0 {
		return Request{Verb: strings.ToLower(r.Method), Resource: "discovery"}
	}
	res := segs[0]
	named := len(segs) >= 2
	if len(segs) >= 3 {
		res += "/" + segs[2]
	}
	verb := ""
	switch r.Method {
	case http.MethodGet:
		switch {
		case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
		if !named {
			verb = "deletecollection"
		}
	default:
		verb = strings.ToLower(r.Method)
	}
	return Request{Verb: verb, Resource: res}
}
