package controllers

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/credentials"
	"github.com/vaultsync/vaultsync/internal/keyvault"
)

// Connector implements VaultClients: it turns a VaultSecret's auth spec into
// a cached credential and a cached Key Vault client. A VaultSecret can only
// name a ServiceAccount of its own namespace: the namespace always comes
// from the VaultSecret, never from the spec.
type Connector struct {
	// Live reads ServiceAccounts (their annotations carry the client and
	// tenant ids); it is uncached and used at most once per SARefresh per
	// ServiceAccount.
	Live        client.Reader
	Tokens      credentials.TokenRequester
	Credentials *credentials.Cache
	Clients     *keyvault.ClientCache
	CredOptions *credentials.Options
	// SARefresh is how long a ServiceAccount's annotations are trusted
	// before they are read again (default 5 minutes).
	SARefresh time.Duration

	mu  sync.Mutex
	sas map[string]saEntry
}

type saEntry struct {
	sa *corev1.ServiceAccount // nil: not found
	at time.Time
}

// For returns a client of the VaultSecret's vault, authenticated as its identity.
func (c *Connector) For(ctx context.Context, vs *v1alpha1.VaultSecret) (Vault, error) {
	if vs.Spec.Vault == nil || vs.Spec.Vault.Auth.WorkloadIdentity == nil {
		return nil, fmt.Errorf("%w: spec.vault.auth must name an authentication method", errInvalidSpec)
	}
	vaultURL := vs.Spec.Vault.URL
	authority, err := authorityFor(vaultURL)
	if err != nil {
		return nil, fmt.Errorf("%w: spec.vault.url: %v", errInvalidSpec, err)
	}
	spec := vs.Spec.Vault.Auth.WorkloadIdentity
	var sa *corev1.ServiceAccount
	if spec.ClientID != "" && spec.TenantID != "" {
		// Both ids given: the annotations are not needed; a missing
		// ServiceAccount still fails at the token request.
		sa = &corev1.ServiceAccount{}
		sa.Namespace, sa.Name = vs.Namespace, spec.ServiceAccountName
	} else if sa, err = c.serviceAccount(ctx, vs.Namespace, spec.ServiceAccountName); err != nil {
		return nil, err
	}
	if sa == nil {
		return nil, &credentials.Error{Kind: credentials.ErrServiceAccountNotFound, Namespace: vs.Namespace, ServiceAccount: spec.ServiceAccountName}
	}
	wi, err := credentials.ResolveWorkloadIdentity(sa, spec.ClientID, spec.TenantID)
	if err != nil {
		return nil, err
	}
	wi.AuthorityHost = authority
	key := wi.Key()
	cred, err := c.Credentials.GetOrCreate(key, func() (azcore.TokenCredential, error) {
		return credentials.NewWorkloadIdentityCredential(c.Tokens, wi, c.CredOptions)
	})
	if err != nil {
		return nil, err
	}
	return c.Clients.Get(vaultURL, cred, key.String())
}

// ForgetServiceAccount drops what is known of a ServiceAccount, so that the
// next sync reads its annotations again (after an authentication failure).
func (c *Connector) ForgetServiceAccount(namespace, name string) {
	c.mu.Lock()
	delete(c.sas, namespace+"/"+name)
	c.mu.Unlock()
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
		sa = nil
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

// authorityFor picks the Entra authority of the cloud the vault lives in,
// from the vault's DNS suffix. AZURE_AUTHORITY_HOST overrides it for the
// public cloud (private clouds and Azure Stack).
func authorityFor(vaultURL string) (string, error) {
	u, err := url.Parse(vaultURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%q is not an https URL", vaultURL)
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case strings.HasSuffix(host, ".vault.azure.cn"):
		return "https://login.chinacloudapi.cn/", nil
	case strings.HasSuffix(host, ".vault.usgovcloudapi.net"):
		return "https://login.microsoftonline.us/", nil
	}
	if h := os.Getenv("AZURE_AUTHORITY_HOST"); h != "" {
		return h, nil
	}
	return "https://login.microsoftonline.com/", nil
}
