package controllers

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/secrets"
)

func TestCacheTransformsKeepOnlyWhatIsRead(t *testing.T) {
	g := NewWithT(t)
	at := metav1.NewTime(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	fields := metav1.NewFieldsV1(`{"f:data":{"f:v":{}}}`)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db",
		Annotations: map[string]string{secrets.AnnotationOwner: "ns/db", corev1.LastAppliedConfigAnnotation: `{"data":{"v":"c2VjcmV0"}}`},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: secrets.FieldOwner, Operation: metav1.ManagedFieldsOperationApply,
			Time: &at, FieldsType: "FieldsV1", FieldsV1: fields}}}}
	g.Expect(lastWrittenByUs(s)).To(BeTrue())

	out, err := trimSecret(s)
	g.Expect(err).NotTo(HaveOccurred())
	trimmed := out.(*corev1.Secret)
	g.Expect(trimmed.Annotations).To(Equal(map[string]string{secrets.AnnotationOwner: "ns/db"}), "no copy of the data in last-applied")
	g.Expect(trimmed.ManagedFields).To(HaveLen(1))
	g.Expect(trimmed.ManagedFields[0].FieldsV1).To(BeNil())
	g.Expect(lastWrittenByUs(trimmed)).To(BeTrue(), "who wrote last, and when, survive the trim")

	vs := &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Name: "db",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Time: &at, FieldsV1: fields}}}}
	out, err = dropManagedFields(vs)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out.(*v1alpha1.VaultSecret).ManagedFields).To(BeNil(), "nil: an update from the cached copy leaves the server's untouched")
}

func TestRequestedAt(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	slot := metav1.NewTime(created.Add(time.Hour))
	newVS := &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: created, Generation: 1}}
	synced := newVS.DeepCopy()
	synced.Status.ObservedGeneration, synced.Status.NextSyncTime = 1, &slot
	changed := synced.DeepCopy()
	changed.Generation = 2
	tests := []struct {
		name string
		vs   *v1alpha1.VaultSecret
		why  string
		want time.Time
		ok   bool
	}{
		{"a new VaultSecret: its creation", newVS, whySpecChanged, created.Time, true},
		{"a refresh: the slot that fell due", synced, whyRefreshDue, slot.Time, true},
		{"a changed spec: now (it reads afresh anyway)", changed, whySpecChanged, time.Time{}, false},
		{"a missing target: now", synced, "target Secret missing", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, ok := requestedAt(tt.vs, tt.why)
			NewWithT(t).Expect(ok).To(Equal(tt.ok))
			NewWithT(t).Expect(at).To(Equal(tt.want))
		})
	}
}
