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
	"sort"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	vaultsyncv1alpha1 "github.com/vaultsync/vaultsync/api/v1alpha1"
)

const (
	guid  = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	guid2 = "5a3e0b1c-7d2f-4e8a-9b6c-1f0e2d3c4b5a"
)

// kindCase is one object of a kind, given by the YAML of its spec, and the causes the API
// server must report (none: accepted). strict sends it with strict field validation, as kubectl
// does, so that unknown fields are refused rather than dropped.
type kindCase struct {
	name   string
	kind   string
	spec   string
	strict bool
	want   []fieldError
	// wantText is a fragment of the error for refusals that are not field causes (strict decoding).
	wantText string
}

func TestAuthAndConnectionAdmission(t *testing.T) {
	cases := []kindCase{
		// VaultSecret: auth methods and connectionRef.
		{name: "VaultSecret with servicePrincipal and a client secret", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, auth: {servicePrincipal: {tenantID: ` + guid + `, clientID: ` + guid2 + `, clientSecretRef: {name: sp, key: secret}}}}
data: [{key: a, remote: {name: a}}]`},
		{name: "VaultSecret with a PFX client certificate and its password", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, auth: {servicePrincipal: {tenantID: ` + guid + `, clientID: ` + guid2 + `, clientCertificateRef: {name: sp, key: cert.pfx}, passwordRef: {name: sp, key: password}}}}
data: [{key: a, remote: {name: a}}]`},
		{name: "VaultSecret with azureCLI (refused at run time without --dev)", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, auth: {azureCLI: {tenantID: ` + guid + `}}}
data: [{key: a, remote: {name: a}}]`},
		{name: "VaultSecret with a sovereign cloud and a custom cloud", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.local.azurestack.external/, cloud: Custom, customCloud: {authorityHost: https://adfs.local.azurestack.external/adfs/, vaultDNSSuffix: vault.local.azurestack.external}, auth: {workloadIdentity: {serviceAccountName: sa}}}
data: [{key: a, remote: {name: a}}]`},
		{name: "VaultSecret with connectionRef to a VaultConnection", kind: "VaultSecret", spec: `
connectionRef: {name: prod-kv}
data: [{key: a, remote: {name: a}}]`},
		{name: "VaultSecret with connectionRef to a ClusterVaultConnection", kind: "VaultSecret", spec: `
connectionRef: {kind: ClusterVaultConnection, name: shared}
data: [{key: a, remote: {name: a}}]`},
		{name: "VaultSecret with vault and connectionRef", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, auth: {workloadIdentity: {serviceAccountName: sa}}}
