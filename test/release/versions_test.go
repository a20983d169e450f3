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

package release

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/vaultsync/vaultsync/test/controlplane"
)

const (
	// image is the repository the release workflow pushes to and the chart and kustomize default to.
	image = "ghcr.io/vaultsync/vaultsync"
	// versionLabel is the label that names the release on everything the chart and kustomize install.
	versionLabel = "app.kubernetes.io/version"
	// fix is what every failure message suggests.
	fix = "VERSION is the one source: run 'make sync-version' (or 'make verify') and commit"
)

var semver = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

// TestVersionsAgree checks every published place that names the release
// against the VERSION file: the binary built by `make build`, the chart's
// Chart.yaml and what `helm template` renders from it, what
// `kubectl kustomize config/default` renders, and the docs.
func TestVersionsAgree(t *testing.T) {
	root := repoRoot(t)
	want := readVersion(t, root)

	t.Run("binary --version", func(t *testing.T) {
		g := NewWithT(t)
		bin := t.TempDir()
		// Through the Makefile, so the test covers VERSION -> hack/version.sh ->
		// hack/build-flags.sh -> the linker flag -> --version.
		run(t, root, env("VERSION", "RELEASE_VERSION"), "make", "--no-print-directory", "-s", "build", "LOCALBIN="+bin)
		out := run(t, root, nil, filepath.Join(bin, "manager"), "--version")
		fields := strings.Fields(out)
		g.Expect(fields).To(HaveLen(2), "manager --version printed %q", out)
		g.Expect(fields[0]).To(Equal("vaultsync"))
		got, build, _ := strings.Cut(fields[1], "+")
		g.Expect(got).To(Equal(want), "manager --version says %s; %s", fields[1], fix)
		if build != "" {
			g.Expect(build).To(MatchRegexp(`^g[0-9a-f]{7,}(\.dirty)?$`), "build metadata of %s", fields[1])
		}
	})

	t.Run("chart", func(t *testing.T) {
		g := NewWithT(t)
		var chart struct {
			Version    string `json:"version"`
			AppVersion string `json:"appVersion"`
		}
		readYAML(t, filepath.Join(root, "charts", "vaultsync", "Chart.yaml"), &chart)
		g.Expect(chart.Version).To(Equal(want), "Chart.yaml version; %s", fix)
		g.Expect(chart.AppVersion).To(Equal(want), "Chart.yaml appVersion; %s", fix)

		var values struct {
			Image struct {
				Repository string `json:"repository"`
				Tag        string `json:"tag"`
			} `json:"image"`
		}
		readYAML(t, filepath.Join(root, "charts", "vaultsync", "values.yaml"), &values)
		g.Expect(values.Image.Repository).To(Equal(image))
		g.Expect(values.Image.Tag).To(BeEmpty(), "values.yaml image.tag must stay empty, so the tag is the chart's appVersion")

		out := run(t, root, helmEnv(t), helmBin(t), "template", "vaultsync", "charts/vaultsync", "--namespace", "vaultsync-system")
		checkRendered(t, parse(t, out), want, "helm template charts/vaultsync")
	})

	t.Run("kustomize", func(t *testing.T) {
		out := run(t, root, helmEnv(t), kubectlBin(t), "kustomize", "config/default")
		checkRendered(t, parse(t, out), want, "kubectl kustomize config/default")
	})

	t.Run("docs and changelog", func(t *testing.T) {
		g := NewWithT(t)
		// Every pinned version: helm --version, image and chart references, the kustomize ref.
		pin := regexp.MustCompile(`(?:--version |ghcr\.io/vaultsync/[a-z/]+:|ref=v)([0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]*)`)
		for _, doc := range []struct {
			path string
			min  int
		}{{"docs/install.md", 3}, {"charts/vaultsync/README.md", 1}} {
			text := readFile(t, filepath.Join(root, doc.path))
			g.Expect(text).To(ContainSubstring("oci://ghcr.io/vaultsync/charts/vaultsync"), "%s installs from the published chart", doc.path)
			pinned := pin.FindAllStringSubmatch(text, -1)
			g.Expect(len(pinned)).To(BeNumerically(">=", doc.min), "%s pins the version it installs", doc.path)
			for _, m := range pinned {
				g.Expect(m[1]).To(Equal(want), "%s: %s; %s", doc.path, m[0], fix)
			}
		}
		g.Expect(readFile(t, filepath.Join(root, "CHANGELOG.md"))).To(MatchRegexp(`(?m)^## \[`+regexp.QuoteMeta(want)+`\]`),
			"CHANGELOG.md has no section for %s: the release notes are taken from it", want)
	})
}

