package render

import (
	"crypto"
	"crypto/x509"
	"strings"
	"testing"
	"unicode/utf8"

	"software.sslmate.com/src/go-pkcs12"
)

// checkErr asserts the invariants of every error of this package: it wraps
// one of the sentinels and does not quote secret (a value long enough that a
// coincidental match with fixed message text is implausible).
func checkErr(t *testing.T, err error, secret string) {
	t.Helper()
	if err == nil {
		return
	}
	if Reason(err) == "" {
		t.Fatalf("error wraps no sentinel: %v", err)
	}
	if len(secret) >= 24 && strings.Contains(err.Error(), secret) {
		t.Fatalf("error quotes the value: %v", err)
	}
}

func FuzzExtractProperty(f *testing.F) {
	f.Add([]byte(`{"db":{"password":"x","port":5432},"hosts":["a","b"],"a.b":1}`), "db.password")
	f.Add([]byte(`{"a.b":{"c":[1,{"d":null}]}}`), `a\.b.c.1.d`)
	f.Add([]byte(`[0,[1,[2]]]`), "1.1.0")
	f.Add([]byte(`{"x":"y"}`), "x..y")
	f.Add([]byte(`not json at all, a plain secret`), "x")
	f.Add([]byte(`{"k":"\u00e9\ud800"}`), `k`)
	f.Fuzz(func(t *testing.T, value []byte, path string) {
		out, err := ExtractProperty(value, path)
		if !strings.Contains(path, string(value)) {
			checkErr(t, err, string(value))
		}
		if err == nil && path != "" && len(out) > len(value) {
			// Strings unescape and everything else compacts: never longer,
			// except for the UTF-8 replacement of invalid \u escapes.
			if utf8.Valid(value) && !strings.Contains(string(value), `\u`) {
				t.Fatalf("output (%d bytes) longer than input (%d bytes)", len(out), len(value))
			}
		}
	})
}

func FuzzRenderTemplates(f *testing.F) {
	f.Add("{{ .a }}", "hunter2hunter2hunter2hunter2")
	f.Add(`{{ index . "my-key" | b64enc | b64dec | upper }}`, "v")
	f.Add(`{{ range $k, $v := . }}{{ $k }}={{ $v | quote }}{{ end }}`, "x\ny")
	f.Add(`{{ with .a }}{{ . | indent 4 }}{{ else }}none{{ end }}`, "")
	f.Add(`{{ printf "%-10s|%5.2f" .a 3.14159 }}`, "z")
	f.Add(`{{ toJson . }}`, `"quoted" <html>`)
	f.Add(`{{ .a | b64dec }}`, "not base64 !!")
	f.Add(`{{ range . }}{{ range . }}{{ end }}{{ end }}`, "")
	f.Fuzz(func(t *testing.T, tmpl, value string) {
		out, err := RenderTemplates(map[string]string{"out": tmpl}, map[string][]byte{"a": []byte(value), "my-key": []byte("x")})
		if !strings.Contains(tmpl, value) {
			checkErr(t, err, value)
		}
		if err == nil && len(out["out"]) > MaxTemplateOutput {
			t.Fatalf("output of %d bytes exceeds the limit", len(out["out"]))
		}
	})
}

// FuzzParseCertificateSecret runs the whole certificate path. Its inputs are
// kilobytes of PEM or base64, so the fuzzer's minimization of each new input
// takes long; -fuzzminimizetime=2s keeps short runs productive.
func FuzzParseCertificateSecret(f *testing.F) {
	p := newPKI(f, "ecdsa", "fuzz")
	pemValue := pemPKCS8(f, p.LeafKey) + pemCerts(p.Root, p.Leaf, p.Inter)
	f.Add(ContentTypePEM, pemValue)
	f.Add("", pemCerts(p.Leaf)+pemLegacyKey(f, p.LeafKey))
	for _, enc := range []*pkcs12.Encoder{pkcs12.LegacyRC2, pkcs12.Modern} {
		der, err := enc.Encode(p.LeafKey, p.Leaf, []*x509.Certificate{p.Inter, p.Root}, "")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ContentTypePKCS12, b64(der))
	}
	f.Add(ContentTypeDER, b64(p.Inter.Raw))
	f.Add("", "hunter2 is a plain secret value")
	f.Add(ContentTypePKCS12, "MIIB")
	f.Fuzz(func(t *testing.T, contentType, value string) {
		b, err := ParseCertificateSecret(contentType, value)
		checkErr(t, err, value)
		if err != nil {
			return
		}
		cert, err := BuildCertificate(b)
		checkErr(t, err, value)
		if err != nil {
			return
		}
		_ = cert.ChainPEM()
		data, err := cert.TLSData()
		checkErr(t, err, value)
		if err == nil {
			if _, err := tlsPair(data); err != nil {
				t.Fatalf("TLS data not accepted by tls.X509KeyPair: %v", err)
			}
		}
		_, err = cert.PFX()
		checkErr(t, err, value)
	})
}

