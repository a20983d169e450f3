package badinput

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// goodClusterTemplate is the template of a ClusterVaultSecret case that does not set one.
const goodClusterTemplate = `
spec:
  connectionRef: {kind: ClusterVaultConnection, name: shared}
  data: [{key: a, remote: {name: a}}]
`

// clusterVaultSecretCases are ClusterVaultSecrets the kube-apiserver refuses; want lists
// substrings the refusal must contain. Every way to read with a tenant's identity is among them.
var clusterVaultSecretCases = []struct {
	name string
	spec string
	want []string
}{
	{"inline vault with a tenant's ServiceAccount", "namespaces: [team-b]\ntemplate: {spec: {vault: {url: 'https://bench.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: app}}}, data: [{key: a, remote: {name: a}}]}}",
		[]string{"spec.template.spec.vault", "ClusterVaultConnection"}},
	{"inline vault with a tenant's service principal", "namespaces: [team-b]\ntemplate: {spec: {vault: {url: 'https://bench.vault.azure.net/', auth: {servicePrincipal: {tenantID: 3c1f8e2a-7b4d-4e6f-9a0b-1c2d3e4f5a6b, clientID: 6a2f1e3d-4c5b-4a69-8f7e-0d1c2b3a4f5e, clientSecretRef: {name: s, key: k}}}}, data: [{key: a, remote: {name: a}}]}}",
		[]string{"spec.template.spec.vault", "never with a tenant's ServiceAccount or Secrets"}},
	{"a namespaced VaultConnection", "namespaces: [team-b]\ntemplate: {spec: {connectionRef: {name: team-b-conn}, data: [{key: a, remote: {name: a}}]}}",
		[]string{"spec.template.spec.connectionRef", "ClusterVaultConnection"}},
	{"no connection at all", "namespaces: [team-b]\ntemplate: {spec: {data: [{key: a, remote: {name: a}}]}}",
		[]string{"spec.template.spec.connectionRef", "ClusterVaultConnection"}},
	{"no namespaces", "template: " + "{spec: {connectionRef: {kind: ClusterVaultConnection, name: shared}, data: [{key: a, remote: {name: a}}]}}",
		[]string{"spec.namespaces or spec.namespaceSelector"}},
	{"empty namespace list", "namespaces: []", []string{"spec.namespaces or spec.namespaceSelector"}},
	{"namespace name not DNS", "namespaces: [Team_B]", []string{"spec.namespaces[0]"}},
	{"vaultSecretName not DNS", "namespaces: [team-b]\nvaultSecretName: Bad_Name", []string{"spec.vaultSecretName", "DNS-1123"}},
	{"operator's label in the template", "namespaces: [team-b]\ntemplate: {metadata: {labels: {vaultsync.io/cluster-vault-secret: other}}, spec: {connectionRef: {kind: ClusterVaultConnection, name: shared}, data: [{key: a, remote: {name: a}}]}}",
		[]string{"spec.template.metadata.labels", "vaultsync.io/cluster-vault-secret"}},
	{"a VaultSecret's own rules still apply", "namespaces: [team-b]\ntemplate: {spec: {connectionRef: {kind: ClusterVaultConnection, name: shared}, data: [{key: a/b, remote: {name: a}}]}}",
		[]string{"spec.template.spec.data[0].key", "valid Secret key"}},
}

func TestAdmissionClusterVaultSecret(t *testing.T) {
	for _, tc := range clusterVaultSecretCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			spec := map[string]any{}
			g.Expect(yaml.Unmarshal([]byte(tc.spec), &spec)).To(Succeed(), "the case's YAML")
			if _, ok := spec["template"]; !ok {
				tmpl := map[string]any{}
				g.Expect(yaml.Unmarshal([]byte(goodClusterTemplate), &tmpl)).To(Succeed())
				spec["template"] = tmpl
			}
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "vaultsync.io/v1alpha1", "kind": "ClusterVaultSecret",
				"metadata": map[string]any{"name": uniq("adm-cvs")},
				"spec":     spec,
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := env.Client.Create(ctx, u)
			g.Expect(err).To(HaveOccurred(), "the apiserver refuses %s", tc.name)
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
}
