package credentials

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// TokenObserver is told about every Entra ID token request made by a credential of a Cache;
// *metrics.Metrics implements it. method is the authentication method as the API spells it
// (workloadIdentity, servicePrincipal, managedIdentity, operatorIdentity, azureCLI); err nil is
// a token obtained.
type TokenObserver interface {
	ObserveTokenRequest(method string, err error)
}

// WithObserver makes the credentials the cache creates from now on report their token requests
// to o, and returns the cache. Call it before the cache is used.
func (c *Cache) WithObserver(o TokenObserver) *Cache {
	c.observer = o
	return c
}

// AuthMethod returns the key's method as the API spells it (MethodWorkloadIdentity is
// "workloadIdentity").
func (k Key) AuthMethod() string {
	switch k.Method {
	case MethodWorkloadIdentity:
		return "workloadIdentity"
	case MethodServicePrincipal:
		return "servicePrincipal"
	case MethodManagedIdentity:
		return "managedIdentity"
	case MethodOperatorIdentity:
		return "operatorIdentity"
	case MethodAzureCLI:
		return "azureCLI"
	}
	return k.Method
}

// maxServed bounds the token digests a credential remembers (one per scope, tenant and claims
// it was asked for; a Key Vault credential asks for one).
const maxServed = 16

// observe reports one GetToken of the wrapped credential, called with c.sem held. Every
// credential of this package answers from its own token cache when it can, so a GetToken is a
// token request only when it fails or returns a token this credential has not handed out
// before for the same request; a token handed out again is a cache hit and is not reported. A
// caller that gave up (ctx canceled) made no failed request either.
func (c *serialCredential) observe(ctx context.Context, opts policy.TokenRequestOptions, tok azcore.AccessToken, err error) {
	if c.observer == nil {
		return
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return
		}
		c.observer.ObserveTokenRequest(c.method, err)
		return
	}
	// Only a digest of the token is kept, never the token.
	key := strings.Join(opts.Scopes, " ") + "|" + opts.TenantID + "|" + opts.Claims
	digest := sha256.Sum256([]byte(tok.Token))
	if prev, ok := c.served[key]; ok && prev == digest {
		return
	}
	if c.served == nil || len(c.served) >= maxServed {
		c.served = map[string][sha256.Size]byte{}
	}
	c.served[key] = digest
	c.observer.ObserveTokenRequest(c.method, nil)
}
