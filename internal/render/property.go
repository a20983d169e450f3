package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxListedFields bounds how many field names a "not found" message lists.
const maxListedFields = 20

// ExtractProperty returns the property at path inside the JSON document value.
//
// The path is a dot-separated list of object keys and array indexes:
// "db.password", "hosts.0". A dot or backslash that is part of a key is
// escaped with a backslash: `a\.b` is the single key "a.b", `a\\b` is "a\b".
// An empty path returns value unchanged.
//
// The result is the raw text for a JSON string, the JSON text for numbers and
// booleans (exactly as written in the document), compact JSON for objects and
// arrays (key order preserved) and an empty value for null.
//
// Errors wrap ErrNotJSON, ErrInvalidPath or ErrPropertyNotFound and name the
// path, never the value.
func ExtractProperty(value []byte, path string) ([]byte, error) {
	if path == "" {
		return bytes.Clone(value), nil
	}
	segments, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	if !json.Valid(value) {
		return nil, fmt.Errorf("%w: cannot read property %q: the value is not a JSON document", ErrNotJSON, path)
	}
	cur := json.RawMessage(bytes.TrimSpace(value))
	for i, seg := range segments {
		walked := joinPath(segments[:i])
		switch kindOf(cur) {
		case '{':
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(cur, &obj); err != nil {
				return nil, fmt.Errorf("%w: cannot read property %q", ErrNotJSON, path)
			}
			next, ok := obj[seg]
			if !ok {
				return nil, fmt.Errorf("%w: %q has no field %q (fields: %s)",
					ErrPropertyNotFound, orRoot(walked), seg, listFields(obj))
			}
			cur = next
		case '[':
			var arr []json.RawMessage
			if err := json.Unmarshal(cur, &arr); err != nil {
				return nil, fmt.Errorf("%w: cannot read property %q", ErrNotJSON, path)
			}
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || strconv.Itoa(idx) != seg {
				return nil, fmt.Errorf("%w: %q is an array, so %q must be an index from 0 to %d",
					ErrPropertyNotFound, orRoot(walked), seg, len(arr)-1)
			}
			if idx >= len(arr) {
				return nil, fmt.Errorf("%w: %q is an array of %d elements, index %d is out of range",
					ErrPropertyNotFound, orRoot(walked), len(arr), idx)
			}
			cur = arr[idx]
		default:
			return nil, fmt.Errorf("%w: %q is a %s, not an object or array, so it has no %q",
				ErrPropertyNotFound, orRoot(walked), kindName(cur), seg)
		}
	}
	return scalarOrCompact(cur)
}

// FlattenJSON turns every top-level field of a JSON object into one entry:
// strings raw, numbers and booleans as their JSON text, nested objects and
// arrays as compact JSON, null as an empty value. The keys are not validated;
// callers rewrite and then check them with [ValidateKey].
func FlattenJSON(value []byte) (map[string][]byte, error) {
	if !json.Valid(value) {
		return nil, fmt.Errorf("%w: to use every field of a secret, the secret must hold a JSON object", ErrNotJSON)
	}
	trimmed := json.RawMessage(bytes.TrimSpace(value))
	if kindOf(trimmed) != '{' {
		return nil, fmt.Errorf("%w: the secret holds a JSON %s; to use every field it must hold a JSON object",
			ErrNotJSON, kindName(trimmed))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil {
		return nil, fmt.Errorf("%w: the secret does not hold a JSON object", ErrNotJSON)
	}
	out := make(map[string][]byte, len(obj))
	for k, raw := range obj {
		v, err := scalarOrCompact(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: field %q", ErrNotJSON, k)
		}
		out[k] = v
	}
	return out, nil
}

// splitPath splits a property path on unescaped dots.
func splitPath(path string) ([]string, error) {
	var (
		segments []string
		cur      strings.Builder
	)
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch c {
		case '\\':
			if i+1 >= len(path) || (path[i+1] != '.' && path[i+1] != '\\') {
				return nil, fmt.Errorf(`%w %q: a backslash must be followed by "." or "\"`, ErrInvalidPath, path)
			}
			i++
			cur.WriteByte(path[i])
		case '.':
			if cur.Len() == 0 {
				return nil, fmt.Errorf("%w %q: empty segment (use \\. for a dot inside a key)", ErrInvalidPath, path)
			}
			segments = append(segments, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() == 0 {
		return nil, fmt.Errorf("%w %q: empty segment at the end", ErrInvalidPath, path)
	}
	return append(segments, cur.String()), nil
}

// joinPath is the inverse of splitPath, used to name the walked part of a path.
func joinPath(segments []string) string {
	esc := make([]string, len(segments))
	for i, s := range segments {
		s = strings.ReplaceAll(s, `\`, `\\`)
		esc[i] = strings.ReplaceAll(s, ".", `\.`)
	}
	return strings.Join(esc, ".")
}

func orRoot(walked string) string {
	if walked == "" {
		return "(root)"
	}
	return walked
}

// kindOf returns the first byte of a valid, trimmed JSON value: '{', '[', '"',
// 't', 'f', 'n' or a number's first character.
func kindOf(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func kindName(raw json.RawMessage) string {
	switch kindOf(raw) {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// scalarOrCompact renders one JSON value as Secret data (see ExtractProperty).
func scalarOrCompact(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	switch kindOf(raw) {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, ErrNotJSON
		}
		return []byte(s), nil
	case 'n':
		return []byte{}, nil
	case '{', '[':
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, ErrNotJSON
		}
		return buf.Bytes(), nil
	default:
		return bytes.Clone(raw), nil
	}
}

func listFields(obj map[string]json.RawMessage) string {
	if len(obj) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	more := ""
	if len(keys) > maxListedFields {
		more = fmt.Sprintf(" and %d more", len(keys)-maxListedFields)
		keys = keys[:maxListedFields]
	}
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = strconv.Quote(k)
	}
	return strings.Join(quoted, ", ") + more
}
