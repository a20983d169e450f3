// Package secrets is the one writer of Kubernetes Secrets in vaultsync.
// Every write goes through Writer.Apply: it checks ownership (never take
// over a Secret that someone else manages), skips writes that would change
// nothing, and writes the whole desired state with server-side apply, so
// keys that are no longer wanted disappear and fields owned by others stay.
package secrets

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels and annotations written on managed Secrets.
const (
	// LabelManaged marks a Secret written by vaultsync; the manager caches
	// only Secrets carrying it.
	LabelManaged = "vaultsync.io/managed"
	// AnnotationOwner names the VaultSecret ("namespace/name") that owns a
	// Secret created with creationPolicy Owner or Orphan.
	AnnotationOwner = "vaultsync.io/owner"
	// AnnotationMergePrefix + VaultSecret name marks a Secret that a
	// VaultSecret with creationPolicy Merge writes keys into; the value lists
	// those keys.
	AnnotationMergePrefix = "merge.vaultsync.io/"
	// FieldOwner is the server-side apply field manager of Owner and Orphan
	// writes. Merge writes use FieldOwner + ":" + VaultSecret name, so that
	// several VaultSecrets can merge into one Secret without removing each
	// other's keys.
	FieldOwner = "vaultsync"
)

// ErrConflict means the target Secret exists and is managed by someone else.
var ErrConflict = errors.New("target Secret is not managed by this VaultSecret")

// ErrMergeNotAllowed means a Merge target does not allow this VaultSecret.
var ErrMergeNotAllowed = errors.New("target Secret does not allow merges from this VaultSecret")

// AnnotationMergeAllowed on a Secret lists the VaultSecrets (names,
// comma-separated, or "*" for any) that may merge keys into it. Creating a
// VaultSecret must not let someone write into Secrets they cannot write
// themselves: whoever may write the Secret opts in.
const AnnotationMergeAllowed = "vaultsync.io/merge-allowed"

// ErrTargetMissing means a Merge target does not exist.
var ErrTargetMissing = errors.New("target Secret does not exist")

// Policy is how a VaultSecret relates to its Secret.
type Policy string

// Policies, mirroring the API's creationPolicy.
const (
	PolicyOwner  Policy = "Owner"
	PolicyOrphan Policy = "Orphan"
	PolicyMerge  Policy = "Merge"
)

// Owner identifies the VaultSecret a write is made for.
type Owner struct {
	Namespace, Name string
	UID             types.UID
	APIVersion      string
	Kind            string
}

// Key returns "namespace/name".
func (o Owner) Key() string { return o.Namespace + "/" + o.Name }

// Desired is the state a VaultSecret wants for its Secret.
type Desired struct {
	Name        string
	Type        corev1.SecretType
	Policy      Policy
	Labels      map[string]string
	Annotations map[string]string
	Data        map[string][]byte
}

// Result says what Apply did.
type Result struct {
	// Written is true when a request changed (or created) the Secret.
	Written bool
	// Created is true when the Secret did not exist before.
	Created bool
}

// Writer writes Secrets. Reader should be the manager's cached client (it
// sees only managed Secrets); Live is an uncached reader, used only when the
// cache does not have the target, to make sure an unmanaged Secret of the
// same name is never overwritten.
type Writer struct {
	Client client.Client
	Live   client.Reader
	// Exists, when set, answers from an informer that sees every Secret
	// (metadata only) whether one exists. A Secret it does not know is taken
	// as absent without a live read, which saves a request per new
	// VaultSecret; the window in which a just-created Secret is missed is the
	// informer's lag, as short as the window between a live read and the
	// write that follows it.
	Exists func(ctx context.Context, namespace, name string) (bool, error)
	// MergeOwnerExists, when set, tells whether the VaultSecret a Merge
	// annotation names still exists. The keys of one that is gone (its
	// annotation outlives it: Merge keys are not removed on deletion) no
	// longer block another Merge VaultSecret.
	MergeOwnerExists func(ctx context.Context, namespace, name string) (bool, error)
}

// Get returns the target Secret as the cache sees it, falling back to a live
// read when the cache does not hold it (an unmanaged Secret is invisible to
// the cache). It returns nil, nil when the Secret does not exist.
func (w *Writer) Get(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	err := w.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s)
	if err == nil {
		return &s, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	if w.Exists != nil {
		if ok, err := w.Exists(ctx, namespace, name); err == nil && !ok {
			return nil, nil
		}
	}
	if w.Live == nil {
		return nil, nil
	}
	return w.live(ctx, namespace, name)
}

