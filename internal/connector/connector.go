package connector

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/credentials"
	"github.com/vaultsync/vaultsync/internal/keyvault"
)

// Vault is a Key Vault client of one vault, authenticated as one identity, as a VaultSecret
// reads it; internal/keyvault's Client implements it.
type Vault interface {
	GetSecret(ctx context.Context, name, version string) (*keyvault.Secret, error)
	GetCertificateSecret(ctx context.Context, name, version string) (*keyvault.Secret, error)
	GetKey(ctx context.Context, name, version string) (*keyvault.Key, error)
	ListSecrets(ctx context.Context) ([]keyvault.SecretInfo, error)
	// Host is the vault's host name (demo.vault.azure.net).
	Host() string
	// IdentityKey is the key of the identity's credential in the credential cache
	// (method/tenant/client/namespace/serviceaccount/..., each part path-escaped).
	IdentityKey() string
}

// PushVault is a Key Vault client as a VaultPushSecret writes with it; internal/keyvault's
// Client implements it.
type PushVault interface {
	Host() string
	IdentityKey() string
	GetSecretInfo(ctx context.Context, name string) (*keyvault.ObjectInfo, error)
	SetSecret(ctx context.Context, name, value, contentType string, tags map[string]string) (*keyvault.ObjectInfo, error)
	DeleteSecret(ctx context.Context, name string) error
	GetCertificateInfo(ctx context.Context, name string) (*keyvault.ObjectInfo, error)
	ImportCertificate(ctx context.Context, name, pemBundle string, tags map[string]string) (*keyvault.ObjectInfo, error)
	DeleteCertificate(ctx context.Context, name string) error
}

// Connector resolves the connection of a VaultSecret or VaultPushSecret (inline, a
// VaultConnection of its namespace, or a ClusterVaultConnection that allows its namespace),
// turns the auth spec into a cached credential and returns a cached Key Vault client.
//
// Isolation rests on three rules that need no cooperation from the user: every namespaced
// reference (ServiceAccount, Secret, VaultConnection) is resolved in the namespace of the object
// that holds it, never one named in a spec; the node's and the operator's identities are only
// reachable through a ClusterVaultConnection; and a ClusterVaultConnection is refused to a
// namespace it does not allow before any credential exists.
type Connector struct {
	// Client reads VaultConnections, ClusterVaultConnections and Namespaces (the manager's cache).
	Client client.Reader
	// Live reads ServiceAccounts (their annotations carry the client and tenant ids, at most once
	// per SARefresh) and the data of credential Secrets (only when their resourceVersion changed).
	Live client.Reader
	// Watches watches credential Secrets by name, metadata only (see CredentialWatches). nil:
	// credential Secrets are read with Live on every use, and nothing watches them.
	Watches     *CredentialWatches
	Tokens      credentials.TokenRequester
	Credentials *credentials.Cache
	Clients     *keyvault.ClientCache
	CredOptions *credentials.Options
	// SARefresh is how long a ServiceAccount's annotations are trusted
	// before they are read again (default 5 minutes).
	SARefresh time.Duration
	// AuthorityHosts are the authority hosts a Custom cloud may name besides the known
	// clouds' (--custom-authority-hosts).
	AuthorityHosts []string
	// Dev allows the azureCLI method (the operator runs on a developer's machine with --dev).
	Dev bool
	// ClusterConnections serves spec.connectionRef to ClusterVaultConnections
	// (--cluster-connections); off, they are refused without being read.
	ClusterConnections bool
	// NamespaceSelectors evaluates allowedNamespaces.selector, which needs
	// read access to Namespaces (--namespace-selectors); off, only
	// allowedNamespaces.names admit a namespace.
	NamespaceSelectors bool
	// Getenv reads the operator's environment (operator identity, AZURE_AUTHORITY_HOST); nil
	// means os.Getenv.
	Getenv func(string) string

	mu       sync.Mutex
	sas      map[string]saEntry
	material map[string]materialEntry
	used     map[string]credentials.Key
}

type saEntry struct {
	sa *corev1.ServiceAccount // nil: not found
	at time.Time
}

// For returns a client of the VaultSecret's vault, authenticated as its identity. It records in
// vs.Status.ConnectionVersion the version of the connection it used.
func (c *Connector) For(ctx context.Context, vs *v1alpha1.VaultSecret) (Vault, error) {
	conn, err := c.resolve(ctx, vs)
	vs.Status.ConnectionVersion = ""
	if conn != nil {
		vs.Status.ConnectionVersion = c.version(ctx, conn)
	}
	if err != nil {
		return nil, err
	}
	vault, _, _, err := c.connect(ctx, conn)
	if err != nil {
		return nil, err
	}
	return vault, nil
}

