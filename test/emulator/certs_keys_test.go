package emulator_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	. "github.com/onsi/gomega"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/vaultsync/vaultsync/test/emulator"
)

// kvPipeline is an azcore pipeline with a bearer token for Key Vault, for the certificate endpoints
// (the module pins no certificates client).
type kvPipeline struct {
	p    runtime.Pipeline
	base string
}

func newKVPipeline(cred azcore.TokenCredential, base string) kvPipeline {
	bearer := runtime.NewBearerTokenPolicy(cred, []string{"https://vault.azure.net/.default"}, nil)
	return kvPipeline{p: runtime.NewPipeline("emulator-test", "v0", runtime.PipelineOptions{PerRetry: []policy.Policy{bearer}},
		&policy.ClientOptions{Retry: noRetry()}), base: base}
}

func (k kvPipeline) do(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	req, err := runtime.NewRequest(ctxT(t), method, k.base+path)
	if err != nil {
		t.Fatal(err)
	}
	q := req.Raw().URL.Query()
	q.Set("api-version", "2025-07-01")
	req.Raw().URL.RawQuery = q.Encode()
	if body != nil {
		if err := runtime.MarshalAsJSON(req, body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := k.p.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode, m
}

func TestCertificates(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	name, clientID, secret := secretIdentity(t)
	vaultName, vaultURL := newVault(t, emulator.RoleAssignment{Principal: name, Role: "Key Vault Certificate User"},
		emulator.RoleAssignment{Principal: name, Role: "Key Vault Certificates Officer"})
	cred := secretCredential(t, clientID, secret)

	// generated 3-level chain, PKCS#12 modern and legacy, and PEM
	for _, tc := range []struct{ name, ct, enc string }{
		{"modern", emulator.ContentTypePKCS12, "modern"},
		{"legacy", emulator.ContentTypePKCS12, "legacy"},
		{"pem", emulator.ContentTypePEM, ""},
	} {
		vi, err := emu.ImportCertificate(vaultName, emulator.Certificate{Name: "c-" + tc.name, ContentType: tc.ct, PFXEncoding: tc.enc,
			Generate: &emulator.GenerateCertificate{Subject: "CN=" + tc.name + ".example.test", DNSNames: []string{tc.name + ".example.test"}, KeyType: "EC"}})
		g.Expect(err).NotTo(HaveOccurred())
		s, err := secretsClient(t, vaultURL, cred).GetSecret(ctx, "c-"+tc.name, "", nil)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(*s.Managed).To(BeTrue())
		g.Expect(s.ID.Version()).To(Equal(vi.Version))
		g.Expect(string(*s.KID)).To(Equal(vaultURL + "/keys/c-" + tc.name + "/" + vi.Version))
		g.Expect(*s.ContentType).To(Equal(tc.ct))
		var leaf *x509.Certificate
		var chain []*x509.Certificate
		if tc.ct == emulator.ContentTypePKCS12 {
			der, err := base64.StdEncoding.DecodeString(*s.Value)
			g.Expect(err).NotTo(HaveOccurred())
			key, l, cas, err := pkcs12.DecodeChain(der, "")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(key).To(BeAssignableToTypeOf(&ecdsa.PrivateKey{}))
			leaf, chain = l, cas
		} else {
			g.Expect(*s.Value).To(HavePrefix("-----BEGIN PRIVATE KEY-----"))
			rest := []byte(*s.Value)
			for {
				var blk *pem.Block
				blk, rest = pem.Decode(rest)
				if blk == nil {
					break
				}
				if blk.Type == "CERTIFICATE" {
					c, err := x509.ParseCertificate(blk.Bytes)
					g.Expect(err).NotTo(HaveOccurred())
					if leaf == nil {
						leaf = c
					} else {
						chain = append(chain, c)
					}
				}
			}
		}
		g.Expect(leaf.DNSNames).To(Equal([]string{tc.name + ".example.test"}))
		g.Expect(chain).To(HaveLen(2), "leaf <- intermediate <- root")
		roots, inters := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(chain[1])
		inters.AddCert(chain[0])
		_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: tc.name + ".example.test"})
		g.Expect(err).NotTo(HaveOccurred())
		sum := sha1.Sum(leaf.Raw) //nolint:gosec
		g.Expect(vi.X5t).To(Equal(base64.RawURLEncoding.EncodeToString(sum[:])))

		k, err := keysClient(t, vaultURL, cred).GetKey(ctx, "c-"+tc.name, "", nil)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(*k.Managed).To(BeTrue())
		g.Expect(k.Key.KID.Version()).To(Equal(vi.Version))
		g.Expect(k.Key.D).To(BeNil())
	}

	// certificate endpoints
	kv := newKVPipeline(cred, vaultURL)
	status, body := kv.do(t, http.MethodGet, "/certificates/c-pem/", nil)
	g.Expect(status).To(Equal(200))
	cer, err := base64.StdEncoding.DecodeString(body["cer"].(string))
	g.Expect(err).NotTo(HaveOccurred())
	sum := sha1.Sum(cer) //nolint:gosec
	g.Expect(body["x5t"]).To(Equal(base64.RawURLEncoding.EncodeToString(sum[:])))
	g.Expect(body["sid"]).To(HavePrefix(vaultURL + "/secrets/c-pem/"))
	g.Expect(body["policy"].(map[string]any)["secret_props"]).To(Equal(map[string]any{"contentType": emulator.ContentTypePEM}))
	status, body = kv.do(t, http.MethodGet, "/certificates", nil)
	g.Expect(status).To(Equal(200))
	g.Expect(body["value"]).To(HaveLen(3))
	status, body = kv.do(t, http.MethodGet, "/certificates/c-pem/versions", nil)
	g.Expect(status).To(Equal(200))
	g.Expect(body["value"]).To(HaveLen(1))
	status, body = kv.do(t, http.MethodGet, "/certificates/c-pem/policy", nil)
	g.Expect(status).To(Equal(200))
	g.Expect(body["issuer"]).To(Equal(map[string]any{"name": "Self"}))
	status, body = kv.do(t, http.MethodGet, "/certificates/nope/", nil)
	g.Expect(status).To(Equal(404))
	g.Expect(body["error"].(map[string]any)["code"]).To(Equal("CertificateNotFound"))

	// import PEM and PFX through the REST API
	s, err := secretsClient(t, vaultURL, cred).GetSecret(ctx, "c-pem", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	status, body = kv.do(t, http.MethodPost, "/certificates/imported-pem/import", map[string]any{"value": *s.Value,
		"policy": map[string]any{"secret_props": map[string]any{"contentType": emulator.ContentTypePEM}}})
	g.Expect(status).To(Equal(200), "%v", body)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	g.Expect(err).NotTo(HaveOccurred())
	_, certPEM := selfSignedFor(t, rsaKey)
	blk, _ := pem.Decode([]byte(certPEM))
	leaf, _ := x509.ParseCertificate(blk.Bytes)
	pfx, err := pkcs12.Modern.Encode(rsaKey, leaf, nil, "pfx-password")
	g.Expect(err).NotTo(HaveOccurred())
	status, body = kv.do(t, http.MethodPost, "/certificates/imported-pfx/import", map[string]any{"value": base64.StdEncoding.EncodeToString(pfx), "pwd": "pfx-password"})
	g.Expect(status).To(Equal(200), "%v", body)
	g.Expect(body["policy"].(map[string]any)["key_props"].(map[string]any)["key_size"]).To(Equal(float64(2048)))
	s2, err := secretsClient(t, vaultURL, cred).GetSecret(ctx, "imported-pfx", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	der, _ := base64.StdEncoding.DecodeString(*s2.Value)
	_, l2, err := pkcs12.Decode(der, "")
	g.Expect(err).NotTo(HaveOccurred(), "the managed secret has an empty password")
	g.Expect(l2.Equal(leaf)).To(BeTrue())
	// PEM conversion on get
	pemSecret, err := secretsClient(t, vaultURL, cred).GetSecret(ctx, "imported-pfx", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*pemSecret.ContentType).To(Equal(emulator.ContentTypePKCS12))
	r := raw(t, http.MethodGet, vaultURL+"/secrets/imported-pfx/?api-version=7.4&outContentType=application/x-pem-file", mint(t, name), "")
	g.Expect(r.status).To(Equal(200))
	g.Expect(r.json(t)["value"]).To(HavePrefix("-----BEGIN PRIVATE KEY-----"))
	g.Expect(r.json(t)["contentType"]).To(Equal(emulator.ContentTypePEM))

	// a managed secret cannot be set or deleted through the secrets API
	_, err = emu.SetSecret(vaultName, "c-pem", emulator.SecretVersion{Value: "x"})
	g.Expect(err).To(HaveOccurred())

	// delete the certificate: its secret and key go with it
	status, body = kv.do(t, http.MethodDelete, "/certificates/c-pem", nil)
	g.Expect(status).To(Equal(200))
	g.Expect(body["recoveryId"]).To(Equal(vaultURL + "/deletedcertificates/c-pem"))
	_, err = secretsClient(t, vaultURL, cred).GetSecret(ctx, "c-pem", "", nil)
	code, _, _ := innerCode(t, err)
	g.Expect(code).To(Equal("SecretNotFound"))
	status, _ = kv.do(t, http.MethodGet, "/deletedcertificates/c-pem", nil)
	g.Expect(status).To(Equal(200))
	status, _ = kv.do(t, http.MethodPost, "/deletedcertificates/c-pem/recover", nil)
	g.Expect(status).To(Equal(200))
	_, err = secretsClient(t, vaultURL, cred).GetSecret(ctx, "c-pem", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
}

func selfSignedFor(t *testing.T, key *rsa.PrivateKey) (*x509.Certificate, string) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "imported"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestKeys(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	name, clientID, secret := secretIdentity(t)
	readerName, readerID, readerSecret := secretIdentity(t)
	vaultName, vaultURL := newVault(t, emulator.RoleAssignment{Principal: name, Role: "Key Vault Crypto Officer"},
		emulator.RoleAssignment{Principal: readerName, Role: "Key Vault Crypto User"})
	c := keysClient(t, vaultURL, secretCredential(t, clientID, secret))

	rsaKey, err := c.CreateKey(ctx, "rsa", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr(int32(2048)),
		Tags: map[string]*string{"t": ptr("1")}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rsaKey.Key.N).To(HaveLen(256))
	g.Expect(rsaKey.Key.E).To(Equal([]byte{1, 0, 1}))
	g.Expect(rsaKey.Key.D).To(BeNil())
	ecKey, err := c.CreateKey(ctx, "ec", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP384)}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*ecKey.Key.Crv).To(Equal(azkeys.CurveNameP384))
	g.Expect(ecKey.Key.X).To(HaveLen(48))
	_, err = c.CreateKey(ctx, "rsa", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA)}, nil)
	g.Expect(err).NotTo(HaveOccurred())

	// import: only the public part comes back
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	imp, err := c.ImportKey(ctx, "imported", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeEC), Crv: ptr(azkeys.CurveNameP256),
		X: priv.X.FillBytes(make([]byte, 32)), Y: priv.Y.FillBytes(make([]byte, 32)), D: priv.D.FillBytes(make([]byte, 32)),
		KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationSign)}}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(imp.Key.D).To(BeNil())
	g.Expect(imp.Key.X).To(Equal(priv.X.FillBytes(make([]byte, 32))))
	g.Expect(imp.Key.KeyOps).To(Equal([]*azkeys.KeyOperation{ptr(azkeys.KeyOperationSign)}))

	// Crypto User reads
	rc := keysClient(t, vaultURL, secretCredential(t, readerID, readerSecret))
	got, err := rc.GetKey(ctx, "rsa", rsaKey.Key.KID.Version(), nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.Key.N).To(Equal(rsaKey.Key.N))
	var names []string
	for p := rc.NewListKeyPropertiesPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		for _, k := range page.Value {
			names = append(names, k.KID.Name())
		}
	}
	g.Expect(names).To(Equal([]string{"ec", "imported", "rsa"}))
	versions := 0
	for p := rc.NewListKeyPropertiesVersionsPager("rsa", nil); p.More(); {
		page, err := p.NextPage(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		versions += len(page.Value)
	}
	g.Expect(versions).To(Equal(2))
	_, err = rc.DeleteKey(ctx, "rsa", nil)
	_, inner, _ := innerCode(t, err)
	g.Expect(inner).To(Equal("ForbiddenByRbac"))
	_, err = rc.GetKey(ctx, "missing", "", nil)
	code, _, _ := innerCode(t, err)
	g.Expect(code).To(Equal("KeyNotFound"))

	// delete, deleted, recover, purge
	del, err := c.DeleteKey(ctx, "ec", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*del.RecoveryID).To(Equal(vaultURL + "/deletedkeys/ec"))
	_, err = c.GetDeletedKey(ctx, "ec", nil)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.RecoverDeletedKey(ctx, "ec", nil)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.DeleteKey(ctx, "ec", nil)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.PurgeDeletedKey(ctx, "ec", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(emu.Count(emulator.LogFilter{Vault: vaultName, Operation: "PurgeDeletedKey", Status: 204})).To(Equal(1))
	_, err = c.GetKey(ctx, "ec", "", nil)
	g.Expect(err).To(MatchError(ContainSubstring("KeyNotFound")))
	g.Expect(strings.Count(vaultURL, ".vault.azure.net")).To(Equal(1))
}
