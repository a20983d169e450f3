package pki

import "encoding/base64"

var base64Encodings = []*base64.Encoding{
	base64.StdEncoding,
	base64.RawStdEncoding,
	base64.URLEncoding,
	base64.RawURLEncoding,
}

// DecodeBase64 tries the standard and the URL-safe alphabet, each with and
// without padding, after dropping ASCII whitespace (line breaks of wrapped
// base64, a trailing newline). ok is false when no variant decodes value.
func DecodeBase64(value []byte) (out []byte, ok bool) {
	compact := make([]byte, 0, len(value))
	for _, c := range value {
		switch c {
		case ' ', '\t', '\r', '\n', '\v', '\f':
		default:
			compact = append(compact, c)
		}
	}
	for _, enc := range base64Encodings {
		buf := make([]byte, enc.DecodedLen(len(compact)))
		n, err := enc.Decode(buf, compact)
		if err == nil {
			return buf[:n], true
		}
	}
	return nil, false
}