// CheckOwnership reports ErrConflict when existing (which may be nil) is a
// Secret this owner must not write under the given policy.
func CheckOwnership(existing *corev1.Secret, owner Owner, policy Policy) error {
	if policy == PolicyMerge {
		if existing == nil {
			return ErrTargetMissing
		}
		// A Secret that a VaultSecret owns outright holds exactly that
		// VaultSecret's keys: merging into it would start a tug of war.
		if got := existing.Annotations[AnnotationOwner]; got != "" && existing.Labels[LabelManaged] == "true" {
			return fmt.Errorf("%w: Secret %q is managed by VaultSecret %q (creationPolicy Owner or Orphan)", ErrConflict, existing.Name, got)
		}
		if !MergeAllowed(existing, owner.Name) {
			return fmt.Errorf("%w: Secret %q has no annotation %s naming %q (or \"*\")", ErrMergeNotAllowed, existing.Name, AnnotationMergeAllowed, owner.Name)
		}
		return nil
	}
	if existing == nil {
		return nil
	}
	got := existing.Annotations[AnnotationOwner]
	if (existing.Labels[LabelManaged] != "true" && !unlabelledOwn(existing, owner, policy)) || got == "" {
		return fmt.Errorf("%w: Secret %q exists and is not managed by vaultsync", ErrConflict, existing.Name)
	}
	if got != owner.Key() {
		return fmt.Errorf("%w: Secret %q is managed by VaultSecret %q", ErrConflict, existing.Name, got)
	}
	for _, ref := range existing.OwnerReferences {
		if ref.Controller != nil && *ref.Controller && ref.UID != owner.UID && ref.Kind == owner.Kind {
			return fmt.Errorf("%w: Secret %q is controlled by another %s with the same name (recreated?)", ErrConflict, existing.Name, ref.Kind)
		}
	}
	return nil
}

// unlabelledOwn reports whether a Secret without the managed label is still
// one this owner wrote under PolicyOwner: it names the owner in its annotation
// and is controlled by the owner's very object (UID). Someone removed the
// label by hand; the next write puts it back. Without the controller
// reference (PolicyOrphan) the annotation alone proves nothing, and the
// Secret stays a conflict.
func unlabelledOwn(existing *corev1.Secret, owner Owner, policy Policy) bool {
	if policy != PolicyOwner || existing.Annotations[AnnotationOwner] != owner.Key() {
		return false
	}
	for _, ref := range existing.OwnerReferences {
		if ref.Controller != nil && *ref.Controller && ref.UID == owner.UID && ref.Kind == owner.Kind {
			return true
		}
	}
	return false
}

