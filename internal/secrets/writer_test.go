package secrets

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
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
	allowing := func(v string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "db",
			Annotations: map[string]string{AnnotationMergeAllowed: v}}}
	}
	mergedBefore := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "db",
		Annotations: map[string]string{AnnotationMergePrefix + "db": "a,b"}}}
	recreated := managed(nil)
	recreated.OwnerReferences[0].UID = "uid-old"
	unlabelled := managed(nil) // the managed label removed by hand
	delete(unlabelled.Labels, LabelManaged)
	unlabelledOrphan := unlabelled.DeepCopy()
	unlabelledOrphan.OwnerReferences = nil
	unlabelledOther := unlabelled.DeepCopy()
	unlabelledOther.OwnerReferences[0].UID = "uid-old"
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
		{"own secret whose label was removed by hand", unlabelled, PolicyOwner, nil},
		{"unlabelled, no controller reference: the annotation alone proves nothing", unlabelledOrphan, PolicyOrphan, ErrConflict},
		{"unlabelled, controlled by an older VaultSecret of the same name", unlabelledOther, PolicyOwner, ErrConflict},
		{"unlabelled secret is not merged into as if it were managed", unlabelled, PolicyMerge, ErrMergeNotAllowed},
		{"merge into an unmanaged secret that does not allow it", unmanaged, PolicyMerge, ErrMergeNotAllowed},
		{"merge into a secret that allows this VaultSecret", allowing("other, db"), PolicyMerge, nil},
		{"merge into a secret that allows any VaultSecret", allowing("*"), PolicyMerge, nil},
		{"merge into a secret that allows others only", allowing("other"), PolicyMerge, ErrMergeNotAllowed},
		{"merge into a secret this VaultSecret merged into before", mergedBefore, PolicyMerge, nil},
		{"merge into another VaultSecret's secret", other, PolicyMerge, ErrConflict},
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

// countingReader counts live reads.
type countingReader struct {
	client.Reader
	gets int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	return c.Reader.Get(ctx, key, obj, opts...)
}

func TestGetAsksTheIndexBeforeALiveRead(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "theirs"}}
	live := &countingReader{Reader: fake.NewClientBuilder().WithObjects(theirs).Build()}
	cached := fake.NewClientBuilder().Build() // the labelled cache holds neither
	known := map[string]bool{"team-a/theirs": true}
	w := &Writer{Client: cached, Live: live, Exists: func(_ context.Context, ns, name string) (bool, error) {
		return known[ns+"/"+name], nil
	}}

	got, err := w.Get(ctx, "team-a", "new")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeNil())
	g.Expect(live.gets).To(BeZero(), "a Secret the index does not know needs no live read")

	got, err = w.Get(ctx, "team-a", "theirs")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).NotTo(BeNil(), "an unmanaged Secret is still found, so it is never taken over")
	g.Expect(live.gets).To(Equal(1))
	g.Expect(CheckOwnership(got, owner, PolicyOwner)).To(MatchError(ErrConflict))
}

// A Merge annotation of a VaultSecret that is gone no longer blocks another
// Merge VaultSecret from writing the same key; one that exists does.
func TestMergeKeysOfAGoneVaultSecretAreFree(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	target := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app-config",
		Labels:      map[string]string{LabelManaged: "true"},
		Annotations: map[string]string{AnnotationMergePrefix + "other": "token"}},
		Data: map[string][]byte{"token": []byte("old")}}
	d := Desired{Name: "app-config", Policy: PolicyMerge, Data: map[string][]byte{"token": []byte("new")}}
	exists := true
	w := &Writer{MergeOwnerExists: func(context.Context, string, string) (bool, error) { return exists, nil }}
	err := w.checkMergeKeys(ctx, target, owner, d)
	g.Expect(err).To(MatchError(ErrConflict))
	g.Expect(err.Error()).To(ContainSubstring(`"team-a/other"`))
	exists = false
	g.Expect(w.checkMergeKeys(ctx, target, owner, d)).To(Succeed())
	g.Expect((&Writer{}).checkMergeKeys(ctx, target, owner, d)).To(MatchError(ErrConflict), "without the hook every annotation counts")
}
