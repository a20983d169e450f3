// Package rollout restarts the workloads that consume a Secret when its data
// changes, the way `kubectl rollout restart` does: by changing an annotation
// of the pod template. Each restart is keyed by the data it was made for, so
// a repeated call for the same data (an operator restart, a retried sync, a
// second replica) never rolls the workload out twice.
package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// AnnotationRestartedAt is set on the pod template to the time of the
	// restart; changing it makes the workload controller roll out new pods.
	AnnotationRestartedAt = "vaultsync.io/restartedAt"
	// AnnotationPrefix + VaultSecret name records, on the pod template, the
	// data version a restart was made for.
	AnnotationPrefix = "restart.vaultsync.io/"
)

// Kinds that can be restarted.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
)

// Target is a workload in the VaultSecret's namespace.
type Target struct {
	Kind string
	Name string
}

// Outcome of one target.
type Outcome struct {
	Target Target
	// Restarted is true when the pod template was patched now.
	Restarted bool
	// Missing is true when the workload does not exist.
	Missing bool
}

// Restarter patches workloads. Reader may be a cached or a live reader: it
// is used only to skip workloads already restarted for this data version.
type Restarter struct {
	Client client.Client
	Reader client.Reader
	Now    func() time.Time
}

// Restart rolls out every target of namespace for the data version `version`
// of the VaultSecret named owner. Missing targets are reported, not errors.
// It stops at the first target that fails: the outcomes returned with the
// error are those of the targets before it.
func (r *Restarter) Restart(ctx context.Context, namespace, owner, version string, targets []Target) ([]Outcome, error) {
	out := make([]Outcome, 0, len(targets))
	for _, t := range targets {
		o, err := r.restart(ctx, namespace, owner, version, t)
		if err != nil {
			return out, err
		}
		out = append(out, o)
	}
	return out, nil
}

func (r *Restarter) restart(ctx context.Context, namespace, owner, version string, t Target) (Outcome, error) {
	obj, err := newObject(t.Kind)
	if err != nil {
		return Outcome{Target: t}, err
	}
	reader := r.Reader
	if reader == nil {
		reader = r.Client
	}
	key := types.NamespacedName{Namespace: namespace, Name: t.Name}
	if err := reader.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return Outcome{Target: t, Missing: true}, nil
		}
		return Outcome{Target: t}, fmt.Errorf("reading %s %q: %w", t.Kind, t.Name, err)
	}
	if podTemplateAnnotations(obj)[AnnotationPrefix+owner] == version {
		return Outcome{Target: t}, nil // already restarted for this data
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{
			AnnotationRestartedAt:    now().UTC().Format(time.RFC3339),
			AnnotationPrefix + owner: version,
		},
	}}}})
	if err != nil {
		return Outcome{Target: t}, err
	}
	if err := r.Client.Patch(ctx, obj, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		if apierrors.IsNotFound(err) {
			return Outcome{Target: t, Missing: true}, nil
		}
		return Outcome{Target: t}, fmt.Errorf("restarting %s %q: %w", t.Kind, t.Name, err)
	}
	return Outcome{Target: t, Restarted: true}, nil
}

func newObject(kind string) (client.Object, error) {
	switch kind {
	case KindDeployment:
		return &appsv1.Deployment{}, nil
	case KindStatefulSet:
		return &appsv1.StatefulSet{}, nil
	case KindDaemonSet:
		return &appsv1.DaemonSet{}, nil
	}
	return nil, fmt.Errorf("cannot restart a %q: only Deployment, StatefulSet and DaemonSet", kind)
}

func podTemplateAnnotations(obj client.Object) map[string]string {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Spec.Template.Annotations
	case *appsv1.StatefulSet:
		return o.Spec.Template.Annotations
	case *appsv1.DaemonSet:
		return o.Spec.Template.Annotations
	}
	return nil
}
