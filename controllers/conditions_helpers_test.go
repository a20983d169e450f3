package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
)

// currentReady returns a function that reads the object at key into obj and returns its Ready
// condition once the condition reflects the object's current generation; nil before that, and
// while the object cannot be read. conditions picks the kind's status conditions.
func currentReady[T client.Object](key client.ObjectKey, obj T, conditions func(T) []metav1.Condition) func() *metav1.Condition {
	return func() *metav1.Condition {
		if k8s.Get(ctx, key, obj) != nil {
			return nil
		}
		c := meta.FindStatusCondition(conditions(obj), v1alpha1.ConditionReady)
		if c == nil || c.ObservedGeneration != obj.GetGeneration() {
			return nil
		}
		return c
	}
}

// eventuallyReady waits until ready returns a condition with status True.
func eventuallyReady(ready func() *metav1.Condition, description ...any) {
	GinkgoHelper()
	Eventually(ready, timeout, 100*time.Millisecond).Should(
		And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)), description...)
}

// eventuallyNotReady waits until ready returns a condition with status False and reason, and
// returns that condition.
func eventuallyNotReady(ready func() *metav1.Condition, reason string) *metav1.Condition {
	GinkgoHelper()
	var got *metav1.Condition
	Eventually(func() string {
		got = ready()
		if got == nil || got.Status != metav1.ConditionFalse {
			return ""
		}
		return got.Reason
	}, timeout, 100*time.Millisecond).Should(Equal(reason))
	return got
}