connectionRef: {name: prod-kv}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.connectionRef", "spec.vault and spec.connectionRef are mutually exclusive"}}},
		{name: "VaultSecret with neither vault nor connectionRef", kind: "VaultSecret", spec: `
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault", "spec.vault is required unless spec.connectionRef"}}},
		{name: "VaultSecret connectionRef of an unknown kind", kind: "VaultSecret", spec: `
connectionRef: {kind: Secret, name: prod-kv}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.connectionRef.kind", `supported values: "VaultConnection", "ClusterVaultConnection"`}}},
		{name: "VaultSecret connectionRef with a namespace", kind: "VaultSecret", strict: true, spec: `
connectionRef: {name: prod-kv, namespace: other}
data: [{key: a, remote: {name: a}}]`,
			wantText: `unknown field "spec.connectionRef.namespace"`},
		{name: "VaultSecret clientSecretRef with a namespace", kind: "VaultSecret", strict: true, spec: `
vault: {url: https://v.vault.azure.net/, auth: {servicePrincipal: {tenantID: ` + guid + `, clientID: ` + guid2 + `, clientSecretRef: {name: sp, key: secret, namespace: other}}}}
data: [{key: a, remote: {name: a}}]`,
			wantText: `unknown field "spec.vault.auth.servicePrincipal.clientSecretRef.namespace"`},
		{name: "VaultSecret ServiceAccount of another namespace", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, auth: {workloadIdentity: {serviceAccountName: sa, serviceAccountNamespace: other}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth.workloadIdentity.serviceAccountNamespace", "a VaultSecret can only use ServiceAccounts of its own namespace"}}},
		{name: "VaultSecret with managedIdentity", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, auth: {managedIdentity: {}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth.managedIdentity", "only allowed in a ClusterVaultConnection"}}},
		{name: "VaultSecret with operatorIdentity", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, auth: {operatorIdentity: {}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth.operatorIdentity", "only allowed in a ClusterVaultConnection"}}},
		{name: "servicePrincipal with both a secret and a certificate", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, auth: {servicePrincipal: {tenantID: ` + guid + `, clientID: ` + guid2 + `, clientSecretRef: {name: sp, key: s}, clientCertificateRef: {name: sp, key: c}}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth.servicePrincipal", "exactly one of clientSecretRef or clientCertificateRef"}}},
		{name: "servicePrincipal passwordRef without a certificate", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, auth: {servicePrincipal: {tenantID: ` + guid + `, clientID: ` + guid2 + `, clientSecretRef: {name: sp, key: s}, passwordRef: {name: sp, key: p}}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth.servicePrincipal.passwordRef", "passwordRef is only allowed with clientCertificateRef"}}},
		{name: "servicePrincipal without tenantID", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, auth: {servicePrincipal: {clientID: ` + guid2 + `, clientSecretRef: {name: sp, key: s}}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth.servicePrincipal.tenantID", "Required value"}}},
		{name: "Secret reference with an invalid name", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, auth: {servicePrincipal: {tenantID: ` + guid + `, clientID: ` + guid2 + `, clientSecretRef: {name: My_Secret, key: s}}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.auth.servicePrincipal.clientSecretRef.name", "name must be a Secret name"}}},
		{name: "cloud Custom without customCloud", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, cloud: Custom, auth: {workloadIdentity: {serviceAccountName: sa}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.customCloud", "customCloud is required when cloud is Custom"}}},
		{name: "customCloud without cloud Custom", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, cloud: AzureChina, customCloud: {authorityHost: https://login.example/, vaultDNSSuffix: vault.example}, auth: {workloadIdentity: {serviceAccountName: sa}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.customCloud", "customCloud is only allowed when cloud is Custom"}}},
		{name: "unknown cloud", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.azure.net/, cloud: AzureGermany, auth: {workloadIdentity: {serviceAccountName: sa}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.cloud", `supported values: "AzurePublic", "AzureChina", "AzureUSGovernment", "Custom"`}}},
		{name: "customCloud authority over http", kind: "VaultSecret", spec: `
vault: {url: https://v.vault.example/, cloud: Custom, customCloud: {authorityHost: 'http://login.example/', vaultDNSSuffix: vault.example}, auth: {workloadIdentity: {serviceAccountName: sa}}}
data: [{key: a, remote: {name: a}}]`,
			want: []fieldError{{"spec.vault.customCloud.authorityHost", "authorityHost must be an https URL"}}},

		// VaultConnection.
		{name: "VaultConnection with workload identity and a probe", kind: "VaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {workloadIdentity: {serviceAccountName: sa, clientID: ` + guid2 + `}}
probe: {name: db-password}`},
		{name: "VaultConnection with managedIdentity", kind: "VaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {managedIdentity: {clientID: ` + guid2 + `}}`,
			want: []fieldError{{"spec.auth.managedIdentity", "spec.auth.managedIdentity is only allowed in a ClusterVaultConnection"}}},
		{name: "VaultConnection with operatorIdentity", kind: "VaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {operatorIdentity: {}}`,
			want: []fieldError{{"spec.auth.operatorIdentity", "spec.auth.operatorIdentity is only allowed in a ClusterVaultConnection"}}},
		{name: "VaultConnection ServiceAccount of another namespace", kind: "VaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {workloadIdentity: {serviceAccountName: sa, serviceAccountNamespace: other}}`,
			want: []fieldError{{"spec.auth.workloadIdentity.serviceAccountNamespace", "a VaultConnection can only use ServiceAccounts of its own namespace"}}},
		{name: "VaultConnection without auth method", kind: "VaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {}`,
			want: []fieldError{{"spec.auth", "auth must set exactly one authentication method"}}},
		{name: "VaultConnection with an http url", kind: "VaultConnection", spec: `
url: http://v.vault.azure.net/
auth: {azureCLI: {}}`,
			want: []fieldError{{"spec.url", "spec.url must be an https URL"}}},
		{name: "VaultConnection probe with an invalid name", kind: "VaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {azureCLI: {}}
probe: {name: db_password}`,
			want: []fieldError{{"spec.probe.name", "name must be a Key Vault object name"}}},

		// ClusterVaultConnection.
		{name: "ClusterVaultConnection with a system-assigned managed identity for all namespaces", kind: "ClusterVaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {managedIdentity: {}}
allowedNamespaces: {selector: {}}`},
		{name: "ClusterVaultConnection with a user-assigned identity by resource id", kind: "ClusterVaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {managedIdentity: {resourceID: /subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/kv-reader}}
allowedNamespaces: {names: [team-a, team-b]}`},
		{name: "ClusterVaultConnection with operatorIdentity and a label selector", kind: "ClusterVaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {operatorIdentity: {}}
allowedNamespaces: {selector: {matchLabels: {vaultsync.io/tier: gold}}}`},
		{name: "ClusterVaultConnection with a ServiceAccount named with its namespace", kind: "ClusterVaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {workloadIdentity: {serviceAccountName: reader, serviceAccountNamespace: platform}}
allowedNamespaces: {names: [team-a]}`},
		{name: "ClusterVaultConnection ServiceAccount without its namespace", kind: "ClusterVaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {workloadIdentity: {serviceAccountName: reader}}
allowedNamespaces: {names: [team-a]}`,
			want: []fieldError{{"spec.auth.workloadIdentity.serviceAccountNamespace", "serviceAccountNamespace is required in a ClusterVaultConnection"}}},
		{name: "ClusterVaultConnection with servicePrincipal", kind: "ClusterVaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {servicePrincipal: {tenantID: ` + guid + `, clientID: ` + guid2 + `, clientSecretRef: {name: sp, key: s}}}
allowedNamespaces: {names: [team-a]}`,
			want: []fieldError{{"spec.auth.servicePrincipal", "servicePrincipal is not allowed in a ClusterVaultConnection"}}},
		{name: "ClusterVaultConnection without allowedNamespaces", kind: "ClusterVaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {managedIdentity: {}}`,
			want: []fieldError{{"spec.allowedNamespaces", "Required value"}}},
		{name: "ClusterVaultConnection with empty allowedNamespaces", kind: "ClusterVaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {managedIdentity: {}}
allowedNamespaces: {}`,
			want: []fieldError{{"spec.allowedNamespaces", "must set names, selector or both"}}},
		{name: "ClusterVaultConnection managedIdentity with clientID and resourceID", kind: "ClusterVaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {managedIdentity: {clientID: ` + guid2 + `, resourceID: /subscriptions/0/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x}}
allowedNamespaces: {names: [a]}`,
			want: []fieldError{{"spec.auth.managedIdentity", "clientID or resourceID, not both"}}},
		{name: "ClusterVaultConnection managedIdentity with a bad resource id", kind: "ClusterVaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {managedIdentity: {resourceID: kv-reader}}
allowedNamespaces: {names: [a]}`,
			want: []fieldError{{"spec.auth.managedIdentity.resourceID", "resourceID must be a user-assigned identity's resource ID"}}},
		{name: "ClusterVaultConnection with an invalid namespace name", kind: "ClusterVaultConnection", spec: `
url: https://v.vault.azure.net/
auth: {managedIdentity: {}}
allowedNamespaces: {names: [Team_A]}`,
			want: []fieldError{{"spec.allowedNamespaces.names[0]", "should match"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newObject(g, tc.kind, tc.spec)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			opts := []client.CreateOption{client.DryRunAll}
			if tc.strict {
				opts = append(opts, client.FieldValidation("Strict"))
			}
			err := k8sClient.Create(ctx, obj, opts...)
			if len(tc.want) == 0 && tc.wantText == "" {
				g.Expect(err).NotTo(HaveOccurred(), "a valid %s was refused", tc.kind)
				return
			}
			g.Expect(err).To(HaveOccurred(), "an invalid %s was accepted", tc.kind)
			if tc.wantText != "" {
				g.Expect(err.Error()).To(ContainSubstring(tc.wantText))
				return
			}
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

// TestConnectionRefDefaultAndRoundTrip checks the default kind of connectionRef and that the
// typed connections survive a round trip through the API server (no field pruned).
func TestConnectionRefDefaultAndRoundTrip(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	obj := newObject(g, "VaultSecret", `
connectionRef: {name: prod-kv}
data: [{key: a, remote: {name: a}}]`)
	obj.SetGenerateName("")
	obj.SetName("via-connection")
	g.Expect(k8sClient.Create(ctx, obj)).To(Succeed())
	defer func() { _ = k8sClient.Delete(context.Background(), obj) }()
	var vs vaultsyncv1alpha1.VaultSecret
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: "via-connection"}, &vs)).To(Succeed())
	g.Expect(vs.Spec.ConnectionRef.Kind).To(Equal(vaultsyncv1alpha1.KindVaultConnection))
	g.Expect(vs.Spec.Vault).To(BeNil())

	vc := &vaultsyncv1alpha1.VaultConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "prod-kv"},
		Spec: vaultsyncv1alpha1.VaultConnectionSpec{
			URL:   "https://prod.vault.azure.cn/",
			Cloud: vaultsyncv1alpha1.CloudAzureChina,
			Auth: vaultsyncv1alpha1.VaultAuth{ServicePrincipal: &vaultsyncv1alpha1.ServicePrincipalAuth{
				TenantID: guid, ClientID: guid2,
				ClientCertificateRef: &vaultsyncv1alpha1.SecretKeyRef{Name: "sp", Key: "cert.pfx"},
				PasswordRef:          &vaultsyncv1alpha1.SecretKeyRef{Name: "sp", Key: "password"},
			}},
			Probe: &vaultsyncv1alpha1.ConnectionProbe{Name: "db-password", Type: vaultsyncv1alpha1.ObjectTypeSecret},
		},
	}
	want := vc.Spec.DeepCopy()
	g.Expect(k8sClient.Create(ctx, vc)).To(Succeed())
	defer func() { _ = k8sClient.Delete(context.Background(), vc) }()
	var gotVC vaultsyncv1alpha1.VaultConnection
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(vc), &gotVC)).To(Succeed())
	g.Expect(gotVC.Spec).To(Equal(*want))

	cvc := &vaultsyncv1alpha1.ClusterVaultConnection{
		ObjectMeta: metav1.ObjectMeta{Name: "admission-shared"},
		Spec: vaultsyncv1alpha1.ClusterVaultConnectionSpec{
			URL:  "https://shared.vault.azure.net/",
			Auth: vaultsyncv1alpha1.VaultAuth{OperatorIdentity: &vaultsyncv1alpha1.OperatorIdentityAuth{}},
			AllowedNamespaces: vaultsyncv1alpha1.AllowedNamespaces{
				Names:    []string{"team-a"},
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"vaultsync.io/tier": "gold"}},
			},
		},
	}
	wantC := cvc.Spec.DeepCopy()
	g.Expect(k8sClient.Create(ctx, cvc)).To(Succeed())
	defer func() { _ = k8sClient.Delete(context.Background(), cvc) }()
	var gotC vaultsyncv1alpha1.ClusterVaultConnection
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "admission-shared"}, &gotC)).To(Succeed())
	g.Expect(gotC.Spec).To(Equal(*wantC))
	g.Expect(gotC.Spec.Auth.Method()).To(Equal(vaultsyncv1alpha1.AuthMethodOperatorIdentity))
}

// TestConnectionCRDs checks scope, names and descriptions of the connection CRDs.
func TestConnectionCRDs(t *testing.T) {
	g := NewWithT(t)
	for _, tc := range []struct {
		file, kind, short string
		scope             apiextensionsv1.ResourceScope
		deep              []string
	}{
		{"vaultsync.io_vaultconnections.yaml", "VaultConnection", "vc", apiextensionsv1.NamespaceScoped,
			[]string{".spec.auth.servicePrincipal.clientCertificateRef.key", ".spec.customCloud.vaultDNSSuffix", ".status.identity"}},
		{"vaultsync.io_clustervaultconnections.yaml", "ClusterVaultConnection", "cvc", apiextensionsv1.ClusterScoped,
			[]string{".spec.allowedNamespaces.selector", ".spec.auth.managedIdentity.resourceID", ".spec.auth.operatorIdentity"}},
	} {
		crd := readCRDFile(g, tc.file)
		g.Expect(crd.Spec.Names.Kind).To(Equal(tc.kind))
		g.Expect(crd.Spec.Scope).To(Equal(tc.scope))
		g.Expect(crd.Spec.Names.ShortNames).To(ConsistOf(tc.short))
		g.Expect(crd.Spec.Names.Categories).To(ConsistOf("vaultsync"))
		g.Expect(crd.Spec.Versions[0].Subresources.Status).NotTo(BeNil())
		missing, seen := undescribed(crd.Spec.Versions[0].Schema.OpenAPIV3Schema)
		g.Expect(missing).To(BeEmpty(), "%s: properties without a description", tc.kind)
		g.Expect(seen).To(ContainElements(tc.deep))
	}
	// The VaultSecret CRD documents the new fields too.
	missing, seen := undescribed(readCRD(g).Spec.Versions[0].Schema.OpenAPIV3Schema)
	g.Expect(missing).To(BeEmpty())
	g.Expect(seen).To(ContainElements(".spec.connectionRef.kind", ".spec.vault.auth.servicePrincipal.passwordRef.name",
		".spec.vault.cloud", ".status.connectionVersion"))
}

// undescribed walks a schema like `kubectl explain` and returns the properties without a
// description, sorted, and all properties seen. metadata is left out: the API server publishes
// it with the standard ObjectMeta schema and its descriptions, while controller-gen writes only
// `type: object` for it.
func undescribed(root *apiextensionsv1.JSONSchemaProps) (missing, seen []string) {
	var walk func(path string, s *apiextensionsv1.JSONSchemaProps)
	walk = func(path string, s *apiextensionsv1.JSONSchemaProps) {
		for name, prop := range s.Properties {
			p := path + "." + name
			if p == ".metadata" {
				continue
			}
			seen = append(seen, p)
			if prop.Description == "" {
				missing = append(missing, p)
			}
			walk(p, &prop)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(path+"[]", s.Items.Schema)
		}
		if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			walk(path+"{}", s.AdditionalProperties.Schema)
		}
	}
	walk("", root)
	sort.Strings(missing)
	return missing, seen
}

// newObject builds an unstructured object of kind from the YAML of its spec, in testNamespace
// unless the kind is cluster-scoped.
func newObject(g Gomega, kind, specYAML string) *unstructured.Unstructured {
	spec := map[string]any{}
	g.Expect(yaml.Unmarshal([]byte(specYAML), &spec)).To(Succeed(), "test case YAML")
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(vaultsyncv1alpha1.GroupVersion.WithKind(kind))
	if kind != "ClusterVaultConnection" {
		u.SetNamespace(testNamespace)
	}
	u.SetGenerateName("obj-")
	return u
}
