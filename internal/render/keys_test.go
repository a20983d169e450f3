package render

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestRewrite(t *testing.T) {
	tests := []struct {
		name, in, regex, replace, want string
	}{
		{name: "nil regex keeps the name", in: "db-password", want: "db-password"},
		{name: "strip prefix", in: "app-db-password", regex: "^app-", replace: "", want: "db-password"},
		{name: "capture group", in: "db-password", regex: `^(\w+)-(\w+)$`, replace: "${2}_$1", want: "password_db"},
		{name: "every match", in: "a-b-c", regex: "-", replace: "_", want: "a_b_c"},
		{name: "no match", in: "abc", regex: "x", replace: "y", want: "abc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var re *regexp.Regexp
			if tc.regex != "" {
				re = regexp.MustCompile(tc.regex)
			}
			g.Expect(Rewrite(tc.in, re, tc.replace)).To(Equal(tc.want))
		})
	}
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"password", true},
		{"tls.crt", true},
		{"my-key_1.txt", true},
		{".dotfile", true},
		{"", false},
		{".", false},
		{"..", false},
		{"has space", false},
		{"slash/key", false},
		{"colon:key", false},
		{strings.Repeat("a", 253), true},
		{strings.Repeat("a", 254), false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%.20q", tc.key), func(t *testing.T) {
			g := NewWithT(t)
			err := ValidateKey(tc.key)
			if tc.ok {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ErrInvalidKey))
			g.Expect(err.Error()).To(ContainSubstring(fmt.Sprintf("%q", tc.key)))
		})
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		name   string
		data   map[string][]byte
		size   int
		tooBig bool
	}{
		{name: "empty", data: nil, size: 0},
		{name: "values only count", data: map[string][]byte{"a-long-key-name": []byte("xyz"), "b": nil}, size: 3},
		{name: "exactly the limit", data: map[string][]byte{"a": make([]byte, MaxSecretSize-10), "b": make([]byte, 10)}, size: MaxSecretSize},
		{name: "one byte over", data: map[string][]byte{"a": make([]byte, MaxSecretSize), "b": {1}}, size: MaxSecretSize + 1, tooBig: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Size(tc.data)).To(Equal(tc.size))
			err := CheckSize(tc.data)
			if tc.tooBig {
				g.Expect(err).To(MatchError(ErrTooLarge))
			} else {
				g.Expect(err).NotTo(HaveOccurred())
			}
		})
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("wrapped: %w", ErrPropertyNotFound), "PropertyNotFound"},
		{fmt.Errorf("%w: x", ErrKeyMismatch), "KeyMismatch"},
		{ErrTooLarge, "SecretTooLarge"},
		{errors.New("other"), ""},
		{nil, ""},
	}
	for _, tc := range tests {
		NewWithT(t).Expect(Reason(tc.err)).To(Equal(tc.want))
	}
	// Every sentinel has a distinct, non-empty reason.
	seen := map[string]bool{}
	for _, r := range reasons {
		g := NewWithT(t)
		g.Expect(Reason(r.err)).To(Equal(r.reason))
		g.Expect(seen[r.reason]).To(BeFalse(), r.reason)
		seen[r.reason] = true
	}
}
