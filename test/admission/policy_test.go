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
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// tenantPolicy is the example ValidatingAdmissionPolicy of docs/security.md.
var tenantPolicy = filepath.Join(repoRoot, "docs", "examples", "vaultsync-tenant-policy.yaml")

// TestTenantAdmissionPolicy applies docs/examples/vaultsync-tenant-policy.yaml to the
// kube-apiserver and shows that it refuses the VaultSecrets and VaultConnections of a tenant
// namespace that use a ServiceAccount, vault, auth method, cloud or creation policy the
// namespace's annotations do not allow, and admits those that comply.
func TestTenantAdmissionPolicy(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	objs := readYAMLObjects(t, tenantPolicy)
	g.Expect(objs).To(HaveLen(2))
	for _, o := range objs {
		g.Expect(k8sClient.Create(ctx, o)).To(Succeed(), "%s %s", o.GetKind(), o.GetName())
	}
	t.Cleanup(func() {
		for _, o := range objs {
			_ = k8sClient.Delete(context.Background(), o)
		}
	})

	tenant := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   "policy-tenant",
		Labels: map[string]string{"vaultsync.io/tenant": "true"},
		Annotations: map[string]string{
			"vaultsync.io/allowed-service-accounts": "app, payments",
			"vaultsync.io/allowed-vaults":           "team-a-kv.vault.azure.net",
		},
	}}
	merging := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   "policy-merging",
		Labels: map[string]string{"vaultsync.io/tenant": "true"},
		Annotations: map[string]string{
			"vaultsync.io/allowed-service-accounts": "app",
			"vaultsync.io/allowed-vaults":           "team-a-kv.vault.azure.net",
			"vaultsync.io/allow-merge":              "true",
		},
	}}
	bare := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "policy-bare", Labels: map[string]string{"vaultsync.io/tenant": "true"}}}
	other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "policy-not-a-tenant"}}
	for _, ns := range []*corev1.Namespace{tenant, merging, bare, other} {
		g.Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	}

	const allowed = `
vault:
  url: https://team-a-kv.vault.azure.net/
  auth: {workloadIdentity: {serviceAccountName: payments}}
data: [{key: password, remote: {name: db-password}}]
`
	// The policy takes effect asynchronously: wait until it refuses a violation (a new name each
	// time, so that an early probe admitted before the policy was in force does not count).
	probe := 0
	g.Eventually(func() error {
		probe++
		return createVaultSecret(ctx, tenant.Name, fmt.Sprintf("probe-%d", probe), `
vault:
  url: https://team-a-kv.vault.azure.net/
  auth: {workloadIdentity: {serviceAccountName: default}}
data: [{key: password, remote: {name: db-password}}]
`)
	}, time.Minute, 200*time.Millisecond).Should(MatchError(ContainSubstring("ValidatingAdmissionPolicy 'vaultsync-tenant'")),
		"the policy is in force")

	refused := map[string]struct{ ns, spec, message string }{
		"a ServiceAccount the namespace does not list": {tenant.Name, `
vault:
  url: https://team-a-kv.vault.azure.net/
  auth: {workloadIdentity: {serviceAccountName: deployer}}
data: [{key: password, remote: {name: db-password}}]
`, "ServiceAccount deployer is not allowed in namespace policy-tenant"},
		"a vault the namespace does not list": {tenant.Name, `
vault:
  url: https://team-b-kv.vault.azure.net/
  auth: {workloadIdentity: {serviceAccountName: app}}
data: [{key: password, remote: {name: db-password}}]
`, "vault team-b-kv.vault.azure.net is not allowed in namespace policy-tenant"},
		"a service principal": {tenant.Name, `
vault:
  url: https://team-a-kv.vault.azure.net/
  auth:
    servicePrincipal:
      tenantID: 72f988bf-86f1-41af-91ab-2d7cd011db47
      clientID: 5a3e0b1c-7d2f-4e8a-9b6c-1f0e2d3c4b5a
      clientSecretRef: {name: somebody-elses-secret, key: password}
data: [{key: password, remote: {name: db-password}}]
`, "only workload identity is allowed"},
		"a custom cloud, whose authority host would get the token": {tenant.Name, `
vault:
  url: https://team-a-kv.vault.azure.net/
  auth: {workloadIdentity: {serviceAccountName: app}}
  cloud: Custom
  customCloud: {authorityHost: "https://login.attacker.example/", vaultDNSSuffix: vault.azure.net}
data: [{key: password, remote: {name: db-password}}]
`, "cloud Custom is not allowed"},
		"creationPolicy Merge without vaultsync.io/allow-merge": {tenant.Name, allowed + `
target: {name: ingress-tls, creationPolicy: Merge}
`, "creationPolicy Merge is not allowed"},
		"any ServiceAccount in a tenant namespace without annotations": {bare.Name, `
vault:
  url: https://team-a-kv.vault.azure.net/
  auth: {workloadIdentity: {serviceAccountName: app}}
data: [{key: password, remote: {name: db-password}}]
`, "is not allowed in namespace policy-bare"},
	}
	for name, c := range refused {
		t.Run("refuses "+name, func(t *testing.T) {
			g := NewWithT(t)
			err := createVaultSecret(ctx, c.ns, "refused", c.spec)
			g.Expect(err).To(HaveOccurred())
			g.Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring("ValidatingAdmissionPolicy 'vaultsync-tenant'"))
			g.Expect(err.Error()).To(ContainSubstring(c.message))
		})
	}

	admitted := map[string]struct{ ns, spec string }{
		"an allowed ServiceAccount and vault": {tenant.Name, allowed},
		"an allowed vault host in another case": {tenant.Name, `
vault:
  url: https://Team-A-KV.vault.azure.net/
  auth: {workloadIdentity: {serviceAccountName: app}}
data: [{key: password, remote: {name: db-password}}]
`},
		"a connectionRef (ClusterVaultConnections are vetted by allowedNamespaces)": {bare.Name, `
connectionRef: {kind: ClusterVaultConnection, name: shared}
data: [{key: password, remote: {name: db-password}}]
`},
		"creationPolicy Merge where the namespace allows it": {merging.Name, `
vault:
  url: https://team-a-kv.vault.azure.net/
  auth: {workloadIdentity: {serviceAccountName: app}}
target: {name: ingress-tls, creationPolicy: Merge}
data: [{key: password, remote: {name: db-password}}]
`},
		"anything in a namespace that is not a tenant": {other.Name, `
vault:
  url: https://anything.vault.azure.net/
  auth: {workloadIdentity: {serviceAccountName: deployer}}
target: {creationPolicy: Merge}
data: [{key: password, remote: {name: db-password}}]
`},
	}
	i := 0
	for name, c := range admitted {
		i++
		t.Run("admits "+name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(createVaultSecret(ctx, c.ns, fmt.Sprintf("admitted-%d", i), c.spec)).To(Succeed())
		})
	}

	// VaultConnections are held to the same rules: a tenant could otherwise name the
	// forbidden identity in a connection of its own namespace and point VaultSecrets at it.
	t.Run("refuses a VaultConnection with a ServiceAccount the namespace does not list", func(t *testing.T) {
		g := NewWithT(t)
		err := createVaultConnection(ctx, tenant.Name, "deployer", `
url: https://team-a-kv.vault.azure.net/
auth: {workloadIdentity: {serviceAccountName: deployer}}
`)
		g.Expect(err).To(HaveOccurred())
		g.Expect(err.Error()).To(ContainSubstring("ServiceAccount deployer is not allowed in namespace policy-tenant"))
	})
	t.Run("admits a VaultConnection with an allowed ServiceAccount and vault", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(createVaultConnection(ctx, tenant.Name, "payments", `
url: https://team-a-kv.vault.azure.net/
auth: {workloadIdentity: {serviceAccountName: payments}}
`)).To(Succeed())
	})
	// An update is checked like a create: an admitted VaultSecret cannot be switched to a
	// forbidden ServiceAccount afterwards.
	t.Run("refuses an update to a ServiceAccount the namespace does not list", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(createVaultSecret(ctx, tenant.Name, "switched", allowed)).To(Succeed())
		vs := &unstructured.Unstructured{}
		vs.SetAPIVersion("vaultsync.io/v1alpha1")
		vs.SetKind("VaultSecret")
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: tenant.Name, Name: "switched"}, vs)).To(Succeed())
		g.Expect(unstructured.SetNestedField(vs.Object, "deployer", "spec", "vault", "auth", "workloadIdentity", "serviceAccountName")).To(Succeed())
		err := k8sClient.Update(ctx, vs)
		g.Expect(err).To(HaveOccurred())
		g.Expect(err.Error()).To(ContainSubstring("ServiceAccount deployer is not allowed"))
	})
}

