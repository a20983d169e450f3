package events

import (
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

func TestParseVaultHostAndObject(t *testing.T) {
	for name, tc := range map[string]struct {
		data, subject         string
		host, object, version string
		invalid               bool
	}{
		"from the id":                 {data: `{"Id":"https://Demo.Vault.Azure.NET/secrets/db/abc123"}`, host: "demo.vault.azure.net", object: "db", version: "abc123"},
		"sovereign id":                {data: `{"Id":"https://kv1.vault.azure.cn/certificates/tls"}`, host: "kv1.vault.azure.cn", object: "tls"},
		"data fields win over the id": {data: `{"Id":"https://demo.vault.azure.net/secrets/a/v1","ObjectName":"b","Version":"v2"}`, host: "demo.vault.azure.net", object: "b", version: "v2"},
		"vault name and subject":      {data: `{"VaultName":"Demo"}`, subject: "db", host: "demo.vault.azure.net", object: "db"},
		"camelCase keys":              {data: `{"id":"https://demo.vault.azure.net/keys/k1/v9","vaultName":"demo","objectName":"k1"}`, host: "demo.vault.azure.net", object: "k1", version: "v9"},
		"http id is not trusted":      {data: `{"Id":"http://demo.vault.azure.net/secrets/db"}`, subject: "db", invalid: true},
		"id with credentials":         {data: `{"Id":"https://u:p@demo.vault.azure.net/secrets/db"}`, invalid: true},
		"id of another collection":    {data: `{"Id":"https://demo.vault.azure.net/storage/db"}`, invalid: true},
		"bad object name":             {data: `{"VaultName":"demo","ObjectName":"a/b"}`, invalid: true},
		"bad version":                 {data: `{"Id":"https://demo.vault.azure.net/secrets/db/../../x"}`, invalid: true},
		"no data":                     {data: `null`, invalid: true},
		"data not an object":          {data: `"x"`, invalid: true},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			body := `[{"id":"1","eventType":"` + TypeSecretNewVersionCreated + `","subject":"` + tc.subject + `","data":` + tc.data + `}]`
			b, err := Parse("application/json", []byte(body))
			g.Expect(err).NotTo(HaveOccurred())
			if tc.invalid {
				g.Expect(b.Events).To(BeEmpty())
				g.Expect(b.Invalid).To(Equal(1))
				return
			}
			g.Expect(b.Events).To(HaveLen(1))
			ev := b.Events[0]
			g.Expect(ev.VaultHost).To(Equal(tc.host))
			g.Expect(ev.ObjectName).To(Equal(tc.object))
			g.Expect(ev.Version).To(Equal(tc.version))
			g.Expect(ev.ObjectType).To(Equal(kvtypes.TypeSecret))
		})
	}
}

