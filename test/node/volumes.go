package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
)

// ServiceAccountMountPath is where in-cluster clients look for the token.
const ServiceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"

// defaultTokenExpiration is what the ServiceAccount admission plugin asks
// for in the kube-api-access volume.
const defaultTokenExpiration = 3607

// KubeAPIAccessVolume is the projected volume the ServiceAccount admission
// plugin adds to a Pod: a bound token, the cluster CA and the namespace.
// The local API server runs without that plugin (envtest disables it), so
// the agent adds it itself, as the plugin would have.
func KubeAPIAccessVolume(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o644),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](defaultTokenExpiration)}},
			{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
			}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
				Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
			}}}},
		},
	}}}
}

// TokenSource issues ServiceAccount tokens bound to a Pod (TokenRequest).
type TokenSource interface {
	Token(ctx context.Context, pod *corev1.Pod, audience string, expirationSeconds int64) (*authenticationv1.TokenRequestStatus, error)
}

// tokenCache keeps a Pod's projected tokens and says when one is due: at
// 80% of its lifetime, as a kubelet refreshes them.
type tokenCache struct {
	mu     sync.Mutex
	tokens map[string]cachedToken
	now    func() time.Time
	// maxAge, when set, refreshes tokens older than it even earlier.
	maxAge time.Duration
}

type cachedToken struct {
	token           string
	issued, expires time.Time
}

func newTokenCache() *tokenCache {
	return &tokenCache{tokens: map[string]cachedToken{}, now: time.Now}
}

func (tc *tokenCache) get(ctx context.Context, src TokenSource, pod *corev1.Pod, audience string, exp int64) (string, error) {
	key := fmt.Sprintf("%s|%d", audience, exp)
	tc.mu.Lock()
	t, ok := tc.tokens[key]
	tc.mu.Unlock()
	if ok && !tokenDue(t.issued, t.expires, tc.now()) && (tc.maxAge == 0 || tc.now().Sub(t.issued) < tc.maxAge) {
		return t.token, nil
	}
	st, err := src.Token(ctx, pod, audience, exp)
	if err != nil {
		return "", err
	}
	t = cachedToken{token: st.Token, issued: tc.now(), expires: st.ExpirationTimestamp.Time}
	tc.mu.Lock()
	tc.tokens[key] = t
	tc.mu.Unlock()
	return t.token, nil
}

// tokenDue reports whether a token has lived 80% of its lifetime.
func tokenDue(issued, expires, now time.Time) bool {
	life := expires.Sub(issued)
	return !now.Before(issued.Add(life * 8 / 10))
}

