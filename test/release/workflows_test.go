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
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"
)

var (
	// usesLine is a step's `uses:` with what follows it on the line.
	usesLine = regexp.MustCompile(`^\s*(?:-\s+)?uses:\s*(\S+)\s*(.*)$`)
	// pinned is owner/repo[/path]@<full commit digest>.
	pinned = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_./-]+)?@[0-9a-f]{40}$`)
	// releaseComment names the release the digest was taken from.
	releaseComment = regexp.MustCompile(`^# v[0-9]+\.[0-9]+\.[0-9]+$`)
)

// TestWorkflowsPinnedAndLeastPrivilege checks what actionlint does not: every
// action of .github/workflows is pinned by commit digest with the release it
// came from in a comment, the workflows grant nothing by default, and every
// job says which permissions it needs.
func TestWorkflowsPinnedAndLeastPrivilege(t *testing.T) {
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range files {
		names[filepath.Base(f)] = true
	}
	NewWithT(t).Expect(names).To(HaveKey("release.yml"))
	NewWithT(t).Expect(names).To(HaveKey("ci.yml"))

	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			g := NewWithT(t)
			text := readFile(t, f)
			uses := 0
			for i, line := range strings.Split(text, "\n") {
				m := usesLine.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				uses++
				g.Expect(m[1]).To(MatchRegexp(pinned.String()), "line %d: %q is not pinned by a full commit digest", i+1, m[1])
				g.Expect(m[2]).To(MatchRegexp(releaseComment.String()), "line %d: %q needs a '# vX.Y.Z' comment naming its release", i+1, m[1])
			}
			g.Expect(uses).To(BeNumerically(">", 0))

			var wf struct {
				Permissions *map[string]string `json:"permissions"`
				Jobs        map[string]struct {
					Permissions *map[string]string `json:"permissions"`
				} `json:"jobs"`
			}
			g.Expect(yaml.Unmarshal([]byte(text), &wf)).To(Succeed())
			g.Expect(wf.Permissions).NotTo(BeNil(), "a top-level permissions: {} so that no job inherits the default token rights")
			g.Expect(*wf.Permissions).To(BeEmpty(), "the top-level permissions grant nothing; jobs ask for theirs")
			g.Expect(wf.Jobs).NotTo(BeEmpty())
			for name, job := range wf.Jobs {
				g.Expect(job.Permissions).NotTo(BeNil(), "job %s has no permissions: of its own", name)
				for scope, level := range *job.Permissions {
					g.Expect(level).To(BeElementOf("read", "write", "none"), "job %s: %s: %s", name, scope, level)
					if level == "write" {
						g.Expect(name).NotTo(Equal("checks"), "the job that runs the tests writes nothing")
					}
				}
			}
		})
	}
}

// TestReleaseNotesFromChangelog runs what the release workflow runs to make
// the notes: the VERSION's section of CHANGELOG.md must exist and say
// something.
func TestReleaseNotesFromChangelog(t *testing.T) {
	g := NewWithT(t)
	root := repoRoot(t)
	want := readVersion(t, root)
	notes := run(t, root, os.Environ(), filepath.Join(root, "hack", "release-notes.sh"), want)
	g.Expect(notes).To(ContainSubstring("### "), "the notes of %s have at least one Keep a Changelog group (### Added, ...)", want)
	g.Expect(notes).NotTo(ContainSubstring("## ["), "the notes stop at the next version's heading")
}
