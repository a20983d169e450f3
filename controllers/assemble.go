package controllers

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/render"
)

// Vault is what a sync reads from Key Vault; keyvault.Client implements it, and so does
// connector.Vault, the client VaultClients.For returns.
type Vault interface {
	GetSecret(ctx context.Context, name, version string) (*keyvault.Secret, error)
	GetCertificateSecret(ctx context.Context, name, version string) (*keyvault.Secret, error)
	GetKey(ctx context.Context, name, version string) (*keyvault.Key, error)
	ListSecrets(ctx context.Context) ([]keyvault.SecretInfo, error)
}

// syncResult is the complete, rendered data of one VaultSecret, built in
// memory before anything is written: all or nothing.
type syncResult struct {
	Data     map[string][]byte
	Versions map[string]string
	// Expires maps a Secret key (or a dataFrom object name) to the expiry
	// of the Key Vault object it came from: a secret's exp attribute, a
	// certificate's notAfter.
	Expires      map[string]time.Time
	Certificates []v1alpha1.CertificateStatus
	Warnings     []string
}

// itemError says which item failed, so the condition can name it.
type itemError struct {
	// What names the item: `data[2] (key "password", secret "DbPassword")`.
	What string
	Err  error
}

func (e *itemError) Error() string { return e.What + ": " + e.Err.Error() }
func (e *itemError) Unwrap() error { return e.Err }

// assemble fetches every object the spec names and renders the Secret data.
// The first failure aborts: nothing partial ever leaves this function.
func assemble(ctx context.Context, vault Vault, spec *v1alpha1.VaultSecretSpec) (*syncResult, error) {
	vault = &memoVault{Vault: vault}
	res := &syncResult{Data: map[string][]byte{}, Versions: map[string]string{}, Expires: map[string]time.Time{}}

	// dataFrom first: keys written by data win over keys from dataFrom.
	fromData := map[string][]byte{}
	fromOrigin := map[string]string{}
	for i := range spec.DataFrom {
		src := &spec.DataFrom[i]
		switch {
		case src.Remote != nil:
			what := fmt.Sprintf("dataFrom[%d] (secret %q)", i, src.Remote.Name)
			s, err := vault.GetSecret(ctx, src.Remote.Name, src.Remote.Version)
			if err != nil {
				return nil, &itemError{What: what, Err: err}
			}
			fields, err := render.FlattenJSON([]byte(s.Value))
			if err != nil {
				return nil, &itemError{What: what, Err: err}
			}
			for k, v := range fields {
				if err := addFrom(fromData, fromOrigin, k, v, what); err != nil {
					return nil, err
				}
			}
			res.Versions[src.Remote.Name] = s.Version
			if s.Expires != nil {
				res.Expires[src.Remote.Name] = *s.Expires
			}
		case src.Find != nil:
			if err := find(ctx, vault, i, src.Find, fromData, fromOrigin, res); err != nil {
				return nil, err
			}
		}
	}
	maps.Copy(res.Data, fromData)

	for i := range spec.Data {
		item := &spec.Data[i]
		if err := fetchItem(ctx, vault, i, item, res); err != nil {
			return nil, err
		}
	}

	if spec.Target.Template != nil && len(spec.Target.Template.Data) > 0 {
		out, err := render.RenderTemplates(spec.Target.Template.Data, res.Data)
		if err != nil {
			return nil, &itemError{What: "target.template", Err: err}
		}
		// A template key replaces a fetched key of the same name.
		maps.Copy(res.Data, out)
	}
	if err := render.CheckSize(res.Data); err != nil {
		return nil, &itemError{What: "target", Err: err}
	}
	sort.Slice(res.Certificates, func(a, b int) bool { return res.Certificates[a].Key < res.Certificates[b].Key })
	return res, nil
}

