package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/connector"
)

// Reasons of a ClusterVaultSecret's failed namespaces besides those of connections.
const (
	// ReasonNamespaceNotWatched: the operator runs with --watch-namespaces and this namespace
	// is not one of them.
	ReasonNamespaceNotWatched = "NamespaceNotWatched"
	// ReasonPending: the namespace's VaultSecret has not reported on its current spec yet.
	ReasonPending = "Pending"
)

// ClusterVaultSecretReconciler keeps one VaultSecret per selected namespace for each
// ClusterVaultSecret. The copies are ordinary VaultSecrets: the VaultSecret controller syncs
// them, checks the ClusterVaultConnection again, and shares Key Vault reads between them
// (same identity, same object: one GET, see internal/keyvault's Coalescer).
//
// It needs rights the rest of the operator does not (create/update/delete VaultSecrets,
// get/list/watch Namespaces), so it runs only with --cluster-vault-secrets and its rules live in
// config/rbac/cluster_vault_secrets_role.yaml and the chart's clusterVaultSecrets.enabled, not in
// markers of the always-installed role.
type ClusterVaultSecretReconciler struct {
	Client client.Client
	// Namespaces applies a ClusterVaultConnection's allowedNamespaces (the credential backend).
	Namespaces NamespaceRules
	Recorder   events.EventRecorder
	// WatchNamespaces, when not empty, are the only namespaces the manager caches and so the
	// only ones that can receive a copy.
	WatchNamespaces []string
}

// target is the outcome for one selected namespace.
type target struct {
	ns      string
	copy    *v1alpha1.VaultSecret // the owned copy, nil when there is none (or it was just removed)
	failure *v1alpha1.NamespaceFailure
}

// Reconcile brings the copies of one ClusterVaultSecret in line with its spec and summarises
// them in status.
func (r *ClusterVaultSecretReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cvs := &v1alpha1.ClusterVaultSecret{}
	if err := r.Client.Get(ctx, req.NamespacedName, cvs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // its copies go with the garbage collector
	}
	if !cvs.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	orig := cvs.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(orig.Status, cvs.Status) {
			return
		}
		if err := r.Client.Status().Patch(ctx, cvs, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
			logf.FromContext(ctx).Error(err, "updating status")
		}
	}()

	selected, err := r.selectedNamespaces(ctx, cvs)
	if err != nil {
		return ctrl.Result{}, err
	}
	owned, err := r.ownedCopies(ctx, cvs)
	if err != nil {
		return ctrl.Result{}, err
	}
	cvc, refusal, err := r.connection(ctx, cvs)
	if err != nil {
		return ctrl.Result{}, err
	}

	targets := make([]target, 0, len(selected))
	for _, ns := range selected {
		t, err := r.provision(ctx, cvs, cvc, refusal, ns, owned[ns])
		if err != nil {
			return ctrl.Result{}, err
		}
		targets = append(targets, t)
		delete(owned, ns)
	}
	// A namespace that is no longer selected loses its copy.
	for _, vs := range owned {
		if err := r.remove(ctx, vs, "namespace no longer selected"); err != nil {
			return ctrl.Result{}, err
		}
	}
	r.summarise(cvs, targets)
	return ctrl.Result{}, nil
}

