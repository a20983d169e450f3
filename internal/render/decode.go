package render

import (
	"bytes"
	"fmt"

	"github.com/vaultsync/vaultsync/internal/pki"
)

// Decoding strategies accepted by [Decode]; they match the API enum.
const (
	// DecodeNone leaves the value as it is. The empty string means the same.
	DecodeNone = "None"
	// DecodeBase64 decodes standard or URL-safe base64, with or without padding.
	DecodeBase64 = "Base64"
)

// Decode applies a decoding strategy to value.
//
// With [DecodeBase64] the value may use the standard or the URL-safe alphabet,
// with or without "=" padding; ASCII whitespace (such as line breaks of
// wrapped base64 or a trailing newline) is ignored. Errors wrap ErrDecode and
// never contain the value.
func Decode(value []byte, mode string) ([]byte, error) {
	switch mode {
	case "", DecodeNone:
		return bytes.Clone(value), nil
	case DecodeBase64:
		out, ok := decodeBase64(value)
		if !ok {
			return nil, fmt.Errorf("%w: the value is not base64 (standard or URL-safe); set decode to None if it is stored as is", ErrDecode)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown decoding strategy %q (want %q or %q)", ErrDecode, mode, DecodeNone, DecodeBase64)
	}
}

// decodeBase64 tries every base64 variant in turn, after dropping ASCII
// whitespace (see pki.DecodeBase64, which certificate values share).
func decodeBase64(value []byte) ([]byte, bool) { return pki.DecodeBase64(value) }
