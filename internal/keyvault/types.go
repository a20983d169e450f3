package keyvault

import (
	"time"

	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

// Ref identifies one Key Vault object. An empty Version means the latest one.
type Ref struct {
	VaultURL string
	Type     kvtypes.ObjectType
	Name     string
	Version  string
}

// Secret is a secret as returned by GET /secrets/{name}[/{version}]. For a certificate the
// value holds the private key and chain (PFX in standard base64, or PEM) and Managed is true.
type Secret struct {
	ID          string
	Name        string
	Version     string
	Value       string
	ContentType string
	Tags        map[string]string
	Enabled     bool
	NotBefore   *time.Time
	Expires     *time.Time
	Created     *time.Time
	Updated     *time.Time
	// Managed is true when Key Vault manages the secret for a certificate.
	Managed bool
	// KeyID is the id of the certificate's key (kid) for a managed secret.
	KeyID string
}

// String never prints the value, so a Secret can be logged safely by mistake.
func (s *Secret) String() string {
	if s == nil {
		return "<nil>"
	}
	return "secret " + s.Name + "/" + s.Version
}

// Key is the public part of a Key Vault key as a JSON Web Key.
type Key struct {
	ID      string
	Name    string
	Version string
	// Kty is the key type: EC, EC-HSM, RSA, RSA-HSM, oct or oct-HSM.
	Kty string
	// Crv is the elliptic curve name for EC keys.
	Crv       string
	N, E      []byte
	X, Y      []byte
	KeyOps    []string
	Tags      map[string]string
	Enabled   bool
	NotBefore *time.Time
	Expires   *time.Time
	Created   *time.Time
	Updated   *time.Time
	Managed   bool
}

// SecretInfo is one item of a secret listing: properties only, never a value.
type SecretInfo struct {
	Name        string
	Version     string
	Tags        map[string]string
	Enabled     bool
	ContentType string
	Managed     bool
	Expires     *time.Time
	Updated     *time.Time
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

func cloneTags(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// clone returns a deep copy, so callers sharing a coalesced result never share memory.
func (s *Secret) clone() *Secret {
	c := *s
	c.Tags = cloneTags(s.Tags)
	c.NotBefore, c.Expires = cloneTime(s.NotBefore), cloneTime(s.Expires)
	c.Created, c.Updated = cloneTime(s.Created), cloneTime(s.Updated)
	return &c
}

func (k *Key) clone() *Key {
	c := *k
	c.N, c.E, c.X, c.Y = cloneBytes(k.N), cloneBytes(k.E), cloneBytes(k.X), cloneBytes(k.Y)
	if k.KeyOps != nil {
		c.KeyOps = append([]string(nil), k.KeyOps...)
	}
	c.Tags = cloneTags(k.Tags)
	c.NotBefore, c.Expires = cloneTime(k.NotBefore), cloneTime(k.Expires)
	c.Created, c.Updated = cloneTime(k.Created), cloneTime(k.Updated)
	return &c
}

func cloneInfos(in []SecretInfo) []SecretInfo {
	out := make([]SecretInfo, len(in))
	for i, s := range in {
		s.Tags = cloneTags(s.Tags)
		s.Expires, s.Updated = cloneTime(s.Expires), cloneTime(s.Updated)
		out[i] = s
	}
	return out
}
