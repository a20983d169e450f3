package emulator_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/test/emulator"
)

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// sameShape reports every field of the example missing from got or of another JSON type.
// Nulls in the example match anything; arrays compare their first elements.
func sameShape(path string, example, got any) []string {
	if example == nil {
		return nil
	}
	if jsonKind(example) != jsonKind(got) {
		return []string{fmt.Sprintf("%s: example has %s, emulator has %s", path, jsonKind(example), jsonKind(got))}
	}
	var out []string
	switch ex := example.(type) {
	case map[string]any:
		g := got.(map[string]any)
		keys := make([]string, 0, len(ex))
		for k := range ex {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			if k == "tags" { // user data: only the type matters
				if jsonKind(gv) != "object" {
					out = append(out, path+".tags: not an object")
				}
				continue
			}
			out = append(out, sameShape(path+"."+k, ex[k], gv)...)
		}
	case []any:
		g := got.([]any)
		if len(ex) > 0 {
			if len(g) == 0 {
				return []string{path + ": example has items, emulator has none"}
			}
			out = append(out, sameShape(path+"[0]", ex[0], g[0])...)
		}
	}
	return out
}

func loadExample(t *testing.T, file string) (int, any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keyvault-rest", file))
	if err != nil {
		t.Fatal(err)
	}
	var ex struct {
		Responses map[string]struct {
			Body any `json:"body"`
		} `json:"responses"`
	}
	if err := json.Unmarshal(b, &ex); err != nil {
		t.Fatal(err)
	}
	for code, r := range ex.Responses {
		var n int
		_, _ = fmt.Sscan(code, &n)
		return n, r.Body
	}
	t.Fatalf("%s: no response", file)
	return 0, nil
}

