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

package chart

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/test/controlplane"
)

// TestKubectlApplyKustomize installs config/default with `kubectl apply -k`
// (kubectl's built-in kustomize) and uses the CRD with kubectl.
func TestKubectlApplyKustomize(t *testing.T) {
	c := startCluster(t)
	g := NewWithT(t)
	ctx := context.Background()
	const namespace = "vaultsync-system"
	ns := func(name string) client.ObjectKey { return client.ObjectKey{Namespace: namespace, Name: name} }
	cluster := func(name string) client.ObjectKey { return client.ObjectKey{Name: name} }
	crdName := vaultSecretCRD

	c.kubectl("", "apply", "-k", "config/default")

	for _, o := range []struct {
		obj client.Object
		key client.ObjectKey
	}{
		{&corev1.Namespace{}, cluster(namespace)},
		{&corev1.ServiceAccount{}, ns("vaultsync-manager")},
		{&appsv1.Deployment{}, ns("vaultsync-manager")},
		{&corev1.Service{}, ns("vaultsync-metrics")},
		{&rbacv1.ClusterRole{}, cluster("vaultsync-manager")},
		{&rbacv1.ClusterRoleBinding{}, cluster("vaultsync-manager")},
		{&rbacv1.ClusterRole{}, cluster("vaultsync-metrics-auth")},
		{&rbacv1.ClusterRoleBinding{}, cluster("vaultsync-metrics-auth")},
		{&rbacv1.ClusterRole{}, cluster("vaultsync-metrics-reader")},
		{&rbacv1.Role{}, ns("vaultsync-leader-election")},
		{&rbacv1.RoleBinding{}, ns("vaultsync-leader-election")},
	} {
		g.Expect(c.exists(o.obj, o.key)()).To(BeTrue(), "%T %s after kubectl apply -k", o.obj, o.key)
	}
	for _, name := range generatedCRDNames(t) {
		g.Expect(c.exists(&apiextensionsv1.CustomResourceDefinition{}, cluster(name))()).To(BeTrue(), "CRD %s after kubectl apply -k", name)
	}

	// RBAC: the generated rules, bound to the manager's ServiceAccount.
	cr := &rbacv1.ClusterRole{}
	g.Expect(c.client.Get(ctx, cluster("vaultsync-manager"), cr)).To(Succeed())
	g.Expect(cr.Rules).To(Equal(generatedManagerRules(t)))
	subject := rbacv1.Subject{Kind: "ServiceAccount", Name: "vaultsync-manager", Namespace: namespace}
	for _, name := range []string{"vaultsync-manager", "vaultsync-metrics-auth"} {
		crb := &rbacv1.ClusterRoleBinding{}
		g.Expect(c.client.Get(ctx, cluster(name), crb)).To(Succeed())
		g.Expect(crb.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}))
		g.Expect(crb.Subjects).To(Equal([]rbacv1.Subject{subject}))
	}
	rb := &rbacv1.RoleBinding{}
	g.Expect(c.client.Get(ctx, ns("vaultsync-leader-election"), rb)).To(Succeed())
	g.Expect(rb.RoleRef.Name).To(Equal("vaultsync-leader-election"))
	g.Expect(rb.Subjects).To(Equal([]rbacv1.Subject{subject}))

	// The Deployment has the chart's hardening.
	d := &appsv1.Deployment{}
	g.Expect(c.client.Get(ctx, ns("vaultsync-manager"), d)).To(Succeed())
	pod := d.Spec.Template.Spec
	g.Expect(pod.ServiceAccountName).To(Equal("vaultsync-manager"))
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(pod.SecurityContext.SeccompProfile).To(HaveValue(HaveField("Type", corev1.SeccompProfileTypeRuntimeDefault)))
	g.Expect(pod.Containers).To(HaveLen(1))
	ctr := pod.Containers[0]
	g.Expect(ctr.Image).To(HavePrefix("ghcr.io/vaultsync/vaultsync:"))
	g.Expect(ctr.Args).To(ContainElement("--leader-elect"))
	g.Expect(ctr.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
	g.Expect(ctr.SecurityContext.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
	g.Expect(ctr.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(ctr.Resources.Requests).To(HaveKey(corev1.ResourceMemory))
	g.Expect(ctr.Resources.Limits).To(HaveKey(corev1.ResourceMemory))
	g.Expect(ctr.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(ctr.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(ctr.Env).To(ContainElement(HaveField("Name", "POD_NAMESPACE")))
	svc := &corev1.Service{}
	g.Expect(c.client.Get(ctx, ns("vaultsync-metrics"), svc)).To(Succeed())
	g.Expect(svc.Spec.Ports).To(ConsistOf(And(HaveField("Port", int32(8443)), HaveField("TargetPort", intstr.FromString("metrics")))))
	for k, v := range svc.Spec.Selector {
		g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue(k, v))
	}

	// The manager runs with the binary's defaults, which role.yaml covers:
	// ClusterVaultConnections served, namespace selectors off (no Namespace rights).
	g.Expect(ctr.Args).NotTo(ContainElement(HavePrefix("--cluster-connections")))
	g.Expect(ctr.Args).NotTo(ContainElement(HavePrefix("--namespace-selectors")))
	for _, r := range cr.Rules {
		g.Expect(r.Resources).NotTo(ContainElement("namespaces"))
	}

	for _, name := range generatedCRDNames(t) {
		c.waitEstablished(g, name)
	}

	// The samples, when the repository has them: the CRDs accept every one.
	samples := filepath.Join(repoRoot(t), "config", "samples")
	sampleCount := 0
	if _, err := os.Stat(samples); err != nil {
		t.Log("config/samples does not exist: skipping kubectl apply of the samples")
	} else {
		var out string
		if _, err := os.Stat(filepath.Join(samples, "kustomization.yaml")); err == nil {
			out = c.kubectl("", "apply", "-k", "config/samples")
		} else {
			out = c.kubectl("", "apply", "-f", "config/samples/")
			for _, ref := range sampleObjects(t, samples) {
				g.Expect(out).To(ContainSubstring(ref+" "), "kubectl apply of config/samples")
			}
		}
		sampleCount = strings.Count(out, "vaultsecret.vaultsync.io/")
		g.Expect(sampleCount).To(BeNumerically(">", 0), "config/samples holds no VaultSecret: %s", out)
	}
	// The connection samples (a subfolder, so applying config/samples leaves
	// them out): the CRDs' validation accepts both kinds.
	connections := filepath.Join(samples, "connections")
	if _, err := os.Stat(connections); err == nil {
		out := c.kubectl("", "apply", "-f", "config/samples/connections/")
		refs := sampleObjects(t, connections)
		g.Expect(refs).To(ContainElements(HavePrefix("vaultconnection.vaultsync.io/"), HavePrefix("clustervaultconnection.vaultsync.io/")))
		for _, ref := range refs {
			g.Expect(out).To(ContainSubstring(ref+" created"), "kubectl apply of config/samples/connections")
		}
	}

	// A VaultSecret of our own, so the columns are checked in any case.
	c.kubectl("", "create", "namespace", "team-a")
	c.kubectl(sampleVaultSecret("team-a", "db"), "apply", "-f", "-")
	vs := &unstructured.Unstructured{}
	vs.SetAPIVersion("vaultsync.io/v1alpha1")
	vs.SetKind("VaultSecret")
	g.Expect(c.client.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "db"}, vs)).To(Succeed())

	out := c.kubectl("", "get", "vaultsecrets", "--namespace", "team-a")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	g.Expect(lines).To(HaveLen(2), out)
	g.Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "READY", "REASON", "LAST", "SYNC", "AGE"}), out)
	g.Expect(lines[1]).To(HavePrefix("db "))
	if sampleCount > 0 {
		out = c.kubectl("", "get", "vaultsecrets", "--all-namespaces")
		lines = strings.Split(strings.TrimSpace(out), "\n")
		g.Expect(strings.Fields(lines[0])).To(Equal([]string{"NAMESPACE", "NAME", "READY", "REASON", "LAST", "SYNC", "AGE"}), out)
		g.Expect(lines).To(HaveLen(1+sampleCount+1), out)
	}
	// The short name and category work too.
	g.Expect(c.kubectl("", "get", "vs", "--namespace", "team-a", "-o", "name")).To(ContainSubstring("vaultsecret.vaultsync.io/db"))
	g.Expect(c.kubectl("", "get", "vaultsync", "--namespace", "team-a", "-o", "name")).To(ContainSubstring("vaultsecret.vaultsync.io/db"))

	// kubectl explain prints the field descriptions from the CRD schema, which
	// the API server publishes a moment after the CRD is established.
	want := collapse(crdFieldDescription(t, crdName, "spec", "data"))
	g.Expect(want).NotTo(BeEmpty())
	g.Eventually(func() (string, error) {
		out, err := c.tools.run(nil, c.cp.Kubectl(), "explain", "vaultsecret.spec.data")
		return collapse(out), err
	}).WithTimeout(eventually).WithPolling(500 * time.Millisecond).Should(And(
		ContainSubstring("FIELD: data"),
		ContainSubstring(want),
		ContainSubstring("remote"),
	))
}

