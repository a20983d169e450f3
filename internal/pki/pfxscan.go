package pki

import (
	"encoding/asn1"
	"fmt"
	"math/big"
)

// maxPFXIterations bounds the key-derivation iteration counts of a PKCS#12
// file. Common tools use 2,000 (Windows, .NET, OpenSSL) to 600,000; the
// counts are read from the file itself, so without a bound a crafted file
// could keep the controller busy for hours (go-pkcs12 has no limit).
const maxPFXIterations = 1 << 21

// maxDERDepth bounds the nesting that checkPFXIterations walks.
const maxDERDepth = 24

// checkPFXIterations walks the DER structure of a PKCS#12 file, descending
// into OCTET STRINGs that hold DER (the authenticated safe and unencrypted
// SafeContents), and refuses every INTEGER that directly follows an OCTET
// STRING in a SEQUENCE and exceeds maxPFXIterations. That is the shape of
// the salt/iteration pairs of MacData, PKCS#12 PBE parameters and PBKDF2
// parameters (including PBMAC1). Counts inside encrypted SafeContents cannot
// be seen before decryption; those are bounded only by the outer ones.
// Structural errors are left to the decoder.
func checkPFXIterations(der []byte) error {
	var v asn1.RawValue
	if _, err := asn1.Unmarshal(der, &v); err != nil {
		return nil
	}
	return walkDER(v, 0)
}

func walkDER(v asn1.RawValue, depth int) error {
	if depth > maxDERDepth {
		return nil
	}
	if v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOctetString && !v.IsCompound {
		var inner asn1.RawValue
		if rest, err := asn1.Unmarshal(v.Bytes, &inner); err == nil && len(rest) == 0 && inner.IsCompound {
			return walkDER(inner, depth+1)
		}
		return nil
	}
	if !v.IsCompound {
		return nil
	}
	var prev asn1.RawValue
	for rest := v.Bytes; len(rest) > 0; {
		var child asn1.RawValue
		var err error
		rest, err = asn1.Unmarshal(rest, &child)
		if err != nil {
			return nil
		}
		if child.Class == asn1.ClassUniversal && child.Tag == asn1.TagInteger &&
			prev.Class == asn1.ClassUniversal && prev.Tag == asn1.TagOctetString && !prev.IsCompound {
			n := new(big.Int).SetBytes(child.Bytes)
			if len(child.Bytes) > 0 && child.Bytes[0]&0x80 == 0 && n.Cmp(big.NewInt(maxPFXIterations)) > 0 {
				return fmt.Errorf("%w: the PKCS#12 file asks for %s key-derivation iterations, at most %d are allowed",
					ErrNotCertificate, n.String(), maxPFXIterations)
			}
		}
		if err := walkDER(child, depth+1); err != nil {
			return err
		}
		prev = child
	}
	return nil
}
