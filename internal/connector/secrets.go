package connector

import (
	"context"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/credentials"
)

// Credential Secrets (client secrets, client certificates, PFX passwords) are Secrets the user
// writes; the manager's cache holds only the Secrets vaultsync writes (label
// vaultsync.io/managed=true), so credential Secrets are not in it, and the user is not asked to
// label them. Instead:
//
//   - a metadata-only watch of each credential Secret, by name, starts when a connection first
//     reads it (watches.go), so a change or deletion of a credential Secret is seen at
//     once and its resourceVersion can be read without calling the API server, while the other
//     Secrets of the cluster cost nothing;
//   - the data of a credential Secret is read with the uncached client only when its
//     resourceVersion differs from the one read last, and kept in memory only for the Secrets
//     that connections name (bounded by maxMaterial);
//   - when the material of a Secret changes or the Secret is deleted, the credentials built
//     from it are dropped, and the VaultSecrets and connections that use it are synced again.
//
// A sync therefore costs no API call for its credentials unless they changed.

// maxMaterial bounds the credential Secrets kept in memory.
const maxMaterial = 4096

type materialEntry struct {
	resourceVersion string
	data            map[string][]byte
	fingerprint     string
}

// secretGVK is the GroupVersionKind of Secrets, for metadata-only reads.
var secretGVK = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}

func newSecretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(secretGVK)
	return m
}

// secretResourceVersion returns the resourceVersion of a Secret from the metadata cache, "" when
// it does not exist or there is no metadata cache.
func (c *Connector) secretResourceVersion(ctx context.Context, namespace, name string) string {
	if c.Watches == nil {
		return ""
	}
	m := newSecretMetadata()
	if err := c.Watches.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, m); err != nil {
		return ""
	}
	return m.ResourceVersion
}

// secretData returns the data of a credential Secret, reading it from the API server only when
// it changed since the last read.
func (c *Connector) secretData(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	k := namespace + "/" + name
	notFound := &credentials.Error{Kind: credentials.ErrSecretNotFound, Namespace: namespace, Secret: name}
	rv := ""
	if c.Watches != nil {
		m := newSecretMetadata()
		if err := c.Watches.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, m); err != nil {
			if apierrors.IsNotFound(err) {
				c.forgetSecret(namespace, name)
				return nil, notFound
			}
			return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
		}
		rv = m.ResourceVersion
		c.mu.Lock()
		e, ok := c.material[k]
		c.mu.Unlock()
		if ok && e.resourceVersion == rv {
			return e.data, nil
		}
	}
	s := &corev1.Secret{}
	if err := c.Live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			c.forgetSecret(namespace, name)
			return nil, notFound
		}
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	entry := materialEntry{resourceVersion: s.ResourceVersion, data: maps.Clone(s.Data), fingerprint: dataFingerprint(s.Data)}
	c.mu.Lock()
	if c.material == nil {
		c.material = map[string]materialEntry{}
	}
	prev, had := c.material[k]
	if !had && len(c.material) >= maxMaterial {
		for old := range c.material { // evict one; it is read again when needed
			delete(c.material, old)
			break
		}
	}
	c.material[k] = entry
	c.mu.Unlock()
	if had && prev.fingerprint != entry.fingerprint {
		// New material: the credential built from the old one must not be used again.
		c.dropCredentials(func(key credentials.Key) bool { return key.UsesSecret(namespace, name) })
	}
	return entry.data, nil
}

// forgetSecret drops what is known of a credential Secret and the credentials built from it;
// it is called when the Secret is deleted.
func (c *Connector) forgetSecret(namespace, name string) {
	c.mu.Lock()
	delete(c.material, namespace+"/"+name)
	c.mu.Unlock()
	c.dropCredentials(func(key credentials.Key) bool { return key.UsesSecret(namespace, name) })
}

func dataFingerprint(data map[string][]byte) string {
	var parts [][]byte
	for _, k := range sortedKeys(data) {
		parts = append(parts, []byte(k), data[k])
	}
	return credentials.Fingerprint(parts...)
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// secretValue returns one key of a credential Secret of the connection's namespace.
func (c *Connector) secretValue(ctx context.Context, namespace string, ref *v1alpha1.SecretKeyRef) ([]byte, error) {
	data, err := c.secretData(ctx, namespace, ref.Name)
	if err != nil {
		return nil, err
	}
	v, ok := data[ref.Key]
	if !ok || len(v) == 0 {
		return nil, &credentials.Error{Kind: credentials.ErrSecretKeyNotFound, Namespace: namespace, Secret: ref.Name, Key: ref.Key}
	}
	return v, nil
}

// servicePrincipal reads the credential material of a servicePrincipal spec from the
// connection's own namespace.
func (c *Connector) servicePrincipal(ctx context.Context, conn *connection, cloud credentials.Cloud) (credentials.ServicePrincipal, error) {
	spec := conn.Auth.ServicePrincipal
	sp := credentials.ServicePrincipal{TenantID: spec.TenantID, ClientID: spec.ClientID, AuthorityHost: cloud.AuthorityHost, Namespace: conn.Namespace}
	var err error
	switch {
	case spec.ClientSecretRef != nil:
		sp.ClientSecretFrom = credentials.SecretKey{Name: spec.ClientSecretRef.Name, Key: spec.ClientSecretRef.Key}
		sp.ClientSecret, err = c.secretValue(ctx, conn.Namespace, spec.ClientSecretRef)
	case spec.ClientCertificateRef != nil:
		sp.CertificateFrom = credentials.SecretKey{Name: spec.ClientCertificateRef.Name, Key: spec.ClientCertificateRef.Key}
		sp.Certificate, err = c.secretValue(ctx, conn.Namespace, spec.ClientCertificateRef)
		if err == nil && spec.PasswordRef != nil {
			sp.PasswordFrom = credentials.SecretKey{Name: spec.PasswordRef.Name, Key: spec.PasswordRef.Key}
			sp.Password, err = c.secretValue(ctx, conn.Namespace, spec.PasswordRef)
		}
	default:
		err = fmt.Errorf("%w: %s.servicePrincipal must set clientSecretRef or clientCertificateRef", ErrInvalidSpec, conn.field("auth"))
	}
	return sp, err
}