// crdFieldDescription returns the description of a field of the generated
// CRD's first version, such as ("spec", "data").
func crdFieldDescription(t testing.TB, crdName string, path ...string) string {
	t.Helper()
	for _, crd := range generatedCRDs(t) {
		if crd.GetName() != crdName {
			continue
		}
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		if len(versions) == 0 {
			t.Fatalf("CRD %s has no versions", crdName)
		}
		fields := []string{"schema", "openAPIV3Schema"}
		for _, p := range path {
			fields = append(fields, "properties", p)
		}
		fields = append(fields, "description")
		d, _, _ := unstructured.NestedString(versions[0].(map[string]any), fields...)
		return d
	}
	t.Fatalf("no CRD %s", crdName)
	return ""
}

// collapse joins the words of s with single spaces, so wrapped and unwrapped
// text compare equal.
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestKustomizeNamespaceSelectors follows the instructions of
// config/default/kustomization.yaml for --namespace-selectors=true (uncomment
// the flag's patch and the Namespaces role) on a copy of config/, and checks
// what `kubectl kustomize` renders; without them, neither is there.
func TestKustomizeNamespaceSelectors(t *testing.T) {
	g := NewWithT(t)
	cpBin, err := controlplane.BinDir()
	g.Expect(err).NotTo(HaveOccurred())
	kubectl := filepath.Join(cpBin, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("kubectl not found in %s: run 'make envtest-bins'", cpBin)
	}
	tl := newTool(t, "")
	render := func(dir string) manifest {
		return parseManifest(t, tl.must(nil, kubectl, "kustomize", filepath.Join(dir, "default")))
	}

	// As shipped: the binary's defaults, no Namespace rights.
	m := render(filepath.Join(repoRoot(t), "config"))
	args := m.deployment(t).Spec.Template.Spec.Containers[0].Args
	g.Expect(args).NotTo(ContainElement(HavePrefix("--namespace-selectors")))
	g.Expect(m.find("ClusterRole", "", "vaultsync-namespaces")).To(BeNil())
	for _, r := range allRules(t, m) {
		g.Expect(r.Resources).NotTo(ContainElement("namespaces"))
	}

	// With the commented-out lines enabled.
	dir := filepath.Join(t.TempDir(), "config")
	g.Expect(os.CopyFS(dir, os.DirFS(filepath.Join(repoRoot(t), "config")))).To(Succeed())
	uncomment(t, filepath.Join(dir, "rbac", "kustomization.yaml"), "#- namespaces_role.yaml")
	uncomment(t, filepath.Join(dir, "default", "kustomization.yaml"), "#patches:")
	m = render(dir)
	args = m.deployment(t).Spec.Template.Spec.Containers[0].Args
	g.Expect(args).To(ContainElement("--namespace-selectors=true"))
	g.Expect(args).To(ContainElement("--leader-elect"), "the patch adds to the arguments")
	cr := m.find("ClusterRole", "", "vaultsync-namespaces")
	g.Expect(cr).NotTo(BeNil(), "objects: %v", m.names())
	g.Expect(convert[rbacv1.ClusterRole](t, cr).Rules).To(Equal([]rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"},
	}}))
	crb := convert[rbacv1.ClusterRoleBinding](t, m.find("ClusterRoleBinding", "", "vaultsync-namespaces"))
	g.Expect(crb.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "vaultsync-namespaces"}))
	g.Expect(crb.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "vaultsync-manager", Namespace: "vaultsync-system"}}))
}

// uncomment removes the leading "#" from the line equal to first and from the
// commented-out YAML lines that follow it ("#" not followed by a single space
// and a word, which marks prose), up to the first other line.
func uncomment(t testing.TB, path, first string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	found := false
	for i := 0; i < len(lines); i++ {
		if lines[i] != first {
			continue
		}
		found = true
		for j := i; j < len(lines); j++ {
			l := lines[j]
			if !strings.HasPrefix(l, "#") || (strings.HasPrefix(l, "# ") && !strings.HasPrefix(l, "#  ")) {
				break
			}
			lines[j] = strings.TrimPrefix(l, "#")
		}
		break
	}
	if !found {
		t.Fatalf("%s has no line %q to uncomment", path, first)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}
