package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
	"github.com/vaultsync/vaultsync/test/testenv"
)

// The scenario of TestMetrics runs in its own control plane, emulator and
// manager: every value it scrapes comes from this one manager process.
const (
	metricsNamespace = "metrics"
	// demoVault is the vault label of every Key Vault series of the scenario.
	demoVault = "demo.vault.azure.net"
	// eventsSecretName is the manager's default --events-secret.
	eventsSecretName = "vaultsync-events"
)

// documentedMetric is one row of the table in docs/metrics.md.
type documentedMetric struct {
	Name   string
	Type   dto.MetricType
	Labels []string
}

var (
	// | `vaultsync_x_total` | counter | `a`, `b` | ... |
	metricRow   = regexp.MustCompile("^\\|\\s*`(vaultsync_[a-z0-9_]+)`\\s*\\|\\s*([a-z]+)[^|]*\\|([^|]*)\\|")
	backticked  = regexp.MustCompile("`([a-zA-Z_][a-zA-Z0-9_]*)`")
	metricTypes = map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE,
		"histogram": dto.MetricType_HISTOGRAM, "summary": dto.MetricType_SUMMARY}
)

// documentedMetrics reads the metric table of docs/metrics.md: name, type and
// label names of every vaultsync metric.
func documentedMetrics(path string) ([]documentedMetric, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []documentedMetric
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := metricRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		typ, ok := metricTypes[m[2]]
		if !ok {
			return nil, fmt.Errorf("%s: metric %s has the unknown type %q", path, m[1], m[2])
		}
		d := documentedMetric{Name: m[1], Type: typ, Labels: []string{}}
		for _, l := range backticked.FindAllStringSubmatch(m[3], -1) {
			d.Labels = append(d.Labels, l[1])
		}
		sort.Strings(d.Labels)
		out = append(out, d)
	}
	return out, sc.Err()
}

