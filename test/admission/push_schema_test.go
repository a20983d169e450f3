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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestVaultPushSecretCRD checks the VaultPushSecret CRD as generated and as served: names, printer
// columns, the status subresource, conditions that merge by type, and a description on every
// property (what `kubectl explain vaultpushsecret` prints).
func TestVaultPushSecretCRD(t *testing.T) {
	g := NewWithT(t)
	crd := readCRDFile(g, "vaultsync.io_vaultpushsecrets.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	served := &apiextensionsv1.CustomResourceDefinition{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "vaultpushsecrets.vaultsync.io"}, served)).To(Succeed())

	for _, c := range []*apiextensionsv1.CustomResourceDefinition{crd, served} {
		g.Expect(c.Spec.Scope).To(Equal(apiextensionsv1.NamespaceScoped))
		g.Expect(c.Spec.Names.Kind).To(Equal("VaultPushSecret"))
		g.Expect(c.Spec.Names.ShortNames).To(ConsistOf("vps"))
		g.Expect(c.Spec.Names.Categories).To(ConsistOf("vaultsync"))
		v := c.Spec.Versions[0]
		g.Expect(v.Subresources).NotTo(BeNil())
		g.Expect(v.Subresources.Status).NotTo(BeNil())
		var cols []string
		for _, pc := range v.AdditionalPrinterColumns {
			cols = append(cols, pc.Name+" "+pc.JSONPath)
		}
		g.Expect(cols).To(Equal([]string{
			"Secret .spec.secretRef.name",
			`Ready .status.conditions[?(@.type=="Ready")].status`,
			`Reason .status.conditions[?(@.type=="Ready")].reason`,
			"Last Push .status.lastPushTime",
			"Age .metadata.creationTimestamp",
		}))
	}
	root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	conds := root.Properties["status"].Properties["conditions"]
	g.Expect(conds.XListType).NotTo(BeNil())
	g.Expect(*conds.XListType).To(Equal("map"))

	missing, seen := undescribed(root)
	g.Expect(missing).To(BeEmpty(), "properties without a description")
	g.Expect(seen).To(ContainElements(".spec.data[].remote.contentType", ".spec.dataFrom.remote.name",
		".spec.vault.auth.workloadIdentity.serviceAccountName", ".status.objects[].version"))
}
