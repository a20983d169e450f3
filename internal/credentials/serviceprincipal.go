package credentials

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/vaultsync/vaultsync/internal/pki"
)

// Key.Method values of the methods in this file and in ambient.go.
const (
	MethodServicePrincipal = "ServicePrincipal"
	MethodManagedIdentity  = "ManagedIdentity"
	MethodOperatorIdentity = "OperatorIdentity"
	MethodAzureCLI         = "AzureCLI"
)

// SecretKey names one key of a Secret; the namespace is ServicePrincipal.Namespace.
type SecretKey struct {
	Name string
	Key  string
}

// ServicePrincipal is an Entra application with its credential material, already read from
// Secrets of Namespace. Exactly one of ClientSecret and Certificate is set.
type ServicePrincipal struct {
	TenantID      string
	ClientID      string
	AuthorityHost string
	// Namespace holds the Secrets the material came from.
	Namespace string
	// ClientSecret is the client secret value.
	ClientSecret []byte
	// ClientSecretFrom names where ClientSecret was read.
	ClientSecretFrom SecretKey
	// Certificate is a PEM bundle (key and certificates) or a PFX file (raw or base64).
	Certificate []byte
	// CertificateFrom names where Certificate was read.
	CertificateFrom SecretKey
	// Password opens a PFX Certificate; PasswordFrom names where it was read.
	Password     []byte
	PasswordFrom SecretKey
}

// Key returns the credential cache key: the application, the Secrets and a fingerprint of the
// material, so a rotated secret yields a new credential and the old one can be dropped.
func (sp ServicePrincipal) Key() Key {
	names := map[string]bool{}
	for _, s := range []SecretKey{sp.ClientSecretFrom, sp.CertificateFrom, sp.PasswordFrom} {
		if s.Name != "" {
			names[s.Name] = true
		}
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	return Key{Method: MethodServicePrincipal, TenantID: sp.TenantID, ClientID: sp.ClientID, Namespace: sp.Namespace,
		Secrets: strings.Join(list, ","), AuthorityHost: sp.AuthorityHost,
		Fingerprint: Fingerprint(sp.ClientSecret, sp.Certificate, sp.Password)}
}

// NewServicePrincipalCredential returns a client secret or client certificate credential. An
// unreadable certificate yields ErrInvalidCertificate naming the Secret and key (never the
// material). opts may be nil.
func NewServicePrincipalCredential(sp ServicePrincipal, opts *Options) (azcore.TokenCredential, error) {
	if opts == nil {
		opts = &Options{}
	}
	co := withAuthority(opts.ClientOptions, sp.AuthorityHost)
	switch {
	case len(sp.ClientSecret) > 0 && len(sp.Certificate) > 0:
		return nil, errors.New("credentials: a service principal needs a client secret or a certificate, not both")
	case len(sp.ClientSecret) > 0:
		secret := strings.TrimRight(string(sp.ClientSecret), "\r\n")
		return azidentity.NewClientSecretCredential(sp.TenantID, sp.ClientID, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: opts.DisableInstanceDiscovery})
	case len(sp.Certificate) > 0:
		certs, key, err := ParseClientCertificate(sp.Certificate, string(sp.Password))
		if err != nil {
			return nil, &Error{Kind: ErrInvalidCertificate, Namespace: sp.Namespace,
				Secret: sp.CertificateFrom.Name, Key: sp.CertificateFrom.Key, Detail: err.Error()}
		}
		return azidentity.NewClientCertificateCredential(sp.TenantID, sp.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: opts.DisableInstanceDiscovery})
	}
	return nil, errors.New("credentials: a service principal needs a client secret or a certificate")
}

// ParseClientCertificate reads a client certificate with its private key: PEM text (an
// unencrypted key and certificates in any order) or a PKCS#12 file, raw or in base64, opened
// with password. The key must be RSA, the only kind Entra ID accepts. The leaf (the certificate
// of the key) comes first. Errors describe the structure only, never key material.
func ParseClientCertificate(data []byte, password string) ([]*x509.Certificate, *rsa.PrivateKey, error) {
	var (
		b   *pki.CertBundle
		err error
	)
	switch trimmed := bytes.TrimSpace(data); {
	case bytes.Contains(trimmed, []byte("-----BEGIN ")):
		b, err = pki.ParsePEM(trimmed)
	default:
		// Binary DER may start or end with bytes that look like white
		// space: only base64 text is trimmed.
		der := data
		if dec, derr := base64.StdEncoding.DecodeString(string(trimmed)); derr == nil && len(dec) > 0 {
			der = dec
		}
		b, err = pki.ParsePFX(der, password)
	}
	if err != nil {
		return nil, nil, err
	}
	if b.PrivateKey == nil {
		return nil, nil, errors.New("it holds no private key")
	}
	key, ok := b.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("its private key is not an RSA key; Entra ID accepts RSA client certificates only")
	}
	chain, _, err := pki.OrderChain(b.Certificates, key)
	if err != nil {
		return nil, nil, err
	}
	certs := append([]*x509.Certificate{chain.Leaf}, chain.Intermediates...)
	return certs, key, nil
}

// withAuthority returns co with the Entra authority host set (when not empty).
func withAuthority(co azcore.ClientOptions, authority string) azcore.ClientOptions {
	if authority != "" {
		co.Cloud = cloneCloud(co.Cloud)
		co.Cloud.ActiveDirectoryAuthorityHost = authority
	}
	return co
}
