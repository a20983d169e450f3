package render

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
)

// MaxTemplateOutput bounds the output of one template, and of every value a
// template function produces, so that a runaway template fails instead of
// exhausting memory.
const MaxTemplateOutput = 1 << 20

// maxIndent bounds the width argument of indent and nindent.
const maxIndent = 256

// errOutputTooLarge is returned by template functions and the output writer.
var errOutputTooLarge = fmt.Errorf("output exceeds %d bytes", MaxTemplateOutput)

// RenderTemplates executes each template in tmpl (Secret key -> template
// text) with text/template and returns Secret key -> output.
//
// The data is the map of fetched values as strings: a key that is a Go
// identifier can be written {{ .password }}, any other key with index:
// {{ index . "tls.crt" }}. A key that does not exist is an error
// (missingkey=error).
//
// Besides the text/template built-ins (and, or, not, eq, ne, lt, le, gt, ge,
// len, slice, print, println, printf, html, js, urlquery), these functions
// are available; all take and return strings unless noted:
//
//	index . "k"       the value of key k; unlike the built-in, a missing key is an error
//	b64enc s          standard base64 with padding
//	b64dec s          decodes standard or URL-safe base64, padded or not
//	upper s, lower s  case mapping
//	trim s            removes leading and trailing white space
//	trimPrefix p s    removes prefix p; trimSuffix x s removes suffix x
//	replace old new s replaces every old with new
//	quote s           a double-quoted Go/JSON-compatible string literal
//	toJson v          JSON encoding of v (a string, or the whole map ".")
//	indent n s        prefixes every line of s with n spaces (n <= 256)
//	nindent n s       a newline, then indent n s
//	default d s       s, or d when s is empty
//
// To keep execution bounded, a template may not define or call other
// templates ({{define}}, {{template}}, {{block}}) and may only range over the
// data map itself ({{ range $k, $v := . }} at the top level, or over $), not
// inside another range; printf widths and precisions are limited; and each
// output, and every intermediate value, is limited to MaxTemplateOutput bytes.
//
// Errors wrap ErrTemplateParse or ErrTemplateExecute and name the template's
// key; they never contain the data. Output keys are checked with ValidateKey.
func RenderTemplates(tmpl map[string]string, values map[string][]byte) (map[string][]byte, error) {
	data := make(map[string]string, len(values))
	for k, v := range values {
		data[k] = string(v)
	}
	out := make(map[string][]byte, len(tmpl))
	// Sorted, so that the first error reported is stable.
	for _, key := range slices.Sorted(maps.Keys(tmpl)) {
		if err := ValidateKey(key); err != nil {
			return nil, fmt.Errorf("template output key: %w", err)
		}
		t, err := parseTemplate(key, tmpl[key])
		if err != nil {
			return nil, err
		}
		w := &limitedBuffer{limit: MaxTemplateOutput}
		if err := t.Execute(w, data); err != nil {
			if errors.Is(err, errOutputTooLarge) || w.exceeded {
				return nil, fmt.Errorf("%w: template for key %q: %v", ErrTemplateExecute, key, errOutputTooLarge) //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
			}
			return nil, fmt.Errorf("%w: template for key %q: %s", ErrTemplateExecute, key, redact(err.Error(), data))
		}
		out[key] = w.buf.Bytes()
	}
	return out, nil
}

func parseTemplate(key, text string) (*template.Template, error) {
	t, err := template.New(key).Option("missingkey=error").Funcs(templateFuncs()).Parse(text)
	if err != nil {
		// Parse errors quote template text, which is spec, not data.
		return nil, fmt.Errorf("%w: template for key %q: %v", ErrTemplateParse, key, err) //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
	}
	if len(t.Templates()) > 1 {
		return nil, fmt.Errorf("%w: template for key %q: {{define}} and {{block}} are not allowed", ErrTemplateParse, key)
	}
	if t.Tree == nil || t.Root == nil {
		return t, nil
	}
	if err := checkTree(t.Tree, t.Root, false, false); err != nil {
		return nil, fmt.Errorf("%w: template for key %q: %v", ErrTemplateParse, key, err) //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
	}
	return t, nil
}

