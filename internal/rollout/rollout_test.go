package rollout

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestRestartIsOncePerVersion(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db"}}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(dep, sts).Build()
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &Restarter{Client: c, Now: func() time.Time { return clock }}
	targets := []Target{{KindDeployment, "web"}, {KindStatefulSet, "db"}, {KindDaemonSet, "gone"}}

	out, err := r.Restart(ctx, "ns", "creds", "hash-1", targets)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal([]Outcome{
		{Target: targets[0], Restarted: true},
		{Target: targets[1], Restarted: true},
		{Target: targets[2], Missing: true},
	}))
	got := &appsv1.Deployment{}
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(dep), got)).To(Succeed())
	g.Expect(got.Spec.Template.Annotations).To(Equal(map[string]string{
		AnnotationRestartedAt:      "2026-01-02T03:04:05Z",
		AnnotationPrefix + "creds": "hash-1",
	}))
	rv := got.ResourceVersion

	// The same data again (a retry, an operator restart): nothing happens.
	clock = clock.Add(time.Hour)
	out, err = r.Restart(ctx, "ns", "creds", "hash-1", targets[:1])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal([]Outcome{{Target: targets[0]}}))
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(dep), got)).To(Succeed())
	g.Expect(got.ResourceVersion).To(Equal(rv))

	// New data: one more rollout.
	out, err = r.Restart(ctx, "ns", "creds", "hash-2", targets[:1])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out[0].Restarted).To(BeTrue())
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(dep), got)).To(Succeed())
	g.Expect(got.Spec.Template.Annotations).To(HaveKeyWithValue(AnnotationRestartedAt, "2026-01-02T04:04:05Z"))
}

func TestRestartRefusesOtherKinds(t *testing.T) {
	r := &Restarter{Client: fake.NewClientBuilder().WithScheme(scheme.Scheme).Build()}
	_, err := r.Restart(context.Background(), "ns", "creds", "v", []Target{{"Pod", "p"}})
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring("only Deployment, StatefulSet and DaemonSet")))
}