// selectedNamespaces lists, sorted, the existing namespaces named in spec.namespaces or matching
// spec.namespaceSelector. Terminating namespaces are left out: nothing can be created there.
func (r *ClusterVaultSecretReconciler) selectedNamespaces(ctx context.Context, cvs *v1alpha1.ClusterVaultSecret) ([]string, error) {
	sel := labels.Nothing()
	if cvs.Spec.NamespaceSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(cvs.Spec.NamespaceSelector)
		if err != nil {
			return nil, fmt.Errorf("spec.namespaceSelector: %w", err)
		}
		sel = s
	}
	var list corev1.NamespaceList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing Namespaces: %w", err)
	}
	var out []string
	for i := range list.Items {
		n := &list.Items[i]
		if n.DeletionTimestamp != nil || n.Status.Phase == corev1.NamespaceTerminating {
			continue
		}
		if slices.Contains(cvs.Spec.Namespaces, n.Name) || sel.Matches(labels.Set(n.Labels)) {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ownedCopies maps namespace to the copy this ClusterVaultSecret created there. The label finds
// candidates; only the controller owner reference proves a VaultSecret is one of its copies, so a
// tenant's VaultSecret that merely carries the label is never touched.
func (r *ClusterVaultSecretReconciler) ownedCopies(ctx context.Context, cvs *v1alpha1.ClusterVaultSecret) (map[string]*v1alpha1.VaultSecret, error) {
	var list v1alpha1.VaultSecretList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{v1alpha1.LabelClusterVaultSecret: cvs.Name}); err != nil {
		return nil, fmt.Errorf("listing VaultSecrets: %w", err)
	}
	out := map[string]*v1alpha1.VaultSecret{}
	for i := range list.Items {
		vs := &list.Items[i]
		if ownedBy(vs, cvs) {
			out[vs.Namespace] = vs
		}
	}
	return out, nil
}

func ownedBy(vs *v1alpha1.VaultSecret, cvs *v1alpha1.ClusterVaultSecret) bool {
	ref := metav1.GetControllerOf(vs)
	return ref != nil && ref.UID == cvs.UID
}

// connection reads the ClusterVaultConnection of the template. A missing one is a refusal for
// every namespace (nil connection); admission guarantees the kind.
func (r *ClusterVaultSecretReconciler) connection(ctx context.Context, cvs *v1alpha1.ClusterVaultSecret) (*v1alpha1.ClusterVaultConnection, *connector.RefusedError, error) {
	ref := cvs.Spec.Template.Spec.ConnectionRef
	if ref == nil || ref.KindOrDefault() != v1alpha1.KindClusterVaultConnection {
		return nil, &connector.RefusedError{Reason: ReasonInvalidSpec, Message: "spec.template.spec.connectionRef must name a ClusterVaultConnection"}, nil
	}
	cvc := &v1alpha1.ClusterVaultConnection{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: ref.Name}, cvc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &connector.RefusedError{Reason: ReasonConnectionNotFound, Message: fmt.Sprintf(
				"ClusterVaultConnection %q does not exist: create it, or name another in spec.template.spec.connectionRef", ref.Name)}, nil
		}
		return nil, nil, fmt.Errorf("reading ClusterVaultConnection %s: %w", ref.Name, err)
	}
	return cvc, nil, nil
}

