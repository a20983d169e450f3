package chart

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

const valuesClusterVaultSecrets = `
clusterVaultSecrets:
  enabled: true
`

// TestTemplateClusterVaultSecrets checks that the ClusterVaultSecret controller and its rights
// (VaultSecret writes, Namespace reads) come only with clusterVaultSecrets.enabled, and never
// without ClusterVaultConnections.
func TestTemplateClusterVaultSecrets(t *testing.T) {
	for name, tc := range map[string]struct {
		values string
		on     bool
	}{
		"default (off)":                  {valuesDefault, false},
		"on":                             {valuesClusterVaultSecrets, true},
		"on, watchNamespaces":            {valuesClusterVaultSecrets + valuesWatchNamespaces, true},
		"on without cluster connections": {valuesClusterVaultSecrets + valuesNoClusterConnections, false},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			m := renderChart(t, tc.values)
			args := managerArgs(t, m)
			want := "--cluster-vault-secrets=false"
			if tc.on {
				want = "--cluster-vault-secrets=true"
			}
			g.Expect(args).To(ContainElement(want), "args: %v", args)
			n := 0
			for _, a := range args {
				if strings.HasPrefix(a, "--cluster-vault-secrets") {
					n++
				}
			}
			g.Expect(n).To(Equal(1), "args: %v", args)

			// The CRD ships either way (crds.enabled), so turning the feature on later needs no CRD step.
			g.Expect(m.find("CustomResourceDefinition", "", "clustervaultsecrets.vaultsync.io")).NotTo(BeNil())
			if !tc.on {
				g.Expect(m.find("ClusterRole", "", "vaultsync-cluster-vault-secrets")).To(BeNil())
				for _, r := range allRules(t, m) {
					g.Expect(r.Resources).NotTo(ContainElement("clustervaultsecrets"), "rule %+v", r)
					if r.Resources != nil && contains(r.Resources, "vaultsecrets") {
						g.Expect(r.Verbs).NotTo(ContainElements("create"), "rule %+v", r)
						g.Expect(r.Verbs).NotTo(ContainElements("delete"), "rule %+v", r)
					}
				}
				return
			}
			rules := rulesOf(g, t, m, "ClusterRole", "", "vaultsync-cluster-vault-secrets")
			for _, verb := range []string{"get", "list", "watch"} {
				g.Expect(grants(rules, "vaultsync.io", "clustervaultsecrets", verb)).To(BeTrue(), verb)
				g.Expect(grants(rules, "", "namespaces", verb)).To(BeTrue(), verb)
			}
			for _, verb := range []string{"create", "update", "delete"} {
				g.Expect(grants(rules, "vaultsync.io", "vaultsecrets", verb)).To(BeTrue(), verb)
			}
			g.Expect(grants(rules, "vaultsync.io", "clustervaultsecrets/status", "patch")).To(BeTrue())
			g.Expect(grants(rules, "", "secrets", "get")).To(BeFalse(), "no Secret rights in this role")
			expectBinding(g, t, m, "ClusterRoleBinding", "", "vaultsync-cluster-vault-secrets", "ClusterRole")
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
