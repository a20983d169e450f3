package credentials

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// DefaultCacheSize bounds a Cache.
const DefaultCacheSize = 1000

// Key identifies one credential. Two specs that yield the same Key share one credential object and
// with it the Entra token cache.
type Key struct {
	// Method is the authentication method, e.g. MethodWorkloadIdentity.
	Method         string
	TenantID       string
	ClientID       string
	Namespace      string
	ServiceAccount string
	// Secrets are the names of the Secrets (in Namespace) the credential material came from,
	// comma-separated and sorted.
	Secrets string
	// ResourceID selects a user-assigned managed identity by resource id.
	ResourceID    string
	AuthorityHost string
	// Fingerprint distinguishes versions of secret material (a client secret or certificate read
	// from a Kubernetes Secret) so that a rotated secret gets a new credential. See Fingerprint.
	Fingerprint string
}

// String renders the key unambiguously; use it as the keyvault identity key.
func (k Key) String() string {
	parts := []string{k.Method, k.TenantID, k.ClientID, k.Namespace, k.ServiceAccount, k.Secrets, k.ResourceID, k.AuthorityHost, k.Fingerprint}
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// Fingerprint returns a short SHA-256 digest of secret material for Key.Fingerprint. The material
// itself is never stored in a key.
func Fingerprint(material ...[]byte) string {
	h := sha256.New()
	for _, m := range material {
		var n [8]byte
		l := uint64(len(m))
		for i := range n {
			n[i] = byte(l >> (8 * i)) //nolint:gosec // G115: taking the low byte is the point (little-endian length prefix)
		}
		h.Write(n[:])
		h.Write(m)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Cache is a bounded, least-recently-used map from Key to credential. It is safe for concurrent use.
type Cache struct {
	max   int
	mu    sync.Mutex
	order *list.List // front = most recently used
	items map[Key]*list.Element
	// observer, when set, sees the token requests of the credentials (see WithObserver).
	observer TokenObserver
}

type cacheEntry struct {
	key  Key
	cred azcore.TokenCredential
}

// NewCache returns a cache of at most max credentials (DefaultCacheSize when max <= 0).
func NewCache(max int) *Cache {
	if max <= 0 {
		max = DefaultCacheSize
	}
	return &Cache{max: max, order: list.New(), items: map[Key]*list.Element{}}
}

// GetOrCreate returns the credential cached under key, or creates, caches and returns one.
// A create error is returned and nothing is cached. The credential returned serializes its
// token requests: callers that arrive while a token is being fetched wait for it and then find
// it in the credential's own token cache, instead of fetching another one.
func (c *Cache) GetOrCreate(key Key, create func() (azcore.TokenCredential, error)) (azcore.TokenCredential, error) {
	c.mu.Lock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		cred := el.Value.(*cacheEntry).cred
		c.mu.Unlock()
		return cred, nil
	}
	c.mu.Unlock()

	inner, err := create()
	if err != nil {
		return nil, err
	}
	cred := &serialCredential{inner: inner, sem: make(chan struct{}, 1), method: key.AuthMethod(), observer: c.observer}

	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok { // another caller won the race: keep one credential
		c.order.MoveToFront(el)
		return el.Value.(*cacheEntry).cred, nil
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, cred: cred})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry).key)
	}
	return cred, nil
}

// Drop removes key and reports whether it was cached.
func (c *Cache) Drop(key Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if ok {
		c.order.Remove(el)
		delete(c.items, key)
	}
	return ok
}

// DropNamespace removes every credential of namespace ns and returns how many there were.
func (c *Cache) DropNamespace(ns string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for key, el := range c.items {
		if key.Namespace == ns {
			c.order.Remove(el)
			delete(c.items, key)
			n++
		}
	}
	return n
}

// DropWhere removes every credential whose key matches and returns their keys.
func (c *Cache) DropWhere(match func(Key) bool) []Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	var dropped []Key
	for key, el := range c.items {
		if match(key) {
			c.order.Remove(el)
			delete(c.items, key)
			dropped = append(dropped, key)
		}
	}
	return dropped
}

// UsesSecret reports whether the credential was built from the Secret namespace/name.
func (k Key) UsesSecret(namespace, name string) bool {
	if k.Namespace != namespace || k.Secrets == "" {
		return false
	}
	for _, s := range strings.Split(k.Secrets, ",") {
		if s == name {
			return true
		}
	}
	return false
}

// Len returns the number of cached credentials.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// serialCredential lets one GetToken call at a time reach the credential it wraps. Every
// credential of this package caches tokens (azidentity's MSAL caches, or cachingCredential), so
// concurrent reconciles of one identity cost one token request, not one each. It reports the
// token requests to observer (see observe).
type serialCredential struct {
	inner azcore.TokenCredential
	sem   chan struct{}

	method   string
	observer TokenObserver
	// served holds a digest of the last token handed out per request (guarded by sem).
	served map[string][sha256.Size]byte
}

// GetToken waits for a token request of another caller to finish (or ctx to end), then asks the
// wrapped credential, which answers from its cache when it can.
func (c *serialCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return azcore.AccessToken{}, ctx.Err()
	}
	defer func() { <-c.sem }()
	tok, err := c.inner.GetToken(ctx, opts)
	c.observe(ctx, opts, tok, err)
	return tok, err
}
