package render

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestExtractProperty(t *testing.T) {
	doc := []byte(`{
		"db": {"password": "s3cr\"et", "port": 5432, "ratio": 1.50, "tls": true, "opts": {"b": 1, "a": [1, 2]}},
		"hosts": ["h0", {"name": "h1"}],
		"a.b": "dotted",
		"a": {"b": "nested"},
		"back\\slash": "bs",
		"nothing": null,
		"big": 123456789012345678901234567890
	}`)
	tests := []struct {
		name    string
		value   []byte
		path    string
		want    string
		wantErr error
		errHas  []string
	}{
		{name: "string comes out raw", value: doc, path: "db.password", want: `s3cr"et`},
		{name: "integer as JSON text", value: doc, path: "db.port", want: "5432"},
		{name: "number text kept as written", value: doc, path: "db.ratio", want: "1.50"},
		{name: "big number kept exactly", value: doc, path: "big", want: "123456789012345678901234567890"},
		{name: "boolean", value: doc, path: "db.tls", want: "true"},
		{name: "object as compact JSON in source order", value: doc, path: "db.opts", want: `{"b":1,"a":[1,2]}`},
		{name: "array index", value: doc, path: "hosts.0", want: "h0"},
		{name: "object inside array", value: doc, path: "hosts.1.name", want: "h1"},
		{name: "array as compact JSON", value: doc, path: "hosts", want: `["h0",{"name":"h1"}]`},
		{name: "escaped dot is part of the key", value: doc, path: `a\.b`, want: "dotted"},
		{name: "unescaped dot walks", value: doc, path: "a.b", want: "nested"},
		{name: "escaped backslash", value: doc, path: `back\\slash`, want: "bs"},
		{name: "null is empty", value: doc, path: "nothing", want: ""},
		{name: "empty path returns the value", value: []byte("plain"), path: "", want: "plain"},
		{name: "top-level array", value: []byte(`[10, 20]`), path: "1", want: "20"},
		{name: "missing field names the path and fields", value: doc, path: "db.user", wantErr: ErrPropertyNotFound,
			errHas: []string{`"db"`, `"user"`, `"password"`}},
		{name: "index out of range", value: doc, path: "hosts.5", wantErr: ErrPropertyNotFound, errHas: []string{"out of range"}},
		{name: "negative index", value: doc, path: "hosts.-1", wantErr: ErrPropertyNotFound},
		{name: "non-numeric index", value: doc, path: "hosts.x", wantErr: ErrPropertyNotFound},
		{name: "index with leading zero", value: doc, path: "hosts.01", wantErr: ErrPropertyNotFound},
		{name: "walk into a string", value: doc, path: "db.password.x", wantErr: ErrPropertyNotFound,
			errHas: []string{"string"}},
		{name: "not JSON", value: []byte("hunter2-not-json"), path: "a", wantErr: ErrNotJSON},
		{name: "empty segment", value: doc, path: "a..b", wantErr: ErrInvalidPath},
		{name: "trailing dot", value: doc, path: "a.", wantErr: ErrInvalidPath},
		{name: "dangling backslash", value: doc, path: `a\`, wantErr: ErrInvalidPath},
		{name: "bad escape", value: doc, path: `a\b`, wantErr: ErrInvalidPath},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ExtractProperty(tc.value, tc.path)
			if tc.wantErr != nil {
				g.Expect(err).To(MatchError(tc.wantErr))
				for _, s := range tc.errHas {
					g.Expect(err.Error()).To(ContainSubstring(s))
				}
				g.Expect(err.Error()).NotTo(ContainSubstring("s3cr"), "error must not quote values")
				g.Expect(err.Error()).NotTo(ContainSubstring("hunter2"), "error must not quote values")
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(got)).To(Equal(tc.want))
		})
	}
}

func TestFlattenJSON(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    map[string]string
		wantErr error
	}{
		{
			name:  "mixed fields",
			value: `{"user":"admin","port":5432,"on":false,"nested":{"x": [1, "y"]},"none":null,"esc":"<&>"}`,
			want: map[string]string{"user": "admin", "port": "5432", "on": "false",
				"nested": `{"x":[1,"y"]}`, "none": "", "esc": "<&>"},
		},
		{name: "empty object", value: `{}`, want: map[string]string{}},
		{name: "array is refused", value: `[1,2]`, wantErr: ErrNotJSON},
		{name: "string is refused", value: `"abc"`, wantErr: ErrNotJSON},
		{name: "not JSON", value: `user=admin`, wantErr: ErrNotJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := FlattenJSON([]byte(tc.value))
			if tc.wantErr != nil {
				g.Expect(err).To(MatchError(tc.wantErr))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			gotStr := map[string]string{}
			for k, v := range got {
				gotStr[k] = string(v)
			}
			g.Expect(gotStr).To(Equal(tc.want))
		})
	}
}

func TestDecode(t *testing.T) {
	raw := []byte{0xfb, 0xff, 0xbe, 'h', 'i'}
	tests := []struct {
		name    string
		value   string
		mode    string
		want    []byte
		wantErr error
	}{
		{name: "none keeps the value", value: "a+b/c==", mode: "None", want: []byte("a+b/c==")},
		{name: "empty mode is none", value: "x", mode: "", want: []byte("x")},
		{name: "std padded", value: "aGVsbG8=", mode: "Base64", want: []byte("hello")},
		{name: "std unpadded", value: "aGVsbG8", mode: "Base64", want: []byte("hello")},
		{name: "std alphabet", value: "+/++aGk=", mode: "Base64", want: raw},
		{name: "url alphabet padded", value: "-_--aGk=", mode: "Base64", want: raw},
		{name: "url alphabet unpadded", value: "-_--aGk", mode: "Base64", want: raw},
		{name: "line breaks and trailing newline", value: "aGVs\nbG8=\n", mode: "Base64", want: []byte("hello")},
		{name: "empty base64", value: "", mode: "Base64", want: []byte{}},
		{name: "not base64", value: "hunter2!", mode: "Base64", wantErr: ErrDecode},
		{name: "mixed alphabets", value: "+_aa", mode: "Base64", wantErr: ErrDecode},
		{name: "unknown mode", value: "x", mode: "Hex", wantErr: ErrDecode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Decode([]byte(tc.value), tc.mode)
			if tc.wantErr != nil {
				g.Expect(err).To(MatchError(tc.wantErr))
				g.Expect(err.Error()).NotTo(ContainSubstring("hunter2"))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}
