package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/audit"
	"github.com/vaultsync/vaultsync/internal/connector"
	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/metrics"
	"github.com/vaultsync/vaultsync/internal/push"
)

// Reasons of a VaultPushSecret's Ready condition and events, besides the Key Vault, Entra and
// connection reasons it shares with VaultSecrets.
const (
	ReasonPushed               = "Pushed"
	ReasonSourceSecretNotFound = "SourceSecretNotFound"
	ReasonRemoteConflict       = "RemoteConflict"
	ReasonPushFailed           = "PushFailed"
	ReasonRemoteDeleted        = "RemoteDeleted"
	ReasonCleanupSkipped       = "CleanupSkipped"
)

// VaultPushSecretReconciler writes a Secret of a VaultPushSecret's namespace into Key Vault.
//
// It runs only with --vault-push-secrets: it needs to read the data of Secrets that are not
// managed by vaultsync, which it does with direct GETs of the one Secret each VaultPushSecret
// names (never a cache of any Secret's data), woken by a metadata-only watch of that Secret.
type VaultPushSecretReconciler struct {
	Client client.Client
	// Live reads the source Secret from the API server (it is not in the manager's cache).
	Live client.Reader
	// Vaults also watches the source Secret by name (metadata only) from the first reconcile
	// on, so that an edit, a deletion or a late creation wakes the VaultPushSecret.
	Vaults   PushVaults
	Recorder events.EventRecorder
	// HashKey is the installation's HMAC key: the vaultsync-data-hmac tag is an HMAC under it.
	HashKey []byte
	// ClusterID is the first part of the vaultsync-owner tag.
	ClusterID string
	// Metrics counts pushes (nil: none).
	Metrics *metrics.Metrics
	// CleanupTimeout bounds how long deletionPolicy Delete keeps retrying a transient failure
	// before it lets the VaultPushSecret go (default 10 minutes).
	CleanupTimeout time.Duration
	Now            func() time.Time
}

// +kubebuilder:rbac:groups=vaultsync.io,resources=vaultpushsecrets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=vaultsync.io,resources=vaultpushsecrets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=vaultsync.io,resources=vaultpushsecrets/finalizers,verbs=update

// Reconcile pushes one VaultPushSecret: read the Secret, build the objects, check each one's
// owner in the vault, write those whose data differs, record the outcome.
func (r *VaultPushSecretReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ps := &v1alpha1.VaultPushSecret{}
	if err := r.Client.Get(ctx, req.NamespacedName, ps); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ps.DeletionTimestamp.IsZero() {
		return r.cleanup(ctx, ps)
	}
	if err := r.syncFinalizer(ctx, ps); err != nil {
		return ctrl.Result{}, err
	}

	orig := ps.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(orig.Status, ps.Status) {
			return
		}
		if err := r.Client.Status().Patch(ctx, ps, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			logf.FromContext(ctx).Error(err, "updating status")
		}
	}()
	owner := push.Owner(r.ClusterID, ps.Namespace, ps.Name)
	ps.Status.Owner = owner

	srcKey := client.ObjectKey{Namespace: ps.Namespace, Name: ps.Spec.SecretRef.Name}
	// Starts the watch of the source Secret (the data is read live below). A failure only
	// delays the wake-up to the next refresh.
	if err := r.Vaults.WatchSecret(ctx, srcKey); err != nil && !apierrors.IsNotFound(err) {
		logf.FromContext(ctx).V(1).Info("watching the source Secret", "error", err.Error())
	}
	src := &corev1.Secret{}
	if err := r.Live.Get(ctx, srcKey, src); err != nil {
		if apierrors.IsNotFound(err) {
			return r.fail(ctx, ps, &connector.RefusedError{Reason: ReasonSourceSecretNotFound, Message: fmt.Sprintf(
				"Secret %q does not exist in namespace %q: create it, or name another in spec.secretRef (pushed as soon as it exists)",
				ps.Spec.SecretRef.Name, ps.Namespace)})
		}
		return ctrl.Result{}, fmt.Errorf("reading Secret %s/%s: %w", ps.Namespace, ps.Spec.SecretRef.Name, err)
	}
	objects, err := push.Build(&ps.Spec, src.Name, src.Data)
	if err != nil {
		return r.fail(ctx, ps, err)
	}

	vault, err := r.Vaults.ForPush(ctx, ps)
	if err != nil {
		return r.fail(ctx, ps, err)
	}
	ctx = audit.WithSubject(ctx, auditSubjectOf("VaultPushSecret", ps.Namespace, ps.Name, vault.IdentityKey()))

	now := r.now()
	prev := map[string]v1alpha1.PushedObject{}
	for _, o := range ps.Status.Objects {
		prev[pushedKey(o.Type, o.Name)] = o
	}
	pushed := make([]v1alpha1.PushedObject, 0, len(objects))
	written := 0
	for _, obj := range objects {
		p, wrote, err := r.pushOne(ctx, vault, ps, owner, obj, prev[pushedKey(obj.Type, obj.Name)], now)
		if err != nil {
			return r.fail(ctx, ps, err)
		}
		if wrote {
			written++
			logf.FromContext(ctx).Info("pushed", "vault", vault.Host(), "object", obj.String(), "version", p.Version)
		}
		pushed = append(pushed, p)
	}

	wasReady := meta.IsStatusConditionTrue(ps.Status.Conditions, v1alpha1.ConditionReady)
	ps.Status.ObservedGeneration = ps.Generation
	ps.Status.PushedVault = vault.Host()
	ps.Status.Objects = pushed
	ps.Status.LastPushTime = &metav1.Time{Time: now}
	msg := fmt.Sprintf("%d Key Vault objects on %s hold the data of Secret %q", len(pushed), vault.Host(), src.Name)
	if ps.UpdatePolicyOrDefault() == v1alpha1.UpdateIfNotExists {
		msg = fmt.Sprintf("%d Key Vault objects on %s exist (updatePolicy IfNotExists: written once, never updated)", len(pushed), vault.Host())
	}
	meta.SetStatusCondition(&ps.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: ReasonPushed, ObservedGeneration: ps.Generation, Message: msg})
	switch {
	case written > 0:
		r.event(ps, corev1.EventTypeNormal, ReasonPushed, "Push", fmt.Sprintf("wrote %d new versions to %s from Secret %q", written, vault.Host(), src.Name))
	case !wasReady:
		r.event(ps, corev1.EventTypeNormal, ReasonPushed, "Push", msg)
	}
	result := metrics.PushUnchanged
	if written > 0 {
		result = metrics.PushWritten
	}
	r.Metrics.ObservePush(result, ReasonPushed, written)
	var res ctrl.Result
	if d := ps.RefreshIntervalOrDefault(); d > 0 {
		res.RequeueAfter = jitter(d)
	}
	return res, nil
}

