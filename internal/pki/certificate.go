package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"mime"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// Content types of the secret that backs a Key Vault certificate.
const (
	// ContentTypePKCS12 is a PKCS#12 (PFX) file in standard base64.
	ContentTypePKCS12 = "application/x-pkcs12"
	// ContentTypePEM is PEM text: a private key and the certificate chain.
	ContentTypePEM = "application/x-pem-file"
	// ContentTypeDER is a single DER certificate in base64, as in the "cer"
	// field of a Key Vault certificate. It carries no private key.
	ContentTypeDER = "application/pkix-cert"
)

// maxCertificates bounds how many certificates one value may hold; a real
// chain has a handful, and ordering is quadratic.
const maxCertificates = 64

// CertBundle is the parsed content of a certificate value, before ordering.
type CertBundle struct {
	// PrivateKey is an *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey
	// or *ecdh.PrivateKey; nil when the value holds no key.
	PrivateKey crypto.PrivateKey
	// Certificates are in the order of the source.
	Certificates []*x509.Certificate
	// PFX holds the original PKCS#12 bytes when the source was PKCS#12.
	PFX []byte
	// Warnings describe parts of the source that were ignored.
	Warnings []string
}

// ParseCertificateSecret parses the value of the secret that backs a Key
// Vault certificate, according to its content type:
//
//   - application/x-pkcs12: standard base64 of a PFX with an empty password,
//     legacy (RC2/3DES) or modern (AES/PBKDF2) encryption;
//   - application/x-pem-file: PEM text with a private key (PKCS#8, PKCS#1 or
//     SEC1) and certificates, in any order;
//   - application/pkix-cert: base64 of DER certificates, without a key;
//   - anything else (including no content type): the format is detected.
//
// Errors wrap ErrNotCertificate (for example a plain secret), ErrPFXPassword
// (a PFX protected by a password: use [ParsePFX]), ErrNoPrivateKey or
// ErrUnsupportedKey.
func ParseCertificateSecret(contentType string, value string) (*CertBundle, error) {
	return ParseCertificateSecretWithPassword(contentType, value, "")
}

// ParseCertificateSecretWithPassword is [ParseCertificateSecret] for a value
// that may be a password-protected PKCS#12 file (for example one uploaded as
// a plain secret). The password is used for PKCS#12 only.
func ParseCertificateSecretWithPassword(contentType, value, password string) (*CertBundle, error) {
	switch normalizeContentType(contentType) {
	case ContentTypePKCS12:
		der, ok := DecodeBase64([]byte(value))
		if !ok {
			return nil, fmt.Errorf("%w: content type is %s but the value is not base64", ErrNotCertificate, ContentTypePKCS12)
		}
		return ParsePFX(der, password)
	case ContentTypePEM:
		return ParsePEM([]byte(value))
	case ContentTypeDER:
		der, ok := DecodeBase64([]byte(value))
		if !ok {
			return nil, fmt.Errorf("%w: content type is %s but the value is not base64", ErrNotCertificate, ContentTypeDER)
		}
		return parseDER(der)
	}
	return sniffCertificate([]byte(value), password)
}

