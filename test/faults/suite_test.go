// Package faults is vaultsync's fault suite: the real manager, in this
// process, against the local control plane and the Key Vault emulator, with
// faults injected into Key Vault, Entra ID, the kube-apiserver and the
// manager itself. During every fault a watcher checks each version of each
// managed Secret: no key may ever go missing and no value may ever be one
// its Key Vault object did not hold. After the fault clears everything must
// converge within two backoff periods (plus the Retry-After or lease the
// fault imposes), and Ready must say what happened while it lasted.
//
// Run it with `make test-faults`. FAULTS_SOAK=1 adds a 10-minute rotation
// run that reports goroutines and heap.
package faults

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/controllers"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

// Backoff of the suite's managers: a failing VaultSecret is retried after
// 200 ms, 400 ms, ... at most backoffMax.
const (
	backoffMin = 200 * time.Millisecond
	backoffMax = 2 * time.Second
	// converge is how long the suite waits for convergence after a fault
	// clears: two backoff periods, plus the Azure SDK's own retries of the
	// last failed request (up to 3 tries, 0.8 s apart and doubling) and a
	// reconcile.
	converge = 2*backoffMax + 12*time.Second
)

var (
	env   *inprocess.Env
	inv   *inprocess.Invariant
	gate  *inprocess.Gate
	seq   atomic.Int64
	bgctx = context.Background()
)

func TestFaults(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "vaultsync fault suite")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(logr.Discard())
	klog.SetLogger(logr.Discard())
	var err error
	env, err = inprocess.Start(inprocess.Options{})
	Expect(err).NotTo(HaveOccurred())
	u, err := url.Parse(env.CP.Config.Host)
	Expect(err).NotTo(HaveOccurred())
	gate, err = inprocess.NewGate(u.Host)
	Expect(err).NotTo(HaveOccurred())
	inv, err = env.NewInvariant(bgctx)
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if inv != nil {
		inv.Stop()
	}
	if gate != nil {
		gate.Close()
	}
	if env != nil {
		env.Close()
	}
})

// Every spec ends with no fault left behind and no invariant broken.
var _ = AfterEach(func() {
	env.Emu.ClearFaults()
	Expect(inv.Violations()).To(BeEmpty(), "invariant violations:\n%s", inv.Summary())
})

// managerOptions are the suite's controller options: short backoff, and an
// Azure SDK that gives up on a slow request after tryTimeout.
func managerOptions() *controllers.Options {
	o := controllers.DefaultOptions()
	o.BackoffMin, o.BackoffMax = backoffMin, backoffMax
	o.AzureClientOptions.Retry.TryTimeout = tryTimeout
	return &o
}

const tryTimeout = 2 * time.Second

func startManager(name string, extra ...func(*inprocess.ManagerOptions)) *inprocess.Manager {
	GinkgoHelper()
	o := inprocess.ManagerOptions{Options: managerOptions(), Gate: gate, Name: name, QPS: -1}
	if os.Getenv("FAULTS_LOG") != "" {
		o.Log = GinkgoWriter
	}
	for _, f := range extra {
		f(&o)
	}
	m, err := env.StartManager(o)
	Expect(err).NotTo(HaveOccurred())
	Expect(m.WaitSynced(bgctx)).To(Succeed())
	return m
}

// stopManager stops a manager like a kill: nothing is waited for. A manager
// whose runnables outlive controller-runtime's 30 s grace period is reported,
// not failed: the next manager must cope with whatever it left behind.
func stopManager(m *inprocess.Manager) {
	GinkgoHelper()
	if err := m.Stop(); err != nil {
		GinkgoWriter.Printf("manager stopped with: %v\n", err)
		AddReportEntry("manager stop", err.Error())
	}
}

func name(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

// setSecret puts a new value into the vault, after telling the watcher that it is legitimate.
func setSecret(vault, object, value string) {
	GinkgoHelper()
	inv.Allow(object, value)
	_, err := env.Emu.SetSecret(vault, object, emulator.SecretVersion{Value: value})
	Expect(err).NotTo(HaveOccurred())
}

func newNamespace() string {
	GinkgoHelper()
	ns, err := env.NewNamespace(bgctx, name("f"))
	Expect(err).NotTo(HaveOccurred())
	return ns
}

// newVault adds a vault that the identity "app" may read.
func newVault(limits *emulator.Limits) string {
	GinkgoHelper()
	v := name("v")
	Expect(env.Emu.AddVault(emulator.Vault{Name: v, Limits: limits,
		RoleAssignments: []emulator.RoleAssignment{{Principal: inprocess.Identity, Role: "Key Vault Secrets User"}}})).To(Succeed())
	return v
}

// createVS creates a VaultSecret whose Secret holds key -> object for each
// item, and declares that Secret to the watcher.
func createVS(ns, vsName, vault string, items map[string]string) {
	GinkgoHelper()
	spec := v1alpha1.VaultSecretSpec{
		Vault: &v1alpha1.VaultRef{URL: env.VaultURL(vault), Auth: v1alpha1.VaultAuth{
			WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: inprocess.ServiceAccount},
		}},
		RefreshInterval: &metav1.Duration{Duration: time.Hour},
	}
	for k, o := range items {
		spec.Data = append(spec.Data, v1alpha1.DataItem{Key: k, Remote: v1alpha1.RemoteRef{Name: o}})
	}
	inv.Expect(ns, vsName, items)
	Expect(env.Client.Create(bgctx, &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: vsName}, Spec: spec})).To(Succeed())
}

func getVS(ns, n string) *v1alpha1.VaultSecret {
	vs := &v1alpha1.VaultSecret{}
	if err := env.Client.Get(bgctx, client.ObjectKey{Namespace: ns, Name: n}, vs); err != nil {
		return nil
	}
	return vs
}

// ready returns the Ready condition of the current generation, or nil.
func ready(ns, n string) *metav1.Condition {
	vs := getVS(ns, n)
	if vs == nil {
		return nil
	}
	c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.ObservedGeneration != vs.Generation {
		return nil
	}
	return c
}

func readyStatus(ns, n string) func() string {
	return func() string {
		if c := ready(ns, n); c != nil {
			return string(c.Status) + "/" + c.Reason
		}
		return ""
	}
}

func secretData(ns, n string) map[string]string {
	s := &corev1.Secret{}
	if err := env.Client.Get(bgctx, client.ObjectKey{Namespace: ns, Name: n}, s); err != nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

// forceSync asks for a sync now.
func forceSync(ns, n string) {
	GinkgoHelper()
	Eventually(func() error {
		vs := getVS(ns, n)
		if vs == nil {
			return fmt.Errorf("VaultSecret %s/%s not found", ns, n)
		}
		patch := client.MergeFrom(vs.DeepCopy())
		if vs.Annotations == nil {
			vs.Annotations = map[string]string{}
		}
		vs.Annotations[v1alpha1.AnnotationForceSync] = name("sync")
		return env.Client.Patch(bgctx, vs, patch)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
}

// expectData waits until the Secret holds want.
func expectData(ns, n string, want map[string]string, within time.Duration) {
	GinkgoHelper()
	Eventually(func() map[string]string { return secretData(ns, n) }, within, 100*time.Millisecond).Should(Equal(want),
		"Secret %s/%s (Ready %s)", ns, n, readyStatus(ns, n)())
}

func expectReady(ns, n string, within time.Duration) {
	GinkgoHelper()
	Eventually(readyStatus(ns, n), within, 100*time.Millisecond).Should(HavePrefix("True/"), "VaultSecret %s/%s", ns, n)
}
