package render

import (
	"crypto/elliptic"
	"crypto/tls"

	"github.com/vaultsync/vaultsync/internal/pki/pkitest"
)

// The test PKI of internal/pki/pkitest under the short names this package's
// tests use.
var (
	newPKI         = pkitest.New
	leafTemplate   = pkitest.LeafTemplate
	issue          = pkitest.Issue
	ecKey          = pkitest.ECKey
	pemCerts       = pkitest.PEMCerts
	pemPKCS8       = pkitest.PEMPKCS8
	pemLegacyKey   = pkitest.PEMLegacyKey
	decodePEMCerts = pkitest.DecodePEMCerts
)

func elliptic256() elliptic.Curve { return elliptic.P256() }

func tlsPair(data map[string][]byte) (tls.Certificate, error) {
	return tls.X509KeyPair(data[KeyTLSCert], data[KeyTLSKey])
}
