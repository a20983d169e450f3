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
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"
)

// TestReadmeDocumentsEveryValue keeps the README's values table in step with
// values.yaml: every key, or a parent documented as a whole (such as
// `resources`), has a row.
func TestReadmeDocumentsEveryValue(t *testing.T) {
	g := NewWithT(t)
	root := filepath.Join(repoRoot(t), chartRel)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	g.Expect(err).NotTo(HaveOccurred())
	rows := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `") {
			key := strings.TrimPrefix(line, "| `")
			rows[key[:strings.Index(key, "`")]] = true
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "values.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var values map[string]any
	g.Expect(yaml.Unmarshal(b, &values)).To(Succeed())

	var missing []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			path := prefix + k
			if rows[path] {
				continue
			}
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				walk(path+".", sub)
				continue
			}
			missing = append(missing, path)
		}
	}
	walk("", values)
	sort.Strings(missing)
	g.Expect(missing).To(BeEmpty(), "values without a row in charts/vaultsync/README.md")

	// And no row documents a value that does not exist.
	var stale []string
	for key := range rows {
		var cur any = values
		for _, part := range strings.Split(key, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			if cur, ok = m[part]; !ok {
				cur = nil
				break
			}
		}
		if cur == nil && !hasNullValue(values, key) {
			stale = append(stale, key)
		}
	}
	sort.Strings(stale)
	g.Expect(stale).To(BeEmpty(), "README rows for values that values.yaml does not have")
}

// hasNullValue reports whether the dotted key exists in values with a null value.
func hasNullValue(values map[string]any, key string) bool {
	parts := strings.Split(key, ".")
	m := values
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			return false
		}
		m = sub
	}
	v, ok := m[parts[len(parts)-1]]
	return ok && v == nil
}
