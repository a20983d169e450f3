package render

import (
	"crypto"
	"crypto/x509"

	"github.com/vaultsync/vaultsync/internal/pki"
)

// The certificate parsing and chain ordering of internal/pki, under the names
// render's callers and outputs have always used.

// Content types of the secret that backs a Key Vault certificate.
const (
	ContentTypePKCS12 = pki.ContentTypePKCS12
	ContentTypePEM    = pki.ContentTypePEM
	ContentTypeDER    = pki.ContentTypeDER
)

type (
	// CertBundle is a parsed certificate value (pki.CertBundle).
	CertBundle = pki.CertBundle
	// Chain is an ordered certificate chain (pki.Chain).
	Chain = pki.Chain
)

// ParseCertificateSecret parses the value of a certificate's secret by its
// content type (pki.ParseCertificateSecret).
func ParseCertificateSecret(contentType, value string) (*CertBundle, error) {
	return pki.ParseCertificateSecret(contentType, value)
}

// ParseCertificateSecretWithPassword is ParseCertificateSecret for a PFX
// protected by password.
func ParseCertificateSecretWithPassword(contentType, value, password string) (*CertBundle, error) {
	return pki.ParseCertificateSecretWithPassword(contentType, value, password)
}

// OrderChain orders certs leaf first (pki.OrderChain).
func OrderChain(certs []*x509.Certificate, key crypto.PrivateKey) (Chain, []string, error) {
	return pki.OrderChain(certs, key)
}

func certName(c *x509.Certificate) string { return pki.CertName(c) }

// ParsePFX parses a PKCS#12 file with its password (pki.ParsePFX).
func ParsePFX(der []byte, password string) (*CertBundle, error) { return pki.ParsePFX(der, password) }
