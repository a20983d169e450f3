// Package render turns objects fetched from Azure Key Vault into the data of a
// Kubernetes Secret.
//
// Everything here is a pure function over plain Go values: no I/O, no clients,
// no Kubernetes or Azure SDK types. The controller fetches, then calls into
// this package to pick JSON properties ([ExtractProperty]), decode values
// ([Decode]), spread JSON objects into keys ([FlattenJSON]), rename keys
// ([Rewrite], [ValidateKey]), run templates ([RenderTemplates]), turn
// certificates into TLS material ([ParseCertificateSecret], [OrderChain],
// [BuildCertificate]) and keys into PEM or JWK ([PublicKeyPEM],
// [PublicKeyJWK]), and finally checks the size limit ([CheckSize]).
//
// A certificate item goes through three steps:
//
//	bundle, err := render.ParseCertificateSecret(secret.ContentType, secret.Value)
//	cert, err := render.BuildCertificate(bundle) // orders the chain, checks the key
//	data, err := cert.Render(render.FormatPEM, item.Key)
//	// cert.Info.NotAfter for status, cert.Warnings for an event
//
// A key item: render.RenderKey(jwk, render.KeyFormatPEM).
//
// Errors wrap one of the sentinel errors declared in errors.go, so callers can
// use errors.Is, or [Reason] for a fixed CamelCase condition reason. Error
// messages name keys, paths, templates and certificate subjects, but never
// contain a secret value.
package render