// FuzzOrderChain picks certificates (with repeats, in any order) from a pool
// of related and unrelated ones, and a key, and checks the chain invariants.
func FuzzOrderChain(f *testing.F) {
	p := newPKI(f, "ecdsa", "order")
	o := newPKI(f, "ecdsa", "order-other")
	impostorKey := ecKey(f, elliptic256())
	impostor := issue(f, &x509.Certificate{Subject: p.Inter.Subject, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, p.Root, impostorKey, p.RootKey)
	pool := []*x509.Certificate{p.Leaf, p.Inter, p.Root, o.Leaf, o.Inter, o.Root, impostor}
	keys := []crypto.Signer{nil, p.LeafKey, o.LeafKey, p.InterKey, impostorKey}

	f.Add([]byte{0, 1, 2}, byte(1))
	f.Add([]byte{2, 1, 0}, byte(1))
	f.Add([]byte{6, 2, 0, 1, 3}, byte(1))
	f.Add([]byte{0, 2}, byte(1))
	f.Add([]byte{5, 4, 3, 0, 1, 2}, byte(0))
	f.Add([]byte{0, 0, 1, 1}, byte(2))
	f.Add([]byte{}, byte(0))
	f.Fuzz(func(t *testing.T, picks []byte, keyPick byte) {
		if len(picks) > 3*len(pool) {
			picks = picks[:3*len(pool)]
		}
		var certs []*x509.Certificate
		has := map[*x509.Certificate]bool{}
		for _, b := range picks {
			c := pool[int(b)%len(pool)]
			certs = append(certs, c)
			has[c] = true
		}
		var key crypto.PrivateKey
		if k := keys[int(keyPick)%len(keys)]; k != nil {
			key = k
		}
		chain, warnings, err := OrderChain(certs, key)
		checkErr(t, err, "")
		if len(certs) == 0 {
			if err == nil {
				t.Fatal("empty input accepted")
			}
			return
		}
		if key != nil {
			pub, _ := publicKeyOf(key)
			matches := false
			for c := range has {
				matches = matches || samePublicKey(pub, c.PublicKey)
			}
			if matches != (err == nil) {
				t.Fatalf("key matches a certificate: %v, but err = %v", matches, err)
			}
			if err != nil {
				return
			}
			if !samePublicKey(pub, chain.Leaf.PublicKey) {
				t.Fatal("leaf does not match the key")
			}
		} else if err != nil {
			t.Fatalf("unexpected error without key: %v", err)
		}

		all := chain.Certificates()
		for i := 1; i < len(all); i++ {
			if !isIssuer(all[i], all[i-1]) {
				t.Fatalf("certificate %d does not issue certificate %d", i, i-1)
			}
		}
		if chain.Root != nil && !isSelfSigned(chain.Root) {
			t.Fatal("root is not self-signed")
		}
		if len(all) > len(has) {
			t.Fatalf("chain of %d from %d distinct certificates", len(all), len(has))
		}
		if key == p.LeafKey && has[p.Leaf] && has[p.Inter] && has[p.Root] {
			if len(all) != 3 || all[0] != p.Leaf || all[1] != p.Inter || all[2] != p.Root {
				t.Fatalf("wrong chain for the full set: %d certificates", len(all))
			}
		}
		dropped := 0
		for _, w := range warnings {
			if strings.Contains(w, "was dropped") {
				dropped++
			}
		}
		if len(all)+dropped != len(has) {
			t.Fatalf("%d in chain + %d dropped != %d distinct", len(all), dropped, len(has))
		}
	})
}

func FuzzParseJWK(f *testing.F) {
	f.Add([]byte(`{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}`))
	f.Add([]byte(`{"kty":"RSA","n":"xjlS","e":"AQAB"}`))
	f.Add([]byte(`{"kty":"oct","k":"AAAA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseJWK(data)
		checkErr(t, err, string(data))
		if err != nil {
			return
		}
		_, err1 := PublicKeyPEM(k)
		_, err2 := PublicKeyJWK(k)
		checkErr(t, err1, "")
		checkErr(t, err2, "")
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("PEM and JWK disagree: %v / %v", err1, err2)
		}
	})
}
