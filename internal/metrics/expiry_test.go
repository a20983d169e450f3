package metrics

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

func ctrlRegistry() prometheus.Registerer { return ctrlmetrics.Registry }

func TestExpiryEarliestPerVault(t *testing.T) {
	g := NewWithT(t)
	m, reg := newTest(t)
	const a, b = "a.vault.azure.net", "b.vault.azure.net"
	m.Expiry.Set("ns/one", []Expiry{
		{Vault: a, Kind: ExpiryCertificate, Object: "tls", NotAfter: time.Unix(5000, 0)},
		{Vault: a, Kind: ExpirySecret, Object: "db", NotAfter: time.Unix(9000, 0)},
		{Vault: a, Kind: ExpirySecret, Object: "no-exp"}, // zero: skipped
	})
	m.Expiry.Set("ns/two", []Expiry{{Vault: a, Kind: ExpiryCertificate, Object: "tls2", NotAfter: time.Unix(4000, 0)}})
	m.Expiry.Set("ns/three", []Expiry{{Vault: b, Kind: ExpiryCertificate, Object: "tls", NotAfter: time.Unix(7000, 0)}})

	expect := func(want string) {
		t.Helper()
		g.Expect(testutil.GatherAndCompare(reg, strings.NewReader(want), NameCertificateExpiry, NameSecretExpiry, NameExpiryTrackedObjects)).To(Succeed())
	}
	expect(`
# HELP vaultsync_certificate_expiry_timestamp_seconds Earliest notAfter (Unix seconds) among the certificates synced from the vault.
# TYPE vaultsync_certificate_expiry_timestamp_seconds gauge
vaultsync_certificate_expiry_timestamp_seconds{vault="a.vault.azure.net"} 4000
vaultsync_certificate_expiry_timestamp_seconds{vault="b.vault.azure.net"} 7000
# HELP vaultsync_expiry_tracked_objects Objects whose expiry is tracked.
# TYPE vaultsync_expiry_tracked_objects gauge
vaultsync_expiry_tracked_objects 4
# HELP vaultsync_secret_expiry_timestamp_seconds Earliest exp attribute (Unix seconds) among the secrets with an expiry synced from the vault.
# TYPE vaultsync_secret_expiry_timestamp_seconds gauge
vaultsync_secret_expiry_timestamp_seconds{vault="a.vault.azure.net"} 9000
`)

	// A renewed certificate replaces the owner's entries; a deleted VaultSecret disappears.
	m.Expiry.Set("ns/two", []Expiry{{Vault: a, Kind: ExpiryCertificate, Object: "tls2", NotAfter: time.Unix(8000, 0)}})
	m.Expiry.Delete("ns/three")
	m.Expiry.Set("ns/one", nil)
	expect(`
# HELP vaultsync_certificate_expiry_timestamp_seconds Earliest notAfter (Unix seconds) among the certificates synced from the vault.
# TYPE vaultsync_certificate_expiry_timestamp_seconds gauge
vaultsync_certificate_expiry_timestamp_seconds{vault="a.vault.azure.net"} 8000
# HELP vaultsync_expiry_tracked_objects Objects whose expiry is tracked.
# TYPE vaultsync_expiry_tracked_objects gauge
vaultsync_expiry_tracked_objects 1
`)
}

func TestExpiryBounded(t *testing.T) {
	g := NewWithT(t)
	tr := newExpiryTracker(newVaultLabels(10), 3)
	tr.Set("a", []Expiry{{Vault: "v", Kind: ExpiryCertificate, NotAfter: time.Unix(1, 0)}, {Vault: "v", Kind: ExpiryCertificate, NotAfter: time.Unix(2, 0)}})
	tr.Set("b", []Expiry{{Vault: "v", Kind: ExpiryCertificate, NotAfter: time.Unix(3, 0)}, {Vault: "v", Kind: ExpiryCertificate, NotAfter: time.Unix(4, 0)}})
	g.Expect(tr.byOwner).NotTo(HaveKey("b"), "over the bound")
	tr.Set("a", []Expiry{{Vault: "v", Kind: ExpiryCertificate, NotAfter: time.Unix(1, 0)}})
	tr.Set("b", []Expiry{{Vault: "v", Kind: ExpiryCertificate, NotAfter: time.Unix(3, 0)}, {Vault: "v", Kind: ExpiryCertificate, NotAfter: time.Unix(4, 0)}})
	g.Expect(tr.byOwner).To(HaveKey("b"))
	g.Expect(tr.count).To(Equal(3))
}

func TestStatusTracker(t *testing.T) {
	g := NewWithT(t)
	m, reg := newTest(t)
	m.Status.Set("ns/a", true, "Synced")
	m.Status.Set("ns/b", false, "SecretNotFound")
	m.Status.Set("ns/c", false, "SecretNotFound")
	m.Status.Set("ns/d", false, "Forbidden")
	m.Status.Set("ns/d", true, "Synced") // recovered
	m.Status.Set("ns/e", false, "")
	m.Status.Delete("ns/c")
	g.Expect(testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vaultsync_vaultsecrets VaultSecrets reconciled by this manager, by Ready status and condition reason.
# TYPE vaultsync_vaultsecrets gauge
vaultsync_vaultsecrets{ready="false",reason="SecretNotFound"} 1
vaultsync_vaultsecrets{ready="false",reason="none"} 1
vaultsync_vaultsecrets{ready="true",reason="Synced"} 2
`), NameVaultSecrets)).To(Succeed())
}