// ConnectionVersion returns what For would record in status.connectionVersion now: a digest of
// the connection's generation, whether it allows the namespace, and the resource versions of
// the credential Secrets. It reads caches only.
func (c *Connector) ConnectionVersion(ctx context.Context, vs *v1alpha1.VaultSecret) string {
	conn, _ := c.resolve(ctx, vs)
	if conn == nil {
		return ""
	}
	return c.version(ctx, conn)
}

// ForPush resolves the VaultPushSecret's connection like a VaultSecret's: ServiceAccounts,
// Secrets and VaultConnections of its own namespace only, ClusterVaultConnections only when they
// allow the namespace.
func (c *Connector) ForPush(ctx context.Context, ps *v1alpha1.VaultPushSecret) (PushVault, error) {
	conn, err := c.resolveRef(ctx, ps.Namespace, ps.Spec.Vault, ps.Spec.ConnectionRef)
	if err != nil {
		return nil, err
	}
	vault, _, _, err := c.connect(ctx, conn)
	if err != nil {
		return nil, err
	}
	return vault, nil
}

// connect builds (or finds) the credential and the client of a resolved connection. It refuses
// a method used outside its place before anything reaches Azure.
func (c *Connector) connect(ctx context.Context, conn *connection) (*keyvault.Client, azcore.TokenCredential, credentials.Cloud, error) {
	cloud, err := credentials.ResolveCloud(conn.Cloud, conn.URL, c.getenv)
	if err != nil {
		return nil, nil, cloud, fmt.Errorf("%w: %s: %v", ErrInvalidSpec, conn.field("url"), err) //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
	}
	if err := c.allowed(conn); err != nil {
		return nil, nil, cloud, err
	}
	if err := credentials.CheckAuthority(cloud, c.AuthorityHosts); err != nil {
		return nil, nil, cloud, err
	}
	key, create, err := c.credentialFor(ctx, conn, cloud)
	if err != nil {
		return nil, nil, cloud, err
	}
	cred, err := c.Credentials.GetOrCreate(key, create)
	if err != nil {
		return nil, nil, cloud, err
	}
	c.remember(conn, key)
	client, err := c.Clients.Get(conn.URL, cred, key.String())
	if err != nil {
		return nil, nil, cloud, fmt.Errorf("%w: %s: %v", ErrInvalidSpec, conn.field("url"), err) //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
	}
	return client, cred, cloud, nil
}

// Preflight checks a VaultConnection or ClusterVaultConnection the way a VaultSecret would use
// it: a token for the vault's cloud, then (when a probe is named) a read of the probe object.
// identity describes the connection's identity (no credentials), also when the check fails.
func (c *Connector) Preflight(ctx context.Context, obj client.Object) (identity string, err error) {
	var conn *connection
	switch o := obj.(type) {
	case *v1alpha1.VaultConnection:
		conn = vaultConnection(o)
	case *v1alpha1.ClusterVaultConnection:
		conn = clusterVaultConnection(o)
	default:
		return "", fmt.Errorf("preflight of a %T: not a VaultConnection or ClusterVaultConnection", obj)
	}
	identity = describeIdentity(conn)
	return identity, c.preflight(ctx, conn)
}

func (c *Connector) preflight(ctx context.Context, conn *connection) error {
	client, cred, cloud, err := c.connect(ctx, conn)
	if err != nil {
		return err
	}
	// The same options the Key Vault client's bearer policy uses, so that both share one
	// cached Entra token.
	if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{cloud.KeyVaultScope()}, EnableCAE: true}); err != nil {
		return tokenError(client, err)
	}
	if p := conn.Probe; p != nil {
		switch p.Type {
		case v1alpha1.ObjectTypeCertificate:
			_, err = client.GetCertificateSecret(keyvault.WithFresh(ctx), p.Name, "")
		case v1alpha1.ObjectTypeKey:
			_, err = client.GetKey(keyvault.WithFresh(ctx), p.Name, "")
		default:
			_, err = client.GetSecret(keyvault.WithFresh(ctx), p.Name, "")
		}
		if err != nil {
			return fmt.Errorf("probe %s %q: %w", TypeOrSecret(p.Type), p.Name, err)
		}
	}
	return nil
}

// tokenError maps a token failure of the preflight to a keyvault error, so that it gets the
// same reasons and hints as a failure during a sync.
func tokenError(client *keyvault.Client, err error) error {
	code, status, msg := credentials.EntraFailure(err)
	host := ""
	if client != nil {
		host = client.Host()
	}
	return &keyvault.Error{Op: "GetToken", Vault: host, Kind: keyvault.ErrAuth, AADSTS: code, TokenStatus: status, Message: msg, Err: err}
}

