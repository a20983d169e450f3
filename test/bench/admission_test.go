package main

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"sigs.k8s.io/yaml"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
)

// The tests and benchmarks of this file run, in this process, the two validation steps the
// kube-apiserver applies to every write of a VaultSecret: the OpenAPI schema and the CEL rules
// of the generated CRD (config/crd/bases). They need no control plane:
//
//	go test ./test/bench -run '^$' -bench CRDValidation -benchmem   # ns and allocations per object
//	go test ./test/bench -run CRDRuleCosts -v                       # every rule's estimated cost

// crdSchema is the structural schema and OpenAPI validator of one generated CRD.
type crdSchema struct {
	internal   *apiextensions.JSONSchemaProps
	structural *structuralschema.Structural
	openAPI    apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

func loadCRD(tb testing.TB, file string) *crdSchema {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", file))
	if err != nil {
		tb.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
		tb.Fatal(err)
	}
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, internal, nil); err != nil {
		tb.Fatal(err)
	}
	structural, err := structuralschema.NewStructural(internal)
	if err != nil {
		tb.Fatal(err)
	}
	openAPI, _, err := apiservervalidation.NewSchemaValidator(internal)
	if err != nil {
		tb.Fatal(err)
	}
	return &crdSchema{internal: internal, structural: structural, openAPI: openAPI,
		cel: cel.NewValidator(structural, true, celconfig.PerCallLimit)}
}

// representativeVaultSecret is the object of `go run ./test/bench -admission`, decoded from JSON
// the way the apiserver decodes a request, with the schema's defaults applied.
func representativeVaultSecret(tb testing.TB, s *crdSchema) map[string]any {
	tb.Helper()
	vs := &v1alpha1.VaultSecret{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "VaultSecret"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "admission", Name: "admission-probe"},
		Spec:       vsSpec("https://bench.vault.azure.net/", time.Hour, sharedSecrets...),
	}
	raw, err := utiljson.Marshal(vs)
	if err != nil {
		tb.Fatal(err)
	}
	obj := map[string]any{}
	if err := utiljson.Unmarshal(raw, &obj); err != nil {
		tb.Fatal(err)
	}
	structuraldefaulting.Default(obj, s.structural)
	return obj
}

// BenchmarkCRDValidation measures the OpenAPI and the CEL validation of a representative
// VaultSecret create, as the apiserver runs them (customResourceStrategy.Validate).
func BenchmarkCRDValidation(b *testing.B) {
	s := loadCRD(b, "vaultsync.io_vaultsecrets.yaml")
	obj := representativeVaultSecret(b, s)
	ctx := context.Background()
	if errs := apiservervalidation.ValidateCustomResource(nil, obj, s.openAPI); len(errs) > 0 {
		b.Fatalf("the OpenAPI schema refuses the representative VaultSecret: %v", errs)
	}
	if errs, _ := s.cel.Validate(ctx, nil, s.structural, obj, nil, celconfig.RuntimeCELCostBudget); len(errs) > 0 {
		b.Fatalf("the CEL rules refuse the representative VaultSecret: %v", errs)
	}
	b.Run("openapi", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			apiservervalidation.ValidateCustomResource(nil, obj, s.openAPI)
		}
	})
	b.Run("cel", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.cel.Validate(ctx, nil, s.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		}
	})
	// A status write runs every CEL rule of the object again, spec rules included (the
	// status strategy validates the whole object; unchanged parts only turn errors into
	// warnings), but the OpenAPI schema of status only.
	b.Run("cel-status-update", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.cel.Validate(ctx, nil, s.structural, obj, obj, celconfig.RuntimeCELCostBudget)
		}
	})
}

// ruleCost is the static cost estimate of one rule, as the apiserver computes it when the CRD
// is installed: the rule's worst case times the number of times it can run (the product of
// maxItems and maxProperties above it).
type ruleCost struct {
	path        string
	rule        string
	cost        uint64
	cardinality uint64
}

