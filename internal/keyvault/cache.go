package keyvault

import (
	"container/list"
	"reflect"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// DefaultClientCacheSize bounds a ClientCache.
const DefaultClientCacheSize = 1000

// ClientCache keeps Clients by (identity key, vault URL), least recently used first out, so that
// reconciles reuse clients (and with them the SDK's challenge state and token caches). A cached
// client built with another credential object than the one passed to Get is replaced.
type ClientCache struct {
	opts *Options
	max  int

	mu    sync.Mutex
	order *list.List // front = most recently used
	items map[clientKey]*list.Element
}

type clientKey struct{ identity, vault string }

type clientEntry struct {
	key    clientKey
	cred   azcore.TokenCredential
	client *Client
}

// NewClientCache returns a cache of at most max clients (DefaultClientCacheSize when max <= 0),
// all built with opts.
func NewClientCache(max int, opts *Options) *ClientCache {
	if max <= 0 {
		max = DefaultClientCacheSize
	}
	return &ClientCache{opts: opts, max: max, order: list.New(), items: map[clientKey]*list.Element{}}
}

// Get returns the cached client for (identityKey, vaultURL), building one with cred if there is
// none or if the cached one was built with a different credential.
func (c *ClientCache) Get(vaultURL string, cred azcore.TokenCredential, identityKey string) (*Client, error) {
	normalized, _, err := NormalizeVaultURL(vaultURL)
	if err != nil {
		return nil, err
	}
	key := clientKey{identity: identityKey, vault: normalized}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*clientEntry)
		if sameCredential(e.cred, cred) {
			c.order.MoveToFront(el)
			return e.client, nil
		}
		c.order.Remove(el)
		delete(c.items, key)
	}
	client, err := NewClient(normalized, cred, identityKey, c.opts)
	if err != nil {
		return nil, err
	}
	c.items[key] = c.order.PushFront(&clientEntry{key: key, cred: cred, client: client})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*clientEntry).key)
	}
	return client, nil
}

// DropIdentities removes the clients whose identity key matches.
func (c *ClientCache) DropIdentities(match func(identityKey string) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for key, el := range c.items {
		if match(key.identity) {
			c.order.Remove(el)
			delete(c.items, key)
			n++
		}
	}
	return n
}

// Len returns the number of cached clients.
func (c *ClientCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// sameCredential compares credentials by identity without panicking on uncomparable types.
func sameCredential(a, b azcore.TokenCredential) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb || !ta.Comparable() {
		return false
	}
	return a == b
}
