package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
)

// printReport prints every VaultSecret of the namespace with its Ready
// condition, the keys of its Secret with masked values, and its
// certificates; it returns what the rotation compares against.
func (d *demo) printReport(ctx context.Context) (rotation, error) {
	var list v1alpha1.VaultSecretList
	if err := d.env.K8s.List(ctx, &list, client.InNamespace(d.namespace)); err != nil {
		return rotation{}, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	_, _ = fmt.Fprintf(d.out, "\nVaultSecrets in namespace %s (values are masked; the demo never prints them)\n", d.namespace)
	var before rotation
	now := time.Now()
	for i := range list.Items {
		vs := &list.Items[i]
		var secret *corev1.Secret
		s := &corev1.Secret{}
		switch err := d.env.K8s.Get(ctx, client.ObjectKey{Namespace: d.namespace, Name: vs.TargetName()}, s); {
		case err == nil:
			secret = s
		case !apierrors.IsNotFound(err):
			return rotation{}, err
		}
		writeVaultSecret(d.out, vs, secret, now)
		if vs.Name == rotateVaultSecret && secret != nil {
			before = rotation{
				version: vs.Status.SyncedVersions[rotateKey], hash: vs.Status.DataHash,
				resourceVersion: secret.ResourceVersion, length: len(secret.Data[rotateKey]),
			}
		}
	}
	_, _ = fmt.Fprintln(d.out)
	return before, nil
}

// writeVaultSecret prints one VaultSecret and its Secret. Values are never
// printed: only their sizes.
func writeVaultSecret(w io.Writer, vs *v1alpha1.VaultSecret, s *corev1.Secret, now time.Time) {
	status, reason := "Unknown", "Pending"
	if c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		status, reason = string(c.Status), c.Reason
	}
	_, _ = fmt.Fprintf(w, "\n  %-16s Ready=%-5s %s\n", vs.Name, status, reason)
	if s == nil {
		_, _ = fmt.Fprintf(w, "    Secret %s: not written\n", vs.TargetName())
		return
	}
	_, _ = fmt.Fprintf(w, "    Secret %s (%s), %d keys\n", s.Name, s.Type, len(s.Data))
	width := 0
	for k := range s.Data {
		width = max(width, len(k))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Data)) {
		line := fmt.Sprintf("      %-*s  %s", width, k, mask(s.Data[k]))
		if v := vs.Status.SyncedVersions[k]; v != "" {
			line += "  version " + v
		}
		_, _ = fmt.Fprintln(w, line)
	}
	// dataFrom items record their version under the Key Vault object's name.
	for _, name := range slices.Sorted(maps.Keys(vs.Status.SyncedVersions)) {
		if _, isKey := s.Data[name]; !isKey {
			_, _ = fmt.Fprintf(w, "      from Key Vault object %s, version %s\n", name, vs.Status.SyncedVersions[name])
		}
	}
	for _, c := range vs.Status.Certificates {
		_, _ = fmt.Fprintf(w, "    certificate %s: subject %q, expires %s (%s)\n",
			c.Key, c.Subject, c.NotAfter.UTC().Format("2006-01-02 15:04 MST"), until(c.NotAfter.Sub(now)))
	}
}

// writeRotation prints the before and after of the rotated key.
func writeRotation(w io.Writer, object, vsName, key string, before, after rotation, matches bool) {
	_, _ = fmt.Fprintf(w, "\nRotation of Key Vault secret %s, delivered to Secret %s key %q\n", object, vsName, key)
	_, _ = fmt.Fprintf(w, "  version          %s  ->  %s\n", orNone(before.version), after.version)
	_, _ = fmt.Fprintf(w, "  value            %s  ->  %s", maskLen(before.length), maskLen(after.length))
	if matches {
		_, _ = fmt.Fprint(w, "   (the Secret holds the new value)")
	}
	_, _ = fmt.Fprintln(w)
	_, _ = fmt.Fprintf(w, "  status.dataHash  %s  ->  %s", short(before.hash), short(after.hash))
	if before.hash != after.hash {
		_, _ = fmt.Fprint(w, "   (changed)")
	}
	_, _ = fmt.Fprintln(w)
	_, _ = fmt.Fprintf(w, "  resourceVersion  %s  ->  %s\n", orNone(before.resourceVersion), after.resourceVersion)
}

// mask shows a value as asterisks and its size, never the value.
func mask(v []byte) string { return maskLen(len(v)) }

func maskLen(n int) string {
	unit := "bytes"
	if n == 1 {
		unit = "byte"
	}
	return fmt.Sprintf("****** (%d %s)", n, unit)
}

// seconds formats a duration as seconds with one decimal ("3.2s").
func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// short abbreviates an HMAC for display.
func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "..."
	}
	return orNone(h)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// until says how far away a time is, in days (or hours when close).
func until(d time.Duration) string {
	switch {
	case d < 0:
		return "expired"
	case d < 48*time.Hour:
		return fmt.Sprintf("in %d hours", int(d.Hours()))
	}
	return fmt.Sprintf("in %d days", int(d.Hours()/24))
}

func indent(s, prefix string) string {
	if s == "" {
		return s
	}
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastLines(string(b), n)
}
