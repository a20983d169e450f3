/*
Copyright 2026 The vaultsync Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package admission

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	vaultsyncv1alpha1 "github.com/vaultsync/vaultsync/api/v1alpha1"
)

// defaultVault is merged into a case's spec unless the case sets vault itself or omits it on purpose.
const defaultVault = `
url: https://my-vault.vault.azure.net/
auth:
  workloadIdentity:
    serviceAccountName: payments
`

// fullExample is the complete example of the product spec: every field set.
const fullExample = `
vault:
  url: https://payments-prod.vault.azure.net/
  auth:
    workloadIdentity:
      serviceAccountName: payments-reader
      clientID: 5a3e0b1c-7d2f-4e8a-9b6c-1f0e2d3c4b5a
      tenantID: 72f988bf-86f1-41af-91ab-2d7cd011db47
refreshInterval: 15m
target:
  name: payments-credentials
  type: Opaque
  creationPolicy: Orphan
  labels:
    app.kubernetes.io/name: payments
  annotations:
    team: payments
  template:
    data:
      dsn: 'postgres://{{ index . "db-user" }}:{{ index . "db-password" }}@db:5432/payments'
data:
- key: db-password
  remote:
    name: payments-db
    property: password
- key: db-user
  remote:
    name: payments-db
    property: user
    version: 0123456789abcdef0123456789abcdef
- key: signing-key
  remote:
    name: signing-key-b64
    decode: Base64
- key: api.pem
  remote:
    name: api-cert
    type: certificate
    format: PEM
- key: api.pfx
  remote:
    name: api-cert
    type: certificate
    format: PFX
- key: api-chain.pem
  remote:
    name: api-cert
    type: certificate
    format: CertOnly
- key: jwks.json
  remote:
    name: token-signing
    type: key
    format: JWK
- key: token-signing.pub
  remote:
    name: token-signing
    type: key
dataFrom:
- remote:
    name: payments-config
- find:
    nameRegex: ^payments-feature-
    tags:
      env: prod
    rewrite:
      regex: ^payments-feature-
      replace: feature_
`

// fieldError is one expected cause of a refusal: the field path the API server reports and
// a fragment of the message.
type fieldError struct {
	field   string
	message string
}

type admissionCase struct {
	name string
	// spec is the YAML of spec; defaultVault is added when it has no vault (unless noVault).
	spec    string
	noVault bool
	// want lists the causes the API server must report; empty means the object is accepted.
	want []fieldError
}

func TestAdmission(t *testing.T) {
	cases := []admissionCase{
		// Accepted.
		{name: "full example from the spec", spec: fullExample},
		{name: "minimal secret item", spec: `
data:
- key: password
  remote: {name: db-password}`},
		{name: "kubernetes.io/tls with a TLS certificate item", spec: `
target: {type: kubernetes.io/tls}
data:
- remote: {name: ingress-cert, type: certificate}`},
		{name: "kubernetes.io/tls with explicit format TLS and an extra key", spec: `
target: {type: kubernetes.io/tls}
data:
- remote: {name: ingress-cert, type: certificate, format: TLS}
- key: password
  remote: {name: pfx-password}`},
		{name: "kubernetes.io/tls from data and template keys", spec: `
target:
  type: kubernetes.io/tls
  template:
    data:
      tls.key: '{{ .key }}'
data:
- key: tls.crt
  remote: {name: my-cert, type: certificate, format: CertOnly}
- key: key
  remote: {name: my-key-pem}`},
		{name: "refreshInterval 0 (sync once)", spec: `
refreshInterval: "0"
data: [{key: a, remote: {name: a}}]`},
		{name: "refreshInterval 0s", spec: `
refreshInterval: 0s
data: [{key: a, remote: {name: a}}]`},
		{name: "refreshInterval 1m", spec: `
refreshInterval: 1m
data: [{key: a, remote: {name: a}}]`},
		{name: "refreshInterval 1h30m", spec: `
refreshInterval: 1h30m
data: [{key: a, remote: {name: a}}]`},
		{name: "dataFrom only, find by tags", spec: `
dataFrom:
- find: {tags: {app: payments}}`},
		{name: "Merge into an Opaque Secret", spec: `
target: {name: existing, creationPolicy: Merge}
data: [{key: a, remote: {name: a}}]`},
		{name: "template overrides a data key", spec: `
target: {template: {data: {a: 'prefix-{{ .a }}'}}}
data: [{key: a, remote: {name: a}}]`},

		// Refused: vault and auth.
		{name: "vault missing", noVault: true, spec: `
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault", "spec.vault is required"}}},
		{name: "url with http scheme", spec: `
vault: {url: 'http://my-vault.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: sa}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.url", "spec.vault.url must be an https URL"}}},
		{name: "url that is not a URL", spec: `
vault: {url: 'my vault', auth: {workloadIdentity: {serviceAccountName: sa}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.url", "spec.vault.url must be an https URL"}}},
		{name: "url without host", spec: `
vault: {url: 'https://', auth: {workloadIdentity: {serviceAccountName: sa}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.url", "spec.vault.url must be an https URL"}}},
		{name: "rollout targets and refresh policy", spec: `
data: [{key: a, remote: {name: a}}]
refreshPolicy: OnChange
target: {onSourceDeleted: Delete}
rolloutRestartTargets: [{kind: Deployment, name: web}, {kind: StatefulSet, name: db}]`},
		{name: "unknown refresh policy", spec: `
data: [{key: a, remote: {name: a}}]
refreshPolicy: Sometimes`,
			want: []fieldError{{"spec.refreshPolicy", "Unsupported value"}}},
		{name: "rollout of a kind that cannot be restarted", spec: `
data: [{key: a, remote: {name: a}}]
rolloutRestartTargets: [{kind: Pod, name: web}]`,
			want: []fieldError{{"spec.rolloutRestartTargets[0].kind", "Unsupported value"}}},
		{name: "unknown onSourceDeleted", spec: `
data: [{key: a, remote: {name: a}}]
target: {onSourceDeleted: Archive}`,
			want: []fieldError{{"spec.target.onSourceDeleted", "Unsupported value"}}},
		{name: "no auth method", spec: `
vault: {url: 'https://v.vault.azure.net/', auth: {}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth", "auth must set exactly one authentication method"}}},
		{name: "two auth methods", spec: `
vault: {url: 'https://v.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: sa}, azureCLI: {}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth", "auth must set exactly one authentication method"}}},
		{name: "service account name not DNS-1123", spec: `
vault: {url: 'https://v.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: Payments_Reader}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth.workloadIdentity.serviceAccountName", "must be a DNS-1123 subdomain"}}},
		{name: "clientID not a GUID", spec: `
vault: {url: 'https://v.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: sa, clientID: my-app}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth.workloadIdentity.clientID", "clientID must be a GUID"}}},
		{name: "tenantID not a GUID", spec: `
vault: {url: 'https://v.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: sa, tenantID: contoso.onmicrosoft.com}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth.workloadIdentity.tenantID", "tenantID must be a GUID"}}},

		// Refused: data keys.
		{name: "nothing to sync", spec: `
target: {name: x}`,
			want: []fieldError{{"spec", "spec.data or spec.dataFrom must list at least one Key Vault object"}}},
		{name: "invalid key characters", spec: `
data: [{key: 'db password', remote: {name: a}}]`,
			want: []fieldError{{"spec.data[0].key", "key must be a valid Secret key"}}},
		{name: "key '..'", spec: `
data: [{key: '..', remote: {name: a}}]`,
			want: []fieldError{{"spec.data[0].key", "key must be a valid Secret key"}}},
		{name: "key missing for a secret", spec: `
data: [{key: a, remote: {name: a}}, {remote: {name: b}}]`,
			want: []fieldError{{"spec.data[1].key", "key is required"}}},
		{name: "key missing for a PEM certificate", spec: `
data: [{remote: {name: c, type: certificate, format: PEM}}]`,
			want: []fieldError{{"spec.data[0].key", "key is required"}}},
		{name: "key set on a TLS certificate", spec: `
data: [{key: cert, remote: {name: c, type: certificate}}]`,
			want: []fieldError{{"spec.data[0].key", "key must be empty for a certificate with format TLS"}}},
		{name: "duplicate keys", spec: `
data:
- {key: password, remote: {name: a}}
- {key: user, remote: {name: b}}
- {key: password, remote: {name: c}}`,
			want: []fieldError{{"spec.data", "every key must be unique"}}},
		{name: "duplicate keys next to a TLS certificate item", spec: `
data:
- remote: {name: c1, type: certificate}
- {key: password, remote: {name: a}}
- {key: password, remote: {name: b}}`,
			want: []fieldError{{"spec.data", "every key must be unique"}}},
		{name: "two TLS certificate items and a key they write", spec: `
data:
- remote: {name: c1, type: certificate}
- remote: {name: c2, type: certificate}
- {key: tls.key, remote: {name: k}}`,
			want: []fieldError{
				{"spec.data", "at most one certificate item may use format TLS"},
				{"spec.data", "keys tls.crt, tls.key and ca.crt are written by the certificate item"},
			}},
		{name: "two TLS certificate items", spec: `
data:
- remote: {name: c1, type: certificate}
- remote: {name: c2, type: certificate, format: TLS}`,
			want: []fieldError{{"spec.data", "at most one certificate item may use format TLS"}}},
		{name: "key collides with the TLS certificate item", spec: `
data:
- remote: {name: c1, type: certificate}
- {key: ca.crt, remote: {name: my-ca}}`,
			want: []fieldError{{"spec.data", "keys tls.crt, tls.key and ca.crt are written by the certificate item"}}},

		// Refused: remote references.
		{name: "remote name with underscore", spec: `
data: [{key: a, remote: {name: db_password}}]`,
			want: []fieldError{{"spec.data[0].remote.name", "name must be a Key Vault object name"}}},
		{name: "remote name too long", spec: fmt.Sprintf(`
data: [{key: a, remote: {name: %s}}]`, strings.Repeat("a", 128)),
			want: []fieldError{{"spec.data[0].remote.name", "Too long"}}},
		{name: "version not 32 hex characters", spec: `
data: [{key: a, remote: {name: a, version: latest}}]`,
			want: []fieldError{{"spec.data[0].remote.version", "version must be a 32-character hexadecimal Key Vault version id"}}},
		{name: "unknown object type", spec: `
data: [{key: a, remote: {name: a, type: blob}}]`,
			want: []fieldError{{"spec.data[0].remote.type", `supported values: "secret", "certificate", "key"`}}},
		{name: "property on a certificate", spec: `
data: [{key: a, remote: {name: a, type: certificate, format: PEM, property: password}}]`,
			want: []fieldError{{"spec.data[0].remote.property", "property is only allowed when type is secret"}}},
		{name: "decode Base64 on a key", spec: `
data: [{key: a, remote: {name: a, type: key, decode: Base64}}]`,
			want: []fieldError{{"spec.data[0].remote.decode", "decode Base64 is only allowed when type is secret"}}},
		{name: "format on a secret", spec: `
data: [{key: a, remote: {name: a, format: PEM}}]`,
			want: []fieldError{{"spec.data[0].remote.format", "format is only allowed when type is certificate or key"}}},
		{name: "JWK format for a certificate", spec: `
data: [{key: a, remote: {name: a, type: certificate, format: JWK}}]`,
			want: []fieldError{{"spec.data[0].remote.format", "format of a certificate must be TLS, PEM, PFX or CertOnly"}}},
		{name: "PFX format for a key", spec: `
data: [{key: a, remote: {name: a, type: key, format: PFX}}]`,
			want: []fieldError{{"spec.data[0].remote.format", "format of a key must be PEM or JWK"}}},
		{name: "too many data items", spec: "data:\n" + manyItems(257),
			want: []fieldError{{"spec.data", "must have at most 256 items"}}},

		// Refused: refresh interval.
		{name: "refreshInterval below 1m", spec: `
refreshInterval: 30s
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.refreshInterval", "spec.refreshInterval must be 0 (sync once, then only on change) or at least 1m"}}},
		{name: "refreshInterval not a duration", spec: `
refreshInterval: 1 day
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.refreshInterval", "spec.refreshInterval must be a duration such as 30m"}}},
		{name: "refreshInterval in days", spec: `
refreshInterval: 1d
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.refreshInterval", "spec.refreshInterval must be a duration such as 30m"}}},

		// Refused: target.
		{name: "kubernetes.io/tls without certificate or keys", spec: `
target: {type: kubernetes.io/tls}
data: [{key: password, remote: {name: a}}]`,
			want: []fieldError{{"spec.target.type", "spec.target.type kubernetes.io/tls needs a certificate item in TLS format"}}},
		{name: "kubernetes.io/tls with tls.crt but no tls.key", spec: `
target: {type: kubernetes.io/tls}
data: [{key: tls.crt, remote: {name: c, type: certificate, format: CertOnly}}]`,
			want: []fieldError{{"spec.target.type", "keys producing both tls.crt and tls.key"}}},
		{name: "kubernetes.io/tls with a PEM certificate only", spec: `
target: {type: kubernetes.io/tls}
data: [{key: bundle.pem, remote: {name: c, type: certificate, format: PEM}}]`,
			want: []fieldError{{"spec.target.type", "spec.target.type kubernetes.io/tls needs a certificate item in TLS format"}}},
		{name: "Merge with a non-Opaque type", spec: `
target: {creationPolicy: Merge, type: kubernetes.io/tls}
data: [{remote: {name: c, type: certificate}}]`,
			want: []fieldError{{"spec.target.type", "spec.target.type must be Opaque (the default) when creationPolicy is Merge"}}},
		{name: "unsupported Secret type", spec: `
target: {type: bootstrap.kubernetes.io/token}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.target.type", `supported values: "Opaque", "kubernetes.io/tls"`}}},
		{name: "unknown creation policy", spec: `
target: {creationPolicy: Adopt}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.target.creationPolicy", `supported values: "Owner", "Orphan", "Merge"`}}},
		{name: "target name not DNS-1123", spec: `
target: {name: My_Secret}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.target.name", "spec.target.name must be a DNS-1123 subdomain"}}},
		{name: "invalid template key", spec: `
target: {template: {data: {'config/app.yaml': 'x'}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.target.template.data", "spec.target.template.data keys must be valid Secret keys"}}},
		{name: "labels set the managed label", spec: `
target: {labels: {vaultsync.io/managed: "false"}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.target.labels", "spec.target.labels must not set vaultsync.io/managed"}}},
		{name: "annotations set the owner annotation", spec: `
target: {annotations: {vaultsync.io/owner: other/vs}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.target.annotations", "spec.target.annotations must not set vaultsync.io/owner"}}},

		// Refused: dataFrom.
		{name: "dataFrom with both remote and find", spec: `
dataFrom: [{remote: {name: cfg}, find: {nameRegex: ^app-}}]`,
			want: []fieldError{{"spec.dataFrom[0]", "spec.dataFrom items must set exactly one of remote or find"}}},
		{name: "dataFrom with neither remote nor find", spec: `
dataFrom: [{}]`,
			want: []fieldError{{"spec.dataFrom[0]", "spec.dataFrom items must set exactly one of remote or find"}}},
		{name: "find without nameRegex or tags", spec: `
dataFrom: [{find: {rewrite: {regex: '^app-', replace: ''}}}]`,
			want: []fieldError{{"spec.dataFrom[0].find", "spec.dataFrom find must set nameRegex, tags or both"}}},
		{name: "dataFrom remote version invalid", spec: `
dataFrom: [{remote: {name: cfg, version: v2}}]`,
			want: []fieldError{{"spec.dataFrom[0].remote.version", "version must be a 32-character hexadecimal"}}},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newVaultSecret(g, tc.spec, !tc.noVault)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := k8sClient.Create(ctx, obj, client.DryRunAll)
			if len(tc.want) == 0 {
				g.Expect(err).NotTo(HaveOccurred(), "a valid VaultSecret was refused")
				return
			}
			g.Expect(err).To(HaveOccurred(), "an invalid VaultSecret was accepted")
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			causes := statusCauses(err)
			for _, w := range tc.want {
				g.Expect(causes).To(ContainElement(SatisfyAll(
					HaveField("Field", w.field),
					HaveField("Message", ContainSubstring(w.message)),
				)), "want a cause on %s containing %q; the API server said: %v", w.field, w.message, err)
			}
		})
	}
}

// TestDefaults creates a minimal VaultSecret and reads back the defaults the API server applied.
func TestDefaults(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	obj := newVaultSecret(g, `
data:
- key: password
  remote: {name: db-password}
- remote: {name: ingress-cert, type: certificate}
`, true)
	obj.SetGenerateName("")
	obj.SetName("defaults")
	g.Expect(k8sClient.Create(ctx, obj)).To(Succeed())

	var got vaultsyncv1alpha1.VaultSecret
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: "defaults"}, &got)).To(Succeed())

	g.Expect(got.Spec.RefreshInterval).NotTo(BeNil())
	g.Expect(got.Spec.RefreshInterval.Duration).To(Equal(time.Hour))
	g.Expect(got.Spec.Target.Type).To(BeEquivalentTo("Opaque"))
	g.Expect(got.Spec.Target.CreationPolicy).To(Equal(vaultsyncv1alpha1.CreationPolicyOwner))
	g.Expect(got.Spec.Target.Name).To(BeEmpty())
	g.Expect(got.TargetName()).To(Equal("defaults"))
	g.Expect(got.RefreshIntervalOrDefault()).To(Equal(time.Hour))

	g.Expect(got.Spec.Data).To(HaveLen(2))
	g.Expect(got.Spec.Data[0].Remote.Type).To(Equal(vaultsyncv1alpha1.ObjectTypeSecret))
	g.Expect(got.Spec.Data[0].Remote.Decode).To(Equal(vaultsyncv1alpha1.DecodeNone))
	g.Expect(got.Spec.Data[0].Remote.Format).To(BeEmpty(), "format has no schema default: it depends on the type")
	g.Expect(got.Spec.Data[1].Remote.Type).To(Equal(vaultsyncv1alpha1.ObjectTypeCertificate))
	g.Expect(got.Spec.Data[1].Remote.Decode).To(Equal(vaultsyncv1alpha1.DecodeNone))
	g.Expect(got.Spec.Data[1].WritesTLSKeys()).To(BeTrue())
}

// TestTypedRoundTrip writes the full example through the Go types and reads it back, so the
// JSON names of the Go types and the names of the schema cannot drift apart (fields unknown to
// the schema would be pruned and missing from the read-back object).
func TestTypedRoundTrip(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var spec vaultsyncv1alpha1.VaultSecretSpec
	g.Expect(yaml.UnmarshalStrict([]byte(fullExample), &spec)).To(Succeed())
	vs := &vaultsyncv1alpha1.VaultSecret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "round-trip"},
		Spec:       spec,
	}
	g.Expect(k8sClient.Create(ctx, vs)).To(Succeed())

	// What comes back is the spec plus the schema defaults for the fields the example leaves out.
	want := spec.DeepCopy()
	if want.RefreshPolicy == "" {
		want.RefreshPolicy = vaultsyncv1alpha1.RefreshPeriodic
	}
	if want.Target.OnSourceDeleted == "" {
		want.Target.OnSourceDeleted = vaultsyncv1alpha1.SourceDeletedRetain
	}
	for i := range want.Data {
		r := &want.Data[i].Remote
		if r.Type == "" {
			r.Type = vaultsyncv1alpha1.ObjectTypeSecret
		}
		if r.Decode == "" {
			r.Decode = vaultsyncv1alpha1.DecodeNone
		}
	}

	var got vaultsyncv1alpha1.VaultSecret
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(vs), &got)).To(Succeed())
	g.Expect(got.Spec).To(Equal(*want))

	// Status is a subresource: the main endpoint ignores it, the status endpoint writes it.
	now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	got.Status = vaultsyncv1alpha1.VaultSecretStatus{
		ObservedGeneration: got.Generation,
		LastSyncTime:       &now,
		NextSyncTime:       &now,
		SyncedVersions:     map[string]string{"db-password": "0123456789abcdef0123456789abcdef"},
		DataHash:           "sha256:00",
		Certificates:       []vaultsyncv1alpha1.CertificateStatus{{Key: "api.pem", NotAfter: now, Subject: "CN=api"}},
		Conditions: []metav1.Condition{{
			Type: vaultsyncv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Synced",
			Message: "synced", LastTransitionTime: now, ObservedGeneration: got.Generation,
		}},
	}
	withStatus := got.DeepCopy()
	g.Expect(k8sClient.Update(ctx, &got)).To(Succeed())
	g.Expect(got.Status.Conditions).To(BeEmpty(), "the main endpoint must not write status")

	withStatus.ResourceVersion = got.ResourceVersion
	g.Expect(k8sClient.Status().Update(ctx, withStatus)).To(Succeed())
	var again vaultsyncv1alpha1.VaultSecret
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(vs), &again)).To(Succeed())
	g.Expect(again.Status.Conditions).To(HaveLen(1))
	g.Expect(again.Status.Conditions[0].Reason).To(Equal("Synced"))
	g.Expect(again.Status.Certificates).To(HaveLen(1))
	g.Expect(again.Status.SyncedVersions).To(HaveKeyWithValue("db-password", "0123456789abcdef0123456789abcdef"))
	g.Expect(again.Status.LastSyncTime.Time).To(BeTemporally("==", now.Time))
	g.Expect(again.Spec).To(Equal(*want))
}

// TestRefreshIntervalZero checks the "sync once" encoding survives the round trip as zero.
func TestRefreshIntervalZero(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obj := newVaultSecret(g, `
refreshInterval: "0"
data: [{key: a, remote: {name: a}}]`, true)
	obj.SetGenerateName("")
	obj.SetName("sync-once")
	g.Expect(k8sClient.Create(ctx, obj)).To(Succeed())
	var got vaultsyncv1alpha1.VaultSecret
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: "sync-once"}, &got)).To(Succeed())
	g.Expect(got.Spec.RefreshInterval).NotTo(BeNil())
	g.Expect(got.RefreshIntervalOrDefault()).To(BeZero())
}

// newVaultSecret builds an unstructured VaultSecret from the YAML of its spec. Unstructured
// objects let the tests send values the Go types cannot express (bad durations, unknown enums).
func newVaultSecret(g Gomega, specYAML string, addVault bool) *unstructured.Unstructured {
	spec := map[string]any{}
	g.Expect(yaml.Unmarshal([]byte(specYAML), &spec)).To(Succeed(), "test case YAML")
	if _, ok := spec["vault"]; !ok && addVault {
		vault := map[string]any{}
		g.Expect(yaml.Unmarshal([]byte(defaultVault), &vault)).To(Succeed())
		spec["vault"] = vault
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(vaultsyncv1alpha1.GroupVersion.WithKind("VaultSecret"))
	u.SetNamespace(testNamespace)
	u.SetGenerateName("vs-")
	return u
}

// statusCauses returns the field causes of an API status error.
func statusCauses(err error) []metav1.StatusCause {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return nil
	}
	return status.Status().Details.Causes
}

// manyItems returns n distinct, valid data items as a YAML list body.
func manyItems(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- {key: k%d, remote: {name: s%d}}\n", i, i)
	}
	return b.String()
}
