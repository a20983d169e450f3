// Package push turns the data of a Kubernetes Secret into the Key Vault objects a
// VaultPushSecret writes: secret values, a whole Secret as JSON, a TLS Secret as a PEM
// certificate bundle. It also computes the HMAC that tells whether an object already holds the
// data, and the tags that mark an object's owner. It does no I/O.
package push

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/pki"
)

// Sentinel errors; every error of Build wraps one of them. Messages name keys and the Secret,
// never a value.
var (
	// ErrSourceKeyNotFound: a key the spec reads is missing from the Secret.
	ErrSourceKeyNotFound = errors.New("key not found in the Secret")
	// ErrCertificateUnusable: tls.crt, tls.key or ca.crt cannot be imported as a certificate.
	ErrCertificateUnusable = errors.New("the Secret cannot be imported as a certificate")
	// ErrNotText: a value pushed as JSON text is not valid UTF-8.
	ErrNotText = errors.New("value is not UTF-8 text")
	// ErrTooLarge: a value exceeds Key Vault's 25 KiB limit for a secret.
	ErrTooLarge = errors.New("value too large for Key Vault")
)

// MaxValueBytes is Key Vault's limit on the size of a secret value.
const MaxValueBytes = 25 * 1024

// ContentTypeJSON is the content type of a whole Secret pushed as JSON.
const ContentTypeJSON = "application/json"

// Object is one Key Vault object to write. Its String method never prints the value.
type Object struct {
	Name        string
	Type        v1alpha1.PushObjectType
	ContentType string
	// Value is the secret value, or for a certificate the PEM bundle to import.
	Value string
}

// String names the object without its value.
func (o Object) String() string { return string(o.Type) + " " + o.Name }

// Build returns the objects the spec writes from the Secret's data, in spec order (data items,
// then dataFrom). It fails whole: one missing key or unusable certificate fails the push.
func Build(spec *v1alpha1.VaultPushSecretSpec, secretName string, data map[string][]byte) ([]Object, error) {
	var out []Object
	for i := range spec.Data {
		item := &spec.Data[i]
		switch item.Remote.TypeOrDefault() {
		case v1alpha1.PushTypeCertificate:
			bundle, err := CertificatePEM(secretName, data)
			if err != nil {
				return nil, fmt.Errorf("spec.data[%d] (certificate %q): %w", i, item.Remote.Name, err)
			}
			out = append(out, Object{Name: item.Remote.Name, Type: v1alpha1.PushTypeCertificate, ContentType: pki.ContentTypePEM, Value: bundle})
		default:
			v, ok := data[item.SecretKey]
			if !ok {
				return nil, fmt.Errorf("spec.data[%d]: %w: Secret %q has no key %q", i, ErrSourceKeyNotFound, secretName, item.SecretKey)
			}
			if len(v) > MaxValueBytes {
				return nil, fmt.Errorf("spec.data[%d]: %w: key %q holds %d bytes, Key Vault takes at most %d", i, ErrTooLarge, item.SecretKey, len(v), MaxValueBytes)
			}
			out = append(out, Object{Name: item.Remote.Name, Type: v1alpha1.PushTypeSecret, ContentType: item.Remote.ContentType, Value: string(v)})
		}
	}
	if df := spec.DataFrom; df != nil {
		v, err := WholeSecretJSON(secretName, data)
		if err != nil {
			return nil, fmt.Errorf("spec.dataFrom: %w", err)
		}
		out = append(out, Object{Name: df.Remote.Name, Type: v1alpha1.PushTypeSecret, ContentType: ContentTypeJSON, Value: v})
	}
	return out, nil
}

// WholeSecretJSON is every key of the Secret as one JSON object of strings, keys sorted.
func WholeSecretJSON(secretName string, data map[string][]byte) (string, error) {
	m := make(map[string]string, len(data))
	for k, v := range data {
		if !utf8.Valid(v) {
			return "", fmt.Errorf("%w: key %q of Secret %q is binary; push it with a spec.data item instead", ErrNotText, k, secretName)
		}
		m[k] = string(v)
	}
	b, err := json.Marshal(m) // encoding/json sorts map keys
	if err != nil {
		return "", err
	}
	if len(b) > MaxValueBytes {
		return "", fmt.Errorf("%w: Secret %q as JSON is %d bytes, Key Vault takes at most %d", ErrTooLarge, secretName, len(b), MaxValueBytes)
	}
	return string(b), nil
}