func TestParseTimes(t *testing.T) {
	g := NewWithT(t)
	b, err := Parse("application/json", []byte(`[{"id":"1","eventType":"`+TypeCertificateNearExpiry+`","eventTime":"2026-01-02T03:04:05Z",
		"data":{"Id":"https://demo.vault.azure.net/certificates/tls/v1","NBF":"1700000000","EXP":1800000000.0}}]`))
	g.Expect(err).NotTo(HaveOccurred())
	ev := b.Events[0]
	g.Expect(ev.Time).To(Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	g.Expect(ev.NotBefore).To(HaveValue(Equal(time.Unix(1700000000, 0).UTC())))
	g.Expect(ev.Expires).To(HaveValue(Equal(time.Unix(1800000000, 0).UTC())))
	g.Expect(ev.ObjectType).To(Equal(kvtypes.TypeCertificate))

	_, err = Parse("application/json", []byte(`[{"id":"1","eventType":"x","eventTime":"yesterday"}]`))
	g.Expect(err).To(MatchError(ContainSubstring("RFC 3339")))
}

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		ct, body string
		want     error
	}{
		"bad media type":            {"text/html", `[]`, ErrUnsupportedMediaType},
		"unparsable media type":     {"application/json; =", `[]`, ErrUnsupportedMediaType},
		"batch must be an array":    {ContentTypeCloudEventsBatch, `{}`, ErrMalformed},
		"single must be an object":  {ContentTypeCloudEvent, `[]`, ErrMalformed},
		"mixed schemas":             {ContentTypeJSON, `[{"id":"1","eventType":"x"},{"specversion":"1.0","id":"2","source":"s","type":"t"}]`, ErrMalformed},
		"validation in CloudEvents": {ContentTypeCloudEvent, `{"specversion":"1.0","id":"2","source":"s","type":"` + TypeSubscriptionValidation + `","data":{"validationCode":"x"}}`, ErrMalformed},
		"validation without code":   {ContentTypeJSON, `[{"id":"1","eventType":"` + TypeSubscriptionValidation + `","data":{}}]`, ErrMalformed},
		"CloudEvent without source": {ContentTypeCloudEvent, `{"specversion":"1.0","id":"2","type":"t"}`, ErrMalformed},
		"data_base64":               {ContentTypeCloudEvent, `{"specversion":"1.0","id":"2","source":"s","type":"t","data_base64":"AA=="}`, ErrMalformed},
		"array of numbers":          {ContentTypeJSON, `[1,2]`, ErrMalformed},
		"wrong field type":          {ContentTypeJSON, `[{"id":1,"eventType":"x"}]`, ErrMalformed},
		"too many events":           {ContentTypeJSON, "[" + strings.TrimSuffix(strings.Repeat(`{"id":"1","eventType":"x"},`, maxEvents+1), ",") + "]", ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Parse(tc.ct, []byte(tc.body))
			g.Expect(errors.Is(err, tc.want)).To(BeTrue(), "got %v", err)
		})
	}
}

func TestParseSingleEventGridObject(t *testing.T) {
	g := NewWithT(t)
	b, err := Parse("application/json", []byte(`{"id":"1","eventType":"`+TypeKeyNewVersionCreated+`","data":{"Id":"https://demo.vault.azure.net/keys/k/1"}}`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.Schema).To(Equal(SchemaEventGrid))
	g.Expect(b.Events).To(HaveLen(1))
	g.Expect(KnownType(TypeKeyNewVersionCreated)).To(BeTrue())
	g.Expect(KnownType(TypeSubscriptionValidation)).To(BeFalse())
}

func FuzzParse(f *testing.F) {
	f.Add("application/json", validationBody("code"))
	f.Add("application/json", jsonOf([]any{egEvent("e1", TypeSecretNewVersionCreated, vaultID)}))
	f.Add("application/json", jsonOf([]any{egEvent("e1", TypeCertificateNewVersionCreated, "https://x.vault.azure.cn/certificates/c/1"), egEvent("e2", "Other", "")}))
	f.Add(ContentTypeCloudEvent, jsonOf(ceEvent("c1", TypeKeyExpired, "https://demo.vault.azure.net/keys/k")))
	f.Add(ContentTypeCloudEventsBatch, jsonOf([]any{ceEvent("c1", TypeSecretNearExpiry, vaultID)}))
	f.Add("application/json", `[{"id":"1","eventType":"`+TypeSecretExpired+`","subject":"s","data":{"VaultName":"v","NBF":"12","EXP":null}}]`)
	f.Add("application/json; charset=utf-8", `[{}]`)
	f.Add("text/plain", `x`)
	f.Fuzz(func(t *testing.T, ct, body string) {
		b, err := Parse(ct, []byte(body))
		if err != nil {
			if b != nil {
				t.Fatal("a batch with an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedMediaType) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if b.Schema != SchemaEventGrid && b.Schema != SchemaCloudEvents {
			t.Fatalf("schema %q", b.Schema)
		}
		for _, ev := range b.Events {
			if !KnownType(ev.Type) || ev.ID == "" {
				t.Fatalf("event %+v", ev)
			}
			if !hostRE.MatchString(ev.VaultHost) || ev.VaultHost != strings.ToLower(ev.VaultHost) {
				t.Fatalf("vault host %q", ev.VaultHost)
			}
			if !objectNameRE.MatchString(ev.ObjectName) || !versionRE.MatchString(ev.Version) {
				t.Fatalf("object %q version %q", ev.ObjectName, ev.Version)
			}
		}
	})
}