// checkTree enforces the execution bounds documented on RenderTemplates.
// dotRebound tells whether "." may no longer be the data map (inside with or
// range); inRange tells whether we are inside a range body.
func checkTree(tree *parse.Tree, node parse.Node, dotRebound, inRange bool) error {
	where := func(n parse.Node) string {
		loc, _ := tree.ErrorContext(n)
		return loc
	}
	switch n := node.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkTree(tree, c, dotRebound, inRange); err != nil {
				return err
			}
		}
	case *parse.TemplateNode:
		return fmt.Errorf("%s: {{template}} is not allowed", where(n))
	case *parse.ActionNode:
		return checkPipe(n.Pipe, where(n))
	case *parse.IfNode:
		if err := checkPipe(n.Pipe, where(n)); err != nil {
			return err
		}
		if err := checkTree(tree, n.List, dotRebound, inRange); err != nil {
			return err
		}
		return checkTree(tree, n.ElseList, dotRebound, inRange)
	case *parse.WithNode:
		if err := checkPipe(n.Pipe, where(n)); err != nil {
			return err
		}
		if err := checkTree(tree, n.List, true, inRange); err != nil {
			return err
		}
		// The else branch of with runs with dot unchanged.
		return checkTree(tree, n.ElseList, dotRebound, inRange)
	case *parse.RangeNode:
		if inRange {
			return fmt.Errorf("%s: nested range is not allowed", where(n))
		}
		if err := checkPipe(n.Pipe, where(n)); err != nil {
			return err
		}
		if !rangesOverData(n.Pipe, dotRebound) {
			return fmt.Errorf("%s: range is only allowed over the data map (. at the top level, or $)", where(n))
		}
		if err := checkTree(tree, n.List, true, true); err != nil {
			return err
		}
		return checkTree(tree, n.ElseList, dotRebound, inRange)
	}
	return nil
}

// checkPipe refuses assignments to $, which would let a range over $ iterate
// over something other than the data map.
func checkPipe(pipe *parse.PipeNode, where string) error {
	if pipe == nil {
		return nil
	}
	for _, v := range pipe.Decl {
		if len(v.Ident) > 0 && v.Ident[0] == "$" {
			return fmt.Errorf("%s: assigning to $ is not allowed", where)
		}
	}
	return nil
}

// rangesOverData reports whether a range pipeline is exactly "." (while dot
// is still the data map) or "$".
func rangesOverData(pipe *parse.PipeNode, dotRebound bool) bool {
	if pipe == nil || len(pipe.Cmds) != 1 || len(pipe.Cmds[0].Args) != 1 {
		return false
	}
	switch a := pipe.Cmds[0].Args[0].(type) {
	case *parse.DotNode:
		return !dotRebound
	case *parse.VariableNode:
		return len(a.Ident) == 1 && a.Ident[0] == "$"
	}
	return false
}

// limitedBuffer is an io.Writer that fails once more than limit bytes were
// written; text/template stops executing on the first write error.
type limitedBuffer struct {
	buf      bytes.Buffer
	limit    int
	exceeded bool
}

func (w *limitedBuffer) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.limit {
		w.exceeded = true
		return 0, errOutputTooLarge
	}
	return w.buf.Write(p)
}

func bounded(s string) (string, error) {
	if len(s) > MaxTemplateOutput {
		return "", errOutputTooLarge
	}
	return s, nil
}