// pushedKey identifies an object of status.objects; Key Vault names are case-insensitive.
func pushedKey(t v1alpha1.PushObjectType, name string) string {
	return string(t) + "/" + strings.ToLower(name)
}

// pushOne brings one object in line: it is written when absent, or when it is this
// VaultPushSecret's and holds other data; an object of someone else is never written.
func (r *VaultPushSecretReconciler) pushOne(ctx context.Context, vault connector.PushVault, ps *v1alpha1.VaultPushSecret, owner string,
	obj push.Object, prev v1alpha1.PushedObject, now time.Time) (v1alpha1.PushedObject, bool, error) {
	digest := push.Digest(r.HashKey, obj)
	out := v1alpha1.PushedObject{Name: obj.Name, Type: obj.Type, LastWriteTime: prev.LastWriteTime}
	info, err := remoteInfo(ctx, vault, obj.Type, obj.Name)
	switch {
	case errors.Is(err, keyvault.ErrNotFound):
		info = nil
	case err != nil:
		return out, false, err
	}
	if info != nil {
		if ps.UpdatePolicyOrDefault() == v1alpha1.UpdateIfNotExists {
			out.Version, out.DataHash = info.Version, info.Tags[v1alpha1.TagDataHash]
			return out, false, nil
		}
		if err := checkOwner(vault.Host(), obj, info, owner, prev); err != nil {
			return out, false, err
		}
		if info.Tags[v1alpha1.TagOwner] == owner && info.Tags[v1alpha1.TagDataHash] == digest {
			out.Version, out.DataHash = info.Version, digest
			return out, false, nil
		}
	}
	tags := push.Tags(owner, digest)
	var written *keyvault.ObjectInfo
	if obj.Type == v1alpha1.PushTypeCertificate {
		written, err = vault.ImportCertificate(ctx, obj.Name, obj.Value, tags)
	} else {
		written, err = vault.SetSecret(ctx, obj.Name, obj.Value, obj.ContentType, tags)
	}
	if err != nil {
		return out, false, err
	}
	out.Version, out.DataHash, out.LastWriteTime = written.Version, digest, &metav1.Time{Time: now}
	return out, true, nil
}

func remoteInfo(ctx context.Context, vault connector.PushVault, t v1alpha1.PushObjectType, name string) (*keyvault.ObjectInfo, error) {
	if t == v1alpha1.PushTypeCertificate {
		return vault.GetCertificateInfo(ctx, name)
	}
	return vault.GetSecretInfo(ctx, name)
}

