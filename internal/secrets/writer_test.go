package secrets

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

var owner = Owner{Namespace: "team-a", Name: "db", UID: "uid-1", APIVersion: "vaultsync.io/v1alpha1", Kind: "VaultSecret"}

func managed(data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "team-a", Name: "db",
			Labels:      map[string]string{LabelManaged: "true"},
			Annotations: map[string]string{AnnotationOwner: "team-a/db"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: owner.APIVersion, Kind: owner.Kind, Name: owner.Name, UID: owner.UID, Controller: ptr.To(true),
			}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
}

func TestCheckOwnership(t *testing.T) {
	unmanaged := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "db"}}
	other := managed(nil)
	other.Annotations[AnnotationOwner] = "team-a/other"
	recreated := managed(nil)
	recreated.OwnerReferences[0].UID = "uid-old"
	tests := []struct {
		name     string
		existing *corev1.Secret
		policy   Policy
		want     error
	}{
		{"absent, owner", nil, PolicyOwner, nil},
		{"own secret", managed(nil), PolicyOwner, nil},
		{"own secret, orphan", managed(nil), PolicyOrphan, nil},
		{"unmanaged secret is never taken over", unmanaged, PolicyOwner, ErrConflict},
		{"unmanaged secret, orphan", unmanaged, PolicyOrphan, ErrConflict},
		{"another VaultSecret's secret", other, PolicyOwner, ErrConflict},
		{"controlled by an older VaultSecret of the same name", recreated, PolicyOwner, ErrConflict},
		{"merge into an unmanaged secret", unmanaged, PolicyMerge, nil},
		{"merge needs the secret", nil, PolicyMerge, ErrTargetMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckOwnership(tt.existing, owner, tt.policy)
			if tt.want == nil {
				NewWithT(t).Expect(err).NotTo(HaveOccurred())
			} else {
				NewWithT(t).Expect(err).To(MatchError(tt.want))
			}
		})
	}
}

func TestUpToDate(t *testing.T) {
	d := Desired{Name: "db", Type: corev1.SecretTypeOpaque, Policy: PolicyOwner, Data: map[string][]byte{"a": []byte("1")}}
	g := NewWithT(t)
	g.Expect(UpToDate(managed(map[string][]byte{"a": []byte("1")}), owner, d)).To(BeTrue())
	g.Expect(UpToDate(managed(map[string][]byte{"a": []byte("2")}), owner, d)).To(BeFalse(), "changed value")
	g.Expect(UpToDate(managed(map[string][]byte{"a": []byte("1"), "b": nil}), owner, d)).To(BeFalse(), "extra key")
	g.Expect(UpToDate(managed(map[string][]byte{}), owner, d)).To(BeFalse(), "missing key")

	withLabel := d
	withLabel.Labels = map[string]string{"team": "a"}
	g.Expect(UpToDate(managed(map[string][]byte{"a": []byte("1")}), owner, withLabel)).To(BeFalse(), "missing label")

	orphan := d
	orphan.Policy = PolicyOrphan
	g.Expect(UpToDate(managed(map[string][]byte{"a": []byte("1")}), owner, orphan)).To(BeFalse(), "owner reference must go")

	merge := Desired{Name: "db", Policy: PolicyMerge, Data: map[string][]byte{"a": []byte("1")}}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "team-a",
		Labels:      map[string]string{LabelManaged: "true"},
		Annotations: map[string]string{AnnotationMergePrefix + "db": "a"}},
		Data: map[string][]byte{"a": []byte("1"), "theirs": []byte("x")}}
	g.Expect(UpToDate(s, owner, merge)).To(BeTrue(), "merge ignores other keys")
}

func TestHash(t *testing.T) {
	g := NewWithT(t)
	k1, k2 := []byte("key-one-key-one-key-one-key-one!"), []byte("key-two-key-two-key-two-key-two!")
	a := map[string][]byte{"a": []byte("bc")}
	b := map[string][]byte{"ab": []byte("c")}
	g.Expect(Hash(k1, a)).NotTo(Equal(Hash(k1, b)), "length prefixes keep encodings apart")
	g.Expect(Hash(k1, a)).NotTo(Equal(Hash(k2, a)), "the key matters")
	g.Expect(Hash(k1, a)).To(Equal(Hash(k1, map[string][]byte{"a": []byte("bc")})))
	g.Expect(Hash(k1, a)).To(HaveLen(64))
}

func TestOwnersOf(t *testing.T) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "x", Annotations: map[string]string{
		AnnotationOwner:                "team-a/db",
		AnnotationMergePrefix + "more": "k",
	}}}
	NewWithT(t).Expect(OwnersOf(s)).To(ConsistOf(
		types.NamespacedName{Namespace: "team-a", Name: "db"},
		types.NamespacedName{Namespace: "team-a", Name: "more"},
	))
	// An owner annotation naming another namespace is ignored: a Secret
	// can only wake VaultSecrets of its own namespace.
	s.Annotations[AnnotationOwner] = "team-b/db"
	NewWithT(t).Expect(OwnersOf(s)).To(ConsistOf(types.NamespacedName{Namespace: "team-a", Name: "more"}))
}
