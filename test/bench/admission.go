package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

// admissionWarmup dry-run creates of each kind precede the measured ones: the
// first requests of a kind fill the apiserver's caches (schema converters,
// field managers) and would count against whichever kind goes first.
const admissionWarmup = 100

// admission measures what the kube-apiserver spends admitting a VaultSecret
// compared with a plain Secret: server-side dry-run creates (decoding,
// defaulting, OpenAPI and CEL validation, admission plug-ins, no etcd write)
// of a representative VaultSecret (3 items, workload identity, as in the main
// scenario) and of a Secret with 3 keys, b.c.n each per round at
// b.c.admissionWorkers goroutines, for b.c.rounds rounds in the same run.
func (b *bench) admission(ctx context.Context) error {
	if b.c.n < admissionSlices || b.c.rounds < 1 || b.c.admissionWorkers < 1 {
		return fmt.Errorf("-admission needs -n of at least %d, -rounds and -admission-concurrency of at least 1", admissionSlices)
	}
	ns, err := b.env.NewNamespace(ctx, "admission")
	if err != nil {
		return err
	}
	vs := &v1alpha1.VaultSecret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "admission-probe"},
		Spec:       vsSpec(b.env.VaultURL(inprocess.Vault), time.Hour, sharedSecrets...),
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "admission-probe"},
		Data:       map[string][]byte{"a": []byte("value-a"), "b": []byte("value-b"), "c": []byte("value-c")},
	}
	// Each call sends its own copy: Create decodes the answer into the object it is given.
	dryRun := func(obj client.Object) func(int) error {
		return func(int) error {
			return b.env.Client.Create(ctx, obj.DeepCopyObject().(client.Object), client.DryRunAll)
		}
	}
	workers := b.c.admissionWorkers
	for _, obj := range []client.Object{secret, vs} {
		if err := parallel(admissionWarmup, workers, dryRun(obj)); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}

	rules, err := countRules(filepath.Join(b.env.Root, "config", "crd", "bases", "vaultsync.io_vaultsecrets.yaml"))
	if err != nil {
		return err
	}
	kinds := []*dryRunKind{
		{resource: "secrets", what: "Secret", shape: "3 keys", create: dryRun(secret)},
		{resource: "vaultsecrets", what: "VaultSecret", shape: "3 items", create: dryRun(vs)},
	}
	metrics := &profiler{cfg: b.env.CP.Config}
	var ratios []float64
	for round := 1; round <= b.c.rounds; round++ {
		suffix := ""
		if b.c.rounds > 1 {
			suffix = fmt.Sprintf(", round %d", round)
		}
		for _, k := range kinds {
			k.reset()
		}
		// The kinds take turns in slices, so that the load the other engineers put on the
		// machine falls on both alike; the order within a slice alternates too.
		for slice := range admissionSlices {
			for j := range kinds {
				k := kinds[(slice+j)%len(kinds)]
				if err := b.dryRunBatch(metrics, k, b.c.n/admissionSlices); err != nil {
					return err
				}
			}
		}
		for _, k := range kinds {
			b.t.info(fmt.Sprintf("dry-run %s creates per second (%s; %d at %d goroutines%s)", k.what, k.shape, k.n, workers, suffix),
				fmt.Sprintf("%.0f/s", k.rate()), k.note())
		}
		vsRate, secretRate := kinds[1].rate(), kinds[0].rate()
		ratio := vsRate / secretRate
		ratios = append(ratios, ratio)
		b.t.check("dry-run VaultSecret vs Secret create rate"+suffix, fmt.Sprintf("%.2f × (%.0f/s vs %.0f/s)", ratio, vsRate, secretRate),
			"≥ 0.7 ×", ratio >= 0.7, fmt.Sprintf("the VaultSecret CRD holds %d CEL rules; the kinds alternate in %d slices", rules, admissionSlices))
	}
	if len(ratios) > 1 {
		lo, hi := ratios[0], ratios[0]
		for _, r := range ratios {
			lo, hi = min(lo, r), max(hi, r)
		}
		b.t.info("dry-run VaultSecret vs Secret create rate, range over the rounds", fmt.Sprintf("%.2f–%.2f ×", lo, hi), "")
	}
	if err := b.statusPatches(ctx, metrics, vs); err != nil {
		return err
	}
	if b.c.prof.apiPrefix != "" {
		// Profiles of each kind alone, after the measured rounds (profiling slows the apiserver):
		// PREFIX-secrets-cpu-N.pprof and PREFIX-vaultsecrets-cpu-N.pprof.
		for _, k := range kinds {
			p := &profiler{apiPrefix: b.c.prof.apiPrefix + "-" + k.resource, cfg: b.env.CP.Config,
				phase: fmt.Sprintf("%d dry-run %s creates", b.c.n, k.what)}
			if err := p.start(); err != nil {
				return err
			}
			if err := parallel(b.c.n, workers, k.create); err != nil {
				return err
			}
			if err := p.finish(b.t); err != nil {
				return err
			}
		}
	}
	return nil
}

// admissionStatusPatches is how many status patches statusPatches sends.
const admissionStatusPatches = 200