func TestDocumentedMetrics(t *testing.T) {
	g := NewWithT(t)
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	docs, err := documentedMetrics(filepath.Join(root, "docs", "metrics.md"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(docs).To(ContainElements(
		documentedMetric{Name: "vaultsync_keyvault_requests_total", Type: dto.MetricType_COUNTER, Labels: []string{"code", "operation", "vault"}},
		documentedMetric{Name: "vaultsync_keyvault_request_duration_seconds", Type: dto.MetricType_HISTOGRAM, Labels: []string{"operation", "vault"}},
		documentedMetric{Name: "vaultsync_secret_updates_total", Type: dto.MetricType_COUNTER, Labels: []string{}},
	))
	g.Expect(len(docs)).To(BeNumerically(">=", 14), "the table of docs/metrics.md was read")
}

// operations are the values docs/metrics.md allows for the operation label: reads, and the
// operations of a push.
const operations = "GetSecret|GetCertificateSecret|GetKey|ListSecrets|" +
	"GetSecretProperties|SetSecret|DeleteSecret|GetCertificate|ImportCertificate|DeleteCertificate"

// labelValues are the values docs/metrics.md allows for a label of a metric
// (a pattern where the set is open, like HTTP status codes).
var labelValues = map[string]map[string]string{
	"vaultsync_keyvault_requests_total": {
		"vault": "^" + regexp.QuoteMeta(demoVault) + "$", "operation": "^(" + operations + ")$",
		"code": "^([1-5][0-9][0-9]|error)$",
	},
	"vaultsync_keyvault_request_duration_seconds": {
		"vault": "^" + regexp.QuoteMeta(demoVault) + "$", "operation": "^(" + operations + ")$",
	},
	"vaultsync_throttled_total": {"vault": "^" + regexp.QuoteMeta(demoVault) + "$"},
	"vaultsync_token_requests_total": {
		"method": "^(workloadIdentity|servicePrincipal|managedIdentity|operatorIdentity|azureCLI)$", "result": "^(success|failure)$",
	},
	"vaultsync_sync_total":            {"result": "^(success|failure|skipped)$", "reason": "^([A-Z][A-Za-z]+|none)$"},
	"vaultsync_sync_duration_seconds": {"result": "^(success|failure)$"},
	"vaultsync_push_total":            {"result": "^(written|unchanged|failure)$", "reason": "^([A-Z][A-Za-z]+|none)$"},
	"vaultsync_vaultsecrets":          {"ready": "^(true|false)$", "reason": "^([A-Z][A-Za-z]+|none)$"},
	"vaultsync_events_received_total": {
		"type":   `^(Microsoft\.KeyVault\.[A-Za-z]+|Microsoft\.EventGrid\.SubscriptionValidationEvent|other|none)$`,
		"result": "^(accepted|duplicate|ignored|validation|invalid|unauthorized|forbidden)$",
	},
	"vaultsync_rollouts_total": {
		"kind": "^(Deployment|StatefulSet|DaemonSet)$", "result": "^(restarted|not_found|failed)$",
	},
	"vaultsync_certificate_expiry_timestamp_seconds": {"vault": "^" + regexp.QuoteMeta(demoVault) + "$"},
	"vaultsync_secret_expiry_timestamp_seconds":      {"vault": "^" + regexp.QuoteMeta(demoVault) + "$"},
}

// TestMetrics runs the built manager with its metrics endpoint (HTTPS,
// authentication and authorisation as shipped) and its events endpoint
// against a fresh control plane and emulator, drives a scenario that should
// touch every metric of docs/metrics.md, scrapes /metrics with a
// ServiceAccount token bound to config/rbac's metrics-reader role and checks
// that each documented metric is there with the documented type, label names
// and label values, and with the values the scenario produced, and that no
// vaultsync metric is undocumented.
func TestMetrics(t *testing.T) {
	if os.Getenv("E2E_CLUSTER") == "kind" {
		t.Skip("the metrics scenario runs on the local control plane (E2E_CLUSTER unset)")
	}
	g := NewWithT(t)
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	docs, err := documentedMetrics(filepath.Join(root, "docs", "metrics.md"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(docs).NotTo(BeEmpty())

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute) // a cold build included
	defer cancel()
	run := startMetricsRun(ctx, t, root)
	started := time.Now()
	defer func() { t.Logf("scenario and scrape took %s", time.Since(started).Round(time.Second)) }()

	step := func(what string) { t.Logf("%s: %s", time.Since(started).Round(100*time.Millisecond), what) }

	step("seeding a secret with an expiry and a consumer Deployment, applying five VaultSecrets")
	expires := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second).UTC()
	_, err = run.admin().SetSecret(ctx, testenv.Vault, "api-token",
		admin.SecretVersion{Value: randomValue(), ContentType: "text/plain", Expires: &expires})
	g.Expect(err).NotTo(HaveOccurred())
	// The VaultPushSecret writes with the same identity: it may set secrets too.
	g.Expect(run.admin().AddRoleAssignment(ctx, testenv.Vault, admin.RoleAssignment{Principal: "app", Role: "Key Vault Secrets Officer"})).To(Succeed())
	run.apply(ctx, g, scenarioObjects)

	step("waiting for three VaultSecrets to be Ready and two to fail, one VaultPushSecret to push and one to fail")
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"db-credentials", "web-tls", "api-token"} {
			g.Expect(testenv.IsReady(run.vaultSecret(g, name))).To(BeTrue(), "VaultSecret %s is Ready", name)
		}
		g.Expect(run.readyReason(g, "broken")).To(Equal("SecretNotFound"))
		g.Expect(run.readyReason(g, "stranger")).To(Equal("FederatedCredentialMismatch"))
		g.Expect(run.pushReason(g, "pushed")).To(Equal("Pushed"))
		g.Expect(run.pushReason(g, "push-no-source")).To(Equal("SourceSecretNotFound"))
	}, time.Minute, 200*time.Millisecond).Should(Succeed())

	step("throttling the next GetSecret (429), subscribing the events endpoint and rotating DbPassword")
	g.Expect(run.admin().SetFaults(ctx, admin.Faults{Vaults: []admin.VaultFault{
		{Vault: testenv.Vault, Operation: "GetSecret", Status: http.StatusTooManyRequests, Count: 1},
	}})).To(Succeed())
	g.Eventually(func() error {
		_, err := run.admin().AddEventSubscription(ctx, admin.EventSubscription{
			Name: "vaultsync", Endpoint: run.eventsURL, Vaults: []string{testenv.Vault}, Secret: run.eventsKey,
		})
		return err
	}, 20*time.Second, 500*time.Millisecond).Should(Succeed(), "the events endpoint answers the validation handshake")
	rotated := randomValue()
	rotation, err := run.admin().SetSecret(ctx, testenv.Vault, "DbPassword", admin.SecretVersion{Value: rotated, ContentType: "text/plain"})
	g.Expect(err).NotTo(HaveOccurred())

	step("waiting for the event to sync the new version and restart the consumer")
	g.Eventually(func(g Gomega) {
		vs := run.vaultSecret(g, "db-credentials")
		g.Expect(vs.Status.SyncedVersions).To(HaveKeyWithValue("password", rotation.Version))
		s := &corev1.Secret{}
		g.Expect(run.k8s.Get(ctx, client.ObjectKey{Namespace: metricsNamespace, Name: "db-credentials"}, s)).To(Succeed())
		g.Expect(s.Data["password"]).To(matchValue(rotated))
		d := &appsv1.Deployment{}
		g.Expect(run.k8s.Get(ctx, client.ObjectKey{Namespace: metricsNamespace, Name: "consumer"}, d)).To(Succeed())
		g.Expect(d.Spec.Template.Annotations).To(HaveKey("vaultsync.io/restartedAt"))
	}, 45*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Expect(run.admin().ClearFaults(ctx)).To(Succeed())

	step("changing an annotation of a synced Secret: a reconcile with nothing to do")
	_, err = testenv.Kubectl(ctx, run.env.CP, "annotate", "-n", metricsNamespace, "secret", "web-tls", "example.com/touched=yes")
	g.Expect(err).NotTo(HaveOccurred())

	webTLS := run.vaultSecret(g, "web-tls")
	g.Expect(webTLS.Status.Certificates).To(HaveLen(1))
	notAfter := webTLS.Status.Certificates[0].NotAfter.Unix()

	step("checking that /metrics refuses callers without a token or without the metrics-reader role")
	g.Expect(run.scrapeStatus(ctx, "")).To(Equal(http.StatusUnauthorized))
	g.Expect(run.scrapeStatus(ctx, run.token(ctx, g, "nobody"))).To(Equal(http.StatusForbidden))

	step("scraping /metrics as a ServiceAccount bound to config/rbac's metrics-reader role")
	_, err = testenv.Kubectl(ctx, run.env.CP, "apply", "-f", filepath.Join(root, "config", "rbac", "metrics_reader_role.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	token := run.token(ctx, g, "scraper")
	g.Expect(run.k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vaultsync-metrics-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: metricsNamespace, Name: "scraper"}},
	})).To(Succeed())
	var last map[string]*dto.MetricFamily
	defer func() {
		if (t.Failed() || testing.Verbose()) && last != nil {
			t.Logf("vaultsync series of the last scrape:\n%s", describeFamilies(last))
		}
	}()
	g.Eventually(func(g Gomega) {
		fams := run.scrape(ctx, g, token)
		last = fams
		documented := map[string]bool{}
		for _, d := range docs {
			checkDocumented(g, fams, d)
			documented[d.Name] = true
		}
		for name := range fams {
			if strings.HasPrefix(name, "vaultsync_") {
				g.Expect(documented).To(HaveKey(name), "/metrics has %s, docs/metrics.md does not document it", name)
			}
		}
		v := func(name string, labels ...string) float64 { return sampleValue(g, fams, name, labels...) }
		// Entra ID: the federated ServiceAccount got tokens, the unfederated one was refused.
		g.Expect(v("vaultsync_token_requests_total", "method", "workloadIdentity", "result", "success")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_token_requests_total", "method", "workloadIdentity", "result", "failure")).To(BeNumerically(">=", 1))
		// Key Vault: the challenge, reads of secrets and the certificate, the one 429.
		g.Expect(v("vaultsync_keyvault_requests_total", "vault", demoVault, "operation", "GetSecret", "code", "200")).To(BeNumerically(">=", 3))
		g.Expect(v("vaultsync_keyvault_requests_total", "vault", demoVault, "operation", "GetSecret", "code", "401")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_keyvault_requests_total", "vault", demoVault, "operation", "GetSecret", "code", "404")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_keyvault_requests_total", "vault", demoVault, "operation", "GetSecret", "code", "429")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_keyvault_requests_total", "vault", demoVault, "operation", "GetCertificateSecret", "code", "200")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_keyvault_request_duration_seconds", "vault", demoVault, "operation", "GetSecret")).To(BeNumerically(">=", 5))
		g.Expect(v("vaultsync_throttled_total", "vault", demoVault)).To(BeNumerically(">=", 1))
		// Syncs: three first syncs and the rotation, two failures with their reasons, one skip.
		g.Expect(v("vaultsync_sync_total", "result", "success", "reason", "none")).To(BeNumerically(">=", 4))
		g.Expect(v("vaultsync_sync_total", "result", "failure", "reason", "SecretNotFound")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_sync_total", "result", "failure", "reason", "FederatedCredentialMismatch")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_sync_total", "result", "skipped", "reason", "none")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_sync_duration_seconds", "result", "success")).To(BeNumerically(">=", 4))
		g.Expect(v("vaultsync_sync_duration_seconds", "result", "failure")).To(BeNumerically(">=", 2))
		// Three Secrets created, one updated by the rotation.
		g.Expect(v("vaultsync_secret_updates_total")).To(BeNumerically(">=", 4))
		g.Expect(v("vaultsync_vaultsecrets", "ready", "true", "reason", "Synced")).To(Equal(3.0))
		g.Expect(v("vaultsync_vaultsecrets", "ready", "false", "reason", "SecretNotFound")).To(Equal(1.0))
		g.Expect(v("vaultsync_vaultsecrets", "ready", "false", "reason", "FederatedCredentialMismatch")).To(Equal(1.0))
		// Event Grid: the handshake and the new version of DbPassword.
		g.Expect(v("vaultsync_events_received_total", "type", "Microsoft.EventGrid.SubscriptionValidationEvent", "result", "validation")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_events_received_total", "type", "Microsoft.KeyVault.SecretNewVersionCreated", "result", "accepted")).To(BeNumerically(">=", 1))
		// The rotation restarted the consumer; the second target does not exist.
		g.Expect(v("vaultsync_rollouts_total", "kind", "Deployment", "result", "restarted")).To(Equal(1.0))
		g.Expect(v("vaultsync_rollouts_total", "kind", "Deployment", "result", "not_found")).To(Equal(1.0))
		// Expiry: the certificate's notAfter, the secret's exp, one object each.
		g.Expect(v("vaultsync_certificate_expiry_timestamp_seconds", "vault", demoVault)).To(Equal(float64(notAfter)))
		g.Expect(v("vaultsync_secret_expiry_timestamp_seconds", "vault", demoVault)).To(Equal(float64(expires.Unix())))
		g.Expect(v("vaultsync_expiry_tracked_objects")).To(Equal(2.0))
		// Pushes: one written (a SetSecret), one failure with its reason.
		g.Expect(v("vaultsync_push_total", "result", "written", "reason", "Pushed")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_push_total", "result", "failure", "reason", "SourceSecretNotFound")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_push_versions_written_total")).To(BeNumerically(">=", 1))
		g.Expect(v("vaultsync_keyvault_requests_total", "vault", demoVault, "operation", "SetSecret", "code", "200")).To(BeNumerically(">=", 1))
		// One vault: nothing folded into vault="other".
		g.Expect(v("vaultsync_metrics_vault_label_overflow_total")).To(Equal(0.0))
	}, 30*time.Second, time.Second).Should(Succeed())
}

