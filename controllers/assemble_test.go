package controllers

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/kvtypes"
	"github.com/vaultsync/vaultsync/internal/render"
)

// fakeVault serves secrets from memory and counts calls.
type fakeVault struct {
	secrets map[string]*keyvault.Secret
	fail    map[string]error
	gets    int
}

func (f *fakeVault) GetSecret(_ context.Context, name, version string) (*keyvault.Secret, error) {
	f.gets++
	if err := f.fail[name]; err != nil {
		return nil, err
	}
	s, ok := f.secrets[name]
	if !ok {
		return nil, &keyvault.Error{Kind: keyvault.ErrNotFound, Type: kvtypes.TypeSecret, Object: name, Status: 404}
	}
	return s, nil
}

func (f *fakeVault) GetCertificateSecret(ctx context.Context, name, version string) (*keyvault.Secret, error) {
	return f.GetSecret(ctx, name, version)
}

func (f *fakeVault) GetKey(context.Context, string, string) (*keyvault.Key, error) {
	return nil, errors.New("no keys here")
}

func (f *fakeVault) ListSecrets(context.Context) ([]keyvault.SecretInfo, error) {
	var out []keyvault.SecretInfo
	for name, s := range f.secrets {
		out = append(out, keyvault.SecretInfo{Name: name, Version: s.Version, Tags: s.Tags, Enabled: true})
	}
	return out, nil
}

func newFake() *fakeVault {
	return &fakeVault{secrets: map[string]*keyvault.Secret{
		"DbPassword": {Name: "DbPassword", Version: "v1", Value: "s3cret"},
		"app-config": {Name: "app-config", Version: "v2", Value: `{"host":"db","port":5432,"tls":{"mode":"require"}}`},
		"b64":        {Name: "b64", Version: "v3", Value: base64.StdEncoding.EncodeToString([]byte("raw-bytes"))},
		"app-one":    {Name: "app-one", Version: "v4", Value: "1", Tags: map[string]string{"env": "prod"}},
		"app-two":    {Name: "app-two", Version: "v5", Value: "2", Tags: map[string]string{"env": "dev"}},
		"other":      {Name: "other", Version: "v6", Value: "3", Tags: map[string]string{"env": "prod"}},
	}, fail: map[string]error{}}
}

