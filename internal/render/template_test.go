package render

import (
	"encoding/base64"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestRenderTemplates(t *testing.T) {
	values := map[string][]byte{
		"user":     []byte("admin"),
		"password": []byte("p@ss w0rd\"<>"),
		"my-key":   []byte("dashed"),
		"tls.crt":  []byte("line1\nline2"),
		"b64":      []byte(base64.StdEncoding.EncodeToString([]byte("decoded!"))),
		"empty":    []byte(""),
		"padded":   []byte("  x  "),
	}
	tests := []struct {
		name    string
		tmpl    string
		want    string
		wantErr error
		errHas  string
	}{
		{name: "plain field", tmpl: "{{ .user }}", want: "admin"},
		{name: "index for dashes", tmpl: `{{ index . "my-key" }}`, want: "dashed"},
		{name: "index for dots", tmpl: `{{ index . "tls.crt" }}`, want: "line1\nline2"},
		{name: "connection string", tmpl: "postgres://{{ .user }}:{{ .password | urlquery }}@db:5432",
			want: "postgres://admin:p%40ss+w0rd%22%3C%3E@db:5432"},
		{name: "b64enc", tmpl: "{{ .user | b64enc }}", want: "YWRtaW4="},
		{name: "b64dec", tmpl: "{{ .b64 | b64dec }}", want: "decoded!"},
		{name: "upper lower", tmpl: "{{ upper .user }}{{ lower \"ABC\" }}", want: "ADMINabc"},
		{name: "trim", tmpl: "[{{ trim .padded }}]", want: "[x]"},
		{name: "trimPrefix trimSuffix", tmpl: `{{ trimPrefix "ad" .user }}{{ trimSuffix "in" .user }}`, want: "minadm"},
		{name: "replace", tmpl: `{{ replace "a" "A" .user }}`, want: "Admin"},
		{name: "quote escapes without HTML escaping", tmpl: "{{ quote .password }}", want: `"p@ss w0rd\"<>"`},
		{name: "toJson of a string", tmpl: "{{ toJson .user }}", want: `"admin"`},
		{name: "toJson of the data map", tmpl: `{{ toJson . }}`,
			want: `{"b64":"ZGVjb2RlZCE=","empty":"","my-key":"dashed","padded":"  x  ","password":"p@ss w0rd\"<>","tls.crt":"line1\nline2","user":"admin"}`},
		{name: "indent", tmpl: `{{ index . "tls.crt" | indent 2 }}`, want: "  line1\n  line2"},
		{name: "nindent", tmpl: `key:{{ index . "tls.crt" | nindent 2 }}`, want: "key:\n  line1\n  line2"},
		{name: "default", tmpl: `{{ .empty | default "fallback" }}/{{ .user | default "x" }}`, want: "fallback/admin"},
		{name: "printf", tmpl: `{{ printf "%s=%5s" "k" .user }}`, want: "k=admin"},
		{name: "if and eq", tmpl: `{{ if eq .user "admin" }}yes{{ else }}no{{ end }}`, want: "yes"},
		{name: "range over the data map", tmpl: `{{ range $k, $v := . }}{{ if eq $k "user" "my-key" }}{{ $k }}={{ $v }};{{ end }}{{ end }}`,
			want: "my-key=dashed;user=admin;"},
		{name: "range over $ inside with", tmpl: `{{ with .user }}{{ range $k, $v := $ }}{{ if eq $k "user" }}{{ $v }}{{ end }}{{ end }}{{ end }}`,
			want: "admin"},
		{name: "missing field is an error", tmpl: "{{ .nope }}", wantErr: ErrTemplateExecute, errHas: `"nope"`},
		{name: "missing index is an error", tmpl: `{{ index . "nope-2" }}`, wantErr: ErrTemplateExecute, errHas: `"nope-2"`},
		{name: "parse error", tmpl: "{{ .user ", wantErr: ErrTemplateParse},
		{name: "unknown function", tmpl: "{{ env \"HOME\" }}", wantErr: ErrTemplateParse},
		{name: "define is refused", tmpl: `{{ define "x" }}a{{ end }}b`, wantErr: ErrTemplateParse},
		{name: "template call is refused", tmpl: `{{ template "k" }}`, wantErr: ErrTemplateParse},
		{name: "range over an integer is refused", tmpl: `{{ range 1000000000 }}{{ end }}`, wantErr: ErrTemplateParse},
		{name: "range over a value is refused", tmpl: `{{ range .password }}{{ end }}`, wantErr: ErrTemplateParse},
		{name: "range over rebound dot is refused", tmpl: `{{ with 5 }}{{ range . }}{{ end }}{{ end }}`, wantErr: ErrTemplateParse},
		{name: "nested range is refused", tmpl: `{{ range . }}{{ range $ }}{{ end }}{{ end }}`, wantErr: ErrTemplateParse},
		{name: "assigning $ is refused", tmpl: `{{ $ = 1000000000 }}{{ range $ }}{{ end }}`, wantErr: ErrTemplateParse},
		{name: "huge printf width is refused", tmpl: `{{ printf "%0999999d%0999999d" 1 2 }}`, wantErr: ErrTemplateExecute},
		{name: "printf star width is refused", tmpl: `{{ printf "%*d" 999999999 1 }}`, wantErr: ErrTemplateExecute},
		{name: "indent width is bounded", tmpl: `{{ indent 100000000 .user }}`, wantErr: ErrTemplateExecute},
		{name: "bad b64dec names no data", tmpl: `{{ .password | b64dec }}`, wantErr: ErrTemplateExecute, errHas: "not base64"},
		{name: "field of a string", tmpl: `{{ if .password }}{{ .password.x }}{{ end }}`, wantErr: ErrTemplateExecute},
		{name: "index of a string", tmpl: `{{ index .password 1 }}`, wantErr: ErrTemplateExecute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := RenderTemplates(map[string]string{"out.key": tc.tmpl}, values)
			if tc.wantErr != nil {
				g.Expect(err).To(MatchError(tc.wantErr))
				g.Expect(err.Error()).To(ContainSubstring(`"out.key"`), "the error names the template key")
				g.Expect(err.Error()).To(ContainSubstring(tc.errHas))
				for _, v := range values {
					if len(v) > 3 {
						g.Expect(err.Error()).NotTo(ContainSubstring(string(v)), "errors never contain data")
					}
				}
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(HaveLen(1))
			g.Expect(string(got["out.key"])).To(Equal(tc.want))
		})
	}
}

func TestRenderTemplatesBounds(t *testing.T) {
	g := NewWithT(t)
	big := map[string][]byte{"v": []byte(strings.Repeat("a", 300*1024))}

	// Output larger than the limit.
	_, err := RenderTemplates(map[string]string{"k": "{{ .v }}{{ .v }}{{ .v }}{{ .v }}"}, big)
	g.Expect(err).To(MatchError(ErrTemplateExecute))
	g.Expect(err.Error()).To(ContainSubstring("exceeds"))

	// Exponential growth through nested functions stops at the first
	// oversized intermediate value.
	_, err = RenderTemplates(map[string]string{"k": "{{ .v | b64enc | b64enc | b64enc | b64enc | b64enc | b64enc | b64enc }}"}, big)
	g.Expect(err).To(MatchError(ErrTemplateExecute))
	_, err = RenderTemplates(map[string]string{"k": `{{ .v | html | html | html | html | html }}`},
		map[string][]byte{"v": []byte(strings.Repeat("&", 100*1024))})
	g.Expect(err).To(MatchError(ErrTemplateExecute))
	_, err = RenderTemplates(map[string]string{"k": `{{ replace "a" "aaaaaaaaaa" .v }}`}, big)
	g.Expect(err).To(MatchError(ErrTemplateExecute))

	// Within the limit works.
	out, err := RenderTemplates(map[string]string{"k": "{{ .v }}{{ .v }}{{ .v }}"}, big)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out["k"]).To(HaveLen(900 * 1024))
}

func TestRenderTemplatesKeys(t *testing.T) {
	g := NewWithT(t)
	_, err := RenderTemplates(map[string]string{"bad key": "x"}, nil)
	g.Expect(err).To(MatchError(ErrInvalidKey))

	out, err := RenderTemplates(map[string]string{"a": "1", "b": "{{ .x }}-2"}, map[string][]byte{"x": []byte("0")})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal(map[string][]byte{"a": []byte("1"), "b": []byte("0-2")}))

	out, err = RenderTemplates(nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(BeEmpty())
}

func TestRedact(t *testing.T) {
	g := NewWithT(t)
	values := map[string]string{"a": "hunter22", "b": "xyz", "c": ""}
	g.Expect(redact(`range can't iterate over hunter22 or hunter22`, values)).
		To(Equal(`range can't iterate over [redacted] or [redacted]`))
	g.Expect(redact("xyz stays: too short to redact usefully", values)).To(HavePrefix("xyz"))
}