// checkDocumented asserts that the scrape holds the documented metric with
// its type, at least one series, exactly the documented label names on each
// series and only documented label values.
func checkDocumented(g Gomega, fams map[string]*dto.MetricFamily, d documentedMetric) {
	fam, ok := fams[d.Name]
	g.Expect(ok).To(BeTrue(), "docs/metrics.md documents %s, /metrics does not have it", d.Name)
	g.Expect(fam.GetType()).To(Equal(d.Type), "type of %s", d.Name)
	g.Expect(fam.GetMetric()).NotTo(BeEmpty(), "%s has no series", d.Name)
	for _, m := range fam.GetMetric() {
		names := []string{}
		for _, l := range m.GetLabel() {
			names = append(names, l.GetName())
			if pattern, ok := labelValues[d.Name][l.GetName()]; ok {
				g.Expect(l.GetValue()).To(MatchRegexp(pattern), "value of label %s of %s", l.GetName(), d.Name)
			}
		}
		sort.Strings(names)
		g.Expect(names).To(Equal(d.Labels), "label names of %s", d.Name)
	}
}

// sampleValue is the value of the series of name with exactly these labels
// (name/value pairs): a counter's or gauge's value, a histogram's count.
func sampleValue(g Gomega, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	fam, ok := fams[name]
	g.Expect(ok).To(BeTrue(), "/metrics has %s", name)
	for _, m := range fam.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	g.Expect(fmt.Sprintf("%s%v", name, want)).To(BeEmpty(), "no such series; the scrape has:\n%s", describeFamily(fam))
	return 0
}

