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
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// The values of the connection kinds.
const (
	valuesNoClusterConnections = `
clusterConnections:
  enabled: false
`
	valuesWatchNoClusterConnections = valuesWatchNamespaces + valuesNoClusterConnections
)

// clusterConnectionResources are the resources the ClusterVaultConnection
// controller needs; nothing else in the chart names them.
var clusterConnectionResources = []string{"clustervaultconnections", "clustervaultconnections/status"}

// clusterConnectionRules are the rules of the <fullname>-cluster-connections
// ClusterRole: those of the generated rules that name ClusterVaultConnections.
var clusterConnectionRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"vaultsync.io"}, Resources: []string{"clustervaultconnections"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"vaultsync.io"}, Resources: []string{"clustervaultconnections/status"}, Verbs: []string{"get", "update", "patch"}},
}

// withoutClusterConnections returns the rules with the ClusterVaultConnection
// resources removed, dropping rules left without resources: what a Role, or
// any role with clusterConnections.enabled=false, grants of the generated
// rules.
func withoutClusterConnections(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, r := range rules {
		r = *r.DeepCopy()
		if slices.Contains(r.APIGroups, "vaultsync.io") {
			r.Resources = slices.DeleteFunc(r.Resources, func(s string) bool {
				return slices.Contains(clusterConnectionResources, s)
			})
			if len(r.Resources) == 0 {
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// grants reports whether one of the rules allows verb on group/resource.
func grants(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) &&
			slices.Contains(r.Verbs, verb) && len(r.ResourceNames) == 0 {
			return true
		}
	}
	return false
}

// rulesOf returns the rules of the (Cluster)Role, failing when it is missing.
func rulesOf(g Gomega, t testing.TB, m manifest, kind, namespace, name string) []rbacv1.PolicyRule {
	t.Helper()
	o := m.find(kind, namespace, name)
	g.Expect(o).NotTo(BeNil(), "%s %s/%s missing; objects: %v", kind, namespace, name, m.names())
	return convert[rbacv1.ClusterRole](t, o).Rules
}

// managerArgs returns the arguments of the manager container.
func managerArgs(t testing.TB, m manifest) []string {
	t.Helper()
	return m.deployment(t).Spec.Template.Spec.Containers[0].Args
}

func TestTemplateConnectionFlags(t *testing.T) {
	for name, tc := range map[string]struct {
		values             string
		clusterConnections string
		namespaceSelectors string
		namespacesRole     bool
	}{
		"default":                    {valuesDefault, "true", "false", false},
		"watchNamespaces":            {valuesWatchNamespaces, "true", "false", false},
		"cluster connections off":    {valuesNoClusterConnections, "false", "false", false},
		"namespace selectors":        {valuesNamespaceSelectors, "true", "true", true},
		"namespace selectors, watch": {valuesNamespaceSelectors + valuesWatchNamespaces, "true", "true", true},
		// Selectors belong to ClusterVaultConnections: without them, no
		// Namespace rights and the flag says so.
		"selectors without cluster connections": {`
clusterConnections:
  enabled: false
  namespaceSelectors: true
`, "false", "false", false},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			m := renderChart(t, tc.values)
			args := managerArgs(t, m)
			g.Expect(args).To(ContainElement("--cluster-connections="+tc.clusterConnections), "args: %v", args)
			g.Expect(args).To(ContainElement("--namespace-selectors="+tc.namespaceSelectors), "args: %v", args)
			// Each flag exactly once, so the last one cannot silently win.
			for _, flag := range []string{"--cluster-connections", "--namespace-selectors"} {
				n := 0
				for _, a := range args {
					if strings.HasPrefix(a, flag) {
						n++
					}
				}
				g.Expect(n).To(Equal(1), "%s in %v", flag, args)
			}
			if tc.namespacesRole {
				g.Expect(m.find("ClusterRole", "", "vaultsync-namespaces")).NotTo(BeNil(), "objects: %v", m.names())
				expectBinding(g, t, m, "ClusterRoleBinding", "", "vaultsync-namespaces", "ClusterRole")
			} else {
				g.Expect(m.find("ClusterRole", "", "vaultsync-namespaces")).To(BeNil())
				g.Expect(m.find("ClusterRoleBinding", "", "vaultsync-namespaces")).To(BeNil())
				for _, r := range allRules(t, m) {
					g.Expect(r.Resources).NotTo(ContainElement("namespaces"), "rule %+v", r)
				}
			}
		})
	}
}

// TestTemplateClusterConnectionsDefault checks that the manager ClusterRole
// itself carries the ClusterVaultConnection rights in cluster-wide mode, so no
// extra ClusterRole is needed.
func TestTemplateClusterConnectionsDefault(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesDefault)
	rules := rulesOf(g, t, m, "ClusterRole", "", "vaultsync-manager")
	g.Expect(rules).To(Equal(generatedManagerRules(t)))
	for _, verb := range []string{"get", "list", "watch"} {
		g.Expect(grants(rules, "vaultsync.io", "clustervaultconnections", verb)).To(BeTrue(), verb)
		g.Expect(grants(rules, "vaultsync.io", "vaultconnections", verb)).To(BeTrue(), verb)
	}
	for _, verb := range []string{"get", "update", "patch"} {
		g.Expect(grants(rules, "vaultsync.io", "clustervaultconnections/status", verb)).To(BeTrue(), verb)
		g.Expect(grants(rules, "vaultsync.io", "vaultconnections/status", verb)).To(BeTrue(), verb)
	}
	g.Expect(m.find("ClusterRole", "", "vaultsync-cluster-connections")).To(BeNil())
	g.Expect(m.find("ClusterRoleBinding", "", "vaultsync-cluster-connections")).To(BeNil())
}

