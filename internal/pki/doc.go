// Package pki parses certificate values (PKCS#12, PEM, DER) and orders a
// certificate chain leaf first, whatever order the source holds it in. It is
// shared by internal/render (certificates read from Key Vault),
// internal/credentials (service principal client certificates) and
// internal/push (TLS Secrets imported into Key Vault), and imports none of
// them.
package pki
