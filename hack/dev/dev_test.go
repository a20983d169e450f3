package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/test/testenv"
)

// TestUpDown runs `dev up` twice, uses the environment through its env
// file as a user would (source it, kubectl), and `dev down` twice.
func TestUpDown(t *testing.T) {
	g := NewWithT(t)
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	if _, err := os.Stat(filepath.Join(root, "bin", "k8s", testenv.K8sVersion, "kube-apiserver")); err != nil {
		t.Skip("the control plane is not built: run make envtest-bins")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	bin := t.TempDir()
	bins, ok, err := testenv.BinariesFromEnv()
	g.Expect(err).NotTo(HaveOccurred())
	if !ok {
		bins, err = testenv.Build(ctx, root, bin)
		g.Expect(err).NotTo(HaveOccurred())
	}
	dev := filepath.Join(bin, "dev")
	g.Expect(testenv.GoBuild(ctx, root, dev, "./hack/dev")).To(Succeed())

	dir := filepath.Join(t.TempDir(), ".dev")
	devCmd := func(args ...string) (string, error) {
		args = append(args, "--dir", dir)
		if args[0] == "up" {
			args = append(args, "--skip-build", "--manager-bin", bins.Manager, "--emulator-bin", bins.Emulator)
		}
		cmd := exec.CommandContext(ctx, dev, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		t.Logf("dev %s:\n%s", args[0], out)
		return string(out), err
	}
	l := layout{root: root, dir: dir}
	defer func() { _, _ = devCmd("down") }() // whatever happens

	out, err := devCmd("up")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("source " + l.envFile()))
	g.Expect(out).To(ContainSubstring("ready: 5 VaultSecrets synced"))
	m := regexp.MustCompile(`supervisor pid (\d+)`).FindStringSubmatch(out)
	g.Expect(m).To(HaveLen(2))
	pid, _ := strconv.Atoi(m[1])
	g.Expect(testenv.Alive(pid)).To(BeTrue())
	g.Expect(l.pidFile()).To(BeARegularFile())
	children := regexp.MustCompile(`ok \(\S+, pid (\d+)`).FindAllStringSubmatch(out, -1)
	g.Expect(children).To(HaveLen(2), "the emulator's and the operator's pid")

	env, err := os.ReadFile(l.envFile())
	g.Expect(err).NotTo(HaveOccurred())
	for _, k := range []string{"KUBECONFIG", "HTTPS_PROXY", "SSL_CERT_FILE", "NO_PROXY", "KV_EMULATOR_ADMIN", "PATH"} {
		g.Expect(string(env)).To(MatchRegexp(`(?m)^export `+k+`=`), "the env file sets %s", k)
	}
	shell := exec.CommandContext(ctx, "bash", "-c", `set -e; . "$1"; command -v kubectl; kubectl get vaultsecrets -A --no-headers`, "bash", l.envFile())
	shell.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + os.Getenv("HOME")}
	sh, err := shell.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(sh))
	g.Expect(string(sh)).To(ContainSubstring(filepath.Join("bin", "k8s", testenv.K8sVersion, "kubectl")), "kubectl of the control plane is on PATH")
	g.Expect(regexp.MustCompile(`(?m)^demo\s+\S+\s+True\s+Synced`).FindAllString(string(sh), -1)).To(HaveLen(5))

	out, err = devCmd("up")
	g.Expect(err).NotTo(HaveOccurred(), "up is safe to run twice")
	g.Expect(out).To(ContainSubstring("already runs (supervisor pid " + m[1] + ")"))

	out, err = devCmd("down")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("stopping the dev environment"))
	g.Expect(testenv.Alive(pid)).To(BeFalse(), "the supervisor stopped")
	for _, c := range children {
		p, _ := strconv.Atoi(c[1])
		g.Expect(testenv.Alive(p)).To(BeFalse(), "process %d stopped", p)
	}
	for _, p := range []string{l.envFile(), l.pidFile(), l.stateDir()} {
		g.Expect(p).NotTo(BeAnExistingFile())
	}
	out, err = devCmd("down")
	g.Expect(err).NotTo(HaveOccurred(), "down is safe to run twice")
	g.Expect(out).To(ContainSubstring("not running"))
}

func TestShellQuote(t *testing.T) {
	g := NewWithT(t)
	g.Expect(shellQuote("/a b/c")).To(Equal(`'/a b/c'`))
	g.Expect(shellQuote("it's")).To(Equal(`'it'\''s'`))
}
