package render

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Rewrite renames a Secret key with a regular expression: every match of re
// in name is replaced by replace, which may refer to capture groups as in
// [regexp.Regexp.ReplaceAllString] ("$1", "${name}"). A nil re returns name
// unchanged. Check the result with [ValidateKey].
func Rewrite(name string, re *regexp.Regexp, replace string) string {
	if re == nil {
		return name
	}
	return re.ReplaceAllString(name, replace)
}

// ValidateKey checks that key is a valid key of a Secret's data: non-empty,
// at most 253 characters of letters, digits, '-', '_' and '.', and neither
// "." nor "..". Errors wrap ErrInvalidKey and name the key.
func ValidateKey(key string) error {
	if msgs := validation.IsConfigMapKey(key); len(msgs) > 0 {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, strings.Join(msgs, "; "))
	}
	return nil
}

// MaxSecretSize is the Kubernetes limit on the total size of a Secret's
// data values, in bytes.
const MaxSecretSize = 1 << 20

// Size returns the total size of the values in data, which is what the
// Kubernetes API server compares with [MaxSecretSize].
func Size(data map[string][]byte) int {
	n := 0
	for _, v := range data {
		n += len(v)
	}
	return n
}

// CheckSize returns an error wrapping ErrTooLarge when data exceeds
// [MaxSecretSize].
func CheckSize(data map[string][]byte) error {
	if n := Size(data); n > MaxSecretSize {
		return fmt.Errorf("%w: %d bytes of data, the limit is %d; split the data over more than one VaultSecret",
			ErrTooLarge, n, MaxSecretSize)
	}
	return nil
}
