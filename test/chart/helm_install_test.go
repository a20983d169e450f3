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
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestHelmInstallUpgradeUninstall installs the chart with the real helm into
// the local control plane, upgrades it to other values and uninstalls it.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	helm := helmBin(t)
	c := startCluster(t)
	g := NewWithT(t)
	ctx := context.Background()
	const release = "vaultsync"
	ns := func(name string) client.ObjectKey { return client.ObjectKey{Namespace: releaseNamespace, Name: name} }
	cluster := func(name string) client.ObjectKey { return client.ObjectKey{Name: name} }
	crdNames := generatedCRDNames(t)

	// Install with the default values.
	out := c.tools.must(nil, helm, "install", release, chartRel, "--namespace", releaseNamespace, "--create-namespace")
	g.Expect(out).To(ContainSubstring("STATUS: deployed"))
	notesExample := notesVaultSecret(out)
	g.Expect(notesExample).To(ContainSubstring("kind: VaultSecret"), "NOTES.txt shows how to create a first VaultSecret:\n%s", out)
	g.Expect(out).NotTo(ContainSubstring("az eventgrid"), "events are off by default")

	for _, name := range crdNames {
		g.Expect(c.exists(&apiextensionsv1.CustomResourceDefinition{}, cluster(name))()).To(BeTrue(), "CRD %s after helm install", name)
	}
	installed := []struct {
		obj client.Object
		key client.ObjectKey
	}{
		{&corev1.ServiceAccount{}, ns("vaultsync")},
		{&appsv1.Deployment{}, ns("vaultsync")},
		{&corev1.Service{}, ns("vaultsync-metrics")},
		{&rbacv1.ClusterRole{}, cluster("vaultsync-manager")},
		{&rbacv1.ClusterRoleBinding{}, cluster("vaultsync-manager")},
		{&rbacv1.ClusterRole{}, cluster("vaultsync-metrics-auth")},
		{&rbacv1.ClusterRoleBinding{}, cluster("vaultsync-metrics-auth")},
		{&rbacv1.ClusterRole{}, cluster("vaultsync-metrics-reader")},
		{&rbacv1.Role{}, ns("vaultsync-leader-election")},
		{&rbacv1.RoleBinding{}, ns("vaultsync-leader-election")},
	}
	for _, o := range installed {
		g.Expect(c.exists(o.obj, o.key)()).To(BeTrue(), "%T %s after helm install", o.obj, o.key)
	}
	cr := &rbacv1.ClusterRole{}
	g.Expect(c.client.Get(ctx, cluster("vaultsync-manager"), cr)).To(Succeed())
	g.Expect(cr.Rules).To(Equal(generatedManagerRules(t)))
	d := &appsv1.Deployment{}
	g.Expect(c.client.Get(ctx, ns("vaultsync"), d)).To(Succeed())
	g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(1))))
	g.Expect(d.Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
	// The API server's RBAC agrees: connections of both kinds, no Namespaces.
	for _, can := range []struct{ verb, resource string }{
		{"watch", "clustervaultconnections"}, {"patch", "clustervaultconnections/status"},
		{"watch", "vaultconnections"}, {"patch", "vaultconnections/status"}, {"watch", "vaultsecrets"},
	} {
		g.Eventually(c.subjectCan(g, can.verb, "vaultsync.io", can.resource, "")).WithTimeout(eventually).Should(BeTrue(), "%s %s", can.verb, can.resource)
	}
	g.Expect(c.subjectCan(g, "list", "", "namespaces", "")()).To(BeFalse())

	// The CRDs serve VaultSecrets; one is created to outlive the uninstall.
	for _, name := range crdNames {
		c.waitEstablished(g, name)
	}
	c.kubectl("", "create", "namespace", "team-a")
	c.kubectl(sampleVaultSecret("team-a", "db"), "apply", "-f", "-")
	// The example of NOTES.txt passes the CRD's validation.
	c.kubectl("", "create", "namespace", "my-app")
	g.Expect(c.kubectl(notesExample, "apply", "--dry-run=server", "-f", "-")).To(ContainSubstring("created (server dry run)"))

	// The CRD is part of the release (templates/, not crds/), so upgrades upgrade it.
	g.Expect(c.tools.must(nil, helm, "get", "manifest", release, "--namespace", releaseNamespace)).
		To(ContainSubstring("kind: CustomResourceDefinition"))

	// Upgrade: two replicas with a PDB, watch only team-a, and receive Key Vault events.
	out = c.tools.must(nil, helm, "upgrade", release, chartRel, "--namespace", releaseNamespace,
		"--values", valuesFile(t, valuesHA+valuesWorkloadIdentity+"watchNamespaces: [team-a]\n"+valuesEvents))
	g.Expect(out).To(ContainSubstring("STATUS: deployed"))
	g.Expect(out).To(ContainSubstring("REVISION: 2"))
	// The notes tell how to create the events Secret and subscribe a vault.
	g.Expect(out).To(ContainSubstring("kubectl -n " + releaseNamespace + " create secret generic vaultsync-events"))
	g.Expect(out).To(ContainSubstring(`--from-literal=key="$(openssl rand -hex 32)"`))
	g.Expect(out).To(ContainSubstring("az eventgrid event-subscription create"))
	g.Expect(out).To(ContainSubstring("docs/rotation.md"))
	g.Expect(c.exists(&corev1.Service{}, ns("vaultsync-events"))()).To(BeTrue())
	// The manager may read the events Secret, by name only, in its own namespace.
	g.Eventually(c.subjectCanGet(g, releaseNamespace, "vaultsync-events")).WithTimeout(eventually).Should(BeTrue())
	g.Expect(c.subjectCanGet(g, releaseNamespace, "vaultsync-hash-key")()).To(BeTrue())
	g.Eventually(c.subjectCanGet(g, releaseNamespace, "someone-elses")).WithTimeout(eventually).Should(BeFalse())
	g.Expect(c.client.Get(ctx, ns("vaultsync"), d)).To(Succeed())
	g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(2))))
	g.Expect(d.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--watch-namespaces=team-a"))
	g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("azure.workload.identity/use", "true"))
	g.Expect(c.exists(&policyv1.PodDisruptionBudget{}, ns("vaultsync"))()).To(BeTrue())
	sa := &corev1.ServiceAccount{}
	g.Expect(c.client.Get(ctx, ns("vaultsync"), sa)).To(Succeed())
	g.Expect(sa.Annotations).To(HaveKey("azure.workload.identity/client-id"))
	g.Expect(c.exists(&rbacv1.Role{}, client.ObjectKey{Namespace: "team-a", Name: "vaultsync-manager"})()).To(BeTrue())
	g.Expect(c.exists(&rbacv1.RoleBinding{}, client.ObjectKey{Namespace: "team-a", Name: "vaultsync-manager"})()).To(BeTrue())
	g.Expect(c.exists(&rbacv1.Role{}, ns("vaultsync-hash-key"))()).To(BeTrue())
	// The cluster-wide manager rights are gone, but for ClusterVaultConnections.
	g.Eventually(c.exists(&rbacv1.ClusterRole{}, cluster("vaultsync-manager"))).WithTimeout(eventually).Should(BeFalse())
	g.Eventually(c.exists(&rbacv1.ClusterRoleBinding{}, cluster("vaultsync-manager"))).WithTimeout(eventually).Should(BeFalse())
	g.Expect(c.exists(&rbacv1.ClusterRole{}, cluster("vaultsync-cluster-connections"))()).To(BeTrue())
	g.Expect(c.exists(&rbacv1.ClusterRoleBinding{}, cluster("vaultsync-cluster-connections"))()).To(BeTrue())
	g.Eventually(c.subjectCan(g, "list", "", "secrets", "default")).WithTimeout(eventually).Should(BeFalse())
	g.Expect(c.subjectCan(g, "list", "", "secrets", "team-a")()).To(BeTrue())
	g.Expect(c.subjectCan(g, "watch", "vaultsync.io", "clustervaultconnections", "")()).To(BeTrue())
	g.Expect(c.subjectCan(g, "update", "vaultsync.io", "clustervaultconnections/status", "")()).To(BeTrue())
	g.Expect(c.subjectCan(g, "watch", "vaultsync.io", "vaultconnections", "")()).To(BeFalse(), "VaultConnections only in team-a")

	// Upgrade: without ClusterVaultConnections, no right on them remains; and
	// egress through a proxy with its CA, which the API server admits.
	out = c.tools.must(nil, helm, "upgrade", release, chartRel, "--namespace", releaseNamespace, "--reuse-values",
		"--values", valuesFile(t, valuesNoClusterConnections+valuesProxy+valuesCAConfigMap))
	g.Expect(out).To(ContainSubstring("REVISION: 3"))
	g.Expect(out).To(ContainSubstring("trusts the CA certificates of the ConfigMap corp-ca (key ca-bundle.pem)"))
	g.Expect(c.client.Get(ctx, ns("vaultsync"), d)).To(Succeed())
	g.Expect(d.Spec.Template.Spec.Containers[0].Args).To(ContainElements("--cluster-connections=false", "--watch-namespaces=team-a"))
	g.Expect(d.Spec.Template.Spec.Containers[0].Env).To(ContainElements(
		corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://proxy.example.com:3128"},
		corev1.EnvVar{Name: "NO_PROXY", Value: ".corp.example.com,10.20.0.0/16,.svc,$(KUBERNETES_SERVICE_HOST),.cluster.local,169.254.169.254"},
		corev1.EnvVar{Name: "SSL_CERT_DIR", Value: wantCertDir},
	))
	g.Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Name", extraCAVolume)))
	g.Eventually(c.exists(&rbacv1.ClusterRole{}, cluster("vaultsync-cluster-connections"))).WithTimeout(eventually).Should(BeFalse())
	g.Eventually(c.subjectCan(g, "watch", "vaultsync.io", "clustervaultconnections", "")).WithTimeout(eventually).Should(BeFalse())
	g.Expect(c.subjectCan(g, "watch", "vaultsync.io", "vaultconnections", "team-a")()).To(BeTrue())

	// Uninstall: everything goes except the CRD and the VaultSecrets.
	out = c.tools.must(nil, helm, "uninstall", release, "--namespace", releaseNamespace)
	g.Expect(out).To(ContainSubstring("uninstalled"))
	gone := append(installed,
		struct {
			obj client.Object
			key client.ObjectKey
		}{&policyv1.PodDisruptionBudget{}, ns("vaultsync")},
		struct {
			obj client.Object
			key client.ObjectKey
		}{&rbacv1.Role{}, client.ObjectKey{Namespace: "team-a", Name: "vaultsync-manager"}},
		struct {
			obj client.Object
			key client.ObjectKey
		}{&corev1.Service{}, ns("vaultsync-events")},
	)
	for _, o := range gone {
		g.Eventually(c.exists(o.obj, o.key)).WithTimeout(eventually).WithPolling(200*time.Millisecond).
			Should(BeFalse(), "%T %s after helm uninstall", o.obj, o.key)
	}
	// helm uninstall deletes synchronously: a CRD it meant to delete would be
	// gone or terminating by now.
	for _, name := range crdNames {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(c.client.Get(ctx, cluster(name), crd)).To(Succeed(), "helm uninstall must keep the CRD %s", name)
		g.Expect(crd.DeletionTimestamp).To(BeNil(), "helm uninstall must keep the CRD %s", name)
	}
	vs := &unstructured.Unstructured{}
	vs.SetAPIVersion("vaultsync.io/v1alpha1")
	vs.SetKind("VaultSecret")
	g.Expect(c.client.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "db"}, vs)).To(Succeed(), "VaultSecrets survive helm uninstall")

	// Installing again adopts the kept CRD.
	c.tools.must(nil, helm, "install", release, chartRel, "--namespace", releaseNamespace)
	g.Expect(c.exists(&appsv1.Deployment{}, ns("vaultsync"))()).To(BeTrue())
}

// notesVaultSecret cuts the example VaultSecret out of the release notes
// printed by helm install: from its apiVersion line to the first line that is
// neither YAML nor blank inside it.
func notesVaultSecret(out string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "apiVersion: vaultsync.io/") {
			in = true
		}
		if !in {
			continue
		}
		if strings.HasPrefix(line, "   and apply") {
			break
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}
