package credentials

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Identities that belong to the machine or the operator rather than to a namespace: managed
// identity, the operator's own workload identity and the Azure CLI login.

// Environment variables of the operator's own workload identity (set by the Azure Workload
// Identity webhook).
const (
	EnvClientID           = "AZURE_CLIENT_ID"
	EnvTenantID           = "AZURE_TENANT_ID"
	EnvFederatedTokenFile = "AZURE_FEDERATED_TOKEN_FILE"
)

// ManagedIdentity selects a managed identity: the user-assigned one with ClientID or
// ResourceID, or the system-assigned one when both are empty.
type ManagedIdentity struct {
	ClientID   string
	ResourceID string
}

// Key returns the credential cache key.
func (m ManagedIdentity) Key() Key {
	return Key{Method: MethodManagedIdentity, ClientID: m.ClientID, ResourceID: m.ResourceID}
}

// NewManagedIdentityCredential returns a managed identity credential. azidentity picks the source
// from the environment: App Service style (IDENTITY_ENDPOINT and IDENTITY_HEADER), Azure Arc,
// Service Fabric, or else the instance metadata service of the node. opts may be nil.
func NewManagedIdentityCredential(m ManagedIdentity, opts *Options) (azcore.TokenCredential, error) {
	if opts == nil {
		opts = &Options{}
	}
	o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts.ClientOptions}
	switch {
	case m.ClientID != "":
		o.ID = azidentity.ClientID(m.ClientID)
	case m.ResourceID != "":
		o.ID = azidentity.ResourceID(m.ResourceID)
	}
	return azidentity.NewManagedIdentityCredential(o)
}

// OperatorIdentity is the operator's own workload identity.
type OperatorIdentity struct {
	TenantID      string
	ClientID      string
	TokenFile     string
	AuthorityHost string
}

// OperatorIdentityFromEnv reads AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE
// with getenv (os.Getenv when nil). A missing variable yields ErrOperatorIdentityUnavailable.
func OperatorIdentityFromEnv(getenv func(string) string) (OperatorIdentity, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	o := OperatorIdentity{
		ClientID:  strings.TrimSpace(getenv(EnvClientID)),
		TenantID:  strings.TrimSpace(getenv(EnvTenantID)),
		TokenFile: strings.TrimSpace(getenv(EnvFederatedTokenFile)),
	}
	var missing []string
	for name, v := range map[string]string{EnvClientID: o.ClientID, EnvTenantID: o.TenantID, EnvFederatedTokenFile: o.TokenFile} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return o, &Error{Kind: ErrOperatorIdentityUnavailable, Method: "operatorIdentity",
			Detail: "the operator's environment lacks " + strings.Join(missing, ", ")}
	}
	return o, nil
}

// Key returns the credential cache key.
func (o OperatorIdentity) Key() Key {
	return Key{Method: MethodOperatorIdentity, TenantID: o.TenantID, ClientID: o.ClientID,
		AuthorityHost: o.AuthorityHost, Fingerprint: Fingerprint([]byte(o.TokenFile))}
}

// NewOperatorIdentityCredential exchanges the token in o.TokenFile (re-read as the kubelet
// rotates it) for Entra ID tokens. A federated credential mismatch (AADSTS70021, 700211, 700212,
// 700213, 7002138) comes back as ErrFederatedCredentialMismatch with the claims of the token in the
// file. opts may be nil.
func NewOperatorIdentityCredential(o OperatorIdentity, opts *Options) (azcore.TokenCredential, error) {
	if opts == nil {
		opts = &Options{}
	}
	inner, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions:            withAuthority(opts.ClientOptions, o.AuthorityHost),
		ClientID:                 o.ClientID,
		TenantID:                 o.TenantID,
		TokenFilePath:            o.TokenFile,
		DisableInstanceDiscovery: opts.DisableInstanceDiscovery,
	})
	if err != nil {
		return nil, err
	}
	return &operatorCredential{inner: inner, id: o}, nil
}

type operatorCredential struct {
	inner *azidentity.WorkloadIdentityCredential
	id    OperatorIdentity
}

// GetToken returns an Entra access token for the operator's identity.
func (c *operatorCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.inner.GetToken(ctx, opts)
	if err == nil {
		return tok, nil
	}
	presented := ""
	if raw, rerr := os.ReadFile(c.id.TokenFile); rerr == nil {
		presented = strings.TrimSpace(string(raw))
	}
	return tok, federationFailure(err, c.id.ClientID, "", "", presented)
}

// AzureCLI is the Azure CLI login of the machine the operator runs on.
type AzureCLI struct {
	TenantID string
}

// Key returns the credential cache key.
func (a AzureCLI) Key() Key { return Key{Method: MethodAzureCLI, TenantID: a.TenantID} }

// NewAzureCLICredential runs `az account get-access-token` (found on PATH) and keeps each token
// until five minutes before it expires, so the CLI runs about once an hour per scope.
func NewAzureCLICredential(a AzureCLI) (azcore.TokenCredential, error) {
	inner, err := azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: a.TenantID})
	if err != nil {
		return nil, err
	}
	return &cachingCredential{inner: inner, now: time.Now, tokens: map[string]azcore.AccessToken{}}, nil
}

// cachingCredential keeps tokens of a credential that has no cache of its own.
type cachingCredential struct {
	inner azcore.TokenCredential
	now   func() time.Time

	mu     sync.Mutex
	tokens map[string]azcore.AccessToken
}

// GetToken returns a cached token while more than five minutes of it remain.
func (c *cachingCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	key := strings.Join(opts.Scopes, " ") + "|" + opts.TenantID + "|" + opts.Claims
	c.mu.Lock()
	defer c.mu.Unlock()
	if tok, ok := c.tokens[key]; ok && opts.Claims == "" && c.now().Add(5*time.Minute).Before(tok.ExpiresOn) {
		return tok, nil
	}
	tok, err := c.inner.GetToken(ctx, opts)
	if err != nil {
		return tok, err
	}
	if len(c.tokens) > 64 {
		clear(c.tokens)
	}
	c.tokens[key] = tok
	return tok, nil
}
