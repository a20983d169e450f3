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

package chart

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/vaultsync/vaultsync/test/controlplane"
)

const (
	// chartRel is the chart's directory relative to the repository root.
	chartRel = "charts/vaultsync"
	// releaseNamespace is the namespace the tests install the chart into.
	releaseNamespace = "vaultsync-system"
	// commandTimeout bounds every helm and kubectl run.
	commandTimeout = 2 * time.Minute
)

// repoRoot returns the repository root or fails the test.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// helmBin returns <repo>/bin/helm, failing the test with what to run when it
// is missing.
func helmBin(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(repoRoot(t), "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm not found at %s: run 'make helm' (or 'make test-tools') first; it installs helm %s from the Go module proxy", bin, "v3.22.0")
	}
	return bin
}

// tool runs binaries with a private HOME-like environment, so nothing is read
// from or written to the developer's helm and kubectl configuration.
type tool struct {
	t          testing.TB
	env        []string
	kubeconfig string
}

// newTool prepares the environment of helm and kubectl runs. kubeconfig may be
// empty for commands that do not talk to a cluster.
func newTool(t testing.TB, kubeconfig string) *tool {
	t.Helper()
	dir := t.TempDir()
	env := []string{}
	for _, kv := range os.Environ() {
		// Drop the developer's cluster and helm settings.
		if strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "HELM_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"HELM_CACHE_HOME="+filepath.Join(dir, "helm-cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "helm-config"),
		"HELM_DATA_HOME="+filepath.Join(dir, "helm-data"),
		"KUBECACHEDIR="+filepath.Join(dir, "kube-cache"),
	)
	if kubeconfig != "" {
		env = append(env, "KUBECONFIG="+kubeconfig)
	} else {
		// A kubeconfig pointing nowhere: helm template and lint never need a cluster.
		env = append(env, "KUBECONFIG="+filepath.Join(dir, "no-kubeconfig"))
	}
	return &tool{t: t, env: env, kubeconfig: kubeconfig}
}

// run runs bin with args (stdin may be nil) in the repository root and returns
// stdout; the error includes stderr.
func (tl *tool) run(stdin io.Reader, bin string, args ...string) (string, error) {
	tl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = repoRoot(tl.t)
	cmd.Env = tl.env
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), &cmdError{cmd: filepath.Base(bin) + " " + strings.Join(args, " "), err: err, stderr: stderr.String(), stdout: stdout.String()}
	}
	return stdout.String(), nil
}

// must runs bin and fails the test on error.
func (tl *tool) must(stdin io.Reader, bin string, args ...string) string {
	tl.t.Helper()
	out, err := tl.run(stdin, bin, args...)
	if err != nil {
		tl.t.Fatal(err)
	}
	return out
}

// cmdError reports a failed command with its output.
type cmdError struct {
	cmd, stderr, stdout string
	err                 error
}

func (e *cmdError) Error() string {
	return "`" + e.cmd + "` failed: " + e.err.Error() + "\nstderr:\n" + e.stderr + "\nstdout:\n" + e.stdout
}

func (e *cmdError) Unwrap() error { return e.err }

// valuesFile writes values (YAML) to a temporary file and returns its path.
// The path holds no comma (helm splits --values at commas), whatever the
// test's name.
func valuesFile(t testing.TB, values string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vaultsync-chart-values-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(p, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// manifest is a parsed multi-document YAML stream.
type manifest []*unstructured.Unstructured

// parseManifest decodes every non-empty document of a YAML stream.
func parseManifest(t testing.TB, text string) manifest {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	var out manifest
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("parsing rendered YAML: %v", err)
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// renderChart runs `helm template` with the given values (YAML) and returns the
// objects, failing the test if rendering fails.
func renderChart(t testing.TB, values string) manifest {
	t.Helper()
	out, err := templateChart(t, values)
	if err != nil {
		t.Fatal(err)
	}
	return parseManifest(t, out)
}

// templateChart runs `helm template` as release "vaultsync" in releaseNamespace.
func templateChart(t testing.TB, values string) (string, error) {
	t.Helper()
	return newTool(t, "").run(nil, helmBin(t), "template", "vaultsync", chartRel,
		"--namespace", releaseNamespace, "--values", valuesFile(t, values))
}

// ofKind returns the objects of one kind.
func (m manifest) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// find returns the object of kind, namespace and name, or nil.
func (m manifest) find(kind, namespace, name string) *unstructured.Unstructured {
	for _, o := range m {
		if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	return nil
}

// names returns "Kind namespace/name" of every object, for failure messages.
func (m manifest) names() []string {
	var out []string
	for _, o := range m {
		out = append(out, o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName())
	}
	return out
}

// convert turns an unstructured object into a typed one.
func convert[T any](t testing.TB, o *unstructured.Unstructured) *T {
	t.Helper()
	if o == nil {
		t.Fatalf("object is missing")
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, out, true); err != nil {
		t.Fatalf("converting %s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return out
}

// deployment returns the single Deployment of m.
func (m manifest) deployment(t testing.TB) *appsv1.Deployment {
	t.Helper()
	ds := m.ofKind("Deployment")
	if len(ds) != 1 {
		t.Fatalf("want exactly one Deployment, got %d: %v", len(ds), m.names())
	}
	return convert[appsv1.Deployment](t, ds[0])
}

// generatedManagerRules returns the rules of the ClusterRole in the generated
// config/rbac/role.yaml: the reference for the manager's rights.
func generatedManagerRules(t testing.TB) []rbacv1.PolicyRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	roles := parseManifest(t, string(b)).ofKind("ClusterRole")
	if len(roles) != 1 {
		t.Fatalf("config/rbac/role.yaml: want one ClusterRole, got %d", len(roles))
	}
	rules := convert[rbacv1.ClusterRole](t, roles[0]).Rules
	if len(rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	return rules
}

// generatedCRDs returns the CRDs of config/crd/bases.
func generatedCRDs(t testing.TB) manifest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (run 'make manifests'): %v", err)
	}
	var out manifest
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parseManifest(t, string(b))...)
	}
	return out
}

// vaultSecretCRD is the name of the VaultSecret CRD.
const vaultSecretCRD = "vaultsecrets.vaultsync.io"

// generatedCRDNames returns the names of the CRDs of config/crd/bases.
func generatedCRDNames(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, crd := range generatedCRDs(t) {
		out = append(out, crd.GetName())
	}
	return out
}

// sampleObjects returns how kubectl names each object of the YAML files in
// dir (a kustomization.yaml aside): "<kind>.<group>/<name>", or "<kind>/<name>"
// for the core group, lower-case.
func sampleObjects(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range parseManifest(t, string(b)) {
			kind := strings.ToLower(o.GetKind())
			if group := o.GroupVersionKind().Group; group != "" {
				kind += "." + group
			}
			out = append(out, kind+"/"+o.GetName())
		}
	}
	return out
}
