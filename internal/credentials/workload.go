// Package credentials turns an identity specification into an azcore.TokenCredential: workload
// identity through the TokenRequest API and a client assertion, service principals with a client
// secret or certificate, managed identity, the operator's own workload identity and the Azure CLI
// (development only), plus a bounded cache so one credential (and its token cache) serves every
// reconcile of the same identity. It knows nothing of the API types: callers pass plain values.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	corev1 "k8s.io/api/core/v1"
)

const (
	// AnnotationClientID is the ServiceAccount annotation of the Entra client (application) id.
	AnnotationClientID = "azure.workload.identity/client-id"
	// AnnotationTenantID is the ServiceAccount annotation of the Entra tenant id.
	AnnotationTenantID = "azure.workload.identity/tenant-id"
	// TokenAudience is the audience Entra ID expects in federated service-account tokens.
	TokenAudience = "api://AzureADTokenExchange" //nolint:gosec // G101: the public audience Entra ID expects, not a credential
	// TokenExpiration is the lifetime requested for service-account tokens (the API minimum is 10 min).
	TokenExpiration = time.Hour
	// MethodWorkloadIdentity is the Key.Method of workload identity credentials.
	MethodWorkloadIdentity = "WorkloadIdentity"
)

// WorkloadIdentity names a ServiceAccount federated with an Entra application or managed identity.
type WorkloadIdentity struct {
	Namespace      string
	ServiceAccount string
	TenantID       string
	ClientID       string
	// AuthorityHost is the Entra ID host (https://login.microsoftonline.com/ when empty, or
	// AZURE_AUTHORITY_HOST).
	AuthorityHost string
}

// Key returns the credential cache key of the identity.
func (wi WorkloadIdentity) Key() Key {
	return Key{Method: MethodWorkloadIdentity, TenantID: wi.TenantID, ClientID: wi.ClientID,
		Namespace: wi.Namespace, ServiceAccount: wi.ServiceAccount, AuthorityHost: wi.AuthorityHost}
}

// ResolveWorkloadIdentity combines the ServiceAccount with the client and tenant ids from the spec,
// which win over the ServiceAccount's annotations. A nil sa yields ErrServiceAccountNotFound; a
// missing id yields ErrMissingClientID or ErrMissingTenantID. Pass the operator's default tenant
// as tenantID when the spec has none and a fallback is wanted.
func ResolveWorkloadIdentity(sa *corev1.ServiceAccount, clientID, tenantID string) (WorkloadIdentity, error) {
	if sa == nil {
		return WorkloadIdentity{}, &Error{Kind: ErrServiceAccountNotFound}
	}
	wi := WorkloadIdentity{Namespace: sa.Namespace, ServiceAccount: sa.Name,
		ClientID: strings.TrimSpace(clientID), TenantID: strings.TrimSpace(tenantID)}
	if wi.ClientID == "" {
		wi.ClientID = strings.TrimSpace(sa.Annotations[AnnotationClientID])
	}
	if wi.TenantID == "" {
		wi.TenantID = strings.TrimSpace(sa.Annotations[AnnotationTenantID])
	}
	if wi.ClientID == "" {
		return wi, &Error{Kind: ErrMissingClientID, Namespace: sa.Namespace, ServiceAccount: sa.Name}
	}
	if wi.TenantID == "" {
		return wi, &Error{Kind: ErrMissingTenantID, Namespace: sa.Namespace, ServiceAccount: sa.Name}
	}
	return wi, nil
}

// Options configures the credentials built by this package.
type Options struct {
	// ClientOptions are passed to azidentity (transport, retry, cloud). WorkloadIdentity.AuthorityHost,
	// when set, overrides Cloud.ActiveDirectoryAuthorityHost.
	ClientOptions azcore.ClientOptions
	// DisableInstanceDiscovery skips Entra instance discovery; only for private clouds and tests that
	// address a token service by IP.
	DisableInstanceDiscovery bool
}

// NewWorkloadIdentityCredential returns a credential that exchanges a service-account token of wi
// for Entra ID tokens. The service-account token (audience api://AzureADTokenExchange, 1 h) is
// cached and renewed when less than a fifth of its life remains; azidentity caches the Entra token.
// Keep the credential (see Cache): a new one means a new token exchange. opts may be nil.
func NewWorkloadIdentityCredential(req TokenRequester, wi WorkloadIdentity, opts *Options) (azcore.TokenCredential, error) {
	return newWorkloadIdentityCredential(req, wi, opts, time.Now)
}