// Cached returns the target Secret as the cache sees it, nil when the cache
// does not hold it: absent, or a Secret vaultsync does not manage (which the
// cache never holds). A caller that writes after Cached relies on Apply's
// create, which fails on a name already taken and then reads and refuses a
// Secret that is not its own.
func (w *Writer) Cached(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	err := w.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// Apply writes the desired Secret unless existing already matches it.
// existing is what Get returned (nil: absent). The caller has checked
// ownership with CheckOwnership.
//
// A Secret that does not exist is created with a plain create, which fails
// when the name is taken: a Secret someone else made a moment ago (that the
// caller's cache has not seen yet) is then read and refused, never taken
// over. An existing Secret is written with server-side apply that carries
// its resourceVersion, so the write lands only on the very object whose
// ownership was checked; a Secret deleted and recreated meanwhile makes the
// write fail with a conflict and the caller starts again.
func (w *Writer) Apply(ctx context.Context, owner Owner, existing *corev1.Secret, d Desired) (Result, error) {
	if existing != nil && UpToDate(existing, owner, d) {
		return Result{}, nil
	}
	if d.Policy == PolicyMerge {
		if existing == nil {
			return Result{}, ErrTargetMissing
		}
		if err := w.checkMergeKeys(ctx, existing, owner, d); err != nil {
			return Result{}, err
		}
	}
	if existing != nil && d.Policy != PolicyMerge && existing.Type != "" && d.Type != "" && existing.Type != d.Type {
		// The type of a Secret is immutable: replace our own Secret.
		if err := w.Client.Delete(ctx, existing, client.Preconditions{UID: &existing.UID, ResourceVersion: &existing.ResourceVersion}); err != nil && !apierrors.IsNotFound(err) {
			return Result{}, fmt.Errorf("replacing Secret %q to change its type: %w", existing.Name, err)
		}
		existing = nil
	}
	if existing == nil {
		err := w.create(ctx, owner, d)
		if err == nil {
			return Result{Written: true, Created: true}, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return Result{}, err
		}
		// The name was taken after the caller looked: read what is there
		// and write only if it is ours after all (our own create that the
		// cache has not caught up with).
		if existing, err = w.live(ctx, owner.Namespace, d.Name); err != nil {
			return Result{}, err
		}
		if existing == nil { // deleted again meanwhile: the caller retries
			return Result{}, apierrors.NewConflict(corev1.Resource("secrets"), d.Name, errors.New("created and deleted by someone else meanwhile"))
		}
		if err := CheckOwnership(existing, owner, d.Policy); err != nil {
			return Result{}, err
		}
		if UpToDate(existing, owner, d) {
			return Result{}, nil
		}
	}
	ac := corev1ac.Secret(d.Name, owner.Namespace).
		WithResourceVersion(existing.ResourceVersion).
		WithLabels(desiredLabels(d)).
		WithAnnotations(desiredAnnotations(owner, d)).
		WithData(d.Data)
	fieldOwner := FieldOwner
	if d.Policy == PolicyMerge {
		fieldOwner = FieldOwner + ":" + owner.Name
	} else if d.Type != "" {
		ac.WithType(d.Type)
	}
	if d.Policy == PolicyOwner {
		ac.WithOwnerReferences(metav1ac.OwnerReference().
			WithAPIVersion(owner.APIVersion).WithKind(owner.Kind).
			WithName(owner.Name).WithUID(owner.UID).WithController(true))
	}
	if err := w.Client.Apply(ctx, ac, client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		return Result{}, fmt.Errorf("applying Secret %q: %w", d.Name, err)
	}
	// Server-side apply leaves keys that someone else added. A Secret this
	// VaultSecret owns outright holds exactly the desired keys, so remove
	// them (this only happens after a drift).
	if existing != nil && d.Policy != PolicyMerge {
		var extra []string
		for k := range existing.Data {
			if _, ok := d.Data[k]; !ok {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			if err := w.removeKeys(ctx, owner.Namespace, d.Name, extra); err != nil {
				return Result{}, err
			}
		}
	}
	return Result{Written: true}, nil
}

// create makes a new Secret; it fails with AlreadyExists when the name is
// taken.
func (w *Writer) create(ctx context.Context, owner Owner, d Desired) error {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: owner.Namespace, Name: d.Name,
			Labels: desiredLabels(d), Annotations: desiredAnnotations(owner, d),
		},
		Type: d.Type,
		Data: d.Data,
	}
	if d.Policy == PolicyOwner {
		s.OwnerReferences = []metav1.OwnerReference{{APIVersion: owner.APIVersion, Kind: owner.Kind,
			Name: owner.Name, UID: owner.UID, Controller: ptr.To(true)}}
	}
	if err := w.Client.Create(ctx, s, client.FieldOwner(FieldOwner)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return err
		}
		return fmt.Errorf("creating Secret %q: %w", d.Name, err)
	}
	return nil
}

// live reads a Secret bypassing any cache; nil when it does not exist.
func (w *Writer) live(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	r := w.Live
	if r == nil {
		r = w.Client
	}
	var s corev1.Secret
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %q: %w", name, err)
	}
	return &s, nil
}

// checkMergeKeys refuses a Merge that would write a key another Merge
// VaultSecret writes into the same Secret.
func (w *Writer) checkMergeKeys(ctx context.Context, existing *corev1.Secret, owner Owner, d Desired) error {
	for ann := range existing.Annotations {
		other, ok := strings.CutPrefix(ann, AnnotationMergePrefix)
		if !ok || other == "" || other == owner.Name {
			continue
		}
		for _, k := range MergeKeys(existing, other) {
			if _, clash := d.Data[k]; clash {
				if w.MergeOwnerExists != nil {
					if ok, err := w.MergeOwnerExists(ctx, owner.Namespace, other); err == nil && !ok {
						break // a VaultSecret that is gone: its keys are free
					}
				}
				return fmt.Errorf("%w: key %q of Secret %q is written by VaultSecret %q (creationPolicy Merge)",
					ErrConflict, k, existing.Name, owner.Namespace+"/"+other)
			}
		}
	}
	return nil
}

