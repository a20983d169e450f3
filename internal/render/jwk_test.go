package render

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"

	. "github.com/onsi/gomega"
)

func TestPublicKeyPEMAndJWK(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	type ecCase struct {
		crv   string
		curve elliptic.Curve
	}
	tests := []struct {
		name    string
		jwkJSON string
		wantPub any
		wantJWK string
		wantErr error
	}{
		{
			name: "RSA from Key Vault, kty RSA-HSM",
			jwkJSON: fmt.Sprintf(`{"kid":"https://v.vault.azure.net/keys/k/1","kty":"RSA-HSM","key_ops":["sign"],"n":%q,"e":"AQAB"}`,
				enc(rsaKey.N.Bytes())),
			wantPub: &rsaKey.PublicKey,
			wantJWK: fmt.Sprintf(`{"e":"AQAB","kid":"https://v.vault.azure.net/keys/k/1","kty":"RSA","n":%q}`, enc(rsaKey.N.Bytes())),
		},
		{
			name:    "RSA with padded base64url and a leading zero byte",
			jwkJSON: fmt.Sprintf(`{"kty":"RSA","n":%q,"e":"AAEAAQ=="}`, base64.URLEncoding.EncodeToString(append([]byte{0}, rsaKey.N.Bytes()...))),
			wantPub: &rsaKey.PublicKey,
			wantJWK: fmt.Sprintf(`{"e":"AQAB","kty":"RSA","n":%q}`, enc(rsaKey.N.Bytes())),
		},
		{name: "RSA without modulus", jwkJSON: `{"kty":"RSA","e":"AQAB"}`, wantErr: ErrUnsupportedKey},
		{name: "RSA with even exponent", jwkJSON: fmt.Sprintf(`{"kty":"RSA","n":%q,"e":"AAI"}`, enc(rsaKey.N.Bytes())), wantErr: ErrUnsupportedKey},
		{name: "symmetric key", jwkJSON: `{"kty":"oct-HSM","k":"c2VjcmV0"}`, wantErr: ErrUnsupportedKey},
		{name: "secp256k1", jwkJSON: `{"kty":"EC","crv":"P-256K","x":"AQ","y":"AQ"}`, wantErr: ErrUnsupportedKey},
		{name: "EC point not on the curve", jwkJSON: `{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}`, wantErr: ErrUnsupportedKey},
		{name: "EC coordinate too long", jwkJSON: fmt.Sprintf(`{"kty":"EC","crv":"P-256","x":%q,"y":"AQ"}`, enc(make([]byte, 33))), wantErr: ErrUnsupportedKey},
	}
	for _, c := range []ecCase{{"P-256", elliptic.P256()}, {"P-384", elliptic.P384()}, {"P-521", elliptic.P521()}} {
		k, err := ecdsa.GenerateKey(c.curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		point, err := k.PublicKey.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		size := (len(point) - 1) / 2
		x, y := point[1:1+size], point[1+size:]
		// Key Vault may drop leading zero bytes; the canonical output pads.
		tests = append(tests, struct {
			name    string
			jwkJSON string
			wantPub any
			wantJWK string
			wantErr error
		}{
			name:    "EC " + c.crv,
			jwkJSON: fmt.Sprintf(`{"kid":"k1","kty":"EC-HSM","crv":%q,"x":%q,"y":%q}`, c.crv, enc(trimLeadingZeros(x)), enc(trimLeadingZeros(y))),
			wantPub: &k.PublicKey,
			wantJWK: fmt.Sprintf(`{"crv":%q,"kid":"k1","kty":"EC","x":%q,"y":%q}`, c.crv, enc(x), enc(y)),
		})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			jwk, err := ParseJWK([]byte(tc.jwkJSON))
			g.Expect(err).NotTo(HaveOccurred())

			pemOut, err := RenderKey(jwk, KeyFormatPEM)
			jwkOut, jwkErr := RenderKey(jwk, KeyFormatJWK)
			if tc.wantErr != nil {
				g.Expect(err).To(MatchError(tc.wantErr))
				g.Expect(jwkErr).To(MatchError(tc.wantErr))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			block, rest := pem.Decode(pemOut)
			g.Expect(rest).To(BeEmpty())
			g.Expect(block.Type).To(Equal("PUBLIC KEY"))
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(samePublicKey(pub, tc.wantPub)).To(BeTrue())

			g.Expect(jwkErr).NotTo(HaveOccurred())
			g.Expect(string(jwkOut)).To(Equal(tc.wantJWK))
			// The canonical JWK reads back to the same key.
			again, err := ParseJWK(jwkOut)
			g.Expect(err).NotTo(HaveOccurred())
			pemAgain, err := PublicKeyPEM(again)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pemAgain).To(Equal(pemOut))
		})
	}
}

func TestJWKFromDecodedBytes(t *testing.T) {
	// The controller fills the struct from azkeys, whose fields are already
	// decoded bytes.
	g := NewWithT(t)
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	g.Expect(err).NotTo(HaveOccurred())
	jwk := JSONWebKey{Kty: "RSA", N: k.N.Bytes(), E: big.NewInt(int64(k.E)).Bytes()}
	out, err := PublicKeyJWK(jwk)
	g.Expect(err).NotTo(HaveOccurred())
	var m map[string]string
	g.Expect(json.Unmarshal(out, &m)).To(Succeed())
	g.Expect(m).To(HaveKeyWithValue("e", "AQAB"))
	g.Expect(m).NotTo(HaveKey("kid"))

	_, err = RenderKey(jwk, "DER")
	g.Expect(err).To(MatchError(ErrUnsupportedKey))
}

func TestParseJWKErrors(t *testing.T) {
	for _, in := range []string{`not json`, `{"kty":"RSA","n":5}`, `{"kty":"RSA","n":"!!"}`, `[]`} {
		_, err := ParseJWK([]byte(in))
		NewWithT(t).Expect(err).To(HaveOccurred(), in)
	}
}
