package node

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
)

// ConfigError is a container configuration the agent cannot run; the
// container waits with reason CreateContainerConfigError, as with a kubelet.
type ConfigError struct{ msg string }

func (e *ConfigError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &ConfigError{msg: fmt.Sprintf(format, args...)}
}

// ObjectSource reads the Secrets and ConfigMaps that env and volumes refer to.
type ObjectSource interface {
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
}

// EnvVar is one resolved variable.
type EnvVar struct{ Name, Value string }

// ResolveEnv computes a container's environment the way a kubelet does:
// base (the KUBERNETES_SERVICE_* variables) first, then envFrom, then env in
// order, each value expanded with $(VAR) references to the variables before
// it. The image's own environment comes underneath (MergeImageEnv).
func ResolveEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, base []EnvVar, src ObjectSource) ([]EnvVar, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, e := range base {
		set(e.Name, e.Value)
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := src.ConfigMap(ctx, pod.Namespace, from.ConfigMapRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && ptrTrue(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, configErrorf("configmap %q not found", from.ConfigMapRef.Name)
			}
			for _, k := range sortedKeys(cm.Data) {
				set(from.Prefix+k, cm.Data[k])
			}
		case from.SecretRef != nil:
			s, err := src.Secret(ctx, pod.Namespace, from.SecretRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && ptrTrue(from.SecretRef.Optional) {
					continue
				}
				return nil, configErrorf("secret %q not found", from.SecretRef.Name)
			}
			keys := make([]string, 0, len(s.Data))
			for k := range s.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				set(from.Prefix+k, string(s.Data[k]))
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, Expand(e.Value, vars))
			continue
		}
		v, ok, err := valueFrom(ctx, pod, c, e.ValueFrom, src)
		if err != nil {
			return nil, err
		}
		if ok {
			set(e.Name, v)
		}
	}
	out := make([]EnvVar, 0, len(order))
	for _, k := range order {
		out = append(out, EnvVar{k, vars[k]})
	}
	return out, nil
}

func valueFrom(ctx context.Context, pod *corev1.Pod, c *corev1.Container, vf *corev1.EnvVarSource, src ObjectSource) (string, bool, error) {
	switch {
	case vf.FieldRef != nil:
		v, err := FieldValue(pod, vf.FieldRef.FieldPath)
		return v, err == nil, err
	case vf.ResourceFieldRef != nil:
		v, err := resourceValue(c, vf.ResourceFieldRef)
		return v, err == nil, err
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		s, err := src.Secret(ctx, pod.Namespace, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && ptrTrue(ref.Optional) {
				return "", false, nil
			}
			if apierrors.IsNotFound(err) {
				return "", false, configErrorf("secret %q not found", ref.Name)
			}
			return "", false, err
		}
		b, ok := s.Data[ref.Key]
		if !ok {
			if ptrTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, configErrorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(b), true, nil
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		cm, err := src.ConfigMap(ctx, pod.Namespace, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && ptrTrue(ref.Optional) {
				return "", false, nil
			}
			if apierrors.IsNotFound(err) {
				return "", false, configErrorf("configmap %q not found", ref.Name)
			}
			return "", false, err
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if b, bok := cm.BinaryData[ref.Key]; bok {
				return string(b), true, nil
			}
			if ptrTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, configErrorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return v, true, nil
	}
	return "", false, configErrorf("unsupported valueFrom")
}

// FieldValue is the downward API: the value of a Pod field path.
func FieldValue(pod *corev1.Pod, fieldPath string) (string, error) {
	if k, ok := subscript(fieldPath, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(fieldPath, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	case "status.hostIPs":
		return joinIPs(pod.Status.HostIPs, func(i corev1.HostIP) string { return i.IP }), nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.podIPs":
		return joinIPs(pod.Status.PodIPs, func(i corev1.PodIP) string { return i.IP }), nil
	}
	return "", configErrorf("unsupported fieldPath %q", fieldPath)
}

func joinIPs[T any](ips []T, ip func(T) string) string {
	var s []string
	for _, i := range ips {
		s = append(s, ip(i))
	}
	return strings.Join(s, ",")
}

// subscript parses field['key'] (the downward API's map subscript).
func subscript(path, field string) (string, bool) {
	rest, ok := strings.CutPrefix(path, field+"[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return "", false
	}
	rest = strings.TrimSuffix(rest, "]")
	if len(rest) >= 2 && (rest[0] == '\'' || rest[0] == '"') && rest[len(rest)-1] == rest[0] {
		return rest[1 : len(rest)-1], true
	}
	return "", false
}

// formatMap is the downward API's file format of labels and annotations.
func formatMap(m map[string]string) string {
	var lines []string
	for _, k := range sortedKeys(m) {
		lines = append(lines, k+"="+strconv.Quote(m[k]))
	}
	return strings.Join(lines, "\n")
}

func resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	var q resource.Quantity
	var ok bool
	switch ref.Resource {
	case "limits.cpu":
		q, ok = c.Resources.Limits[corev1.ResourceCPU]
	case "limits.memory":
		q, ok = c.Resources.Limits[corev1.ResourceMemory]
	case "requests.cpu":
		q, ok = c.Resources.Requests[corev1.ResourceCPU]
	case "requests.memory":
		q, ok = c.Resources.Requests[corev1.ResourceMemory]
	default:
		return "", configErrorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	if !ok {
		// A kubelet reports the node's allocatable then; this node claims 2 CPUs.
		return "", configErrorf("resourceFieldRef %q needs the container to set it", ref.Resource)
	}
	if strings.HasSuffix(ref.Resource, ".cpu") {
		v := (q.MilliValue() + divisor.MilliValue() - 1) / divisor.MilliValue()
		return strconv.FormatInt(v, 10), nil
	}
	v := (q.Value() + divisor.Value() - 1) / divisor.Value()
	return strconv.FormatInt(v, 10), nil
}

// Expand replaces $(VAR) with the variable's value when it is defined and
// leaves it as written otherwise; $$ is a literal $ (Kubernetes' rules for
// env values, command and args).
func Expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// Argv is the process a container runs: command replaces the image's
// entrypoint (and then the image's cmd is dropped), args replace the
// image's cmd; both are expanded with the container's environment.
func Argv(c *corev1.Container, entrypoint, cmd []string, env []EnvVar) ([]string, error) {
	vars := map[string]string{}
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	expand := func(in []string) []string {
		out := make([]string, len(in))
		for i, a := range in {
			out[i] = Expand(a, vars)
		}
		return out
	}
	var argv []string
	switch {
	case len(c.Command) > 0:
		argv = append(expand(c.Command), expand(c.Args)...)
	case len(c.Args) > 0:
		argv = append(append(argv, entrypoint...), expand(c.Args)...)
	default:
		argv = append(append(argv, entrypoint...), cmd...)
	}
	if len(argv) == 0 {
		return nil, configErrorf("no command specified")
	}
	return argv, nil
}

// MergeImageEnv puts the container's variables over the image's (KEY=VALUE).
func MergeImageEnv(image []string, env []EnvVar) []string {
	idx := map[string]int{}
	var out []string
	for _, kv := range image {
		k, _, _ := strings.Cut(kv, "=")
		idx[k] = len(out)
		out = append(out, kv)
	}
	for _, e := range env {
		kv := e.Name + "=" + e.Value
		if i, ok := idx[e.Name]; ok {
			out[i] = kv
			continue
		}
		idx[e.Name] = len(out)
		out = append(out, kv)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func ptrTrue(b *bool) bool { return b != nil && *b }
