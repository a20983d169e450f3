package chart

import (
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// TestTemplateVaultPushSecrets checks that the VaultPushSecret controller is off by default, that
// the only right it adds is get on the kube-system Namespace (for the default cluster id), and
// that a cluster id given in the values needs no Namespace right at all.
func TestTemplateVaultPushSecrets(t *testing.T) {
	for name, tc := range map[string]struct {
		values    string
		on        bool
		clusterID string
	}{
		"default (off)":        {valuesDefault, false, ""},
		"on":                   {"vaultPushSecrets:\n  enabled: true\n", true, ""},
		"on, watchNamespaces":  {"vaultPushSecrets:\n  enabled: true\n" + valuesWatchNamespaces, true, ""},
		"on with a cluster id": {"vaultPushSecrets:\n  enabled: true\n  clusterID: prod-westeurope-1\n", true, "prod-westeurope-1"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			m := renderChart(t, tc.values)
			args := managerArgs(t, m)
			want := "--vault-push-secrets=false"
			if tc.on {
				want = "--vault-push-secrets=true"
			}
			g.Expect(args).To(ContainElement(want), "args: %v", args)
			ids := slices.DeleteFunc(slices.Clone(args), func(a string) bool { return !strings.HasPrefix(a, "--cluster-id") })
			if tc.clusterID != "" {
				g.Expect(ids).To(Equal([]string{"--cluster-id=" + tc.clusterID}))
			} else {
				g.Expect(ids).To(BeEmpty())
			}
			g.Expect(m.find("CustomResourceDefinition", "", "vaultpushsecrets.vaultsync.io")).NotTo(BeNil())

			if !tc.on || tc.clusterID != "" {
				g.Expect(m.find("ClusterRole", "", "vaultsync-cluster-id")).To(BeNil())
				return
			}
			rules := rulesOf(g, t, m, "ClusterRole", "", "vaultsync-cluster-id")
			g.Expect(rules).To(HaveLen(1))
			g.Expect(rules[0].Resources).To(Equal([]string{"namespaces"}))
			g.Expect(rules[0].ResourceNames).To(Equal([]string{"kube-system"}), "that one Namespace only")
			g.Expect(rules[0].Verbs).To(Equal([]string{"get"}))
			expectBinding(g, t, m, "ClusterRoleBinding", "", "vaultsync-cluster-id", "ClusterRole")
		})
	}
}

// TestTemplateRejectsBadClusterID: the schema refuses a cluster id that would not fit the
// vaultsync-owner tag.
func TestTemplateRejectsBadClusterID(t *testing.T) {
	g := NewWithT(t)
	_, err := templateChart(t, "vaultPushSecrets:\n  enabled: true\n  clusterID: \"has spaces/and slashes\"\n")
	g.Expect(err).To(HaveOccurred())
}