// TypeOrSecret is the type of a probe object, secret when none is given.
func TypeOrSecret(t v1alpha1.ObjectType) v1alpha1.ObjectType {
	if t == "" {
		return v1alpha1.ObjectTypeSecret
	}
	return t
}

// allowed mirrors the admission rules at run time (an old CRD, or an object stored before a
// rule existed, must not lend an identity) and refuses azureCLI outside --dev.
func (c *Connector) allowed(conn *connection) error {
	auth := conn.Auth
	method := string(auth.Method())
	switch auth.Method() {
	case "":
		return fmt.Errorf("%w: %s must name an authentication method", ErrInvalidSpec, conn.field("auth"))
	case v1alpha1.AuthMethodAzureCLI:
		if !c.Dev {
			return credentials.NotAllowed(method, "azureCLI signs in as the Azure CLI user of the machine the operator runs on; "+
				"it is only available when the operator runs outside the cluster with --dev (make run); in a cluster use workloadIdentity")
		}
	case v1alpha1.AuthMethodManagedIdentity, v1alpha1.AuthMethodOperatorIdentity:
		if conn.Place != placeCluster {
			return credentials.NotAllowed(method, "only a ClusterVaultConnection may use it: it is the node's or the operator's identity, "+
				"not a namespace's; ask a cluster administrator for a ClusterVaultConnection that allows this namespace")
		}
	case v1alpha1.AuthMethodServicePrincipal:
		if conn.Place == placeCluster {
			return credentials.NotAllowed(method, "a ClusterVaultConnection has no namespace to read the credential Secret from; use a VaultConnection")
		}
	case v1alpha1.AuthMethodWorkloadIdentity:
		ns := auth.WorkloadIdentity.ServiceAccountNamespace
		switch {
		case conn.Place == placeCluster && ns == "":
			return fmt.Errorf("%w: %s.workloadIdentity.serviceAccountNamespace is required in a ClusterVaultConnection", ErrInvalidSpec, conn.field("auth"))
		case conn.Place != placeCluster && ns != "" && ns != conn.Namespace:
			return credentials.NotAllowed(method, fmt.Sprintf("ServiceAccounts are always taken from the namespace %q; "+
				"serviceAccountNamespace is only allowed in a ClusterVaultConnection", conn.Namespace))
		}
	}
	return nil
}

// credentialFor returns the cache key of the connection's identity and a function that builds
// its credential. Reading a ServiceAccount or a credential Secret happens here, before the cache
// is consulted, because their content is part of the key.
func (c *Connector) credentialFor(ctx context.Context, conn *connection, cloud credentials.Cloud) (credentials.Key, func() (azcore.TokenCredential, error), error) {
	auth := conn.Auth
	switch auth.Method() {
	case v1alpha1.AuthMethodWorkloadIdentity:
		return c.workloadIdentity(ctx, conn, cloud)
	case v1alpha1.AuthMethodServicePrincipal:
		sp, err := c.servicePrincipal(ctx, conn, cloud)
		if err != nil {
			return credentials.Key{}, nil, err
		}
		return sp.Key(), func() (azcore.TokenCredential, error) {
			return credentials.NewServicePrincipalCredential(sp, c.CredOptions)
		}, nil
	case v1alpha1.AuthMethodManagedIdentity:
		mi := credentials.ManagedIdentity{ClientID: auth.ManagedIdentity.ClientID, ResourceID: auth.ManagedIdentity.ResourceID}
		return mi.Key(), func() (azcore.TokenCredential, error) {
			return credentials.NewManagedIdentityCredential(mi, c.CredOptions)
		}, nil
	case v1alpha1.AuthMethodOperatorIdentity:
		op, err := credentials.OperatorIdentityFromEnv(c.getenv)
		if err != nil {
			return credentials.Key{}, nil, err
		}
		op.AuthorityHost = cloud.AuthorityHost
		return op.Key(), func() (azcore.TokenCredential, error) {
			return credentials.NewOperatorIdentityCredential(op, c.CredOptions)
		}, nil
	case v1alpha1.AuthMethodAzureCLI:
		cli := credentials.AzureCLI{TenantID: auth.AzureCLI.TenantID}
		return cli.Key(), func() (azcore.TokenCredential, error) { return credentials.NewAzureCLICredential(cli) }, nil
	}
	return credentials.Key{}, nil, fmt.Errorf("%w: %s must name an authentication method", ErrInvalidSpec, conn.field("auth"))
}

