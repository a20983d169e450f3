package controllers

import (
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
)

func TestSourceOf(t *testing.T) {
	g := NewWithT(t)
	vs := func(ns string, ref *v1alpha1.ConnectionRef) *v1alpha1.VaultSecret {
		return &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vs"}, Spec: v1alpha1.VaultSecretSpec{ConnectionRef: ref}}
	}
	cluster := &v1alpha1.ConnectionRef{Kind: v1alpha1.KindClusterVaultConnection, Name: "shared"}
	inline := &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "vs"}, Spec: v1alpha1.VaultSecretSpec{
		Vault: &v1alpha1.VaultRef{URL: "https://a.vault.azure.net/", Auth: v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: "app"}}}}}
	g.Expect(sourceOf(inline)).To(Equal("https://a.vault.azure.net/"))
	g.Expect(sourceOf(vs("team-a", cluster))).To(Equal(`ClusterVaultConnection "shared"`))
}