// checkOwner refuses to write over an object that is not this VaultPushSecret's. An object
// carries its owner in the vaultsync-owner tag of its latest version; a version without the tag
// written over an object this VaultPushSecret had written (status.objects records when) is
// drift, restored like any change made by someone else. An object IfNotExists merely found was
// never written by it, and stays someone else's.
func checkOwner(host string, obj push.Object, info *keyvault.ObjectInfo, owner string, prev v1alpha1.PushedObject) error {
	kind := "secret"
	if obj.Type == v1alpha1.PushTypeCertificate {
		kind = "certificate"
	}
	if obj.Type == v1alpha1.PushTypeSecret && info.Managed {
		return &conflictError{fmt.Sprintf("Key Vault secret %q on %s belongs to a certificate of the same name and cannot be set: "+
			"choose another remote.name, or push it as type certificate", obj.Name, host)}
	}
	got := info.Tags[v1alpha1.TagOwner]
	switch {
	case got == owner:
		return nil
	case got != "":
		return &conflictError{fmt.Sprintf("Key Vault %s %q on %s is owned by %s=%s, not by this VaultPushSecret (%s): "+
			"choose another remote.name, or have the owner release it by setting the tag to %s", kind, obj.Name, host,
			v1alpha1.TagOwner, got, owner, owner)}
	case prev.LastWriteTime != nil:
		return nil // written by this VaultPushSecret before; someone wrote a version without tags
	}
	return &conflictError{fmt.Sprintf("Key Vault %s %q on %s exists and was not written by this VaultPushSecret; it is left alone: "+
		"to hand it over, add the tag %s=%s to its latest version (az keyvault %s set-attributes --tags), or choose another remote.name",
		kind, obj.Name, host, v1alpha1.TagOwner, owner, kind)}
}

// conflictError is a RemoteConflict: an object in the vault that is not this VaultPushSecret's.
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

// fail records a failed push. Nothing in the vault changed on this path beyond the objects
// written before the failure (status keeps the previous list).
func (r *VaultPushSecretReconciler) fail(ctx context.Context, ps *v1alpha1.VaultPushSecret, err error) (ctrl.Result, error) {
	reason, message, retry := classifyPush(err)
	var prev *metav1.Condition
	if c := meta.FindStatusCondition(ps.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		prev = c.DeepCopy()
	}
	ps.Status.ObservedGeneration = ps.Generation
	meta.SetStatusCondition(&ps.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: reason, ObservedGeneration: ps.Generation, Message: message})
	if prev == nil || prev.Status != metav1.ConditionFalse || prev.Reason != reason || prev.Message != message {
		r.event(ps, corev1.EventTypeWarning, ReasonPushFailed, "Push", message)
	}
	logf.FromContext(ctx).Info("push failed", "reason", reason, "retry", retry)
	r.Metrics.ObservePush(metrics.PushFailure, reason, 0)
	switch retry {
	case retryBackoff:
		return ctrl.Result{}, errSyncFailed{reason: reason}
	case retryAfterInterval:
		// Only a change in the vault fixes it, and nothing watches the vault: look again
		// after the refresh interval, at most five minutes.
		d := ps.RefreshIntervalOrDefault()
		if d <= 0 || d > 5*time.Minute {
			d = 5 * time.Minute
		}
		return ctrl.Result{RequeueAfter: jitter(d)}, nil
	}
	return ctrl.Result{}, nil // a change of the spec, the Secret or the connection is watched
}

// classifyPush is classify for pushes: the push's own failures first, then those shared with
// VaultSecrets (connections, Entra, Key Vault).
func classifyPush(err error) (reason, message string, retry retryMode) {
	var conflict *conflictError
	if errors.As(err, &conflict) {
		return ReasonRemoteConflict, conflict.msg, retryAfterInterval
	}
	if r := push.Reason(err); r != "" {
		return r, err.Error(), retryOnChange
	}
	var kv *keyvault.Error
	if errors.As(err, &kv) && kv.Status == 409 && kv.InnerCode == "ObjectIsDeletedButRecoverable" {
		return ReasonRemoteDeleted, fmt.Sprintf("%v; the object is soft-deleted in the vault and its name cannot be reused until "+
			"someone recovers it (az keyvault %s recover; it must then carry this VaultPushSecret's owner tag) or purges it", err, kv.Type), retryAfterInterval
	}
	if errors.As(err, &kv) && kv.Status == 409 {
		return ReasonRemoteConflict, fmt.Sprintf("%v; another object of that name is in the way (for a certificate: a secret or key "+
			"of the same name that no certificate manages): choose another remote.name, or remove that object", err), retryAfterInterval
	}
	return classify(err)
}

// syncFinalizer keeps the cleanup finalizer on exactly the VaultPushSecrets with deletionPolicy
// Delete: a Retain one has nothing to clean and must never hold up its namespace's deletion.
func (r *VaultPushSecretReconciler) syncFinalizer(ctx context.Context, ps *v1alpha1.VaultPushSecret) error {
	want := ps.DeletionPolicyOrDefault() == v1alpha1.DeletionDelete
	if want == controllerutil.ContainsFinalizer(ps, v1alpha1.FinalizerPushCleanup) {
		return nil
	}
	patch := client.MergeFrom(ps.DeepCopy())
	if want {
		controllerutil.AddFinalizer(ps, v1alpha1.FinalizerPushCleanup)
	} else {
		controllerutil.RemoveFinalizer(ps, v1alpha1.FinalizerPushCleanup)
	}
	if err := r.Client.Patch(ctx, ps, patch); err != nil {
		return fmt.Errorf("updating finalizers: %w", err)
	}
	return nil
}

func (r *VaultPushSecretReconciler) event(ps *v1alpha1.VaultPushSecret, typ, reason, action, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ps, nil, typ, reason, action, "%s", note)
	}
}

func (r *VaultPushSecretReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