func TestAssemble(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		spec     v1alpha1.VaultSecretSpec
		want     map[string]string
		versions map[string]string
		errIs    error
		reason   string
	}{{
		name: "plain secret",
		spec: v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "password", Remote: v1alpha1.RemoteRef{Name: "DbPassword"}}}},
		want: map[string]string{"password": "s3cret"}, versions: map[string]string{"password": "v1"},
	}, {
		name: "json property and base64 decode",
		spec: v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{
			{Key: "mode", Remote: v1alpha1.RemoteRef{Name: "app-config", Property: "tls.mode"}},
			{Key: "port", Remote: v1alpha1.RemoteRef{Name: "app-config", Property: "port"}},
			{Key: "raw", Remote: v1alpha1.RemoteRef{Name: "b64", Decode: v1alpha1.DecodeBase64}},
		}},
		want: map[string]string{"mode": "require", "port": "5432", "raw": "raw-bytes"},
	}, {
		name: "dataFrom remote flattens a JSON secret; data wins on collisions",
		spec: v1alpha1.VaultSecretSpec{
			DataFrom: []v1alpha1.DataFromSource{{Remote: &v1alpha1.DataFromRemote{Name: "app-config"}}},
			Data:     []v1alpha1.DataItem{{Key: "host", Remote: v1alpha1.RemoteRef{Name: "DbPassword"}}},
		},
		want: map[string]string{"host": "s3cret", "port": "5432", "tls": `{"mode":"require"}`},
	}, {
		name: "find by regex and tags with rewrite",
		spec: v1alpha1.VaultSecretSpec{DataFrom: []v1alpha1.DataFromSource{{Find: &v1alpha1.FindSpec{
			NameRegex: "^app-", Tags: map[string]string{"env": "prod"},
			Rewrite: &v1alpha1.Rewrite{Regex: "^app-", Replace: ""},
		}}}},
		want: map[string]string{"one": "1"}, versions: map[string]string{"one": "v4"},
	}, {
		name: "template over fetched values",
		spec: v1alpha1.VaultSecretSpec{
			Data: []v1alpha1.DataItem{{Key: "password", Remote: v1alpha1.RemoteRef{Name: "DbPassword"}}},
			Target: v1alpha1.SecretTarget{Template: &v1alpha1.SecretTemplate{Data: map[string]string{
				"connection": "Server=db;Password={{ .password }}",
			}}},
		},
		want: map[string]string{"password": "s3cret", "connection": "Server=db;Password=s3cret"},
	}, {
		name:   "missing secret fails the whole set",
		spec:   v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "a", Remote: v1alpha1.RemoteRef{Name: "DbPassword"}}, {Key: "b", Remote: v1alpha1.RemoteRef{Name: "Nope"}}}},
		errIs:  keyvault.ErrNotFound,
		reason: "SecretNotFound",
	}, {
		name:   "property of a non-JSON secret",
		spec:   v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "a", Remote: v1alpha1.RemoteRef{Name: "DbPassword", Property: "x"}}}},
		errIs:  render.ErrNotJSON,
		reason: render.Reason(render.ErrNotJSON),
	}, {
		name:   "bad regex is an invalid spec",
		spec:   v1alpha1.VaultSecretSpec{DataFrom: []v1alpha1.DataFromSource{{Find: &v1alpha1.FindSpec{NameRegex: "("}}}},
		errIs:  errInvalidSpec,
		reason: ReasonInvalidSpec,
	}, {
		name: "two dataFrom sources writing the same key collide",
		spec: v1alpha1.VaultSecretSpec{DataFrom: []v1alpha1.DataFromSource{
			{Remote: &v1alpha1.DataFromRemote{Name: "app-config"}},
			{Find: &v1alpha1.FindSpec{NameRegex: "^other$", Rewrite: &v1alpha1.Rewrite{Regex: ".*", Replace: "host"}}},
		}},
		errIs:  errInvalidSpec,
		reason: ReasonInvalidSpec,
	}, {
		name:   "template referencing a missing key",
		spec:   v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Key: "a", Remote: v1alpha1.RemoteRef{Name: "DbPassword"}}}, Target: v1alpha1.SecretTarget{Template: &v1alpha1.SecretTemplate{Data: map[string]string{"x": "{{ .nope }}"}}}},
		errIs:  render.ErrTemplateExecute,
		reason: render.Reason(render.ErrTemplateExecute),
	}, {
		name:   "a plain secret in a certificate item",
		spec:   v1alpha1.VaultSecretSpec{Data: []v1alpha1.DataItem{{Remote: v1alpha1.RemoteRef{Name: "DbPassword", Type: v1alpha1.ObjectTypeCertificate}}}},
		errIs:  render.ErrNotCertificate,
		reason: render.Reason(render.ErrNotCertificate),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			res, err := assemble(ctx, newFake(), &tt.spec)
			if tt.errIs != nil {
				g.Expect(err).To(MatchError(tt.errIs))
				g.Expect(res).To(BeNil(), "nothing partial is returned")
				reason, msg, _ := classify(err)
				g.Expect(reason).To(Equal(tt.reason))
				g.Expect(msg).NotTo(ContainSubstring("s3cret"), "a message never holds a value")
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			got := map[string]string{}
			for k, v := range res.Data {
				got[k] = string(v)
			}
			g.Expect(got).To(Equal(tt.want))
			for k, v := range tt.versions {
				g.Expect(res.Versions).To(HaveKeyWithValue(k, v))
			}
		})
	}
}
