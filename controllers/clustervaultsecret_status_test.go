package controllers

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
)

// copyWith is a copy whose Ready condition reflects its generation.
func copyWith(ns string, status metav1.ConditionStatus, reason string) *v1alpha1.VaultSecret {
	vs := &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c", Generation: 1}}
	vs.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, ObservedGeneration: 1, Message: "m"}}
	return vs
}

func TestClusterVaultSecretSummary(t *testing.T) {
	ready := func(ns string) target { return target{ns: ns, copy: copyWith(ns, metav1.ConditionTrue, ReasonSynced)} }
	failed := func(ns, reason string) target {
		return target{ns: ns, failure: &v1alpha1.NamespaceFailure{Namespace: ns, Reason: reason, Message: "m"}}
	}
	for name, tc := range map[string]struct {
		targets             []target
		status, reason      string
		provisioned, failed int32
	}{
		"nothing selected":  {nil, "False", v1alpha1.ReasonNoNamespaces, 0, 0},
		"all ready":         {[]target{ready("a"), ready("b")}, "True", v1alpha1.ReasonProvisioned, 2, 0},
		"a copy not synced": {[]target{ready("a"), {ns: "b", copy: copyWith("b", metav1.ConditionFalse, "ForbiddenByRbac")}}, "False", v1alpha1.ReasonCopiesNotReady, 1, 1},
		"a copy pending":    {[]target{{ns: "a", copy: &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Generation: 1}}}}, "False", v1alpha1.ReasonCopiesNotReady, 0, 1},
		"only refusals":     {[]target{ready("a"), failed("b", ReasonNamespaceNotAllowed)}, "False", ReasonNamespaceNotAllowed, 1, 1},
		"only conflicts":    {[]target{ready("a"), failed("b", ReasonTargetConflict)}, "False", ReasonTargetConflict, 1, 1},
		"mixed":             {[]target{failed("a", ReasonTargetConflict), failed("b", ReasonNamespaceNotAllowed)}, "False", v1alpha1.ReasonPartiallyProvisioned, 0, 2},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			cvs := &v1alpha1.ClusterVaultSecret{ObjectMeta: metav1.ObjectMeta{Name: "x", Generation: 3}}
			(&ClusterVaultSecretReconciler{}).summarise(cvs, tc.targets)
			c := meta.FindStatusCondition(cvs.Status.Conditions, v1alpha1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(string(c.Status)).To(Equal(tc.status))
			g.Expect(c.Reason).To(Equal(tc.reason))
			g.Expect(c.Message).NotTo(BeEmpty())
			g.Expect(c.ObservedGeneration).To(BeEquivalentTo(3))
			g.Expect(cvs.Status.ObservedGeneration).To(BeEquivalentTo(3))
			g.Expect(cvs.Status.ProvisionedCount).To(Equal(tc.provisioned))
			g.Expect(cvs.Status.FailedCount).To(Equal(tc.failed))
		})
	}
}

// The lists are bounded; the counts stay exact.
func TestClusterVaultSecretSummaryBounded(t *testing.T) {
	g := NewWithT(t)
	var targets []target
	for i := range 300 {
		ns := fmt.Sprintf("ns-%03d", i)
		targets = append(targets, target{ns: ns, copy: copyWith(ns, metav1.ConditionTrue, ReasonSynced)})
	}
	cvs := &v1alpha1.ClusterVaultSecret{ObjectMeta: metav1.ObjectMeta{Name: "x"}}
	(&ClusterVaultSecretReconciler{}).summarise(cvs, targets)
	g.Expect(cvs.Status.ProvisionedCount).To(BeEquivalentTo(300))
	g.Expect(cvs.Status.ProvisionedNamespaces).To(HaveLen(v1alpha1.MaxListedNamespaces))
	g.Expect(cvs.Status.ProvisionedNamespaces[0]).To(Equal("ns-000"))
}