// templateFuncs returns the function map. It also replaces the built-ins that
// can expand their input (printf, print, println, html, js, urlquery) with
// bounded versions.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"b64enc": func(s string) (string, error) {
			if base64.StdEncoding.EncodedLen(len(s)) > MaxTemplateOutput {
				return "", errOutputTooLarge
			}
			return base64.StdEncoding.EncodeToString([]byte(s)), nil
		},
		"b64dec": func(s string) (string, error) {
			out, ok := decodeBase64([]byte(s))
			if !ok {
				return "", errors.New("the argument is not base64")
			}
			return string(out), nil
		},
		"index": func(m map[string]string, key string) (string, error) {
			v, ok := m[key]
			if !ok {
				return "", fmt.Errorf("map has no entry for key %q", key)
			}
			return v, nil
		},
		"upper": func(s string) (string, error) { return bounded(strings.ToUpper(s)) },
		"lower": func(s string) (string, error) { return bounded(strings.ToLower(s)) },
		"trim":  strings.TrimSpace,
		"trimPrefix": func(prefix, s string) string {
			return strings.TrimPrefix(s, prefix)
		},
		"trimSuffix": func(suffix, s string) string {
			return strings.TrimSuffix(s, suffix)
		},
		"replace": func(old, replacement, s string) (string, error) {
			n := strings.Count(s, old)
			if old == "" {
				n = len(s) + 1
			}
			if len(s)+n*(len(replacement)-len(old)) > MaxTemplateOutput {
				return "", errOutputTooLarge
			}
			return strings.ReplaceAll(s, old, replacement), nil
		},
		"quote": func(s string) (string, error) {
			return bounded(jsonString(s))
		},
		"toJson": func(v any) (string, error) {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(v); err != nil {
				return "", errors.New("the argument cannot be encoded as JSON")
			}
			return bounded(strings.TrimSuffix(buf.String(), "\n"))
		},
		"indent": indent,
		"nindent": func(n int, s string) (string, error) {
			out, err := indent(n, s)
			if err != nil {
				return "", err
			}
			return bounded("\n" + out)
		},
		"default": func(def, s string) string {
			if s == "" {
				return def
			}
			return s
		},
		"printf": func(format string, args ...any) (string, error) {
			if err := checkFormat(format); err != nil {
				return "", err
			}
			return bounded(fmt.Sprintf(format, args...))
		},
		"print":    func(args ...any) (string, error) { return bounded(fmt.Sprint(args...)) },
		"println":  func(args ...any) (string, error) { return bounded(fmt.Sprintln(args...)) },
		"html":     func(args ...any) (string, error) { return bounded(template.HTMLEscaper(args...)) },
		"js":       func(args ...any) (string, error) { return bounded(template.JSEscaper(args...)) },
		"urlquery": func(args ...any) (string, error) { return bounded(template.URLQueryEscaper(args...)) },
	}
}

// jsonString quotes s as a JSON string without HTML escaping; the result is
// also a valid Go and YAML double-quoted string.
func jsonString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	return strings.TrimSuffix(buf.String(), "\n")
}

func indent(n int, s string) (string, error) {
	if n < 0 || n > maxIndent {
		return "", fmt.Errorf("indent width %d is out of range 0..%d", n, maxIndent)
	}
	pad := strings.Repeat(" ", n)
	lines := strings.Count(s, "\n") + 1
	if len(s)+lines*n > MaxTemplateOutput {
		return "", errOutputTooLarge
	}
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad), nil
}

// checkFormat refuses printf formats whose widths and precisions could
// produce a huge output from small arguments: "*" is not allowed and the sum
// of all explicit widths and precisions must stay below MaxTemplateOutput.
func checkFormat(format string) error {
	total := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		for i++; i < len(format); i++ {
			c := format[i]
			if c == '*' {
				return errors.New("printf: '*' widths are not allowed")
			}
			if c >= '0' && c <= '9' {
				num := 0
				for ; i < len(format) && format[i] >= '0' && format[i] <= '9'; i++ {
					if num < MaxTemplateOutput {
						num = num*10 + int(format[i]-'0')
					}
				}
				total += num
				if total > MaxTemplateOutput {
					return errors.New("printf: widths and precisions are too large")
				}
				i--
				continue
			}
			if c == '.' || c == '+' || c == '-' || c == ' ' || c == '#' || c == '[' || c == ']' {
				continue
			}
			break // the verb
		}
	}
	return nil
}
