package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Chain is a certificate chain in leaf-to-root order.
type Chain struct {
	// Leaf is the end-entity certificate (the one matching the private key).
	Leaf *x509.Certificate
	// Intermediates are ordered from the leaf's issuer upwards.
	Intermediates []*x509.Certificate
	// Root is the self-signed top of the chain, nil when the source did not
	// include it. A self-signed leaf is Leaf, not Root.
	Root *x509.Certificate
}

// Certificates returns the whole chain: leaf, intermediates, root.
func (c Chain) Certificates() []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(c.Intermediates)+2)
	if c.Leaf != nil {
		out = append(out, c.Leaf)
	}
	out = append(out, c.Intermediates...)
	if c.Root != nil {
		out = append(out, c.Root)
	}
	return out
}

// ServerChain returns what a TLS server sends: leaf then intermediates,
// without the root.
func (c Chain) ServerChain() []*x509.Certificate {
	if c.Leaf == nil {
		return nil
	}
	return append([]*x509.Certificate{c.Leaf}, c.Intermediates...)
}

// CA returns the certificate for ca.crt:
//   - the root when the source included it;
//   - else the leaf itself when it is self-signed;
//   - else the top-most intermediate present (the best trust anchor the
//     source offers; clients that trust it accept the leaf);
//   - else nil (a leaf alone whose issuer is missing: no ca.crt).
func (c Chain) CA() *x509.Certificate {
	switch {
	case c.Root != nil:
		return c.Root
	case c.Leaf != nil && IsSelfSigned(c.Leaf):
		return c.Leaf
	case len(c.Intermediates) > 0:
		return c.Intermediates[len(c.Intermediates)-1]
	}
	return nil
}

// Complete reports whether the chain ends in a self-signed certificate.
func (c Chain) Complete() bool {
	all := c.Certificates()
	return len(all) > 0 && IsSelfSigned(all[len(all)-1])
}

// OrderChain puts certificates into leaf-to-root order.
//
// The leaf is the certificate whose public key matches key when key is not
// nil (ErrKeyMismatch if none does); without a key it is a certificate that
// issued none of the others, preferring non-CA certificates and then source
// order. From the leaf, each issuer is the certificate whose
// SubjectKeyId equals the child's AuthorityKeyId (or, when either is absent,
// whose subject equals the child's issuer) and whose key verifies the child's
// signature. The walk ends at a self-signed certificate (the root) or when no
// issuer is present.
//
// The warnings, which contain only certificate names, report a source order
// that differed from leaf-to-root, duplicates, certificates not part of the
// chain (they are dropped), and a missing issuer when the chain stops at the
// leaf or below a dropped certificate. A chain that merely lacks its root
// is normal and not reported.
func OrderChain(certs []*x509.Certificate, key crypto.PrivateKey) (Chain, []string, error) {
	var warnings []string
	certs, dups := dedupe(certs)
	if dups > 0 {
		warnings = append(warnings, fmt.Sprintf("%d duplicate certificate(s) were dropped", dups))
	}
	if len(certs) == 0 {
		return Chain{}, nil, fmt.Errorf("%w: no certificate found", ErrNotCertificate)
	}
	if len(certs) > maxCertificates {
		return Chain{}, nil, fmt.Errorf("%w: %d certificates, at most %d are supported", ErrNotCertificate, len(certs), maxCertificates)
	}
	g := newIssuerGraph(certs)

	leaf, err := g.pickLeaf(key)
	if err != nil {
		return Chain{}, nil, err
	}

	// Walk up from the leaf.
	order := []int{leaf}
	used := make([]bool, len(certs))
	used[leaf] = true
	for cur := leaf; !g.selfSigned(cur); {
		parent := -1
		for j := range certs {
			if !used[j] && g.issued(j, cur) {
				parent = j
				break
			}
		}
		if parent < 0 {
			break
		}
		order = append(order, parent)
		used[parent] = true
		cur = parent
	}

	chain := Chain{Leaf: certs[leaf]}
	rest := order[1:]
	if top := order[len(order)-1]; len(order) > 1 && g.selfSigned(top) {
		chain.Root = certs[top]
		rest = order[1 : len(order)-1]
	}
	for _, i := range rest {
		chain.Intermediates = append(chain.Intermediates, certs[i])
	}

	if !slices.IsSorted(order) {
		names := make([]string, len(order))
		for i, idx := range order {
			names[i] = CertName(certs[idx])
		}
		warnings = append(warnings, fmt.Sprintf("certificates were not in leaf-to-root order in the source; reordered to %s",
			strings.Join(names, " -> ")))
	}
	dropped := 0
	for j := range certs {
		if !used[j] {
			dropped++
			warnings = append(warnings, fmt.Sprintf("certificate %q (issued by %q) is not part of the chain of %q and was dropped",
				CertName(certs[j]), issuerName(certs[j]), CertName(certs[leaf])))
		}
	}
	top := order[len(order)-1]
	if !g.selfSigned(top) && (top == leaf || dropped > 0) {
		warnings = append(warnings, fmt.Sprintf("the chain is incomplete: issuer %q of certificate %q is missing",
			issuerName(certs[top]), CertName(certs[top])))
	}
	return chain, warnings, nil
}