// TestCRDRuleCosts compiles every rule of every generated CRD as the apiserver does and checks
// that each compiles; with -v it lists every rule with its estimated cost, most expensive first.
func TestCRDRuleCosts(t *testing.T) {
	for _, file := range []string{"vaultsync.io_vaultsecrets.yaml", "vaultsync.io_clustervaultsecrets.yaml",
		"vaultsync.io_vaultconnections.yaml", "vaultsync.io_clustervaultconnections.yaml"} {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(file, "vaultsync.io_"), ".yaml"), func(t *testing.T) {
			s := loadCRD(t, file)
			var costs []ruleCost
			var walk func(path string, st *structuralschema.Structural, declType *apiservercel.DeclType, cardinality uint64, root bool)
			walk = func(path string, st *structuralschema.Structural, declType *apiservercel.DeclType, cardinality uint64, root bool) {
				if len(st.XValidations) > 0 {
					results, err := cel.Compile(st, declType, celconfig.PerCallLimit,
						environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()), cel.StoredExpressionsEnvLoader())
					if err != nil {
						t.Fatalf("%s: %v", path, err)
					}
					for i, r := range results {
						if r.Error != nil {
							t.Errorf("%s: rule %q: %v", path, st.XValidations[i].Rule, r.Error)
							continue
						}
						if r.MaxCost > apiextensionsvalidation.StaticEstimatedCostLimit {
							t.Errorf("%s: rule %q: estimated cost %d is over the apiserver's limit of %d per rule",
								path, st.XValidations[i].Rule, r.MaxCost, apiextensionsvalidation.StaticEstimatedCostLimit)
						}
						costs = append(costs, ruleCost{path: path, rule: st.XValidations[i].Rule, cost: r.MaxCost, cardinality: cardinality})
					}
				}
				for name, prop := range st.Properties {
					if root && name == "metadata" {
						continue
					}
					var fieldType *apiservercel.DeclType
					if declType != nil {
						if f, ok := declType.Fields[name]; ok {
							fieldType = f.Type
						}
					}
					walk(path+"."+name, &prop, fieldType, cardinality, false)
				}
				if st.Items != nil {
					var elem *apiservercel.DeclType
					if declType != nil {
						elem = declType.ElemType
					}
					walk(path+"[*]", st.Items, elem, cardinality*maxElements(st.ValueValidation, true), false)
				}
				if st.AdditionalProperties != nil && st.AdditionalProperties.Structural != nil {
					var elem *apiservercel.DeclType
					if declType != nil {
						elem = declType.ElemType
					}
					walk(path+"{*}", st.AdditionalProperties.Structural, elem, cardinality*maxElements(st.ValueValidation, false), false)
				}
			}
			walk("", s.structural, model.SchemaDeclType(s.structural, true), 1, true)
			sort.Slice(costs, func(i, j int) bool { return costs[i].total() > costs[j].total() })
			var total uint64
			for _, c := range costs {
				total = saturatingAdd(total, c.total())
			}
			if total > apiextensionsvalidation.StaticEstimatedCRDCostLimit {
				t.Errorf("estimated cost of all rules %d is over the apiserver's limit of %d per CRD", total, apiextensionsvalidation.StaticEstimatedCRDCostLimit)
			}
			t.Logf("%d rules, estimated cost %d in all", len(costs), total)
			for _, c := range costs {
				t.Logf("%10d = %8d × %-5d %s: %s", c.total(), c.cost, c.cardinality, c.path, c.rule)
			}
		})
	}
}

func (c ruleCost) total() uint64 {
	if c.cardinality != 0 && c.cost > math.MaxUint64/c.cardinality {
		return math.MaxUint64
	}
	return c.cost * c.cardinality
}

func saturatingAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// maxElements is the bound a list (maxItems) or map (maxProperties) puts on the rules below
// it; an unbounded one counts as 1,000,000, about what a 3 MiB request can hold.
func maxElements(v *structuralschema.ValueValidation, list bool) uint64 {
	const unbounded = 1_000_000
	if v == nil {
		return unbounded
	}
	bound := v.MaxProperties
	if list {
		bound = v.MaxItems
	}
	if bound == nil || *bound < 0 || *bound > unbounded {
		return unbounded
	}
	return uint64(*bound)
}