// provision makes namespace ns hold the copy it should, or says why it cannot.
func (r *ClusterVaultSecretReconciler) provision(ctx context.Context, cvs *v1alpha1.ClusterVaultSecret,
	cvc *v1alpha1.ClusterVaultConnection, refused *connector.RefusedError, ns string, copy *v1alpha1.VaultSecret) (target, error) {
	fail := func(reason, msg string) target {
		return target{ns: ns, copy: copy, failure: &v1alpha1.NamespaceFailure{Namespace: ns, Reason: reason, Message: msg}}
	}
	if len(r.WatchNamespaces) > 0 && !slices.Contains(r.WatchNamespaces, ns) {
		return fail(ReasonNamespaceNotWatched, fmt.Sprintf("the operator watches only %v (--watch-namespaces): add %q there, "+
			"or deselect it", r.WatchNamespaces, ns)), nil
	}
	if refused != nil {
		// Without its connection a copy could not sync anyway; an existing one is kept (its own
		// status says the same) so that a mistyped or recreated connection deletes no Secret.
		return fail(refused.Reason, refused.Message), nil
	}
	// The same rule the VaultSecret controller applies to each copy, written once.
	ok, err := r.Namespaces.NamespaceAllowed(ctx, &cvc.Spec.AllowedNamespaces, ns)
	if err != nil {
		var ref *connector.RefusedError
		if !errors.As(err, &ref) {
			return target{}, err
		}
		ok = false
		refused = ref
	}
	if !ok {
		if copy != nil {
			if err := r.remove(ctx, copy, "namespace not allowed by the ClusterVaultConnection"); err != nil {
				return target{}, err
			}
			copy = nil
		}
		if refused != nil {
			return fail(refused.Reason, refused.Message), nil
		}
		return fail(ReasonNamespaceNotAllowed, fmt.Sprintf("ClusterVaultConnection %q does not allow namespace %q, so it gets no VaultSecret: "+
			"ask a cluster administrator to add it to spec.allowedNamespaces, or deselect it", cvc.Name, ns)), nil
	}

	desired := r.desired(cvs, ns)
	if copy == nil {
		existing := &v1alpha1.VaultSecret{}
		err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), existing)
		switch {
		case err == nil:
			return fail(ReasonTargetConflict, fmt.Sprintf("VaultSecret %s/%s exists and was not created by this ClusterVaultSecret; it is left alone: "+
				"delete or rename it, or set spec.vaultSecretName to another name", ns, desired.Name)), nil
		case !apierrors.IsNotFound(err):
			return target{}, fmt.Errorf("reading VaultSecret %s/%s: %w", ns, desired.Name, err)
		}
		if err := r.Client.Create(ctx, desired); err != nil {
			if apierrors.IsAlreadyExists(err) { // created meanwhile; the cache shows whose it is next time
				return target{}, fmt.Errorf("creating VaultSecret %s/%s: %w", ns, desired.Name, err)
			}
			if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) { // namespace gone or terminating, or no right
				return fail(ReasonSyncFailed, fmt.Sprintf("creating VaultSecret %s/%s: %v", ns, desired.Name, err)), nil
			}
			return target{}, fmt.Errorf("creating VaultSecret %s/%s: %w", ns, desired.Name, err)
		}
		logf.FromContext(ctx).V(1).Info("created VaultSecret", "object", client.ObjectKeyFromObject(desired))
		return target{ns: ns, copy: desired}, nil
	}
	if copy.Name != desired.Name { // spec.vaultSecretName changed: replace the copy
		if err := r.remove(ctx, copy, "spec.vaultSecretName changed"); err != nil {
			return target{}, err
		}
		return r.provision(ctx, cvs, cvc, nil, ns, nil)
	}
	if equality.Semantic.DeepEqual(copy.Spec, desired.Spec) && equality.Semantic.DeepEqual(copy.Labels, desired.Labels) &&
		equality.Semantic.DeepEqual(copy.Annotations, desired.Annotations) {
		return target{ns: ns, copy: copy}, nil
	}
	updated := copy.DeepCopy()
	updated.Spec, updated.Labels, updated.Annotations = desired.Spec, desired.Labels, desired.Annotations
	if err := r.Client.Update(ctx, updated); err != nil {
		return target{}, fmt.Errorf("updating VaultSecret %s/%s: %w", ns, copy.Name, err)
	}
	logf.FromContext(ctx).V(1).Info("updated VaultSecret", "object", client.ObjectKeyFromObject(updated))
	return target{ns: ns, copy: updated}, nil
}

// desired is the copy for namespace ns: the template, the label and the controller reference.
func (r *ClusterVaultSecretReconciler) desired(cvs *v1alpha1.ClusterVaultSecret, ns string) *v1alpha1.VaultSecret {
	lbls := maps.Clone(cvs.Spec.Template.Metadata.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[v1alpha1.LabelClusterVaultSecret] = cvs.Name
	vs := &v1alpha1.VaultSecret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: cvs.VaultSecretNameOrDefault(),
			Labels: lbls, Annotations: maps.Clone(cvs.Spec.Template.Metadata.Annotations),
		},
		Spec: *cvs.Spec.Template.Spec.DeepCopy(),
	}
	yes := true
	vs.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "ClusterVaultSecret", Name: cvs.Name, UID: cvs.UID,
		Controller: &yes, BlockOwnerDeletion: &yes,
	}}
	return vs
}

// remove deletes a copy (its Secret follows through the garbage collector, as for any
// VaultSecret), guarded by its UID so a VaultSecret recreated meanwhile is not touched.
func (r *ClusterVaultSecretReconciler) remove(ctx context.Context, vs *v1alpha1.VaultSecret, why string) error {
	uid := vs.UID
	err := r.Client.Delete(ctx, vs, client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting VaultSecret %s/%s: %w", vs.Namespace, vs.Name, err)
	}
	logf.FromContext(ctx).Info("deleted VaultSecret", "object", client.ObjectKeyFromObject(vs), "why", why)
	return nil
}

