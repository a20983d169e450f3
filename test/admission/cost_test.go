/*
Copyright 2026 The vaultsync Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package admission

import (
	"math"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
)

// celBudgets bound the static cost the apiserver estimates for all CEL rules of each CRD, far
// below its own limit (100,000,000): a rule that reads every item of spec.data for every item,
// or a string, list or map without maxLength, maxItems or maxProperties under a rule, goes over.
// Before the rules were reworked (docs/benchmarks.md, Admission) the VaultSecret CRD's estimate
// was 14,356,804, nearly all of it one pairwise rule and two rules on an unbounded string.
var celBudgets = map[string]uint64{
	"vaultsync.io_vaultsecrets.yaml":            1_000_000,
	"vaultsync.io_clustervaultsecrets.yaml":     1_000_000,
	"vaultsync.io_vaultconnections.yaml":        100_000,
	"vaultsync.io_clustervaultconnections.yaml": 100_000,
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

// TestCRDRuleCosts compiles every rule of every generated CRD as the apiserver does, and checks
// each rule's and each CRD's estimated cost; with -v it lists every rule with its cost, most
// expensive first.
func TestCRDRuleCosts(t *testing.T) {
	for file, budget := range celBudgets {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(file, "vaultsync.io_"), ".yaml"), func(t *testing.T) {
			g := NewWithT(t)
			crd := readCRDFile(g, file)
			internal := &apiextensions.JSONSchemaProps{}
			g.Expect(apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(
				crd.Spec.Versions[0].Schema.OpenAPIV3Schema, internal, nil)).To(Succeed())
			root, err := structuralschema.NewStructural(internal)
			g.Expect(err).NotTo(HaveOccurred())

			var costs []ruleCost
			var walk func(path string, st *structuralschema.Structural, declType *apiservercel.DeclType, cardinality uint64)
			walk = func(path string, st *structuralschema.Structural, declType *apiservercel.DeclType, cardinality uint64) {
				if len(st.XValidations) > 0 {
					results, err := cel.Compile(st, declType, celconfig.PerCallLimit,
						environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()), cel.StoredExpressionsEnvLoader())
					g.Expect(err).NotTo(HaveOccurred(), path)
					for i, r := range results {
						rule := st.XValidations[i].Rule
						g.Expect(r.Error).To(BeNil(), "%s: %s", path, rule)
						g.Expect(r.MaxCost).To(BeNumerically("<=", apiextensionsvalidation.StaticEstimatedCostLimit),
							"%s: %s: over the apiserver's limit per rule", path, rule)
						costs = append(costs, ruleCost{path: path, rule: rule, cost: r.MaxCost, cardinality: cardinality})
					}
				}
				for name, prop := range st.Properties {
					if path == "" && name == "metadata" {
						continue
					}
					var fieldType *apiservercel.DeclType
					if declType != nil {
						if f, ok := declType.Fields[name]; ok {
							fieldType = f.Type
						}
					}
					walk(path+"."+name, &prop, fieldType, cardinality)
				}
				var elem *apiservercel.DeclType
				if declType != nil {
					elem = declType.ElemType
				}
				if st.Items != nil {
					walk(path+"[*]", st.Items, elem, cardinality*maxElements(st.ValueValidation, true))
				}
				if st.AdditionalProperties != nil && st.AdditionalProperties.Structural != nil {
					walk(path+"{*}", st.AdditionalProperties.Structural, elem, cardinality*maxElements(st.ValueValidation, false))
				}
			}
			walk("", root, model.SchemaDeclType(root, true), 1)

			sort.Slice(costs, func(i, j int) bool { return costs[i].total() > costs[j].total() })
			var total uint64
			for _, c := range costs {
				total = saturatingAdd(total, c.total())
			}
			t.Logf("%d rules, estimated cost %d in all (budget %d)", len(costs), total, budget)
			for _, c := range costs {
				t.Logf("%10d = %8d × %-5d %s: %s", c.total(), c.cost, c.cardinality, c.path, c.rule)
			}
			g.Expect(total).To(BeNumerically("<=", budget), "estimated cost of all rules (go test -run CRDRuleCosts -v lists them)")
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