func TestTemplateClusterConnectionsDisabled(t *testing.T) {
	for name, values := range map[string]string{
		"cluster-wide":    valuesNoClusterConnections,
		"watchNamespaces": valuesWatchNoClusterConnections,
		"with selectors":  valuesNoClusterConnections + "  namespaceSelectors: true\n",
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			m := renderChart(t, values)
			g.Expect(managerArgs(t, m)).To(ContainElement("--cluster-connections=false"))

			// No right on ClusterVaultConnections in any role.
			for _, o := range append(m.ofKind("ClusterRole"), m.ofKind("Role")...) {
				for _, r := range convert[rbacv1.ClusterRole](t, o).Rules {
					for _, res := range r.Resources {
						g.Expect(res).NotTo(HavePrefix("clustervaultconnections"), "%s %s/%s: %+v", o.GetKind(), o.GetNamespace(), o.GetName(), r)
					}
				}
			}
			g.Expect(m.find("ClusterRole", "", "vaultsync-cluster-connections")).To(BeNil())
			g.Expect(m.find("ClusterRoleBinding", "", "vaultsync-cluster-connections")).To(BeNil())

			// Everything else of the generated rules stays, VaultConnections included.
			want := withoutClusterConnections(generatedManagerRules(t))
			g.Expect(want).NotTo(Equal(generatedManagerRules(t)), "the generated rules name ClusterVaultConnections")
			var managers int
			for _, o := range append(m.ofKind("ClusterRole"), m.ofKind("Role")...) {
				if o.GetName() != "vaultsync-manager" {
					continue
				}
				managers++
				rules := convert[rbacv1.ClusterRole](t, o).Rules
				g.Expect(rules).To(Equal(want), "%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
				g.Expect(grants(rules, "vaultsync.io", "vaultconnections", "watch")).To(BeTrue())
				g.Expect(grants(rules, "vaultsync.io", "vaultsecrets", "watch")).To(BeTrue())
			}
			g.Expect(managers).To(BeNumerically(">", 0), "objects: %v", m.names())

			// The CRD is still installed: existing ClusterVaultConnections keep their data.
			g.Expect(m.find("CustomResourceDefinition", "", "clustervaultconnections.vaultsync.io")).NotTo(BeNil())
		})
	}
}

func TestTemplateWatchNamespacesClusterConnections(t *testing.T) {
	for name, values := range map[string]string{
		"default":             valuesWatchNamespaces,
		"namespace selectors": valuesWatchNamespaces + valuesNamespaceSelectors,
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			m := renderChart(t, values)

			// Exactly the ClusterVaultConnection rules, bound to the manager.
			g.Expect(rulesOf(g, t, m, "ClusterRole", "", "vaultsync-cluster-connections")).To(Equal(clusterConnectionRules))
			expectBinding(g, t, m, "ClusterRoleBinding", "", "vaultsync-cluster-connections", "ClusterRole")
			// They are what the generated rules grant on ClusterVaultConnections.
			generated := generatedManagerRules(t)
			for _, r := range clusterConnectionRules {
				for _, verb := range r.Verbs {
					g.Expect(grants(generated, "vaultsync.io", r.Resources[0], verb)).To(BeTrue(), "%s %s", r.Resources[0], verb)
				}
			}

			// The Roles leave out what they cannot grant, and keep the rest.
			want := withoutClusterConnections(generated)
			for _, ns := range []string{"team-a", "team-b"} {
				g.Expect(rulesOf(g, t, m, "Role", ns, "vaultsync-manager")).To(Equal(want), "Role %s/vaultsync-manager", ns)
			}

			// No other ClusterRole names ClusterVaultConnections.
			for _, o := range m.ofKind("ClusterRole") {
				if o.GetName() == "vaultsync-cluster-connections" {
					continue
				}
				for _, r := range convert[rbacv1.ClusterRole](t, o).Rules {
					g.Expect(r.Resources).NotTo(ContainElement(HavePrefix("clustervaultconnections")), "ClusterRole %s", o.GetName())
				}
			}
		})
	}
}

// subjectCan asks the API server whether the chart's ServiceAccount may do
// verb on group/resource[/subresource] (in namespace; empty: cluster-wide).
func (c *cluster) subjectCan(g Gomega, verb, group, resource, namespace string) func() bool {
	resource, subresource, _ := strings.Cut(resource, "/")
	return func() bool {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:" + releaseNamespace + ":vaultsync",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNamespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: verb, Group: group, Resource: resource, Subresource: subresource,
			},
		}}
		g.Expect(c.client.Create(context.Background(), sar)).To(Succeed())
		return sar.Status.Allowed
	}
}
