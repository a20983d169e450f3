package metrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vaultsync/vaultsync/internal/keyvault"
)

var _ keyvault.Observer = (*Metrics)(nil)

func newTest(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func TestObserveRequest(t *testing.T) {
	g := NewWithT(t)
	m, reg := newTest(t)
	m.ObserveRequest("demo.vault.azure.net", "GetSecret", 200, 30*time.Millisecond, nil)
	m.ObserveRequest("demo.vault.azure.net", "GetSecret", 200, 10*time.Millisecond, nil)
	m.ObserveRequest("demo.vault.azure.net", "GetSecret", 401, time.Millisecond, nil)
	m.ObserveRequest("demo.vault.azure.net", "GetKey", 429, time.Millisecond, nil)
	m.ObserveRequest("other.vault.azure.net", "GetSecret", 0, time.Second, errors.New("dial tcp: refused"))
	m.ObserveRequest("other.vault.azure.net", "", 500, time.Second, nil)

	g.Expect(testutil.ToFloat64(m.keyVaultRequests.WithLabelValues("demo.vault.azure.net", "GetSecret", "200"))).To(Equal(2.0))
	g.Expect(testutil.ToFloat64(m.keyVaultRequests.WithLabelValues("demo.vault.azure.net", "GetSecret", "401"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.keyVaultRequests.WithLabelValues("demo.vault.azure.net", "GetKey", "429"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.keyVaultRequests.WithLabelValues("other.vault.azure.net", "GetSecret", "error"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.keyVaultRequests.WithLabelValues("other.vault.azure.net", "unknown", "500"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.throttled.WithLabelValues("demo.vault.azure.net"))).To(Equal(1.0))
	g.Expect(testutil.CollectAndCount(m.throttled)).To(Equal(1), "only 429s count as throttled")

	// The histogram holds every request with its duration.
	g.Expect(testutil.CollectAndCount(m.keyVaultDuration)).To(Equal(4))
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vaultsync_throttled_total Key Vault answers 429 (throttled), by vault host.
# TYPE vaultsync_throttled_total counter
vaultsync_throttled_total{vault="demo.vault.azure.net"} 1
`), NameThrottled)
	g.Expect(err).NotTo(HaveOccurred())
	n, err := testutil.GatherAndCount(reg, NameKeyVaultDuration)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(Equal(4))
}

func TestVaultLabelIsCapped(t *testing.T) {
	g := NewWithT(t)
	m, _ := newTest(t)
	for i := range MaxVaults + 20 {
		m.ObserveRequest(fmt.Sprintf("v%d.vault.azure.net", i), "GetSecret", 200, time.Millisecond, nil)
	}
	// The first MaxVaults hosts keep their label; the rest share "other".
	g.Expect(testutil.CollectAndCount(m.keyVaultRequests)).To(Equal(MaxVaults + 1))
	g.Expect(testutil.ToFloat64(m.keyVaultRequests.WithLabelValues("other", "GetSecret", "200"))).To(Equal(20.0))
	g.Expect(testutil.ToFloat64(m.vaultOverflow)).To(Equal(20.0))
	// A host seen before the cap keeps its own series.
	m.ObserveRequest("v0.vault.azure.net", "GetSecret", 200, time.Millisecond, nil)
	g.Expect(testutil.ToFloat64(m.keyVaultRequests.WithLabelValues("v0.vault.azure.net", "GetSecret", "200"))).To(Equal(2.0))
}

func TestCounters(t *testing.T) {
	g := NewWithT(t)
	m, reg := newTest(t)
	m.ObserveTokenRequest("workloadIdentity", nil)
	m.ObserveTokenRequest("workloadIdentity", errors.New("AADSTS70021"))
	m.ObserveTokenRequest("workloadIdentity", nil)
	m.ObserveSync(SyncSuccess, "Synced", 200*time.Millisecond)
	m.ObserveSync(SyncFailure, "SecretNotFound", 50*time.Millisecond)
	m.ObserveSync(SyncFailure, "SecretNotFound", 50*time.Millisecond)
	m.SecretUpdated()
	m.SecretUpdated()
	m.ObserveEvent("Microsoft.KeyVault.SecretNewVersionCreated", EventAccepted)
	m.ObserveEvent("", EventUnauthorized)
	m.ObserveRollout("Deployment", RolloutRestarted)
	m.ObserveRollout("StatefulSet", RolloutNotFound)
	m.ObserveRollout("StatefulSet", "missing") // the word of rollout.Outcome.Missing
	m.ObserveRollout("DaemonSet", RolloutFailed)
	m.ObserveSync(SyncSkipped, "", 0)

	g.Expect(testutil.ToFloat64(m.tokenRequests.WithLabelValues("workloadIdentity", "success"))).To(Equal(2.0))
	g.Expect(testutil.ToFloat64(m.tokenRequests.WithLabelValues("workloadIdentity", "failure"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.syncs.WithLabelValues("failure", "SecretNotFound"))).To(Equal(2.0))
	g.Expect(testutil.ToFloat64(m.syncs.WithLabelValues("success", "Synced"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.secretUpdates)).To(Equal(2.0))
	g.Expect(testutil.ToFloat64(m.eventsReceived.WithLabelValues("none", "unauthorized"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.rollouts.WithLabelValues("Deployment", "restarted"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.rollouts.WithLabelValues("StatefulSet", "not_found"))).To(Equal(2.0))
	g.Expect(testutil.ToFloat64(m.rollouts.WithLabelValues("DaemonSet", "failed"))).To(Equal(1.0))
	g.Expect(testutil.CollectAndCount(m.rollouts)).To(Equal(3), "results are restarted, not_found and failed only")
	g.Expect(testutil.ToFloat64(m.syncs.WithLabelValues("skipped", "none"))).To(Equal(1.0))

	// A skipped reconcile is counted, not timed: no result="skipped" histogram below.
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vaultsync_sync_duration_seconds Duration of VaultSecret syncs (Key Vault reads, rendering and the Secret write), by result.
# TYPE vaultsync_sync_duration_seconds histogram
vaultsync_sync_duration_seconds_bucket{result="failure",le="0.01"} 0
vaultsync_sync_duration_seconds_bucket{result="failure",le="0.025"} 0
vaultsync_sync_duration_seconds_bucket{result="failure",le="0.05"} 2
vaultsync_sync_duration_seconds_bucket{result="failure",le="0.1"} 2
vaultsync_sync_duration_seconds_bucket{result="failure",le="0.25"} 2
vaultsync_sync_duration_seconds_bucket{result="failure",le="0.5"} 2
vaultsync_sync_duration_seconds_bucket{result="failure",le="1"} 2
vaultsync_sync_duration_seconds_bucket{result="failure",le="2.5"} 2
vaultsync_sync_duration_seconds_bucket{result="failure",le="5"} 2
vaultsync_sync_duration_seconds_bucket{result="failure",le="10"} 2
vaultsync_sync_duration_seconds_bucket{result="failure",le="30"} 2
vaultsync_sync_duration_seconds_bucket{result="failure",le="60"} 2
vaultsync_sync_duration_seconds_bucket{result="failure",le="+Inf"} 2
vaultsync_sync_duration_seconds_sum{result="failure"} 0.1
vaultsync_sync_duration_seconds_count{result="failure"} 2
vaultsync_sync_duration_seconds_bucket{result="success",le="0.01"} 0
vaultsync_sync_duration_seconds_bucket{result="success",le="0.025"} 0
vaultsync_sync_duration_seconds_bucket{result="success",le="0.05"} 0
vaultsync_sync_duration_seconds_bucket{result="success",le="0.1"} 0
vaultsync_sync_duration_seconds_bucket{result="success",le="0.25"} 1
vaultsync_sync_duration_seconds_bucket{result="success",le="0.5"} 1
vaultsync_sync_duration_seconds_bucket{result="success",le="1"} 1
vaultsync_sync_duration_seconds_bucket{result="success",le="2.5"} 1
vaultsync_sync_duration_seconds_bucket{result="success",le="5"} 1
vaultsync_sync_duration_seconds_bucket{result="success",le="10"} 1
vaultsync_sync_duration_seconds_bucket{result="success",le="30"} 1
vaultsync_sync_duration_seconds_bucket{result="success",le="60"} 1
vaultsync_sync_duration_seconds_bucket{result="success",le="+Inf"} 1
vaultsync_sync_duration_seconds_sum{result="success"} 0.2
vaultsync_sync_duration_seconds_count{result="success"} 1
`), NameSyncDuration)
	g.Expect(err).NotTo(HaveOccurred())
}

func TestNilMetricsIgnoresCalls(t *testing.T) {
	var m *Metrics
	m.ObserveRequest("v", "GetSecret", 200, time.Second, nil)
	m.ObserveTokenRequest("workloadIdentity", nil)
	m.ObserveSync(SyncSuccess, "Synced", time.Second)
	m.SecretUpdated()
	m.ObservePush(PushWritten, "Pushed", 2)
	m.ObserveEvent("x", EventAccepted)
	m.ObserveRollout("Deployment", RolloutRestarted)
}

func TestSharedRegistersOnControllerRuntime(t *testing.T) {
	g := NewWithT(t)
	m := Shared()
	g.Expect(Shared()).To(BeIdenticalTo(m))
	m.SecretUpdated()
	// A second registration of the same names on controller-runtime's registry must fail:
	// proof that Shared's collectors are there.
	_, err := New(ctrlRegistry())
	g.Expect(err).To(HaveOccurred())
	var are prometheus.AlreadyRegisteredError
	g.Expect(errors.As(err, &are)).To(BeTrue())
}

func TestAllNamesRegistered(t *testing.T) {
	g := NewWithT(t)
	m, reg := newTest(t)
	m.ObserveRequest("demo.vault.azure.net", "GetSecret", 429, time.Millisecond, nil)
	m.ObserveTokenRequest("workloadIdentity", nil)
	m.ObserveSync(SyncSuccess, "Synced", time.Second)
	m.SecretUpdated()
	m.ObservePush(PushWritten, "Pushed", 2)
	m.ObserveEvent("x", EventAccepted)
	m.ObserveRollout("Deployment", RolloutRestarted)
	m.Expiry.Set("ns/a", []Expiry{{Vault: "demo.vault.azure.net", Kind: ExpiryCertificate, Object: "tls", NotAfter: time.Unix(2000, 0)},
		{Vault: "demo.vault.azure.net", Kind: ExpirySecret, Object: "db", NotAfter: time.Unix(3000, 0)}})
	m.Status.Set("ns/a", false, "SecretNotFound")
	mfs, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	g.Expect(names).To(ContainElements(NameKeyVaultRequests, NameKeyVaultDuration, NameTokenRequests, NameSyncs,
		NameSyncDuration, NameSecretUpdates, NamePushes, NamePushedVersions, NameEventsReceived, NameRollouts, NameThrottled, NameCertificateExpiry,
		NameSecretExpiry, NameExpiryTrackedObjects, NameVaultSecrets))
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				g.Expect(l.GetName()).NotTo(BeElementOf("namespace", "name", "vaultsecret", "object"),
					"%s must not carry per-object labels", mf.GetName())
			}
		}
	}
}

func TestObservePush(t *testing.T) {
	g := NewWithT(t)
	m, _ := newTest(t)
	m.ObservePush(PushWritten, "Pushed", 2)
	m.ObservePush(PushUnchanged, "Pushed", 0)
	m.ObservePush(PushFailure, "RemoteConflict", 0)
	m.ObservePush(PushFailure, "", 0)
	g.Expect(testutil.ToFloat64(m.pushes.WithLabelValues(PushWritten, "Pushed"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.pushes.WithLabelValues(PushUnchanged, "Pushed"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.pushes.WithLabelValues(PushFailure, "RemoteConflict"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.pushes.WithLabelValues(PushFailure, "none"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(m.pushedVersions)).To(Equal(2.0))
}
