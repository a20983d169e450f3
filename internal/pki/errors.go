package pki

import "errors"

// Sentinel errors. Every error of this package wraps exactly one of them; the
// wrapping message says what was wrong without quoting key material.
// internal/render re-exports them, so its Reason maps them to condition
// reasons.
var (
	// ErrNotCertificate means a value does not hold a certificate.
	ErrNotCertificate = errors.New("value is not a certificate")
	// ErrKeyMismatch means the private key matches none of the certificates.
	ErrKeyMismatch = errors.New("private key does not match any certificate")
	// ErrNoPrivateKey means an output that needs the private key was asked for
	// a certificate that came without one.
	ErrNoPrivateKey = errors.New("certificate has no private key")
	// ErrPFXPassword means a PKCS#12 file is protected by a password that was
	// not given (or the given password is wrong).
	ErrPFXPassword = errors.New("PKCS#12 password required or incorrect")
	// ErrUnsupportedKey means a key type or curve is not supported.
	ErrUnsupportedKey = errors.New("unsupported key")
)
