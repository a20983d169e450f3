package badinput

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// goodVault is merged into a case's spec unless the case sets vault itself.
const goodVault = `
url: https://bench.vault.azure.net/
auth:
  workloadIdentity:
    serviceAccountName: app
`

// admissionCases are refused by the kube-apiserver; want lists substrings
// the refusal must contain: the field and what is wrong with it.
var admissionCases = []struct {
	name string
	spec string
	want []string
}{
	{"http URL", "vault: {url: 'http://bench.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: app}}}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"spec.vault.url", "https URL"}},
	{"malformed URL", "vault: {url: 'not a url', auth: {workloadIdentity: {serviceAccountName: app}}}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"spec.vault.url", "https URL"}},
	{"URL without host", "vault: {url: 'https://', auth: {workloadIdentity: {serviceAccountName: app}}}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"spec.vault.url"}},
	{"empty URL", "vault: {url: '', auth: {workloadIdentity: {serviceAccountName: app}}}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"spec.vault.url"}},
	{"no authentication method", "vault: {url: 'https://bench.vault.azure.net/', auth: {}}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"auth", "exactly one authentication method"}},
	{"two authentication methods", "vault: {url: 'https://bench.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: app}, azureCLI: {}}}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"auth", "exactly one authentication method"}},
	{"ServiceAccount of another namespace", "vault: {url: 'https://bench.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: app, serviceAccountNamespace: other}}}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"serviceAccountNamespace", "own namespace"}},
	{"managed identity in a VaultSecret", "vault: {url: 'https://bench.vault.azure.net/', auth: {managedIdentity: {}}}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"spec.vault.auth.managedIdentity", "ClusterVaultConnection"}},
	{"client id not a GUID", "vault: {url: 'https://bench.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: app, clientID: not-a-guid}}}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"clientID", "GUID"}},
	{"ServiceAccount name not DNS", "vault: {url: 'https://bench.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: App_1}}}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"serviceAccountName", "DNS-1123"}},
	{"service principal with secret and certificate", "vault: {url: 'https://bench.vault.azure.net/', auth: {servicePrincipal: {tenantID: 3c1f8e2a-7b4d-4e6f-9a0b-1c2d3e4f5a6b, clientID: 6a2f1e3d-4c5b-4a69-8f7e-0d1c2b3a4f5e, clientSecretRef: {name: s, key: k}, clientCertificateRef: {name: s, key: c}}}}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"servicePrincipal", "exactly one of clientSecretRef or clientCertificateRef"}},
	{"vault and connectionRef", "connectionRef: {name: shared}\ndata: [{key: a, remote: {name: a}}]",
		[]string{"spec.connectionRef", "mutually exclusive"}},
	{"nothing to sync", "data: []", []string{"spec.data or spec.dataFrom"}},
	{"duplicate keys in data", "data: [{key: a, remote: {name: a}}, {key: a, remote: {name: b}}]", []string{"spec.data", "every key must be unique"}},
	{"key with a slash", "data: [{key: a/b, remote: {name: a}}]", []string{"spec.data[0].key", "valid Secret key"}},
	{"key '..'", "data: [{key: '..', remote: {name: a}}]", []string{"spec.data[0].key", "valid Secret key"}},
	{"key too long", "data: [{key: " + strings.Repeat("k", 254) + ", remote: {name: a}}]", []string{"spec.data[0].key", "Too long"}},
	{"missing key", "data: [{remote: {name: a}}]", []string{"spec.data[0].key", "key is required"}},
	{"unicode object name", "data: [{key: a, remote: {name: pässwört}}]", []string{"spec.data[0].remote.name", "Key Vault object name"}},
	{"object name with a dot", "data: [{key: a, remote: {name: a.b}}]", []string{"spec.data[0].remote.name", "Key Vault object name"}},
	{"object name of 128 characters", "data: [{key: a, remote: {name: " + strings.Repeat("n", 128) + "}}]", []string{"spec.data[0].remote.name", "Too long"}},
	{"version not hexadecimal", "data: [{key: a, remote: {name: a, version: latest}}]", []string{"spec.data[0].remote.version", "32-character hexadecimal"}},
	{"unknown object type", "data: [{key: a, remote: {name: a, type: blob}}]", []string{"spec.data[0].remote.type", "Unsupported value"}},
	{"property on a certificate", "data: [{key: a, remote: {name: a, type: certificate, format: PEM, property: x}}]", []string{"spec.data[0].remote.property", "only allowed when type is secret"}},
	{"Base64 decode of a key", "data: [{key: a, remote: {name: a, type: key, decode: Base64}}]", []string{"spec.data[0].remote.decode", "only allowed when type is secret"}},
	{"format on a secret", "data: [{key: a, remote: {name: a, format: PEM}}]", []string{"spec.data[0].remote.format", "only allowed when type is certificate or key"}},
	{"JWK format of a certificate", "data: [{key: a, remote: {name: a, type: certificate, format: JWK}}]", []string{"spec.data[0].remote.format", "TLS, PEM, PFX or CertOnly"}},
	{"two TLS certificates", "data: [{remote: {name: a, type: certificate}}, {remote: {name: b, type: certificate}}]", []string{"spec.data", "at most one certificate item may use format TLS"}},
	{"tls.crt next to a TLS certificate", "data: [{remote: {name: a, type: certificate}}, {key: tls.crt, remote: {name: b}}]", []string{"spec.data", "tls.crt, tls.key and ca.crt"}},
	{"refreshInterval below a minute", "refreshInterval: 30s\ndata: [{key: a, remote: {name: a}}]", []string{"spec.refreshInterval", "at least 1m"}},
	{"refreshInterval not a duration", "refreshInterval: soon\ndata: [{key: a, remote: {name: a}}]", []string{"spec.refreshInterval"}},
	{"dataFrom with remote and find", "dataFrom: [{remote: {name: a}, find: {nameRegex: x}}]", []string{"spec.dataFrom[0]", "exactly one of remote or find"}},
	{"find without selector", "dataFrom: [{find: {}}]", []string{"spec.dataFrom[0].find", "nameRegex, tags or both"}},
	{"target name not DNS", "target: {name: Bad_Name}\ndata: [{key: a, remote: {name: a}}]", []string{"spec.target.name", "DNS-1123"}},
	{"TLS Secret without certificate", "target: {type: kubernetes.io/tls}\ndata: [{key: a, remote: {name: a}}]", []string{"spec.target.type", "kubernetes.io/tls"}},
	{"operator's label in target labels", "target: {labels: {vaultsync.io/managed: 'false'}}\ndata: [{key: a, remote: {name: a}}]", []string{"spec.target.labels", "vaultsync.io/managed"}},
	{"template key with a slash", "target: {template: {data: {a/b: x}}}\ndata: [{key: a, remote: {name: a}}]", []string{"spec.target.template.data", "valid Secret keys"}},
	{"Merge with a TLS type", "target: {creationPolicy: Merge, type: kubernetes.io/tls}\ndata: [{remote: {name: a, type: certificate}}]", []string{"spec.target.type", "Opaque"}},
	{"257 data items", "data: [" + strings.TrimSuffix(strings.Repeat("{key: a, remote: {name: a}},", 257), ",") + "]", []string{"spec.data", "must have at most 256 items"}},
}

func TestAdmission(t *testing.T) {
	ns := "admission"
	if _, err := env.NewNamespace(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	for _, tc := range admissionCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			spec := map[string]any{}
			g.Expect(yaml.Unmarshal([]byte(tc.spec), &spec)).To(Succeed(), "the case's YAML")
			if _, ok := spec["vault"]; !ok {
				if _, conn := spec["connectionRef"]; !conn || strings.Contains(tc.name, "connectionRef") {
					v := map[string]any{}
					g.Expect(yaml.Unmarshal([]byte(goodVault), &v)).To(Succeed())
					spec["vault"] = v
				}
			}
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "vaultsync.io/v1alpha1", "kind": "VaultSecret",
				"metadata": map[string]any{"namespace": ns, "name": uniq("adm")},
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
