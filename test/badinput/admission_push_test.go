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

// goodPush is a valid VaultPushSecret spec; each case below changes one thing of it.
const goodPush = `
secretRef: {name: src}
vault: {url: 'https://bench.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: app}}}
data: [{secretKey: password, remote: {name: db-password}}]
`

// vaultPushSecretCases are VaultPushSecrets the kube-apiserver refuses; each replaces top-level
// fields of goodPush (a field set to null is removed). want lists substrings of the refusal.
var vaultPushSecretCases = []struct {
	name string
	spec string
	want []string
}{
	{"nothing to push", "data: null", []string{"spec.data or spec.dataFrom"}},
	{"empty data", "data: []", []string{"spec.data or spec.dataFrom"}},
	{"no vault", "vault: null", []string{"spec.vault is required"}},
	{"vault and connectionRef", "connectionRef: {name: c}", []string{"mutually exclusive"}},
	{"no secretRef", "secretRef: null", []string{"secretRef"}},
	{"secretRef not DNS", "secretRef: {name: Bad_Name}", []string{"spec.secretRef.name", "DNS-1123"}},
	{"remote name with an underscore", "data: [{secretKey: a, remote: {name: db_password}}]", []string{"Key Vault object name"}},
	{"remote name too long", "data: [{secretKey: a, remote: {name: " + strings.Repeat("a", 128) + "}}]", []string{"spec.data[0].remote.name"}},
	{"duplicate remote names (case-insensitive)", "data: [{secretKey: a, remote: {name: db}}, {secretKey: b, remote: {name: DB}}]", []string{"every remote.name must be unique"}},
	{"secret item without secretKey", "data: [{remote: {name: db}}]", []string{"secretKey is required"}},
	{"secretKey with a slash", "data: [{secretKey: a/b, remote: {name: db}}]", []string{"valid Secret key"}},
	{"certificate with a secretKey", "data: [{secretKey: password, remote: {name: db, type: certificate}}]", []string{"certificate item reads tls.crt"}},
	{"certificate with a content type", "data: [{remote: {name: db, type: certificate, contentType: text/plain}}]", []string{"contentType is only allowed for type secret"}},
	{"unknown type", "data: [{secretKey: a, remote: {name: db, type: key}}]", []string{"spec.data[0].remote.type"}},
	{"dataFrom without mode", "dataFrom: {remote: {name: all}}", []string{"spec.dataFrom.mode"}},
	{"dataFrom of an unknown mode", "dataFrom: {mode: Keys, remote: {name: all}}", []string{"spec.dataFrom.mode"}},
	{"dataFrom writing a data item's object", "dataFrom: {mode: WholeSecret, remote: {name: DB-Password}}", []string{"each Key Vault object is written by one item"}},
	{"unknown updatePolicy", "updatePolicy: Always", []string{"spec.updatePolicy"}},
	{"unknown deletionPolicy", "deletionPolicy: Purge", []string{"spec.deletionPolicy"}},
	{"refreshInterval under a minute", "refreshInterval: 30s", []string{"at least 1m"}},
	{"ServiceAccount of another namespace", "vault: {url: 'https://bench.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: app, serviceAccountNamespace: other}}}",
		[]string{"serviceAccountNamespace", "own namespace"}},
	{"the operator's identity", "vault: {url: 'https://bench.vault.azure.net/', auth: {operatorIdentity: {}}}", []string{"operatorIdentity", "ClusterVaultConnection"}},
	{"a plain http vault", "vault: {url: 'http://bench.vault.azure.net/', auth: {workloadIdentity: {serviceAccountName: app}}}", []string{"https"}},
}

func TestAdmissionVaultPushSecret(t *testing.T) {
	ns := "admission-push"
	if _, err := env.NewNamespace(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	create := func(name string, spec map[string]any) error {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "vaultsync.io/v1alpha1", "kind": "VaultPushSecret",
			"metadata": map[string]any{"namespace": ns, "name": name},
			"spec":     spec,
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return env.Client.Create(ctx, u)
	}
	good := func(g Gomega) map[string]any {
		spec := map[string]any{}
		g.Expect(yaml.Unmarshal([]byte(goodPush), &spec)).To(Succeed())
		return spec
	}
	g := NewWithT(t)
	g.Expect(create(uniq("adm-push-good"), good(g))).To(Succeed(), "the base case is valid")
	g.Expect(create(strings.Repeat("n", 128), good(g))).To(MatchError(ContainSubstring("at most 127 characters")),
		"the name must fit the vaultsync-owner tag")
	for _, tc := range vaultPushSecretCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			spec := good(g)
			change := map[string]any{}
			g.Expect(yaml.Unmarshal([]byte(tc.spec), &change)).To(Succeed(), "the case's YAML")
			for k, v := range change {
				if v == nil {
					delete(spec, k)
				} else {
					spec[k] = v
				}
			}
			err := create(uniq("adm-push"), spec)
			g.Expect(err).To(HaveOccurred(), "the apiserver refuses %s", tc.name)
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
}