func addFrom(data map[string][]byte, origin map[string]string, key string, v []byte, what string) error {
	if err := render.ValidateKey(key); err != nil {
		return &itemError{What: what, Err: fmt.Errorf("%w: %w", errInvalidSpec, err)}
	}
	if prev, ok := origin[key]; ok {
		return &itemError{What: what, Err: fmt.Errorf("%w: key %q is also written by %s; add a rewrite to tell them apart", errInvalidSpec, key, prev)}
	}
	data[key] = v
	origin[key] = what
	return nil
}

func find(ctx context.Context, vault Vault, i int, f *v1alpha1.FindSpec, data map[string][]byte, origin map[string]string, res *syncResult) error {
	what := fmt.Sprintf("dataFrom[%d].find", i)
	var nameRe, rewriteRe *regexp.Regexp
	var err error
	if f.NameRegex != "" {
		if nameRe, err = regexp.Compile(f.NameRegex); err != nil {
			return &itemError{What: what, Err: fmt.Errorf("%w: nameRegex does not compile: %v", errInvalidSpec, err)} //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
		}
	}
	if f.Rewrite != nil {
		if rewriteRe, err = regexp.Compile(f.Rewrite.Regex); err != nil {
			return &itemError{What: what, Err: fmt.Errorf("%w: rewrite.regex does not compile: %v", errInvalidSpec, err)} //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
		}
	}
	infos, err := vault.ListSecrets(ctx)
	if err != nil {
		return &itemError{What: what, Err: err}
	}
	slices.SortFunc(infos, func(a, b keyvault.SecretInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, info := range infos {
		if !info.Enabled || info.Managed {
			continue // disabled secrets cannot be read; certificate-backed ones are not plain secrets
		}
		if nameRe != nil && !nameRe.MatchString(info.Name) {
			continue
		}
		if !tagsMatch(info.Tags, f.Tags) {
			continue
		}
		s, err := vault.GetSecret(ctx, info.Name, "")
		if err != nil {
			return &itemError{What: fmt.Sprintf("%s (secret %q)", what, info.Name), Err: err}
		}
		key := info.Name
		if rewriteRe != nil {
			key = render.Rewrite(key, rewriteRe, f.Rewrite.Replace)
		}
		if err := addFrom(data, origin, key, []byte(s.Value), fmt.Sprintf("%s (secret %q)", what, info.Name)); err != nil {
			return err
		}
		res.Versions[key] = s.Version
		if s.Expires != nil {
			res.Expires[key] = *s.Expires
		}
	}
	return nil
}

func tagsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func fetchItem(ctx context.Context, vault Vault, i int, item *v1alpha1.DataItem, res *syncResult) error {
	r := &item.Remote
	typ := r.TypeOrDefault()
	what := fmt.Sprintf("data[%d] (key %q, %s %q)", i, item.Key, typ, r.Name)
	if item.WritesTLSKeys() {
		what = fmt.Sprintf("data[%d] (certificate %q)", i, r.Name)
	}
	fail := func(err error) error { return &itemError{What: what, Err: err} }

	switch typ {
	case v1alpha1.ObjectTypeSecret:
		s, err := vault.GetSecret(ctx, r.Name, r.Version)
		if err != nil {
			return fail(err)
		}
		v := []byte(s.Value)
		if r.Property != "" {
			if v, err = render.ExtractProperty(v, r.Property); err != nil {
				return fail(err)
			}
		}
		if v, err = render.Decode(v, string(r.DecodeOrDefault())); err != nil {
			return fail(err)
		}
		res.Data[item.Key] = v
		res.Versions[item.Key] = s.Version
		if s.Expires != nil {
			res.Expires[item.Key] = *s.Expires
		}

	case v1alpha1.ObjectTypeCertificate:
		s, err := vault.GetCertificateSecret(ctx, r.Name, r.Version)
		if err != nil {
			return fail(err)
		}
		bundle, err := render.ParseCertificateSecret(s.ContentType, s.Value)
		if err != nil {
			return fail(err)
		}
		cert, err := render.BuildCertificate(bundle)
		if err != nil {
			return fail(err)
		}
		for _, w := range cert.Warnings {
			res.Warnings = append(res.Warnings, fmt.Sprintf("certificate %q: %s", r.Name, w))
		}
		out, statusKey, err := certificateOutput(cert, r.FormatOrDefault(), item.Key)
		if err != nil {
			return fail(err)
		}
		maps.Copy(res.Data, out)
		res.Versions[statusKey] = s.Version
		res.Expires[statusKey] = cert.Info.NotAfter
		res.Certificates = append(res.Certificates, v1alpha1.CertificateStatus{
			Key: statusKey, NotAfter: metav1.NewTime(cert.Info.NotAfter), Subject: cert.Info.Subject,
		})

	case v1alpha1.ObjectTypeKey:
		k, err := vault.GetKey(ctx, r.Name, r.Version)
		if err != nil {
			return fail(err)
		}
		jwk := render.JSONWebKey{Kty: strings.TrimSuffix(k.Kty, "-HSM"), Crv: k.Crv, N: k.N, E: k.E, X: k.X, Y: k.Y, Kid: k.ID}
		var v []byte
		if r.FormatOrDefault() == v1alpha1.FormatJWK {
			v, err = render.PublicKeyJWK(jwk)
		} else {
			v, err = render.PublicKeyPEM(jwk)
		}
		if err != nil {
			return fail(err)
		}
		res.Data[item.Key] = v
		res.Versions[item.Key] = k.Version
	}
	return nil
}

// certificateOutput maps the API's formats onto the renderer's outputs.
func certificateOutput(cert *render.Certificate, format v1alpha1.Format, key string) (map[string][]byte, string, error) {
	switch format {
	case v1alpha1.FormatPEM:
		k, err := cert.KeyPEM()
		if err != nil {
			return nil, "", err
		}
		return map[string][]byte{key: append(k, cert.ChainPEM()...)}, key, nil
	case v1alpha1.FormatPFX:
		p, err := cert.PFX()
		if err != nil {
			return nil, "", err
		}
		return map[string][]byte{key: p}, key, nil
	case v1alpha1.FormatCertOnly:
		return map[string][]byte{key: cert.ChainPEM()}, key, nil
	default: // TLS
		out, err := cert.TLSData()
		return out, render.KeyTLSCert, err
	}
}

// memoVault remembers what one sync fetched, so that several items naming
// the same object cost one request.
type memoVault struct {
	Vault
	secrets map[[3]string]*keyvault.Secret
	keys    map[[2]string]*keyvault.Key
}

func (m *memoVault) secret(ctx context.Context, kind, name, version string, get func(context.Context, string, string) (*keyvault.Secret, error)) (*keyvault.Secret, error) {
	k := [3]string{kind, name, version}
	if s, ok := m.secrets[k]; ok {
		return s, nil
	}
	s, err := get(ctx, name, version)
	if err != nil {
		return nil, err
	}
	if m.secrets == nil {
		m.secrets = map[[3]string]*keyvault.Secret{}
	}
	m.secrets[k] = s
	return s, nil
}

func (m *memoVault) GetSecret(ctx context.Context, name, version string) (*keyvault.Secret, error) {
	return m.secret(ctx, "secret", name, version, m.Vault.GetSecret)
}

func (m *memoVault) GetCertificateSecret(ctx context.Context, name, version string) (*keyvault.Secret, error) {
	return m.secret(ctx, "certificate", name, version, m.Vault.GetCertificateSecret)
}

func (m *memoVault) GetKey(ctx context.Context, name, version string) (*keyvault.Key, error) {
	k := [2]string{name, version}
	if v, ok := m.keys[k]; ok {
		return v, nil
	}
	v, err := m.Vault.GetKey(ctx, name, version)
	if err != nil {
		return nil, err
	}
	if m.keys == nil {
		m.keys = map[[2]string]*keyvault.Key{}
	}
	m.keys[k] = v
	return v, nil
}
