package render

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
)

// Key output formats of a key item.
const (
	// KeyFormatPEM writes the public key as a PKIX "PUBLIC KEY" PEM block.
	KeyFormatPEM = "PEM"
	// KeyFormatJWK writes the public key as canonical JWK JSON.
	KeyFormatJWK = "JWK"
)

// maxRSABits bounds the RSA modulus accepted from a key.
const maxRSABits = 16384

// JSONWebKey is the public part of a Key Vault key. Byte fields hold the
// decoded big-endian bytes; in JSON they are base64url (padding optional on
// input, never written), as on the wire. Kty may carry Key Vault's "-HSM"
// suffix.
type JSONWebKey struct {
	Kid string `json:"kid,omitempty"`
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	N   B64URL `json:"n,omitempty"`
	E   B64URL `json:"e,omitempty"`
	X   B64URL `json:"x,omitempty"`
	Y   B64URL `json:"y,omitempty"`
}

// B64URL is a byte string that is base64url-encoded in JSON.
type B64URL []byte

// MarshalJSON writes unpadded base64url.
func (b B64URL) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

// UnmarshalJSON reads base64url with or without padding.
func (b *B64URL) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("%w: JWK byte field must be a base64url string", ErrNotJSON)
	}
	out, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return fmt.Errorf("%w: JWK byte field is not base64url", ErrDecode)
	}
	*b = out
	return nil
}

// ParseJWK reads a JWK from JSON, such as the "key" member of a Key Vault
// key. Unknown members (key_ops, d, ...) are ignored.
func ParseJWK(data []byte) (JSONWebKey, error) {
	var k JSONWebKey
	if !json.Valid(data) {
		return k, fmt.Errorf("%w: the key is not a JSON Web Key", ErrNotJSON)
	}
	if err := json.Unmarshal(data, &k); err != nil {
		return k, fmt.Errorf("%w: the key is not a JSON Web Key", ErrNotJSON)
	}
	return k, nil
}

// PublicKeyPEM returns the public key of an RSA or EC (P-256, P-384, P-521)
// JWK as a PKIX "PUBLIC KEY" PEM block. The EC point must lie on the curve.
// Other key types (oct, OKP, ...) wrap ErrUnsupportedKey.
func PublicKeyPEM(jwk JSONWebKey) ([]byte, error) {
	pub, err := publicKey(jwk)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot encode the %s public key", ErrUnsupportedKey, jwk.Kty)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// PublicKeyJWK returns the public key as canonical JWK JSON: only the public
// members, in lexicographic order as in RFC 7638 (crv, kid, kty, x, y for EC;
// e, kid, kty, n for RSA), kid omitted when empty, kty without Key Vault's
// "-HSM" suffix, EC coordinates padded to the curve size and RSA values
// without leading zero bytes. The key is validated as in [PublicKeyPEM].
func PublicKeyJWK(jwk JSONWebKey) ([]byte, error) {
	pub, err := publicKey(jwk)
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding.EncodeToString
	// A struct with fields in lexicographic order, so the output is canonical.
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return json.Marshal(struct {
			E   string `json:"e"`
			Kid string `json:"kid,omitempty"`
			Kty string `json:"kty"`
			N   string `json:"n"`
		}{enc(big.NewInt(int64(k.E)).Bytes()), jwk.Kid, "RSA", enc(k.N.Bytes())})
	case *ecdsa.PublicKey:
		point, err := k.Bytes() // 0x04 || X || Y, each padded to the curve size
		if err != nil {
			return nil, fmt.Errorf("%w: invalid EC public key", ErrUnsupportedKey)
		}
		size := (len(point) - 1) / 2
		return json.Marshal(struct {
			Crv string `json:"crv"`
			Kid string `json:"kid,omitempty"`
			Kty string `json:"kty"`
			X   string `json:"x"`
			Y   string `json:"y"`
		}{k.Curve.Params().Name, jwk.Kid, "EC", enc(point[1 : 1+size]), enc(point[1+size:])})
	}
	return nil, fmt.Errorf("%w: key type %q", ErrUnsupportedKey, jwk.Kty)
}

// publicKey builds and validates the Go public key of a JWK.
func publicKey(jwk JSONWebKey) (any, error) {
	switch strings.TrimSuffix(strings.ToUpper(jwk.Kty), "-HSM") {
	case "RSA":
		return rsaPublicKey(jwk)
	case "EC":
		return ecPublicKey(jwk)
	}
	return nil, fmt.Errorf("%w: key type %q (only RSA and EC keys have a public key to export)", ErrUnsupportedKey, jwk.Kty)
}

func rsaPublicKey(jwk JSONWebKey) (*rsa.PublicKey, error) {
	n := new(big.Int).SetBytes(jwk.N)
	e := new(big.Int).SetBytes(jwk.E)
	switch {
	case n.Sign() == 0:
		return nil, fmt.Errorf("%w: RSA key without modulus n", ErrUnsupportedKey)
	case n.BitLen() > maxRSABits:
		return nil, fmt.Errorf("%w: RSA modulus of %d bits, at most %d are supported", ErrUnsupportedKey, n.BitLen(), maxRSABits)
	case n.Bit(0) == 0:
		return nil, fmt.Errorf("%w: RSA modulus n is even", ErrUnsupportedKey)
	case !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0:
		return nil, fmt.Errorf("%w: RSA public exponent e must be an odd number from 3 to 2^31-1", ErrUnsupportedKey)
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

func ecPublicKey(jwk JSONWebKey) (*ecdsa.PublicKey, error) {
	var curve elliptic.Curve
	switch jwk.Crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		// P-256K (secp256k1) is offered by Key Vault but not by Go.
		return nil, fmt.Errorf("%w: EC curve %q (supported: P-256, P-384, P-521)", ErrUnsupportedKey, jwk.Crv)
	}
	size := (curve.Params().BitSize + 7) / 8
	x, y := trimLeadingZeros(jwk.X), trimLeadingZeros(jwk.Y)
	if len(x) > size || len(y) > size || len(jwk.X) == 0 || len(jwk.Y) == 0 {
		return nil, fmt.Errorf("%w: EC coordinates do not fit curve %s", ErrUnsupportedKey, jwk.Crv)
	}
	point := make([]byte, 1+2*size)
	point[0] = 4
	copy(point[1+size-len(x):1+size], x)
	copy(point[1+2*size-len(y):], y)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("%w: the EC point is not on curve %s", ErrUnsupportedKey, jwk.Crv)
	}
	return pub, nil
}

func trimLeadingZeros(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// RenderKey writes the public key of a key item in the given format ("" means
// KeyFormatPEM).
func RenderKey(jwk JSONWebKey, format string) ([]byte, error) {
	switch format {
	case "", KeyFormatPEM:
		return PublicKeyPEM(jwk)
	case KeyFormatJWK:
		return PublicKeyJWK(jwk)
	}
	return nil, fmt.Errorf("%w: unknown key output format %q (want %s or %s)", ErrUnsupportedKey, format, KeyFormatPEM, KeyFormatJWK)
}