// issuerGraph memoises the (expensive) issuer checks between certificates.
type issuerGraph struct {
	certs []*x509.Certificate
	memo  map[[2]int]bool
}

func newIssuerGraph(certs []*x509.Certificate) *issuerGraph {
	return &issuerGraph{certs: certs, memo: map[[2]int]bool{}}
}

// issued reports whether certs[parent] issued certs[child].
func (g *issuerGraph) issued(parent, child int) bool {
	k := [2]int{parent, child}
	if v, ok := g.memo[k]; ok {
		return v
	}
	v := IsIssuer(g.certs[parent], g.certs[child])
	g.memo[k] = v
	return v
}

func (g *issuerGraph) selfSigned(i int) bool { return g.issued(i, i) }

// issuesOthers reports whether certs[i] issued any other certificate.
func (g *issuerGraph) issuesOthers(i int) bool {
	for j := range g.certs {
		if j != i && g.issued(i, j) {
			return true
		}
	}
	return false
}

func (g *issuerGraph) pickLeaf(key crypto.PrivateKey) (int, error) {
	candidates := make([]int, 0, len(g.certs))
	if key != nil {
		pub, ok := PublicKeyOf(key)
		if !ok {
			return 0, fmt.Errorf("%w: private key of type %T", ErrUnsupportedKey, key)
		}
		for i, c := range g.certs {
			if SamePublicKey(pub, c.PublicKey) {
				candidates = append(candidates, i)
			}
		}
		if len(candidates) == 0 {
			names := make([]string, len(g.certs))
			for i, c := range g.certs {
				names[i] = fmt.Sprintf("%q", CertName(c))
			}
			return 0, fmt.Errorf("%w: the private key belongs to none of the certificates (%s); "+
				"check that the key and the certificate were stored together", ErrKeyMismatch, strings.Join(names, ", "))
		}
		if len(candidates) == 1 {
			return candidates[0], nil
		}
	} else {
		for i := range g.certs {
			candidates = append(candidates, i)
		}
	}
	// Prefer a certificate that issued nothing else, then a non-CA one, then
	// source order.
	best, bestScore := candidates[0], -1
	for _, i := range candidates {
		score := 0
		if !g.issuesOthers(i) {
			score += 2
		}
		if c := g.certs[i]; !c.BasicConstraintsValid || !c.IsCA {
			score++
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best, nil
}

// IsIssuer reports whether parent issued child. Key identifiers decide when
// both are present, else distinguished names; in both cases the signature
// must verify. Signatures with algorithms Go refuses as insecure (SHA-1, MD5)
// are accepted on the name match alone: this orders a chain, it does not
// decide trust.
func IsIssuer(parent, child *x509.Certificate) bool {
	if len(child.AuthorityKeyId) > 0 && len(parent.SubjectKeyId) > 0 {
		if !bytes.Equal(child.AuthorityKeyId, parent.SubjectKeyId) {
			return false
		}
	} else if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return false
	}
	err := parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature)
	var insecure x509.InsecureAlgorithmError
	return err == nil || errors.As(err, &insecure)
}

// IsSelfSigned reports whether c issued itself (see IsIssuer).
func IsSelfSigned(c *x509.Certificate) bool { return IsIssuer(c, c) }

func dedupe(certs []*x509.Certificate) ([]*x509.Certificate, int) {
	seen := make(map[string]bool, len(certs))
	out := make([]*x509.Certificate, 0, len(certs))
	dups := 0
	for _, c := range certs {
		switch {
		case c == nil:
		case seen[string(c.Raw)]:
			dups++
		default:
			seen[string(c.Raw)] = true
			out = append(out, c)
		}
	}
	return out, dups
}

// PublicKeyOf returns the public half of a private key, when it has one.
func PublicKeyOf(key crypto.PrivateKey) (crypto.PublicKey, bool) {
	k, ok := key.(interface{ Public() crypto.PublicKey })
	if !ok {
		return nil, false
	}
	return k.Public(), true
}

// SamePublicKey reports whether two public keys are equal.
func SamePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// CertName names a certificate for messages: its common name, else its
// subject, else its serial number.
func CertName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	if s := c.Subject.String(); s != "" {
		return s
	}
	return "serial " + c.SerialNumber.Text(16)
}

func issuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	if s := c.Issuer.String(); s != "" {
		return s
	}
	return "(empty issuer)"
}