// nextDue is the earliest refresh time of the cached tokens.
func (tc *tokenCache) nextDue() time.Time {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var next time.Time
	for _, t := range tc.tokens {
		due := t.issued.Add(t.expires.Sub(t.issued) * 8 / 10)
		if tc.maxAge > 0 && t.issued.Add(tc.maxAge).Before(due) {
			due = t.issued.Add(tc.maxAge)
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

// volumeFile is one file of a rendered volume.
type volumeFile struct {
	data []byte
	mode os.FileMode
}

// renderer builds the content of the API-backed volumes of one Pod.
type renderer struct {
	pod    *corev1.Pod
	src    ObjectSource
	tokens TokenSource
	cache  *tokenCache
	// rootCA stands in for the kube-root-ca.crt ConfigMap when the
	// control plane does not publish it.
	rootCA []byte
}

// render returns the files of a secret, configMap, downwardAPI or
// projected volume, or ok=false for other volume types.
func (r *renderer) render(ctx context.Context, v corev1.Volume) (map[string]volumeFile, bool, error) {
	files := map[string]volumeFile{}
	switch {
	case v.Secret != nil:
		mode, err := modeOr(v.Secret.DefaultMode, 0o644)
		if err != nil {
			return nil, true, err
		}
		err = r.secretFiles(ctx, files, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, mode)
		return files, true, err
	case v.ConfigMap != nil:
		mode, err := modeOr(v.ConfigMap.DefaultMode, 0o644)
		if err != nil {
			return nil, true, err
		}
		err = r.configMapFiles(ctx, files, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, mode)
		return files, true, err
	case v.DownwardAPI != nil:
		mode, err := modeOr(v.DownwardAPI.DefaultMode, 0o644)
		if err != nil {
			return nil, true, err
		}
		err = r.downwardFiles(files, v.DownwardAPI.Items, mode)
		return files, true, err
	case v.Projected != nil:
		mode, err := modeOr(v.Projected.DefaultMode, 0o644)
		if err != nil {
			return nil, true, err
		}
		for _, s := range v.Projected.Sources {
			switch {
			case s.Secret != nil:
				err = r.secretFiles(ctx, files, s.Secret.Name, s.Secret.Items, s.Secret.Optional, mode)
			case s.ConfigMap != nil:
				err = r.configMapFiles(ctx, files, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, mode)
			case s.DownwardAPI != nil:
				err = r.downwardFiles(files, s.DownwardAPI.Items, mode)
			case s.ServiceAccountToken != nil:
				exp := int64(defaultTokenExpiration)
				if s.ServiceAccountToken.ExpirationSeconds != nil {
					exp = *s.ServiceAccountToken.ExpirationSeconds
				}
				var tok string
				tok, err = r.cache.get(ctx, r.tokens, r.pod, s.ServiceAccountToken.Audience, exp)
				if err == nil {
					files[s.ServiceAccountToken.Path] = volumeFile{[]byte(tok), mode}
				}
			case s.ClusterTrustBundle != nil:
				err = configErrorf("clusterTrustBundle projections are not supported by the node agent")
			}
			if err != nil {
				return nil, true, err
			}
		}
		return files, true, nil
	}
	return nil, false, nil
}

// modeOr is the file mode of a volume's defaultMode or an item's mode, or
// def when it is not set. The API server admits 0 to 0777 only; checking
// again here keeps a value that did not come through it from turning into
// other bits of an os.FileMode.
func modeOr(m *int32, def os.FileMode) (os.FileMode, error) {
	if m == nil {
		return def, nil
	}
	if *m < 0 || *m > 0o777 {
		return 0, configErrorf("file mode %#o must be between 0 and 0777 (octal), both inclusive", *m)
	}
	return os.FileMode(*m), nil
}

func (r *renderer) secretFiles(ctx context.Context, files map[string]volumeFile, name string, items []corev1.KeyToPath, optional *bool, mode os.FileMode) error {
	s, err := r.src.Secret(ctx, r.pod.Namespace, name)
	if apierrors.IsNotFound(err) && ptrTrue(optional) {
		return nil
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("secret %q not found", name)
		}
		return err
	}
	return project(files, s.Data, items, optional, mode, "Secret "+name)
}

func (r *renderer) configMapFiles(ctx context.Context, files map[string]volumeFile, name string, items []corev1.KeyToPath, optional *bool, mode os.FileMode) error {
	cm, err := r.src.ConfigMap(ctx, r.pod.Namespace, name)
	if apierrors.IsNotFound(err) && name == "kube-root-ca.crt" && len(r.rootCA) > 0 {
		cm = &corev1.ConfigMap{Data: map[string]string{"ca.crt": string(r.rootCA)}}
		err = nil
	}
	if apierrors.IsNotFound(err) && ptrTrue(optional) {
		return nil
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("configmap %q not found", name)
		}
		return err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return project(files, data, items, optional, mode, "ConfigMap "+name)
}

func project(files map[string]volumeFile, data map[string][]byte, items []corev1.KeyToPath, optional *bool, mode os.FileMode, what string) error {
	if len(items) == 0 {
		for k, v := range data {
			files[k] = volumeFile{v, mode}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if ptrTrue(optional) {
				continue
			}
			return fmt.Errorf("%s has no key %q", what, it.Key)
		}
		m, err := modeOr(it.Mode, mode)
		if err != nil {
			return err
		}
		files[it.Path] = volumeFile{v, m}
	}
	return nil
}

func (r *renderer) downwardFiles(files map[string]volumeFile, items []corev1.DownwardAPIVolumeFile, mode os.FileMode) error {
	for _, it := range items {
		m, err := modeOr(it.Mode, mode)
		if err != nil {
			return err
		}
		switch {
		case it.FieldRef != nil:
			v, err := FieldValue(r.pod, it.FieldRef.FieldPath)
			if err != nil {
				return err
			}
			files[it.Path] = volumeFile{[]byte(v), m}
		case it.ResourceFieldRef != nil:
			c := containerByName(r.pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return configErrorf("downwardAPI %s names no container of the pod", it.Path)
			}
			v, err := resourceValue(c, it.ResourceFieldRef)
			if err != nil {
				return err
			}
			files[it.Path] = volumeFile{[]byte(v), m}
		}
	}
	return nil
}

func containerByName(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name || name == "" {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// writeAtomic publishes files in dir the way a kubelet's atomic writer
// does: the content goes to a fresh timestamped directory, the ..data
// symlink is switched to it with one rename, and each top-level name is a
// symlink through ..data. A reader never sees a half-written volume. It
// returns false when the content was already there.
func writeAtomic(dir string, files map[string]volumeFile, gid *int64) (bool, error) {
	if same(dir, files) {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	ts := filepath.Join(dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05.000000000"))
	if err := os.MkdirAll(ts, 0o755); err != nil {
		return false, err
	}
	for p, f := range files {
		full := filepath.Join(ts, filepath.Clean("/"+p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(full, f.data, 0o600); err != nil {
			return false, err
		}
		mode := f.mode
		if gid != nil {
			if err := os.Chown(full, 0, int(*gid)); err != nil {
				return false, err
			}
			mode |= 0o440 // the fsGroup reads what the owner reads
		}
		if err := os.Chmod(full, mode); err != nil {
			return false, err
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return false, err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, "..data")); err != nil {
		return false, err
	}
	tops := map[string]bool{}
	for p := range files {
		top := strings.SplitN(strings.TrimPrefix(filepath.Clean("/"+p), "/"), "/", 2)[0]
		tops[top] = true
	}
	for top := range tops {
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", top), link); err != nil {
			return false, err
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "..") {
			continue
		}
		if !tops[n] {
			_ = os.Remove(filepath.Join(dir, n))
		}
	}
	if old != "" && old != filepath.Base(ts) {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return true, nil
}

// same reports whether dir already holds exactly files.
func same(dir string, files map[string]volumeFile) bool {
	data := filepath.Join(dir, "..data")
	if _, err := os.Stat(data); err != nil {
		return false
	}
	count := 0
	err := filepath.Walk(data+"/", func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		count++
		return nil
	})
	if err != nil || count != len(files) {
		return false
	}
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := files[k]
		full := filepath.Join(data, filepath.Clean("/"+k))
		b, err := os.ReadFile(full)
		if err != nil || !bytes.Equal(b, f.data) {
			return false
		}
		if fi, err := os.Stat(full); err != nil || fi.Mode().Perm()&f.mode.Perm() != f.mode.Perm() {
			return false
		}
	}
	return true
}