// CertificatePEM builds the PEM bundle Key Vault imports from a TLS Secret: the private key
// (PKCS#8) followed by tls.crt's certificates in their order (leaf first), then those of ca.crt
// that tls.crt does not already hold. The leaf must match the key.
func CertificatePEM(secretName string, data map[string][]byte) (string, error) {
	for _, k := range []string{"tls.crt", "tls.key"} {
		if len(data[k]) == 0 {
			return "", fmt.Errorf("%w: Secret %q has no %s (a kubernetes.io/tls Secret has tls.crt and tls.key)", ErrSourceKeyNotFound, secretName, k)
		}
	}
	unusable := func(format string, args ...any) error {
		return fmt.Errorf("%w: Secret %q: %s", ErrCertificateUnusable, secretName, fmt.Sprintf(format, args...))
	}
	chain, err := pki.ParsePEM(data["tls.crt"])
	if err != nil {
		return "", unusable("tls.crt: %s", describe(err))
	}
	if chain.PrivateKey != nil {
		return "", unusable("tls.crt holds a private key; keep it in tls.key only")
	}
	keyed, err := pki.ParsePEM(append(append([]byte{}, data["tls.key"]...), data["tls.crt"]...))
	if err != nil {
		return "", unusable("tls.key: %s", describe(err))
	}
	if keyed.PrivateKey == nil {
		return "", unusable("tls.key holds no private key")
	}
	signer, ok := keyed.PrivateKey.(crypto.Signer)
	if !ok {
		return "", unusable("tls.key holds an unsupported kind of key")
	}
	leaf := chain.Certificates[0]
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return "", unusable("the first certificate of tls.crt (%s) does not match tls.key; tls.crt must start with the leaf", leaf.Subject)
	}
	certs := slices.Clone(chain.Certificates)
	if ca := data["ca.crt"]; len(ca) > 0 {
		cas, err := pki.ParsePEM(ca)
		if err != nil {
			return "", unusable("ca.crt: %s", describe(err))
		}
		for _, c := range cas.Certificates {
			if !slices.ContainsFunc(certs, func(h *x509.Certificate) bool { return h.Equal(c) }) {
				certs = append(certs, c)
			}
		}
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return "", unusable("tls.key cannot be written as PKCS#8")
	}
	var b strings.Builder
	b.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return b.String(), nil
}

// describe is a parse error as text for a condition. It names PEM block types in lower case:
// the text "PRIVATE KEY" is how leak checks recognise key material, and a condition must never
// look like it holds some.
func describe(err error) string {
	return strings.ReplaceAll(err.Error(), "PRIVATE KEY", "private key")
}

// Digest is the HMAC-SHA256 (hex) of what an object holds, under key: its type, content type
// and value, each length-prefixed. It is the value of the vaultsync-data-hmac tag.
func Digest(key []byte, o Object) string {
	m := hmac.New(sha256.New, key)
	var n [8]byte
	for _, part := range []string{"vaultsync-push-v1", string(o.Type), o.ContentType, o.Value} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		m.Write(n[:])
		m.Write([]byte(part))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Owner is the value of the vaultsync-owner tag of a VaultPushSecret.
func Owner(clusterID, namespace, name string) string {
	return clusterID + "/" + namespace + "/" + name
}

// Tags are the tags written with every version: managed-by, the owner and the data's HMAC.
func Tags(owner, digest string) map[string]string {
	return map[string]string{
		v1alpha1.TagManagedBy: v1alpha1.TagManagedByValue,
		v1alpha1.TagOwner:     owner,
		v1alpha1.TagDataHash:  digest,
	}
}

// Reason is the condition reason of a Build error, "" for other errors.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrSourceKeyNotFound):
		return "SourceKeyNotFound"
	case errors.Is(err, ErrCertificateUnusable):
		return "CertificateUnusable"
	case errors.Is(err, ErrNotText), errors.Is(err, ErrTooLarge):
		return "SourceDataUnusable"
	}
	return ""
}
