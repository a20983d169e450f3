package controllers

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/metrics"
)

// Reasons of the ExpiringSoon condition and its event.
const (
	ReasonExpiringSoon = "ExpiringSoon"
	ReasonNotExpiring  = "NotExpiring"
)

// recordExpiry records the expiries of a sync in status (expiries,
// expiresAt), then the ExpiringSoon condition and the expiry metric from it.
func (r *VaultSecretReconciler) recordExpiry(vs *v1alpha1.VaultSecret, res *syncResult, now time.Time) {
	certs := map[string]bool{}
	for _, c := range res.Certificates {
		certs[c.Key] = true
	}
	var list []v1alpha1.ExpiryStatus
	for key, t := range res.Expires {
		kind := string(metrics.ExpirySecret)
		if certs[key] {
			kind = string(metrics.ExpiryCertificate)
		}
		list = append(list, v1alpha1.ExpiryStatus{Key: key, Kind: kind, NotAfter: metav1.Time{Time: t}})
	}
	slices.SortFunc(list, func(a, b v1alpha1.ExpiryStatus) int {
		if c := a.NotAfter.Compare(b.NotAfter.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	vs.Status.Expiries = list
	vs.Status.ExpiresAt = nil
	if len(list) > 0 {
		vs.Status.ExpiresAt = &metav1.Time{Time: list[0].NotAfter.Time}
	}
	r.restoreExpiry(vs)
	r.evaluateExpiry(vs, now)
}

// expiries returns what status says of the synced objects' expiry. Status
// written before status.expiries existed still yields its certificates and
// its earliest expiry.
func expiries(vs *v1alpha1.VaultSecret) []v1alpha1.ExpiryStatus {
	if len(vs.Status.Expiries) > 0 || vs.Status.ExpiresAt == nil {
		return vs.Status.Expiries
	}
	var out []v1alpha1.ExpiryStatus
	earliestIsCert := false
	for _, c := range vs.Status.Certificates {
		out = append(out, v1alpha1.ExpiryStatus{Key: c.Key, Kind: string(metrics.ExpiryCertificate), NotAfter: c.NotAfter})
		earliestIsCert = earliestIsCert || c.NotAfter.Equal(vs.Status.ExpiresAt)
	}
	if !earliestIsCert {
		out = append(out, v1alpha1.ExpiryStatus{Kind: string(metrics.ExpirySecret), NotAfter: *vs.Status.ExpiresAt})
	}
	return out
}

// restoreExpiry sets the expiry metric of vs from its status, so that the
// gauges hold data after a restart or a failover without a sync.
func (r *VaultSecretReconciler) restoreExpiry(vs *v1alpha1.VaultSecret) {
	if r.Metrics == nil {
		return
	}
	host := vs.Status.SyncedVault
	if host == "" {
		host = specVaultHost(vs)
	}
	var items []metrics.Expiry
	for _, e := range expiries(vs) {
		items = append(items, metrics.Expiry{Vault: host, Kind: metrics.ExpiryKind(e.Kind), Object: e.Key, NotAfter: e.NotAfter.Time})
	}
	r.Metrics.Expiry.Set(vs.Namespace+"/"+vs.Name, items)
}

// specVaultHost is the host of an inline vault URL ("" for a connection).
func specVaultHost(vs *v1alpha1.VaultSecret) string {
	if vs.Spec.Vault == nil {
		return ""
	}
	return urlHost(vs.Spec.Vault.URL)
}

// urlHost is the host name of a vault URL ("" when it does not parse).
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func (r *VaultSecretReconciler) expiryThreshold() time.Duration {
	if r.ExpiryThreshold > 0 {
		return r.ExpiryThreshold
	}
	return 30 * 24 * time.Hour
}

// evaluateExpiry sets the ExpiringSoon condition from status, with a
// Warning event when it turns true. It runs after every sync and on every
// reconcile without one, and the reconciler wakes when the earliest expiry
// enters the warning window, so the condition turns true on time even for
// a VaultSecret that is never refreshed.
func (r *VaultSecretReconciler) evaluateExpiry(vs *v1alpha1.VaultSecret, now time.Time) {
	list := expiries(vs)
	if len(list) == 0 {
		meta.RemoveStatusCondition(&vs.Status.Conditions, v1alpha1.ConditionExpiringSoon)
		return
	}
	earliest := list[0]
	for _, e := range list[1:] {
		if e.NotAfter.Before(&earliest.NotAfter) {
			earliest = e
		}
	}
	what := fmt.Sprintf("%q", earliest.Key)
	if earliest.Key == "" {
		what = "a synced secret"
	}
	at := earliest.NotAfter.UTC().Format(time.RFC3339)
	was := meta.IsStatusConditionTrue(vs.Status.Conditions, v1alpha1.ConditionExpiringSoon)
	if left := earliest.NotAfter.Sub(now); left < r.expiryThreshold() {
		msg := fmt.Sprintf("%s expires at %s (in %s); rotate it in Key Vault", what, at, left.Round(time.Minute))
		if left <= 0 {
			msg = fmt.Sprintf("%s expired at %s; rotate it in Key Vault", what, at)
		}
		if c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionExpiringSoon); was && strings.HasPrefix(c.Message, what+" expire") && strings.Contains(c.Message, at) {
			// Same object, same expiry: keep the message of the transition
			// (one that changed with every reconcile would write status
			// every time).
			return
		}
		meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionExpiringSoon,
			Status: metav1.ConditionTrue, Reason: ReasonExpiringSoon, ObservedGeneration: vs.Generation, Message: msg})
		if !was {
			r.event(vs, corev1.EventTypeWarning, ReasonExpiringSoon, "Check", msg)
		}
		return
	}
	meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionExpiringSoon,
		Status: metav1.ConditionFalse, Reason: ReasonNotExpiring, ObservedGeneration: vs.Generation,
		Message: fmt.Sprintf("the earliest expiry is %s at %s", what, at)})
}