// statusPatches creates the VaultSecret and patches its status repeatedly, as the operator does
// after each sync, to show what a status write costs in CEL: the apiserver validates the whole
// object against every rule, spec rules included, on a write through the status subresource
// (errors of unchanged fields only become warnings), while its OpenAPI validation covers status.
func (b *bench) statusPatches(ctx context.Context, metrics *profiler, vs *v1alpha1.VaultSecret) error {
	obj := vs.DeepCopy()
	obj.Name = "admission-status"
	if err := b.env.Client.Create(ctx, obj); err != nil {
		return err
	}
	before, err := metrics.apiMetrics()
	if err != nil {
		return fmt.Errorf("reading the apiserver's metrics: %w", err)
	}
	start := time.Now()
	for i := range admissionStatusPatches {
		patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"status":{"lastForceSync":"bench-%d"}}`, i))
		if err := b.env.Client.Status().Patch(ctx, obj, patch); err != nil {
			return err
		}
	}
	took := time.Since(start)
	after, err := metrics.apiMetrics()
	if err != nil {
		return fmt.Errorf("reading the apiserver's metrics: %w", err)
	}
	var visits uint64
	for _, s := range growth(before, after, "apiserver_cel_evaluation_duration_seconds", func(map[string]string) string { return "" }) {
		visits += s.count
	}
	note := fmt.Sprintf("%d sequential merge patches in %.2f s", admissionStatusPatches, took.Seconds())
	for _, s := range growth(before, after, "apiserver_request_duration_seconds", func(l map[string]string) string {
		return l["verb"] + " " + l["resource"] + subresource(l["subresource"])
	}) {
		if s.what == "PATCH vaultsecrets/status" {
			note += fmt.Sprintf("; apiserver %.2f ms per patch", 1000*s.seconds/float64(s.count))
		}
	}
	b.t.info("CEL validator node visits per status patch of the same VaultSecret (spec rules run again)",
		fmt.Sprintf("%.1f", float64(visits)/admissionStatusPatches), note)
	return b.env.Client.Delete(ctx, obj)
}

// admissionSlices is how many turns each kind takes per round.
const admissionSlices = 10

// dryRunKind accumulates the measurements of one kind over a round.
type dryRunKind struct {
	resource, what, shape string
	create                func(int) error

	n              int
	took           time.Duration
	serverSeconds  float64
	serverRequests uint64
	celVisits      uint64
}

func (k *dryRunKind) reset() {
	k.n, k.took, k.serverSeconds, k.serverRequests, k.celVisits = 0, 0, 0, 0, 0
}

func (k *dryRunKind) rate() float64 { return float64(k.n) / k.took.Seconds() }

func (k *dryRunKind) note() string {
	note := fmt.Sprintf("%d in %.2f s", k.n, k.took.Seconds())
	if k.serverRequests > 0 {
		note += fmt.Sprintf("; apiserver %.2f ms per request", 1000*k.serverSeconds/float64(k.serverRequests))
	}
	if k.celVisits > 0 {
		// The apiserver observes one evaluation per schema node it visits that holds rules or
		// leads to rules, timing each with its children: counts are comparable, sums are not.
		note += fmt.Sprintf("; %.1f CEL validator node visits per request", float64(k.celVisits)/float64(k.n))
	}
	return note
}

// dryRunBatch sends n dry-run creates of one kind and adds their time and what the
// apiserver's metrics say they cost it.
func (b *bench) dryRunBatch(metrics *profiler, k *dryRunKind, n int) error {
	before, err := metrics.apiMetrics()
	if err != nil {
		return fmt.Errorf("reading the apiserver's metrics: %w", err)
	}
	start := time.Now()
	if err := parallel(n, b.c.admissionWorkers, k.create); err != nil {
		return err
	}
	k.took += time.Since(start)
	k.n += n
	after, err := metrics.apiMetrics()
	if err != nil {
		return fmt.Errorf("reading the apiserver's metrics: %w", err)
	}
	for _, s := range growth(before, after, "apiserver_request_duration_seconds", func(l map[string]string) string {
		return l["verb"] + " " + l["resource"] + subresource(l["subresource"])
	}) {
		if s.what == "POST "+k.resource {
			k.serverSeconds += s.seconds
			k.serverRequests += s.count
		}
	}
	for _, s := range growth(before, after, "apiserver_cel_evaluation_duration_seconds", func(map[string]string) string { return "" }) {
		k.celVisits += s.count
	}
	return nil
}

// countRules counts the x-kubernetes-validations rules of a generated CRD.
func countRules(file string) (int, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	n := 0
	var walk func(s *apiextensionsv1.JSONSchemaProps)
	walk = func(s *apiextensionsv1.JSONSchemaProps) {
		if s == nil {
			return
		}
		n += len(s.XValidations)
		for k := range s.Properties {
			p := s.Properties[k]
			walk(&p)
		}
		if s.Items != nil {
			walk(s.Items.Schema)
		}
		if s.AdditionalProperties != nil {
			walk(s.AdditionalProperties.Schema)
		}
	}
	for i := range crd.Spec.Versions {
		if v := crd.Spec.Versions[i].Schema; v != nil {
			walk(v.OpenAPIV3Schema)
		}
	}
	return n, nil
}