// Remove takes away what owner wrote: with merge, only its keys (server-side
// apply of nothing under its field manager); otherwise the whole Secret, if
// owner manages it.
func (w *Writer) Remove(ctx context.Context, owner Owner, name string, merge bool) error {
	existing, err := w.Get(ctx, owner.Namespace, name)
	if err != nil || existing == nil {
		return err
	}
	if merge {
		ac := corev1ac.Secret(name, owner.Namespace)
		if err := w.Client.Apply(ctx, ac, client.FieldOwner(FieldOwner+":"+owner.Name), client.ForceOwnership); err != nil {
			return fmt.Errorf("removing keys from Secret %q: %w", name, err)
		}
		return nil
	}
	if err := CheckOwnership(existing, owner, PolicyOwner); err != nil {
		return err
	}
	if err := w.Client.Delete(ctx, existing, client.Preconditions{UID: &existing.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Secret %q: %w", name, err)
	}
	return nil
}

// removeKeys deletes data keys with a JSON merge patch.
func (w *Writer) removeKeys(ctx context.Context, namespace, name string, keys []string) error {
	null := map[string]any{}
	for _, k := range keys {
		null[k] = nil
	}
	body, err := json.Marshal(map[string]any{"data": null})
	if err != nil {
		return err
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := w.Client.Patch(ctx, s, client.RawPatch(types.MergePatchType, body), client.FieldOwner(FieldOwner)); err != nil {
		return fmt.Errorf("removing foreign keys from Secret %q: %w", name, err)
	}
	return nil
}

func desiredLabels(d Desired) map[string]string {
	l := maps.Clone(d.Labels)
	if l == nil {
		l = map[string]string{}
	}
	l[LabelManaged] = "true"
	return l
}

func desiredAnnotations(owner Owner, d Desired) map[string]string {
	a := maps.Clone(d.Annotations)
	if a == nil {
		a = map[string]string{}
	}
	if d.Policy == PolicyMerge {
		a[AnnotationMergePrefix+owner.Name] = strings.Join(slices.Sorted(maps.Keys(d.Data)), ",")
	} else {
		a[AnnotationOwner] = owner.Key()
	}
	return a
}

// UpToDate reports whether existing already holds everything d wants, so
// that a refresh with unchanged data makes no write at all. For Merge only
// this VaultSecret's keys are compared; for the other policies keys that d no
// longer has count as a difference.
func UpToDate(existing *corev1.Secret, owner Owner, d Desired) bool {
	for k, v := range desiredLabels(d) {
		if got, ok := existing.Labels[k]; !ok || got != v {
			return false
		}
	}
	for k, v := range desiredAnnotations(owner, d) {
		if got, ok := existing.Annotations[k]; !ok || got != v {
			return false
		}
	}
	for k, v := range d.Data {
		if got, ok := existing.Data[k]; !ok || !hmac.Equal(got, v) {
			return false
		}
	}
	if d.Policy == PolicyMerge {
		return true
	}
	if len(existing.Data) != len(d.Data) {
		return false
	}
	if d.Type != "" && existing.Type != d.Type {
		return false
	}
	hasRef := false
	for _, ref := range existing.OwnerReferences {
		if ref.UID == owner.UID && ref.Controller != nil && *ref.Controller {
			hasRef = true
		}
	}
	return hasRef == (d.Policy == PolicyOwner)
}

// Hash returns the hex HMAC-SHA256 of data under key. Keys are sorted and
// every key and value is length-prefixed, so no two different maps share an
// encoding. A plain hash of a secret would let anyone who can read status
// test guesses offline; the HMAC key never leaves the installation.
func Hash(key []byte, data map[string][]byte) string {
	m := hmac.New(sha256.New, key)
	var n [8]byte
	for _, k := range slices.Sorted(maps.Keys(data)) {
		binary.BigEndian.PutUint64(n[:], uint64(len(k)))
		m.Write(n[:])
		m.Write([]byte(k))
		binary.BigEndian.PutUint64(n[:], uint64(len(data[k])))
		m.Write(n[:])
		m.Write(data[k])
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Subset returns the entries of data whose keys are in keys.
func Subset(data map[string][]byte, keys []string) map[string][]byte {
	out := make(map[string][]byte, len(keys))
	for _, k := range keys {
		if v, ok := data[k]; ok {
			out[k] = v
		}
	}
	return out
}

// MergeAllowed reports whether s lets the VaultSecret name merge into it: its
// AnnotationMergeAllowed names it or is "*", or that VaultSecret already
// merged into it (Secrets merged into before the annotation existed keep
// working).
func MergeAllowed(s *corev1.Secret, name string) bool {
	if _, ok := s.Annotations[AnnotationMergePrefix+name]; ok {
		return true
	}
	for _, n := range strings.Split(s.Annotations[AnnotationMergeAllowed], ",") {
		if n = strings.TrimSpace(n); n == "*" || n == name {
			return true
		}
	}
	return false
}

// MergeKeys returns the keys a Merge VaultSecret named name last wrote into s.
func MergeKeys(s *corev1.Secret, name string) []string {
	v, ok := s.Annotations[AnnotationMergePrefix+name]
	if !ok || v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// OwnersOf returns the VaultSecrets (namespace/name) that write into s.
func OwnersOf(s metav1.Object) []types.NamespacedName {
	var out []types.NamespacedName
	if o := s.GetAnnotations()[AnnotationOwner]; o != "" {
		if ns, name, ok := strings.Cut(o, "/"); ok && ns == s.GetNamespace() {
			out = append(out, types.NamespacedName{Namespace: ns, Name: name})
		}
	}
	for k := range s.GetAnnotations() {
		if name, ok := strings.CutPrefix(k, AnnotationMergePrefix); ok && name != "" {
			out = append(out, types.NamespacedName{Namespace: s.GetNamespace(), Name: name})
		}
	}
	return out
}