func (c *Connector) workloadIdentity(ctx context.Context, conn *connection, cloud credentials.Cloud) (credentials.Key, func() (azcore.TokenCredential, error), error) {
	spec := conn.Auth.WorkloadIdentity
	ns := conn.Namespace
	if conn.Place == placeCluster {
		ns = spec.ServiceAccountNamespace
	}
	var sa *corev1.ServiceAccount
	var err error
	if spec.ClientID != "" && spec.TenantID != "" {
		// Both ids given: the annotations are not needed; a missing
		// ServiceAccount still fails at the token request.
		sa = &corev1.ServiceAccount{}
		sa.Namespace, sa.Name = ns, spec.ServiceAccountName
	} else if sa, err = c.serviceAccount(ctx, ns, spec.ServiceAccountName); err != nil {
		return credentials.Key{}, nil, err
	}
	if sa == nil {
		c.dropCredentials(func(k credentials.Key) bool { return k.Namespace == ns && k.ServiceAccount == spec.ServiceAccountName })
		return credentials.Key{}, nil, &credentials.Error{Kind: credentials.ErrServiceAccountNotFound, Namespace: ns, ServiceAccount: spec.ServiceAccountName}
	}
	wi, err := credentials.ResolveWorkloadIdentity(sa, spec.ClientID, spec.TenantID)
	if err != nil {
		return credentials.Key{}, nil, err
	}
	wi.AuthorityHost = cloud.AuthorityHost
	return wi.Key(), func() (azcore.TokenCredential, error) {
		return credentials.NewWorkloadIdentityCredential(c.Tokens, wi, c.CredOptions)
	}, nil
}

func (c *Connector) serviceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	refresh := c.SARefresh
	if refresh <= 0 {
		refresh = 5 * time.Minute
	}
	k := namespace + "/" + name
	now := time.Now()
	c.mu.Lock()
	e, ok := c.sas[k]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < refresh {
		return e.sa, nil
	}
	sa := &corev1.ServiceAccount{}
	err := c.Live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, sa)
	switch {
	case apierrors.IsNotFound(err):
		// Not remembered: a VaultSecret applied just before its ServiceAccount
		// must work as soon as the ServiceAccount exists (the retry backoff
		// bounds how often a missing one is read).
		c.mu.Lock()
		delete(c.sas, k)
		c.mu.Unlock()
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading ServiceAccount %s/%s: %w", namespace, name, err)
	}
	c.mu.Lock()
	if c.sas == nil {
		c.sas = map[string]saEntry{}
	}
	if len(c.sas) > 10000 {
		for key, old := range c.sas {
			if now.Sub(old.at) >= refresh {
				delete(c.sas, key)
			}
		}
	}
	c.sas[k] = saEntry{sa: sa, at: now}
	c.mu.Unlock()
	return sa, nil
}

// remember notes the credential a shared connection uses, and drops the one it used before
// when that differs (the connection's spec changed).
func (c *Connector) remember(conn *connection, key credentials.Key) {
	if conn.Place == placeInline {
		return
	}
	owner := conn.owner()
	c.mu.Lock()
	if c.used == nil {
		c.used = map[string]credentials.Key{}
	}
	prev, had := c.used[owner]
	c.used[owner] = key
	inUse := false
	for o, k := range c.used {
		if o != owner && k == prev {
			inUse = true
		}
	}
	c.mu.Unlock()
	if had && prev != key && !inUse {
		c.dropCredentials(func(k credentials.Key) bool { return k == prev })
	}
}

// ForgetConnection drops the credential of a deleted connection (unless another connection
// uses the same identity).
func (c *Connector) ForgetConnection(kind v1alpha1.ConnectionKind, namespace, name string) {
	owner := connectionOwner(kind, namespace, name)
	c.mu.Lock()
	prev, had := c.used[owner]
	delete(c.used, owner)
	inUse := false
	for _, k := range c.used {
		if k == prev {
			inUse = true
		}
	}
	c.mu.Unlock()
	if had && !inUse {
		c.dropCredentials(func(k credentials.Key) bool { return k == prev })
	}
}

// dropCredentials removes matching credentials and the Key Vault clients built with them.
func (c *Connector) dropCredentials(match func(credentials.Key) bool) {
	dropped := c.Credentials.DropWhere(match)
	if len(dropped) == 0 || c.Clients == nil {
		return
	}
	names := map[string]bool{}
	for _, k := range dropped {
		names[k.String()] = true
	}
	c.Clients.DropIdentities(func(id string) bool { return names[id] })
}

func (c *Connector) getenv(name string) string {
	if c.Getenv != nil {
		return c.Getenv(name)
	}
	return os.Getenv(name)
}
