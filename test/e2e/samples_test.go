package e2e

import (
	"bufio"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/testenv"
)

// promise is what a sample's comment says it produces.
type promise struct {
	File   string
	Secret string
	Type   corev1.SecretType
	Keys   []string
}

var (
	producesLine = regexp.MustCompile(`^#\s*Produces Secret "([^"]+)" \(type ([^)]+)\) with keys:\s*$`)
	keyLine      = regexp.MustCompile(`^#\s{2,}(\S+)\s+=`)
)

// parsePromise reads the "Produces Secret ... with keys:" comment of a
// sample and the key lines that follow it.
func parsePromise(text string) (promise, bool) {
	var p promise
	found := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if !found {
			if m := producesLine.FindStringSubmatch(line); m != nil {
				p.Secret, p.Type, found = m[1], corev1.SecretType(m[2]), true
			}
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			break
		}
		p.Keys = append(p.Keys, m[1])
	}
	sort.Strings(p.Keys)
	return p, found && len(p.Keys) > 0
}

// samplePromises reads the promises of every sample that makes a Secret.
func samplePromises() ([]promise, error) {
	files, err := testenv.SampleFiles(root)
	if err != nil {
		return nil, err
	}
	var out []promise
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if p, ok := parsePromise(string(b)); ok {
			p.File = f
			out = append(out, p)
		}
	}
	return out, nil
}

func TestParsePromise(t *testing.T) {
	g := NewWithT(t)
	p, ok := parsePromise(`# A comment.
# Produces Secret "web-tls" (type kubernetes.io/tls) with keys:
#   tls.crt  = the leaf
#   tls.key  = the key (PKCS#8)
#   ca.crt   = the root
# status.certificates shows the leaf's subject.
apiVersion: vaultsync.io/v1alpha1
`)
	g.Expect(ok).To(BeTrue())
	g.Expect(p.Secret).To(Equal("web-tls"))
	g.Expect(p.Type).To(Equal(corev1.SecretTypeTLS))
	g.Expect(p.Keys).To(Equal([]string{"ca.crt", "tls.crt", "tls.key"}))

	p, ok = parsePromise("# Produces Secret \"features\" (type Opaque) with keys:\n#   checkout  = a\n#   search    = b\n# (feature-preview is tagged env=dev and is left out.)\n")
	g.Expect(ok).To(BeTrue())
	g.Expect(p.Keys).To(Equal([]string{"checkout", "search"}), "a comment line without key = stops the list")

	_, ok = parsePromise("# The identity the samples use.\napiVersion: v1\nkind: ServiceAccount\n")
	g.Expect(ok).To(BeFalse())

	// The real samples all make promises the suite can check.
	var err error
	root, err = controlplane.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	ps, err := samplePromises()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(ps)).To(BeNumerically(">=", 5))
}
