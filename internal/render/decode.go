package render

import (
	"bytes"
	"encoding/base64"
	"fmt"
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

var base64Encodings = []*base64.Encoding{
	base64.StdEncoding,
	base64.RawStdEncoding,
	base64.URLEncoding,
	base64.RawURLEncoding,
}

// decodeBase64 tries every base64 variant in turn, after dropping ASCII
// whitespace.
func decodeBase64(value []byte) ([]byte, bool) {
	compact := make([]byte, 0, len(value))
	for _, c := range value {
		switch c {
		case ' ', '\t', '\r', '\n', '\v', '\f':
		default:
			compact = append(compact, c)
		}
	}
	for _, enc := range base64Encodings {
		out := make([]byte, enc.DecodedLen(len(compact)))
		n, err := enc.Decode(out, compact)
		if err == nil {
			return out[:n], true
		}
	}
	return nil, false
}