func TestResponseShapesMatchRESTExamples(t *testing.T) {
	name, _, _ := secretIdentity(t)
	vaultName, vaultURL := newVault(t, emulator.RoleAssignment{Principal: name, Role: "Key Vault Administrator"})
	tags := map[string]string{"purpose": "shape test"}
	nbf, exp := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	for _, s := range []string{"s1", "s2", "to-delete", "deleted1", "deleted2", "to-backup"} {
		if _, err := emu.SetSecret(vaultName, s, emulator.SecretVersion{Value: "v-" + s, ContentType: "plainText", Tags: tags, NotBefore: &nbf, Expires: &exp}); err != nil {
			t.Fatal(err)
		}
	}
	s1v2, _ := emu.SetSecret(vaultName, "s1", emulator.SecretVersion{Value: "v2", ContentType: "plainText", Tags: tags})
	for _, c := range []string{"c1", "c2", "dc1", "dc2"} {
		gen := &emulator.GenerateCertificate{}
		if c == "dc2" {
			gen.KeyType = "EC" // only listed: no key_size needed, and faster
		}
		if _, err := emu.ImportCertificate(vaultName, emulator.Certificate{Name: c, Tags: tags, Generate: gen}); err != nil {
			t.Fatal(err)
		}
	}
	c1v2, err := emu.ImportCertificate(vaultName, emulator.Certificate{Name: "c1", Tags: tags, Generate: &emulator.GenerateCertificate{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "k2", "k-delete", "dk1", "dk2"} {
		kty := "RSA"
		if k == "k2" || k == "dk2" {
			kty = "EC"
		}
		if _, err := emu.CreateKey(vaultName, emulator.Key{Name: k, Kty: kty, Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := emu.CreateKey(vaultName, emulator.Key{Name: "k1", Tags: tags}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ kind, name string }{{"secrets", "deleted1"}, {"secrets", "deleted2"}, {"certificates", "dc1"}, {"certificates", "dc2"}, {"keys", "dk1"}, {"keys", "dk2"}} {
		var err error
		switch d.kind {
		case "secrets":
			err = emu.DeleteSecret(vaultName, d.name, false)
		case "certificates":
			err = emu.DeleteCertificate(vaultName, d.name, false)
		default:
			err = emu.DeleteKey(vaultName, d.name, false)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	tok := mint(t, name)
	call := func(method, path, body string) rawResponse {
		return raw(t, method, vaultURL+path, tok, body)
	}
	// a PEM bundle and a backup blob for the import/restore cases
	pemBundle := call(http.MethodGet, "/secrets/c2/?api-version=7.4&outContentType=application/x-pem-file", "").json(t)["value"].(string)
	backup := call(http.MethodPost, "/secrets/to-backup/backup?api-version=7.4", "").json(t)["value"].(string)
	call(http.MethodDelete, "/secrets/to-backup?api-version=7.4", "")
	call(http.MethodDelete, "/deletedsecrets/to-backup?api-version=7.4", "")
	pemJSON, _ := json.Marshal(pemBundle)
	jwkN := base64.RawURLEncoding.EncodeToString(make([]byte, 256))
	jwkN = "w" + jwkN[1:]

	q := "?api-version=2025-07-01"
	cases := []struct {
		example, method, path, body string
	}{
		{"examples-fallback/7.6/GetSecret-example.json", "GET", "/secrets/s1/" + s1v2.Version + q, ""},
		{"examples-fallback/7.6/SetSecret-example.json", "PUT", "/secrets/s3" + q, `{"value":"x","contentType":"plainText","tags":{"a":"b"}}`},
		{"examples-fallback/7.6/GetSecrets-example.json", "GET", "/secrets" + q + "&maxresults=1", ""},
		{"examples-fallback/7.5/GetSecretVersions-example.json", "GET", "/secrets/s1/versions" + q + "&maxresults=1", ""},
		{"examples/UpdateSecret-example.json", "PATCH", "/secrets/s2/" + q, `{"contentType":"plainText","tags":{"a":"b"},"attributes":{"enabled":true}}`},
		{"examples/DeleteSecret-example.json", "DELETE", "/secrets/to-delete" + q, ""},
		{"examples/GetDeletedSecrets-example.json", "GET", "/deletedsecrets" + q + "&maxresults=1", ""},
		{"examples-fallback/7.6/GetDeletedSecret-example.json", "GET", "/deletedsecrets/deleted1" + q, ""},
		{"examples-fallback/7.6/RecoverDeletedSecret-example.json", "POST", "/deletedsecrets/deleted1/recover" + q, ""},
		{"examples/BackupSecret-example.json", "POST", "/secrets/s2/backup" + q, ""},
		{"examples/RestoreSecret-example.json", "POST", "/secrets/restore" + q, `{"value":"` + backup + `"}`},
		{"examples/GetSecretWithPEMConversion-example.json", "GET", "/secrets/c2/" + q + "&outContentType=application/x-pem-file", ""},
		{"examples/GetCertificates-example.json", "GET", "/certificates" + q, ""},
		{"examples-fallback/7.6/GetCertificate-example.json", "GET", "/certificates/c1/" + c1v2.Version + q, ""},
		{"examples-fallback/7.5/GetCertificateVersions-example.json", "GET", "/certificates/c1/versions" + q, ""},
		{"examples/GetCertificatePolicy-example.json", "GET", "/certificates/c1/policy" + q, ""},
		{"examples/ImportCertificate-example.json", "POST", "/certificates/imported/import" + q, `{"value":` + string(pemJSON) + `,"policy":{"secret_props":{"contentType":"application/x-pem-file"}}}`},
		{"examples/GetDeletedCertificates-example.json", "GET", "/deletedcertificates" + q + "&maxresults=1", ""},
		{"examples/GetDeletedCertificate-example.json", "GET", "/deletedcertificates/dc1" + q, ""},
		{"examples/GetKey-example.json", "GET", "/keys/k1/" + q, ""},
		{"examples/GetKeys-example.json", "GET", "/keys" + q + "&maxresults=1", ""},
		{"examples/GetKeyVersions-example.json", "GET", "/keys/k1/versions" + q + "&maxresults=1", ""},
		{"examples-fallback/7.5/CreateKey-example.json", "POST", "/keys/created/create" + q, `{"kty":"RSA","key_size":2048,"tags":{"a":"b"}}`},
		{"examples/ImportKey-example.json", "PUT", "/keys/imported-key" + q, `{"key":{"kty":"RSA","n":"` + jwkN + `","e":"AQAB","key_ops":["encrypt","decrypt"]},"tags":{"a":"b"}}`},
		{"examples/DeleteKey-example.json", "DELETE", "/keys/k-delete" + q, ""},
		{"examples/GetDeletedKey-example.json", "GET", "/deletedkeys/dk1" + q, ""},
		{"examples/GetDeletedKeys-example.json", "GET", "/deletedkeys" + q + "&maxresults=1", ""},
		{"examples/PurgeDeletedSecret-example.json", "DELETE", "/deletedsecrets/deleted2" + q, ""},
		{"examples/PurgeDeletedKey-example.json", "DELETE", "/deletedkeys/dk2" + q, ""},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.example), func(t *testing.T) {
			g := NewWithT(t)
			wantStatus, example := loadExample(t, tc.example)
			r := call(tc.method, tc.path, tc.body)
			g.Expect(r.status).To(Equal(wantStatus), "%s", r.body)
			if example == nil {
				g.Expect(r.body).To(BeEmpty())
				return
			}
			var got any
			g.Expect(json.Unmarshal(r.body, &got)).To(Succeed())
			g.Expect(sameShape("$", example, got)).To(BeEmpty())
		})
	}
}
