package render

import "github.com/vaultsync/vaultsync/internal/pki"

// The key and issuer checks of internal/pki, under the names the tests of
// this package (written when the parsing lived here) use.
var (
	samePublicKey = pki.SamePublicKey
	publicKeyOf   = pki.PublicKeyOf
	isIssuer      = pki.IsIssuer
	isSelfSigned  = pki.IsSelfSigned
)