func newWorkloadIdentityCredential(req TokenRequester, wi WorkloadIdentity, opts *Options, now func() time.Time) (*workloadIdentityCredential, error) {
	switch {
	case req == nil:
		return nil, errors.New("credentials: a TokenRequester is required")
	case wi.Namespace == "" || wi.ServiceAccount == "":
		return nil, errors.New("credentials: workload identity needs a namespace and a service account")
	case wi.ClientID == "":
		return nil, &Error{Kind: ErrMissingClientID, Namespace: wi.Namespace, ServiceAccount: wi.ServiceAccount}
	case wi.TenantID == "":
		return nil, &Error{Kind: ErrMissingTenantID, Namespace: wi.Namespace, ServiceAccount: wi.ServiceAccount}
	}
	if opts == nil {
		opts = &Options{}
	}
	c := &workloadIdentityCredential{wi: wi, req: req, now: now, sem: make(chan struct{}, 1)}
	co := opts.ClientOptions
	if wi.AuthorityHost != "" {
		co.Cloud = cloneCloud(co.Cloud)
		co.Cloud.ActiveDirectoryAuthorityHost = wi.AuthorityHost
	}
	inner, err := azidentity.NewClientAssertionCredential(wi.TenantID, wi.ClientID, c.assertion,
		&azidentity.ClientAssertionCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: opts.DisableInstanceDiscovery})
	if err != nil {
		return nil, fmt.Errorf("credentials: workload identity for %s/%s: %w", wi.Namespace, wi.ServiceAccount, err)
	}
	c.inner = inner
	return c, nil
}

func cloneCloud(c cloud.Configuration) cloud.Configuration {
	out := c
	if c.Services != nil {
		out.Services = make(map[cloud.ServiceName]cloud.ServiceConfiguration, len(c.Services))
		for k, v := range c.Services {
			out.Services[k] = v
		}
	}
	return out
}

// workloadIdentityCredential wraps a ClientAssertionCredential whose assertion is a cached
// service-account token.
type workloadIdentityCredential struct {
	wi    WorkloadIdentity
	req   TokenRequester
	inner *azidentity.ClientAssertionCredential
	now   func() time.Time
	// sem serializes token requests (a context-aware mutex).
	sem chan struct{}

	mu      sync.Mutex
	token   string
	issued  time.Time
	expires time.Time
}

type failureKey struct{}

// assertionFailure carries a TokenRequest error out of azidentity, which would flatten it.
type assertionFailure struct {
	mu  sync.Mutex
	err error
}

// GetToken returns an Entra access token. A failure to mint the service-account token comes back
// as a credentials *Error (ErrServiceAccountNotFound, ...), not as an azidentity error.
func (c *workloadIdentityCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	failure := &assertionFailure{}
	tok, err := c.inner.GetToken(context.WithValue(ctx, failureKey{}, failure), opts)
	if err != nil {
		failure.mu.Lock()
		defer failure.mu.Unlock()
		if failure.err != nil {
			return tok, failure.err
		}
		c.mu.Lock()
		presented := c.token
		c.mu.Unlock()
		return tok, federationFailure(err, c.wi.ClientID, c.wi.Namespace, c.wi.ServiceAccount, presented)
	}
	return tok, nil
}

func (c *workloadIdentityCredential) assertion(ctx context.Context) (string, error) {
	tok, err := c.serviceAccountToken(ctx)
	if err != nil {
		if f, ok := ctx.Value(failureKey{}).(*assertionFailure); ok {
			f.mu.Lock()
			f.err = err
			f.mu.Unlock()
		}
		return "", err
	}
	return tok, nil
}

// cached returns the service-account token while more than a fifth of its life remains.
func (c *workloadIdentityCredential) cached() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == "" {
		return ""
	}
	life := c.expires.Sub(c.issued)
	if c.now().Before(c.expires.Add(-life / 5)) {
		return c.token
	}
	return ""
}

func (c *workloadIdentityCredential) serviceAccountToken(ctx context.Context) (string, error) {
	if tok := c.cached(); tok != "" {
		return tok, nil
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-c.sem }()
	if tok := c.cached(); tok != "" {
		return tok, nil
	}
	issued := c.now()
	tok, expires, err := c.req.RequestToken(ctx, c.wi.Namespace, c.wi.ServiceAccount, TokenAudience, TokenExpiration)
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			return "", err
		}
		return "", &Error{Kind: ErrTokenRequest, Namespace: c.wi.Namespace, ServiceAccount: c.wi.ServiceAccount, Err: err}
	}
	if expires.IsZero() || !expires.After(issued) {
		expires = issued.Add(TokenExpiration)
	}
	c.mu.Lock()
	c.token, c.issued, c.expires = tok, issued, expires
	c.mu.Unlock()
	return tok, nil
}
