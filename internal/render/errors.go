package render

import (
	"errors"
	"strings"

	"github.com/vaultsync/vaultsync/internal/pki"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them; the wrapping message says what was wrong and what to change, without
// ever quoting a secret value.
var (
	// ErrNotJSON means a value that must be JSON (or a JSON object) is not.
	ErrNotJSON = errors.New("value is not valid JSON")
	// ErrPropertyNotFound means a property path does not exist in a JSON value.
	ErrPropertyNotFound = errors.New("property not found")
	// ErrInvalidPath means a property path is malformed (for example "a..b").
	ErrInvalidPath = errors.New("invalid property path")
	// ErrDecode means a value could not be decoded with the requested strategy.
	ErrDecode = errors.New("cannot decode value")
	// ErrInvalidKey means a resulting Secret key is not a valid Kubernetes key.
	ErrInvalidKey = errors.New("invalid Secret key")
	// ErrTemplateParse means a template does not parse or uses a forbidden construct.
	ErrTemplateParse = errors.New("template does not parse")
	// ErrTemplateExecute means a template failed while it ran.
	ErrTemplateExecute = errors.New("template failed")
	// ErrNotCertificate means a value does not hold a certificate.
	ErrNotCertificate = pki.ErrNotCertificate
	// ErrKeyMismatch means the private key matches none of the certificates.
	ErrKeyMismatch = pki.ErrKeyMismatch
	// ErrNoPrivateKey means an output that needs the private key was asked for
	// a certificate that came without one.
	ErrNoPrivateKey = pki.ErrNoPrivateKey
	// ErrPFXPassword means a PKCS#12 file is protected by a password that was
	// not given (or the given password is wrong).
	ErrPFXPassword = pki.ErrPFXPassword
	// ErrUnsupportedKey means a key type or curve is not supported.
	ErrUnsupportedKey = pki.ErrUnsupportedKey
	// ErrTooLarge means the Secret data exceeds the Kubernetes size limit.
	ErrTooLarge = errors.New("secret data too large")
)

var reasons = []struct {
	err    error
	reason string
}{
	{ErrNotJSON, "NotJSON"},
	{ErrPropertyNotFound, "PropertyNotFound"},
	{ErrInvalidPath, "InvalidPropertyPath"},
	{ErrDecode, "DecodeFailed"},
	{ErrInvalidKey, "InvalidKey"},
	{ErrTemplateParse, "TemplateInvalid"},
	{ErrTemplateExecute, "TemplateFailed"},
	{ErrNotCertificate, "NotACertificate"},
	{ErrKeyMismatch, "KeyMismatch"},
	{ErrNoPrivateKey, "NoPrivateKey"},
	{ErrPFXPassword, "PFXPasswordRequired"},
	{ErrUnsupportedKey, "UnsupportedKey"},
	{ErrTooLarge, "SecretTooLarge"},
}

// Reason returns a fixed CamelCase word for a render error, suitable as the
// reason of a Ready=False condition, or "" when err does not come from this
// package.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return ""
}

// redact removes every occurrence of the given values from msg. It is a
// second line of defence for messages produced by code we do not control
// (text/template): values shorter than minRedactLen are left alone because
// replacing them would garble the message without hiding anything useful.
func redact(msg string, values map[string]string) string {
	const minRedactLen = 4
	for _, v := range values {
		if len(v) >= minRedactLen && strings.Contains(msg, v) {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	return msg
}