func createVaultSecret(ctx context.Context, ns, name, spec string) error {
	return createCustom(ctx, "VaultSecret", ns, name, spec)
}

func createVaultConnection(ctx context.Context, ns, name, spec string) error {
	return createCustom(ctx, "VaultConnection", ns, name, spec)
}

func createCustom(ctx context.Context, kind, ns, name, spec string) error {
	var s map[string]any
	if err := yaml.Unmarshal([]byte(spec), &s); err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": s}}
	u.SetAPIVersion("vaultsync.io/v1alpha1")
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return k8sClient.Create(ctx, u)
}

// readYAMLObjects reads every document of a multi-document YAML file.
func readYAMLObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// managerGuard is the example policy that narrows the manager's own rights (docs/security.md).
var managerGuard = filepath.Join(repoRoot, "docs", "examples", "vaultsync-manager-guard.yaml")

// TestManagerGuardPolicy applies docs/examples/vaultsync-manager-guard.yaml and acts as the
// manager's ServiceAccount (impersonated, with the RBAC rules the chart gives it): a restart
// annotation and a TokenRequest for Entra ID are admitted; a changed image, a scaled workload and a
// token for another audience are refused, though RBAC alone would allow them.
func TestManagerGuardPolicy(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	objs := readYAMLObjects(t, managerGuard)
	g.Expect(objs).To(HaveLen(2))
	for _, o := range objs {
		g.Expect(k8sClient.Create(ctx, o)).To(Succeed(), "%s %s", o.GetKind(), o.GetName())
	}
	const ns, manager = "guarded", "system:serviceaccount:vaultsync-system:vaultsync"
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "guard-test-manager"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}},
	}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "guard-test-manager"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vaultsync", Namespace: "vaultsync-system"}}}
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](2),
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/app:1"}}}},
	}}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}},
		role, binding, dep,
	} {
		g.Expect(k8sClient.Create(ctx, o)).To(Succeed())
	}
	t.Cleanup(func() {
		for _, o := range append([]client.Object{role, binding}, objs[0], objs[1]) {
			_ = k8sClient.Delete(context.Background(), o)
		}
	})

	cfg := rest.CopyConfig(testEnv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: manager,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:vaultsync-system", "system:authenticated"}}
	cs, err := kubernetes.NewForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	patch := func(body string) error {
		_, err := cs.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(body), metav1.PatchOptions{})
		return err
	}
	token := func(audience string, seconds int64) error {
		_, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &seconds}}, metav1.CreateOptions{})
		return err
	}
	image := func(tag int) string {
		return fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"attacker.example/miner:%d"}]}}}}`, tag)
	}

	// The policy takes effect asynchronously: wait until it refuses what RBAC allows. Each probe
	// sets a new image (a patch that changes nothing is admitted, rightly).
	probe := 0
	g.Eventually(func() error { probe++; return patch(image(probe)) }, time.Minute, 200*time.Millisecond).
		Should(MatchError(ContainSubstring("ValidatingAdmissionPolicy 'vaultsync-manager-guard'")))
	g.Expect(patch(image(probe + 1))).To(MatchError(ContainSubstring("may only change the pod template annotations")))
	g.Expect(patch(`{"spec":{"replicas":0}}`)).To(MatchError(ContainSubstring("may only change the pod template annotations")))
	g.Expect(patch(`{"spec":{"template":{"metadata":{"labels":{"app":"web","extra":"x"}}}}}`)).To(HaveOccurred())
	g.Expect(patch(`{"spec":{"template":{"metadata":{"annotations":{"vaultsync.io/restartedAt":"2026-01-01T00:00:00Z"}}}}}`)).
		To(Succeed(), "the restart vaultsync performs")

	g.Expect(token("api://AzureADTokenExchange", 3600)).To(Succeed(), "the token Entra ID exchanges")
	g.Expect(token("https://kubernetes.default.svc", 3600)).To(MatchError(ContainSubstring("audience api://AzureADTokenExchange")))
	g.Expect(token("api://AzureADTokenExchange", 86400)).To(MatchError(ContainSubstring("at most an hour")))

	// Anyone else is not matched: the cluster admin may still change the image.
	g.Expect(k8sClient.Patch(ctx, dep, client.RawPatch(types.StrategicMergePatchType, []byte(image(probe+2))))).To(Succeed())
}