// checkRendered checks rendered manifests: the manager's image is the
// release's, and every object carrying the version label (the CRDs always
// do) names the release.
func checkRendered(t *testing.T, objs []object, want, what string) {
	t.Helper()
	g := NewWithT(t)
	deployments, crds := 0, 0
	for _, o := range objs {
		switch o.Kind {
		case "Deployment":
			deployments++
			g.Expect(o.Spec.Template.Spec.Containers).NotTo(BeEmpty())
			g.Expect(o.Spec.Template.Spec.Containers[0].Image).To(Equal(image+":"+want),
				"%s: the manager's default image; %s", what, fix)
		case "CustomResourceDefinition":
			crds++
			g.Expect(o.Metadata.Labels).To(HaveKeyWithValue(versionLabel, want), "%s: CRD %s; %s", what, o.Metadata.Name, fix)
		}
		if v, ok := o.Metadata.Labels[versionLabel]; ok {
			g.Expect(v).To(Equal(want), "%s: %s %s; %s", what, o.Kind, o.Metadata.Name, fix)
		}
	}
	g.Expect(deployments).To(Equal(1), "%s renders one Deployment", what)
	generated := generatedCRDs(t)
	g.Expect(crds).To(Equal(generated), "%s renders every CRD controller-gen writes to config/crd/bases (%d)", what, generated)
}

// generatedCRDs counts the CRDs controller-gen wrote to config/crd/bases:
// both the chart and the kustomize tree must ship each of them.
func generatedCRDs(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs under config/crd/bases (%v): run make manifests", err)
	}
	return len(files)
}

// object is the part of a rendered manifest the checks read.
type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Template struct {
			Spec struct {
				Containers []struct {
					Image string `json:"image"`
				} `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

func parse(t *testing.T, manifests string) []object {
	t.Helper()
	var objs []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifests)))
	for {
		doc, err := r.Read()
		if err != nil {
			break
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var o object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("parsing a rendered object: %v\n%s", err, doc)
		}
		if o.Kind != "" {
			objs = append(objs, o)
		}
	}
	if len(objs) == 0 {
		t.Fatal("nothing rendered")
	}
	return objs
}

func readVersion(t *testing.T, root string) string {
	t.Helper()
	v := strings.TrimSpace(readFile(t, filepath.Join(root, "VERSION")))
	if !semver.MatchString(v) {
		t.Fatalf("VERSION holds %q, not MAJOR.MINOR.PATCH[-PRERELEASE]", v)
	}
	return v
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(readFile(t, path)), into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func helmBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(repoRoot(t), "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm not found at %s: run 'make helm'", bin)
	}
	return bin
}

func kubectlBin(t *testing.T) string {
	t.Helper()
	dir, err := controlplane.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kubectl not found in %s: run 'make envtest-bins'", dir)
	}
	return bin
}

// env is the test's environment without the named variables (a VERSION set
// in the developer's shell would override the file in make).
func env(drop ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, d := range drop {
			if name == d {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// helmEnv keeps helm and kubectl away from the developer's configuration and
// clusters: template and kustomize need neither.
func helmEnv(t *testing.T) []string {
	dir := t.TempDir()
	e := env("KUBECONFIG", "HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")
	return append(e,
		"HELM_CACHE_HOME="+filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HELM_DATA_HOME="+filepath.Join(dir, "data"),
		"KUBECONFIG="+filepath.Join(dir, "no-kubeconfig"),
		"KUBECACHEDIR="+filepath.Join(dir, "kube-cache"),
	)
}

// run runs a command in dir (with environ, or the test's when nil) and
// returns its stdout, failing the test with stderr on error.
func run(t *testing.T, dir string, environ []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