// summarise writes the status: provisioned and failed namespaces, counts and Ready.
func (r *ClusterVaultSecretReconciler) summarise(cvs *v1alpha1.ClusterVaultSecret, targets []target) {
	st := &cvs.Status
	st.ObservedGeneration = cvs.Generation
	var provisioned []string
	var failed []v1alpha1.NamespaceFailure
	notAllowed, conflicts, notReady := 0, 0, 0
	for _, t := range targets {
		f := t.failure
		if f == nil {
			f = copyFailure(t.ns, t.copy)
			if f != nil {
				notReady++
			}
		} else {
			switch f.Reason {
			case ReasonNamespaceNotAllowed:
				notAllowed++
			case ReasonTargetConflict:
				conflicts++
			}
		}
		if f != nil {
			failed = append(failed, *f)
		} else {
			provisioned = append(provisioned, t.ns)
		}
	}
	st.ProvisionedCount, st.FailedCount = count32(len(provisioned)), count32(len(failed))
	st.ProvisionedNamespaces = provisioned[:min(len(provisioned), v1alpha1.MaxListedNamespaces)]
	st.FailedNamespaces = failed[:min(len(failed), v1alpha1.MaxListedNamespaces)]

	c := metav1.Condition{Type: v1alpha1.ConditionReady, ObservedGeneration: cvs.Generation, Status: metav1.ConditionFalse}
	switch {
	case len(targets) == 0:
		c.Reason = v1alpha1.ReasonNoNamespaces
		c.Message = "no existing namespace is listed in spec.namespaces or matches spec.namespaceSelector: create or label one, or change the spec"
	case len(failed) == 0:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonProvisioned
		c.Message = fmt.Sprintf("VaultSecret %q is Ready in all %d selected namespaces", cvs.VaultSecretNameOrDefault(), len(provisioned))
	case notReady == len(failed):
		c.Reason = v1alpha1.ReasonCopiesNotReady
		c.Message = fmt.Sprintf("%d of %d VaultSecrets are not Ready yet (first: %s: %s); see status.failedNamespaces and each VaultSecret's Ready condition",
			len(failed), len(targets), failed[0].Namespace, failed[0].Reason)
	default:
		c.Reason = v1alpha1.ReasonPartiallyProvisioned
		if notAllowed == len(failed) {
			c.Reason = ReasonNamespaceNotAllowed
		} else if conflicts == len(failed) {
			c.Reason = ReasonTargetConflict
		}
		c.Message = fmt.Sprintf("%d of %d selected namespaces have no Ready VaultSecret (first: %s: %s); see status.failedNamespaces for each reason and what to do",
			len(failed), len(targets), failed[0].Namespace, failed[0].Reason)
	}
	prev := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	changed := prev == nil || prev.Status != c.Status || prev.Reason != c.Reason
	meta.SetStatusCondition(&st.Conditions, c)
	if changed && r.Recorder != nil {
		typ := corev1.EventTypeWarning
		if c.Status == metav1.ConditionTrue {
			typ = corev1.EventTypeNormal
		}
		r.Recorder.Eventf(cvs, nil, typ, c.Reason, "FanOut", "%s", c.Message)
	}
}

// copyFailure is nil when the copy is Ready for its current spec, or the failure its Ready
// condition reports (its message never holds a value: VaultSecret conditions never do).
func copyFailure(ns string, vs *v1alpha1.VaultSecret) *v1alpha1.NamespaceFailure {
	c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady)
	switch {
	case c == nil || c.ObservedGeneration != vs.Generation || vs.Generation == 0:
		return &v1alpha1.NamespaceFailure{Namespace: ns, Reason: ReasonPending,
			Message: fmt.Sprintf("VaultSecret %s/%s has not synced its current spec yet", ns, vs.Name)}
	case c.Status == metav1.ConditionTrue:
		return nil
	}
	return &v1alpha1.NamespaceFailure{Namespace: ns, Reason: c.Reason,
		Message: fmt.Sprintf("VaultSecret %s/%s: %s", ns, vs.Name, c.Message)}
}

// count32 is n as a status count; a cluster has far fewer namespaces than
// int32 holds, but the status says the most it can rather than wrap round.
func count32(n int) int32 {
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(n) // #nosec G115 -- bounded above.
}