func describeFamilies(fams map[string]*dto.MetricFamily) string {
	var names []string
	for n := range fams {
		if strings.HasPrefix(n, "vaultsync_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(describeFamily(fams[n]))
	}
	return b.String()
}

func describeFamily(fam *dto.MetricFamily) string {
	var b strings.Builder
	for _, m := range fam.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+strconv.Quote(l.GetValue()))
		}
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		fmt.Fprintf(&b, "  %s{%s} %g\n", fam.GetName(), strings.Join(ls, ","), v)
	}
	return b.String()
}

// metricsRun is the environment of TestMetrics.
type metricsRun struct {
	env        *testenv.Env
	k8s        client.Client
	cs         kubernetes.Interface
	metricsURL string
	eventsURL  string
	eventsKey  string
}

func (r *metricsRun) admin() *admin.Client { return r.env.Emulator.Admin }

// startMetricsRun starts the control plane, the emulator (federated with
// ServiceAccount metrics/app), the events Secret and the manager with its
// metrics and events endpoints on loopback ports. Everything stops when the
// test ends; a failed test keeps the logs.
func startMetricsRun(ctx context.Context, t *testing.T, root string) *metricsRun {
	t.Helper()
	g := NewWithT(t)
	dir, err := os.MkdirTemp("", "vaultsync-e2e-metrics-")
	g.Expect(err).NotTo(HaveOccurred())
	bins, ok, err := testenv.BinariesFromEnv()
	g.Expect(err).NotTo(HaveOccurred())
	if !ok {
		t.Logf("building bin/manager and bin/kv-emulator into %s", dir)
		bins, err = testenv.Build(ctx, root, filepath.Join(dir, "bin"))
		g.Expect(err).NotTo(HaveOccurred())
	}
	metricsAddr, eventsAddr := freeLoopbackAddr(g), freeLoopbackAddr(g)
	stateDir := filepath.Join(dir, "state")
	e := &testenv.Env{
		Options: testenv.Options{Root: root, StateDir: stateDir, Namespace: metricsNamespace, Binaries: bins,
			ManagerArgs: []string{
				"--metrics-bind-address", metricsAddr, // HTTPS with authn/authz: the default --metrics-secure
				"--events-bind-address", eventsAddr, // plain HTTP on loopback (no certificate files)
				"--vault-push-secrets", // cluster id: the kube-system namespace's UID
			}},
		ManagerLog: filepath.Join(stateDir, "manager.log"),
	}
	t.Cleanup(func() {
		e.Down()
		if t.Failed() || os.Getenv("E2E_KEEP") != "" {
			t.Logf("last lines of the operator log:\n%s\nkept %s", testenv.Tail(e.ManagerLog, 40), dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	g.Expect(os.MkdirAll(stateDir, 0o700)).To(Succeed())

	e.CP, e.K8s, err = testenv.StartControlPlane(ctx, root, false)
	g.Expect(err).NotTo(HaveOccurred())
	for _, ns := range []string{testenv.OperatorNamespace, metricsNamespace} {
		g.Expect(testenv.EnsureNamespace(ctx, e.K8s, ns)).To(Succeed())
	}
	e.Emulator, err = testenv.StartEmulator(ctx, testenv.EmulatorOptions{
		Binary:   bins.Emulator,
		Config:   filepath.Join(root, "hack", "demo", "emulator.yaml"),
		StateDir: filepath.Join(stateDir, "emulator"),
		LogFile:  filepath.Join(stateDir, "emulator.log"),
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(testenv.Federate(ctx, e.CP.Config, e.Emulator.Admin, testenv.Identity, metricsNamespace, testenv.ServiceAccount)).To(Succeed())

	key := make([]byte, 24)
	_, _ = rand.Read(key)
	eventsKey := hex.EncodeToString(key)
	g.Expect(e.K8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testenv.OperatorNamespace, Name: eventsSecretName},
		Data:       map[string][]byte{"key": []byte(eventsKey)},
	})).To(Succeed())

	g.Expect(e.StartOperator(ctx, e.ManagerLog, false)).To(Succeed())
	cs, err := kubernetes.NewForConfig(e.CP.Config)
	g.Expect(err).NotTo(HaveOccurred())
	return &metricsRun{env: e, k8s: e.K8s, cs: cs, metricsURL: "https://" + metricsAddr + "/metrics",
		eventsURL: "http://" + eventsAddr + "/events", eventsKey: eventsKey}
}

// freeLoopbackAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeLoopbackAddr(g Gomega) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// apply writes the objects into a file and applies it to the namespace with kubectl.
func (r *metricsRun) apply(ctx context.Context, g Gomega, yaml string) {
	f := filepath.Join(r.env.StateDir, fmt.Sprintf("objects-%d.yaml", time.Now().UnixNano()))
	g.Expect(os.WriteFile(f, []byte(yaml), 0o600)).To(Succeed())
	_, err := testenv.Kubectl(ctx, r.env.CP, "apply", "-n", metricsNamespace, "-f", f)
	g.Expect(err).NotTo(HaveOccurred())
}

func (r *metricsRun) vaultSecret(g Gomega, name string) *v1alpha1.VaultSecret {
	vs := &v1alpha1.VaultSecret{}
	g.Expect(r.k8s.Get(context.Background(), client.ObjectKey{Namespace: metricsNamespace, Name: name}, vs)).To(Succeed())
	return vs
}

// pushReason is the Ready reason of a VaultPushSecret of the scenario ("" before it has one).
func (r *metricsRun) pushReason(g Gomega, name string) string {
	ps := &v1alpha1.VaultPushSecret{}
	g.Expect(r.k8s.Get(context.Background(), client.ObjectKey{Namespace: metricsNamespace, Name: name}, ps)).To(Succeed())
	c := apimeta.FindStatusCondition(ps.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil {
		return ""
	}
	return c.Reason
}

// readyReason is the reason of a VaultSecret's Ready condition for its
// current generation ("" before).
func (r *metricsRun) readyReason(g Gomega, name string) string {
	vs := r.vaultSecret(g, name)
	for _, c := range vs.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady && c.ObservedGeneration == vs.Generation {
			return c.Reason
		}
	}
	return ""
}

// token returns a token of ServiceAccount name of the namespace (created when missing).
func (r *metricsRun) token(ctx context.Context, g Gomega, name string) string {
	_, err := r.cs.CoreV1().ServiceAccounts(metricsNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		_, err = r.cs.CoreV1().ServiceAccounts(metricsNamespace).Create(ctx,
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	expiry := int64(600)
	tr, err := r.cs.CoreV1().ServiceAccounts(metricsNamespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

// metricsClient talks to the manager's metrics endpoint directly (no proxy).
// The manager serves a self-signed certificate it generates at start when
// none is configured, so the client does not verify it: what is under test
// here is the authentication and authorisation of the scraper.
var metricsClient = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
	},
}

func (r *metricsRun) get(ctx context.Context, token string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.metricsURL, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return metricsClient.Do(req)
}

// scrapeStatus is the HTTP status of a scrape with token ("" for none).
func (r *metricsRun) scrapeStatus(ctx context.Context, token string) (int, error) {
	resp, err := r.get(ctx, token)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// scrape reads and parses /metrics.
func (r *metricsRun) scrape(ctx context.Context, g Gomega, token string) map[string]*dto.MetricFamily {
	resp, err := r.get(ctx, token)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return fams
}

// scenarioObjects are the workloads and VaultSecrets of TestMetrics:
//
//   - db-credentials: DbPassword through workload identity (token requests),
//     rolling out Deployment consumer (restarted) and absent (not_found);
//   - web-tls: a certificate (its notAfter in the certificate expiry gauge);
//   - api-token: a secret with an exp attribute (the secret expiry gauge);
//   - broken: a secret that does not exist (a failed sync, SecretNotFound);
//   - stranger: a ServiceAccount without federation (failed token requests);
//   - pushed: a VaultPushSecret writing a key of a Secret (a push, a SetSecret);
//   - push-no-source: a VaultPushSecret whose Secret does not exist (a failed push).
const scenarioObjects = `
apiVersion: v1
kind: Secret
metadata:
  name: push-source
stringData:
  value: pushed-by-the-metrics-scenario
---
apiVersion: vaultsync.io/v1alpha1
kind: VaultPushSecret
metadata:
  name: pushed
spec:
  secretRef: {name: push-source}
  vault:
    url: https://demo.vault.azure.net/
    auth:
      workloadIdentity:
        serviceAccountName: app
  data:
    - secretKey: value
      remote: {name: pushed-by-metrics}
---
apiVersion: vaultsync.io/v1alpha1
kind: VaultPushSecret
metadata:
  name: push-no-source
spec:
  secretRef: {name: no-such-secret}
  vault:
    url: https://demo.vault.azure.net/
    auth:
      workloadIdentity:
        serviceAccountName: app
  data:
    - secretKey: value
      remote: {name: never-pushed}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
  annotations:
    azure.workload.identity/client-id: 5b1e7c2a-3d4f-4a6b-9c8d-0e1f2a3b4c5d
    azure.workload.identity/tenant-id: 72f9a8b1-6c3d-4e5f-8a9b-0c1d2e3f4a5b
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: stranger
  annotations:
    azure.workload.identity/client-id: 5b1e7c2a-3d4f-4a6b-9c8d-0e1f2a3b4c5d
    azure.workload.identity/tenant-id: 72f9a8b1-6c3d-4e5f-8a9b-0c1d2e3f4a5b
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: consumer
spec:
  replicas: 1
  selector:
    matchLabels: {app: consumer}
  template:
    metadata:
      labels: {app: consumer}
    spec:
      containers:
        - name: app
          image: registry.invalid/consumer:1
---
apiVersion: vaultsync.io/v1alpha1
kind: VaultSecret
metadata:
  name: db-credentials
spec:
  vault:
    url: https://demo.vault.azure.net/
    auth:
      workloadIdentity:
        serviceAccountName: app
  data:
    - key: password
      remote:
        name: DbPassword
  rolloutRestartTargets:
    - kind: Deployment
      name: consumer
    - kind: Deployment
      name: absent
---
apiVersion: vaultsync.io/v1alpha1
kind: VaultSecret
metadata:
  name: web-tls
spec:
  vault:
    url: https://demo.vault.azure.net/
    auth:
      workloadIdentity:
        serviceAccountName: app
  target:
    type: kubernetes.io/tls
  data:
    - remote:
        name: web-cert
        type: certificate
---
apiVersion: vaultsync.io/v1alpha1
kind: VaultSecret
metadata:
  name: api-token
spec:
  vault:
    url: https://demo.vault.azure.net/
    auth:
      workloadIdentity:
        serviceAccountName: app
  data:
    - key: token
      remote:
        name: api-token
---
apiVersion: vaultsync.io/v1alpha1
kind: VaultSecret
metadata:
  name: broken
spec:
  vault:
    url: https://demo.vault.azure.net/
    auth:
      workloadIdentity:
        serviceAccountName: app
  data:
    - key: value
      remote:
        name: no-such-secret
---
apiVersion: vaultsync.io/v1alpha1
kind: VaultSecret
metadata:
  name: stranger
spec:
  vault:
    url: https://demo.vault.azure.net/
    auth:
      workloadIdentity:
        serviceAccountName: stranger
  data:
    - key: password
      remote:
        name: DbPassword
`
