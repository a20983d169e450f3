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
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

func readCRD(g Gomega) *apiextensionsv1.CustomResourceDefinition {
	return readCRDFile(g, "vaultsync.io_vaultsecrets.yaml")
}

// readCRDFile reads one generated CRD of config/crd/bases.
func readCRDFile(g Gomega, file string) *apiextensionsv1.CustomResourceDefinition {
	raw, err := os.ReadFile(filepath.Join(crdDir, file))
	g.Expect(err).NotTo(HaveOccurred())
	crd := &apiextensionsv1.CustomResourceDefinition{}
	g.Expect(yaml.UnmarshalStrict(raw, crd)).To(Succeed())
	g.Expect(crd.Spec.Versions).To(HaveLen(1))
	return crd
}

// TestEveryPropertyHasADescription walks the schema the way `kubectl explain` shows it: every
// property needs a description.
func TestEveryPropertyHasADescription(t *testing.T) {
	g := NewWithT(t)
	root := readCRD(g).Spec.Versions[0].Schema.OpenAPIV3Schema
	g.Expect(root.Description).NotTo(BeEmpty())

	missing, seen := undescribed(root)
	g.Expect(missing).To(BeEmpty(), "properties without a description")
	// The walk must have reached the deep fields, or it proves nothing.
	g.Expect(seen).To(ContainElements(
		".spec.vault.auth.workloadIdentity.serviceAccountName",
		".spec.data[].remote.format",
		".spec.dataFrom[].find.rewrite.replace",
		".spec.target.template.data",
		".status.conditions[].reason",
		".status.certificates[].notAfter",
	))
}

// TestCRDShape checks names, scope, printer columns and the status subresource, both in the
// generated file and as served by the API server.
func TestCRDShape(t *testing.T) {
	g := NewWithT(t)
	crd := readCRD(g)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	served := &apiextensionsv1.CustomResourceDefinition{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "vaultsecrets.vaultsync.io"}, served)).To(Succeed())

	for _, c := range []*apiextensionsv1.CustomResourceDefinition{crd, served} {
		g.Expect(c.Spec.Group).To(Equal("vaultsync.io"))
		g.Expect(c.Spec.Scope).To(Equal(apiextensionsv1.NamespaceScoped))
		g.Expect(c.Spec.Names.Kind).To(Equal("VaultSecret"))
		g.Expect(c.Spec.Names.ShortNames).To(ConsistOf("vs"))
		g.Expect(c.Spec.Names.Categories).To(ConsistOf("vaultsync"))
		v := c.Spec.Versions[0]
		g.Expect(v.Name).To(Equal("v1alpha1"))
		g.Expect(v.Subresources).NotTo(BeNil())
		g.Expect(v.Subresources.Status).NotTo(BeNil())

		type col struct{ name, typ, path string }
		var cols []col
		for _, pc := range v.AdditionalPrinterColumns {
			cols = append(cols, col{pc.Name, pc.Type, pc.JSONPath})
		}
		g.Expect(cols).To(Equal([]col{
			{"Ready", "string", `.status.conditions[?(@.type=="Ready")].status`},
			{"Reason", "string", `.status.conditions[?(@.type=="Ready")].reason`},
			{"Last Sync", "date", ".status.lastSyncTime"},
			{"Age", "date", ".metadata.creationTimestamp"},
		}))
	}

	// The conditions list merges by type, so Ready can be patched on its own.
	conds := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["status"].Properties["conditions"]
	g.Expect(conds.XListType).NotTo(BeNil())
	g.Expect(*conds.XListType).To(Equal("map"))
	g.Expect(slices.Equal(conds.XListMapKeys, []string{"type"})).To(BeTrue())
}

// TestKubectl runs the kubectl built next to the API server: `kubectl explain` must print the
// field documentation, and `kubectl get` the printer columns, via the short name.
func TestKubectl(t *testing.T) {
	g := NewWithT(t)
	user, err := testEnv.ControlPlane.AddUser(envtest.User{Name: "explainer", Groups: []string{"system:masters"}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	kubectl, err := user.Kubectl()
	g.Expect(err).NotTo(HaveOccurred())
	if _, err := os.Stat(kubectl.Path); err != nil {
		t.Skipf("no kubectl next to the API server: %v", err)
	}

	run := func(args ...string) (string, error) {
		stdout, stderr, err := kubectl.Run(args...)
		out, _ := io.ReadAll(stdout)
		errOut, _ := io.ReadAll(stderr)
		if err != nil {
			return "", fmt.Errorf("kubectl %v: %w: %s", args, err, errOut)
		}
		return string(out), nil
	}

	// The API server publishes the OpenAPI of a new CRD a moment after the CRD is established.
	g.Eventually(func() (string, error) { return run("explain", "vs.spec.vault.url") }).
		WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).
		Should(ContainSubstring("url is the Key Vault URL"))
	g.Expect(run("explain", "vaultsecrets.spec.data.remote.format")).
		To(ContainSubstring("format is how a certificate or key is written"))
	g.Expect(run("explain", "vaultsecret.spec.refreshInterval")).To(ContainSubstring("Defaults to 1h"))

	g.Expect(k8sClient.Create(context.Background(), newVaultSecret(g, `data: [{key: a, remote: {name: a}}]`, true))).To(Succeed())
	out, err := run("get", "vaultsync", "-n", testNamespace)
	g.Expect(err).NotTo(HaveOccurred())
	header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	g.Expect(header).To(Equal([]string{"NAME", "READY", "REASON", "LAST", "SYNC", "AGE"}))
}