func normalizeContentType(ct string) string {
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// sniffCertificate detects PEM, base64 PKCS#12 or base64 DER.
func sniffCertificate(value []byte, password string) (*CertBundle, error) {
	if bytes.Contains(value, []byte("-----BEGIN ")) {
		return ParsePEM(value)
	}
	if der, ok := DecodeBase64(value); ok && len(der) > 0 {
		b, err := ParsePFX(der, password)
		if err == nil || errors.Is(err, ErrPFXPassword) || errors.Is(err, ErrNoPrivateKey) {
			return b, err
		}
		if b, err := parseDER(der); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: the value is neither PEM nor a base64 PKCS#12 file or certificate; "+
		"if it is a plain secret, use type secret", ErrNotCertificate)
}

// ParsePFX decodes a PKCS#12 file with the given password ("" for Key Vault's
// own certificates). The file must hold exactly one private key and at least
// one certificate.
func ParsePFX(der []byte, password string) (*CertBundle, error) {
	if err := checkPFXIterations(der); err != nil {
		return nil, err
	}
	key, leaf, cas, err := pkcs12.DecodeChain(der, password)
	if err != nil {
		return nil, pfxError(err, password)
	}
	certs := append([]*x509.Certificate{leaf}, cas...)
	if len(certs) > maxCertificates {
		return nil, fmt.Errorf("%w: the PKCS#12 file holds %d certificates, at most %d are supported",
			ErrNotCertificate, len(certs), maxCertificates)
	}
	return &CertBundle{PrivateKey: key, Certificates: certs, PFX: bytes.Clone(der)}, nil
}

// pfxError maps go-pkcs12 errors to ours. Only the library's fixed texts for
// unsupported structures are passed on; nothing from the file is quoted.
func pfxError(err error, password string) error {
	var notImpl pkcs12.NotImplementedError
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword), errors.Is(err, pkcs12.ErrDecryption):
		if password == "" {
			return fmt.Errorf("%w: the PKCS#12 file is protected by a password; give the password or store it without one", ErrPFXPassword)
		}
		return fmt.Errorf("%w: the given password does not open the PKCS#12 file", ErrPFXPassword)
	case strings.Contains(err.Error(), "private key missing"):
		return fmt.Errorf("%w: the PKCS#12 file holds no private key (is the key non-exportable?); use the CertOnly output with the certificate object", ErrNoPrivateKey)
	case errors.As(err, &notImpl):
		return fmt.Errorf("%w: unsupported PKCS#12 file: %s", ErrNotCertificate, string(notImpl))
	default:
		return fmt.Errorf("%w: the value is not a readable PKCS#12 file", ErrNotCertificate)
	}
}

// ParsePEM reads PEM text holding certificates and at most one private key, in
// any order. Blocks of other types are ignored with a warning.
func ParsePEM(data []byte) (*CertBundle, error) {
	b := &CertBundle{}
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: PEM block %d (CERTIFICATE) is not a valid X.509 certificate", ErrNotCertificate, n)
			}
			if len(b.Certificates) == maxCertificates {
				return nil, fmt.Errorf("%w: more than %d certificates", ErrNotCertificate, maxCertificates)
			}
			b.Certificates = append(b.Certificates, cert)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if b.PrivateKey != nil {
				return nil, fmt.Errorf("%w: the PEM holds more than one private key", ErrNotCertificate)
			}
			key, err := parsePEMKey(block, n)
			if err != nil {
				return nil, err
			}
			b.PrivateKey = key
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("%w: PEM block %d is an encrypted private key; store the key unencrypted", ErrUnsupportedKey, n)
		case "EC PARAMETERS":
			// Written by "openssl ecparam -genkey"; carries nothing we need.
		default:
			b.Warnings = append(b.Warnings, fmt.Sprintf("ignored PEM block %d of type %q", n, block.Type))
		}
	}
	if len(b.Certificates) == 0 {
		return nil, fmt.Errorf("%w: the PEM holds no CERTIFICATE block", ErrNotCertificate)
	}
	return b, nil
}

func parsePEMKey(block *pem.Block, n int) (crypto.PrivateKey, error) {
	if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, fmt.Errorf("%w: PEM block %d is an encrypted private key; store the key unencrypted", ErrUnsupportedKey, n)
	}
	var (
		key crypto.PrivateKey
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			// Some tools (old go-pkcs12 ToPEM among them) label PKCS#1 and
			// SEC1 keys "PRIVATE KEY".
			if k, err1 := x509.ParsePKCS1PrivateKey(block.Bytes); err1 == nil {
				key, err = k, nil
			} else if k, err2 := x509.ParseECPrivateKey(block.Bytes); err2 == nil {
				key, err = k, nil
			}
		}
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	}
	if err != nil {
		// x509's messages describe the structure only, never key material.
		return nil, fmt.Errorf("%w: PEM block %d (%s) cannot be read: %v", ErrUnsupportedKey, n, block.Type, err) //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
	}
	return key, nil
}

// parseDER reads one or more concatenated DER certificates.
func parseDER(der []byte) (*CertBundle, error) {
	certs, err := x509.ParseCertificates(der)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("%w: the value is not a DER certificate", ErrNotCertificate)
	}
	if len(certs) > maxCertificates {
		return nil, fmt.Errorf("%w: more than %d certificates", ErrNotCertificate, maxCertificates)
	}
	return &CertBundle{Certificates: certs}, nil
}
