package controllers

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/metrics"
	"github.com/vaultsync/vaultsync/internal/rollout"
)

// counterValues gathers reg and returns the values of the counter name by
// its labels rendered as "k=v,k=v" (in label-name order).
func counterValues(g Gomega, reg *prometheus.Registry, name string) map[string]float64 {
	fams, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			key := ""
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}

// The rollouts of a VaultSecret are counted with the words of docs/metrics.md:
// restarted, not_found and failed.
func TestRolloutMetrics(t *testing.T) {
	g := NewWithT(t)
	s := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(s)).To(Succeed())
	g.Expect(v1alpha1.AddToScheme(s)).To(Succeed())
	deploy := func(name string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name}}
	}
	cl := fake.NewClientBuilder().WithScheme(s).WithObjects(deploy("web"), deploy("locked")).
		WithInterceptorFuncs(interceptor.Funcs{
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, o ...client.PatchOption) error {
				if obj.GetName() == "locked" {
					return errors.New("admission webhook denied the request")
				}
				return c.Patch(ctx, obj, p, o...)
			},
		}).Build()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	g.Expect(err).NotTo(HaveOccurred())
	r := &VaultSecretReconciler{Metrics: m, Restarter: &rollout.Restarter{Client: cl}}
	vs := &v1alpha1.VaultSecret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "creds"},
		Spec: v1alpha1.VaultSecretSpec{RolloutRestartTargets: []v1alpha1.RolloutTarget{
			{Kind: "Deployment", Name: "web"}, {Kind: "Deployment", Name: "gone"}, {Kind: "Deployment", Name: "locked"},
		}},
	}

	vs.Status.DataHash = "0123456789abcdef0123"
	r.startRollout(vs)
	g.Expect(r.finishRollout(context.Background(), vs)).To(HaveOccurred(), "the refused patch is retried")
	g.Expect(counterValues(g, reg, metrics.NameRollouts)).To(Equal(map[string]float64{
		"kind=Deployment,result=restarted": 1,
		"kind=Deployment,result=not_found": 1,
		"kind=Deployment,result=failed":    1,
	}))
}
