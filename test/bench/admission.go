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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/bench/harness"
)

// admissionWarmup dry-run creates of each kind precede the measured ones: the
// first requests of a kind fill the apiserver's caches (schema converters,
// field managers) and would count against whichever kind goes first.
const admissionWarmup = 100

// admission measures what the kube-apiserver spends admitting a VaultSecret
// compared with a plain Secret: server-side dry-run creates (decoding,
// defaulting, OpenAPI and CEL validation, admission plug-ins, no etcd write)
// of a representative VaultSecret (3 items, workload identity, as in the main
// scenario) and of a Secret with 3 keys, b.c.n each at b.c.admissionWorkers
// goroutines, alternating kinds for b.c.rounds rounds in the same run.
func (b *bench) admission(ctx context.Context) error {
	ns, err := b.env.NewNamespace(ctx, "admission")
	if err != nil {
		return err
	}
	vs := &v1alpha1.VaultSecret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "admission-probe"},
		Spec:       vsSpec(b.env.VaultURL(harness.Vault), time.Hour, sharedSecrets...),
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
	metrics := &profiler{cfg: b.env.CP.Config}
	var ratios []float64
	for round := 1; round <= b.c.rounds; round++ {
		suffix := ""
		if b.c.rounds > 1 {
			suffix = fmt.Sprintf(", round %d", round)
		}
		secretRate, secretNote, err := b.dryRunPhase(metrics, "secrets", dryRun(secret))
		if err != nil {
			return err
		}
		b.t.info(fmt.Sprintf("dry-run Secret creates per second (3 keys; %d at %d goroutines%s)", b.c.n, workers, suffix),
			fmt.Sprintf("%.0f/s", secretRate), secretNote)
		if b.c.prof.apiPrefix != "" && round == 1 {
			b.c.prof.cfg, b.c.prof.phase = b.env.CP.Config, "dry-run VaultSecret creates"
			if err := b.c.prof.start(); err != nil {
				return err
			}
		}
		vsRate, vsNote, err := b.dryRunPhase(metrics, "vaultsecrets", dryRun(vs))
		if err != nil {
			return err
		}
		if b.c.prof.apiPrefix != "" && round == 1 {
			if err := b.c.prof.finish(b.t); err != nil {
				return err
			}
		}
		b.t.info(fmt.Sprintf("dry-run VaultSecret creates per second (3 items; %d at %d goroutines%s)", b.c.n, workers, suffix),
			fmt.Sprintf("%.0f/s", vsRate), vsNote)
		ratio := vsRate / secretRate
		ratios = append(ratios, ratio)
		b.t.check("dry-run VaultSecret vs Secret create rate"+suffix, fmt.Sprintf("%.2f × (%.0f/s vs %.0f/s)", ratio, vsRate, secretRate),
			"≥ 0.7 ×", ratio >= 0.7, fmt.Sprintf("the VaultSecret CRD holds %d CEL rules", rules))
	}
	if len(ratios) > 1 {
		lo, hi := ratios[0], ratios[0]
		for _, r := range ratios {
			lo, hi = min(lo, r), max(hi, r)
		}
		b.t.info("dry-run VaultSecret vs Secret create rate, range over the rounds", fmt.Sprintf("%.2f–%.2f ×", lo, hi), "")
	}
	return nil
}

// dryRunPhase sends b.c.n dry-run creates and returns their rate and a note
// with what the apiserver's metrics say they cost it.
func (b *bench) dryRunPhase(metrics *profiler, resource string, create func(int) error) (float64, string, error) {
	before, err := metrics.apiMetrics()
	if err != nil {
		return 0, "", fmt.Errorf("reading the apiserver's metrics: %w", err)
	}
	start := time.Now()
	if err := parallel(b.c.n, b.c.admissionWorkers, create); err != nil {
		return 0, "", err
	}
	took := time.Since(start)
	after, err := metrics.apiMetrics()
	if err != nil {
		return 0, "", fmt.Errorf("reading the apiserver's metrics: %w", err)
	}
	note := fmt.Sprintf("%d in %.2f s", b.c.n, took.Seconds())
	for _, s := range growth(before, after, "apiserver_request_duration_seconds", func(l map[string]string) string {
		return l["verb"] + " " + l["resource"] + subresource(l["subresource"])
	}) {
		if s.what == "POST "+resource {
			note += fmt.Sprintf("; apiserver %.2f ms per request", 1000*s.seconds/float64(s.count))
		}
	}
	if resource == "vaultsecrets" {
		var evals uint64
		for _, s := range growth(before, after, "apiserver_cel_evaluation_duration_seconds", func(map[string]string) string { return "" }) {
			evals += s.count
		}
		// The apiserver observes one evaluation per schema node it visits that holds rules or
		// leads to rules, timing each with its children: counts are comparable, sums are not.
		note += fmt.Sprintf("; %.1f CEL validator node visits per request", float64(evals)/float64(b.c.n))
	}
	return float64(b.c.n) / took.Seconds(), note, nil
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
