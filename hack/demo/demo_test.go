package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/test/testenv"
)

var (
	buildOnce  sync.Once
	builtRoot  string
	builtDemo  string
	builtBins  testenv.Binaries
	buildErr   error
	buildDir   string
	noControlP bool
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// demoBinaries builds the demo program, and the manager and emulator unless
// make test-e2e names them (E2E_MANAGER_BIN, E2E_EMULATOR_BIN), once for
// all tests of the package.
func demoBinaries(t *testing.T) (root, demo string, bins testenv.Binaries) {
	t.Helper()
	buildOnce.Do(func() {
		if builtRoot, buildErr = testenv.RepoRoot(); buildErr != nil {
			return
		}
		if _, err := os.Stat(filepath.Join(builtRoot, "bin", "k8s", testenv.K8sVersion, "kube-apiserver")); err != nil {
			noControlP = true
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "vaultsync-demo-test-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
		defer cancel()
		var ok bool
		if builtBins, ok, buildErr = testenv.BinariesFromEnv(); buildErr != nil {
			return
		}
		if !ok {
			if builtBins, buildErr = testenv.Build(ctx, builtRoot, buildDir); buildErr != nil {
				return
			}
		}
		builtDemo = filepath.Join(buildDir, "demo")
		buildErr = testenv.GoBuild(ctx, builtRoot, builtDemo, "./hack/demo")
	})
	if noControlP {
		t.Skip("the control plane is not built: run make envtest-bins")
	}
	NewWithT(t).Expect(buildErr).NotTo(HaveOccurred())
	return builtRoot, builtDemo, builtBins
}

func demoCommand(ctx context.Context, root, demo string, bins testenv.Binaries, stateDir string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, demo, "--skip-build", "--timeout", "150s", "--state-dir", stateDir,
		"--manager-bin", bins.Manager, "--emulator-bin", bins.Emulator)
	cmd.Dir = root
	return cmd
}

var pidPattern = regexp.MustCompile(`pid (\d+)`)

// pids are the distinct process ids the demo reports on its progress lines.
func pids(out string) []int {
	var ps []int
	for _, m := range pidPattern.FindAllStringSubmatch(out, -1) {
		if p, err := strconv.Atoi(m[1]); err == nil && !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	return ps
}

// TestDemo runs `make demo`'s program end to end and checks its report:
// every sample Ready, values masked and never printed, a rotation that
// reaches the Secret, everything stopped at the end.
func TestDemo(t *testing.T) {
	g := NewWithT(t)
	root, demo, bins := demoBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stateDir := t.TempDir()
	var out bytes.Buffer
	cmd := demoCommand(ctx, root, demo, bins, stateDir)
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	report := out.String()
	t.Logf("demo output (%s):\n%s", time.Since(start).Round(time.Second), report)
	g.Expect(err).NotTo(HaveOccurred(), "the demo exits 0")

	for _, step := range []string{
		"==> starting the control plane", "==> starting the Key Vault emulator", "==> configuring workload identity",
		"==> starting the operator", "==> applying config/samples", "==> waiting for the VaultSecrets to be Ready",
		"==> rotating DbPassword", "==> forcing a sync of db-credentials", "==> waiting for the new version",
		"==> pushing Secret reporting-db into Key Vault", "==> waiting for VaultPushSecret reporting-db to be Ready",
		"==> creating namespaces [shop blog] labelled ingress=public", "==> fanning certificate web-cert out",
		"==> waiting for ClusterVaultSecret web-tls to be Ready in every selected namespace",
		"==> cleaning up",
	} {
		g.Expect(report).To(ContainSubstring(step))
	}
	g.Expect(strings.Count(report, "\n    ok (")).To(Equal(strings.Count(report, "\n==> ")+boolInt(strings.HasPrefix(report, "==> "))),
		"every step ends with ok")
	for _, vs := range []string{"app-config", "db-credentials", "features", "signing-key", "web-tls"} {
		g.Expect(report).To(MatchRegexp(`\n  ` + vs + `\s+Ready=True\s+Synced\n`))
	}
	g.Expect(report).To(MatchRegexp(`\n\s+password\s+\*\*\*\*\*\* \(28 bytes\)`), "the seeded password, masked with its size")
	g.Expect(report).To(ContainSubstring(`certificate tls.crt: subject "CN=shop.example.com", expires `))

	m := regexp.MustCompile(`version\s+([0-9a-f]{32})\s+->\s+([0-9a-f]{32})`).FindStringSubmatch(report)
	g.Expect(m).To(HaveLen(3), "the rotation shows old and new version")
	g.Expect(m[1]).NotTo(Equal(m[2]))
	g.Expect(report).To(MatchRegexp(`value\s+\*\*\*\*\*\* \(28 bytes\)\s+->\s+\*\*\*\*\*\* \(\d+ bytes\)\s+\(the Secret holds the new value\)`))
	g.Expect(report).To(MatchRegexp(`status.dataHash\s+\S+\s+->\s+\S+\s+\(changed\)`))
	// The push: both objects of the sample, with versions and the owner tag; no value.
	g.Expect(report).To(MatchRegexp(`VaultPushSecret reporting-db: Ready=True Pushed, Secret "reporting-db" -> demo.vault.azure.net`))
	g.Expect(report).To(MatchRegexp(`\n  secret\s+reporting-db-password\s+version [0-9a-f]{32}\n`))
	g.Expect(report).To(MatchRegexp(`\n  secret\s+reporting-db-all\s+version [0-9a-f]{32}\n`))
	g.Expect(report).To(MatchRegexp(`vaultsync-owner=[-0-9a-f]{36}/[^/\s]+/reporting-db,`))
	g.Expect(report).NotTo(ContainSubstring("change-me-in-your-cluster"), "the pushed value is never printed")
	// The fan-out: a TLS Secret of the vault's certificate in each labelled namespace, from the
	// Key Vault requests one VaultSecret makes (one identity: the namespaces share the read).
	g.Expect(report).To(ContainSubstring("ClusterVaultSecret web-tls: Ready=True Provisioned, 2 namespaces provisioned, 0 failed"))
	for _, ns := range []string{"shop", "blog"} {
		g.Expect(report).To(MatchRegexp(`\n  ` + ns + `\s+Secret web-tls \(kubernetes.io/tls\): tls.crt \d+ bytes, tls.key \d+ bytes, subject CN=shop.example.com\n`))
	}
	g.Expect(report).To(MatchRegexp(`Key Vault requests for web-cert during the fan-out: [01] for 2 namespaces`),
		"at most one read served both namespaces")
	g.Expect(report).To(ContainSubstring("demo finished in "))

	// Nothing secret in the output.
	cfg, err := testenv.LoadEmulatorConfig(filepath.Join(root, "hack", "demo", "emulator.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	for _, v := range cfg.Vaults {
		for _, s := range v.Secrets {
			for _, sv := range s.Versions {
				if len(sv.Value) >= 4 {
					g.Expect(strings.Contains(report, sv.Value)).To(BeFalse(), "the report shows the value of %s", s.Name)
				}
			}
		}
	}
	g.Expect(report).NotTo(ContainSubstring("PRIVATE KEY"))
	g.Expect(report).NotTo(ContainSubstring("-----BEGIN"))

	// Everything it started is gone.
	ps := pids(report)
	g.Expect(ps).To(HaveLen(2), "the emulator's and the operator's pid")
	for _, p := range ps {
		g.Expect(testenv.Alive(p)).To(BeFalse(), "process %d still runs", p)
	}
	g.Expect(filepath.Join(stateDir, "emulator")).NotTo(BeADirectory(), "the emulator's keys are removed")
	g.Expect(filepath.Join(stateDir, "manager.log")).To(BeARegularFile(), "the operator's log is kept")
}

// TestDemoInterrupted sends SIGTERM while the demo runs and expects it to
// stop everything it started and exit 130.
func TestDemoInterrupted(t *testing.T) {
	g := NewWithT(t)
	root, demo, bins := demoBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stateDir := t.TempDir()
	cmd := demoCommand(ctx, root, demo, bins, stateDir)
	stdout, err := cmd.StdoutPipe()
	g.Expect(err).NotTo(HaveOccurred())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	g.Expect(cmd.Start()).To(Succeed())

	// Read progress until the operator runs, then interrupt.
	var mu sync.Mutex
	var out strings.Builder
	operatorUp := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			up := strings.Contains(out.String(), "==> starting the operator") && strings.HasPrefix(sc.Text(), "    ok (")
			mu.Unlock()
			if up && !signalled {
				signalled = true
				close(operatorUp)
			}
		}
	}()
	select {
	case <-operatorUp:
	case <-time.After(90 * time.Second):
		t.Fatal("the demo did not start the operator within 90s")
	}
	g.Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	err = cmd.Wait()
	<-done
	mu.Lock()
	report := out.String()
	mu.Unlock()
	t.Logf("demo output:\n%s\n%s", report, stderr.String())

	var exit *exec.ExitError
	g.Expect(errors.As(err, &exit)).To(BeTrue(), "the demo fails when interrupted")
	g.Expect(exit.ExitCode()).To(Equal(130))
	g.Expect(stderr.String()).To(ContainSubstring("interrupted"))
	g.Expect(report).To(ContainSubstring("==> cleaning up"))
	ps := pids(report)
	g.Expect(ps).To(HaveLen(2))
	for _, p := range ps {
		g.Expect(testenv.Alive(p)).To(BeFalse(), "process %d still runs", p)
	}
}

func TestMask(t *testing.T) {
	g := NewWithT(t)
	g.Expect(mask([]byte("correct-horse-battery-staple"))).To(Equal("****** (28 bytes)"))
	g.Expect(mask([]byte("x"))).To(Equal("****** (1 byte)"))
	g.Expect(mask(nil)).To(Equal("****** (0 bytes)"))
	g.Expect(short("0123456789abcdef0123")).To(Equal("0123456789abcdef..."))
	g.Expect(short("")).To(Equal("(none)"))
	g.Expect(until(-time.Hour)).To(Equal("expired"))
	g.Expect(until(5 * time.Hour)).To(Equal("in 5 hours"))
	g.Expect(until(90 * 24 * time.Hour)).To(Equal("in 90 days"))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestBannerMatchesMakefile keeps the first line of `make demo` (printed by
// the Makefile before it compiles the demo) and of the demo program run on
// its own the same.
func TestBannerMatchesMakefile(t *testing.T) {
	g := NewWithT(t)
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	g.Expect(err).NotTo(HaveOccurred())
	m := regexp.MustCompile(`(?m)^DEMO_BANNER := (.*)$`).FindSubmatch(makefile)
	g.Expect(m).NotTo(BeNil(), "the Makefile defines DEMO_BANNER")
	g.Expect(string(m[1])).To(Equal(Banner), "DEMO_BANNER in the Makefile and Banner in hack/demo/main.go differ")
	g.Expect(Banner).To(ContainSubstring("956 s"), "the measured cold time")
}
