package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
)

// The benchmark of this file runs, in this process, the two validation steps the kube-apiserver
// applies to every write of a VaultSecret: the OpenAPI schema and the CEL rules of the generated
// CRD (config/crd/bases). It needs no control plane:
//
//	go test ./test/bench -run '^$' -bench CRDValidation -benchmem   # ns and allocations per object
//
// test/admission's TestCRDRuleCosts lists every rule's estimated cost.

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
