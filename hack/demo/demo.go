package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/testenv"
)

// The rotated sample: Key Vault secret DbPassword, synced by the
// db-credentials sample into key "password".
const (
	rotateVaultSecret = "db-credentials"
	rotateObject      = "DbPassword"
	rotateKey         = "password"
)

type options struct {
	root, stateDir          string
	managerBin, emulatorBin string
	skipBuild               bool
	namespace               string
	timeout                 time.Duration
}

type demo struct {
	options
	out io.Writer
	// clock is when the run started, builds included (progress lines count
	// from it); started is when the demo proper started, after the builds.
	clock, started time.Time
	env            *testenv.Env
}

// progressEvery is how often a running step says it is still running.
const progressEvery = 30 * time.Second

func (d *demo) run(ctx context.Context) error {
	d.started = time.Now()
	if err := d.buildControlPlane(ctx); err != nil {
		return err
	}
	d.started = time.Now() // the time limit and the summary exclude the one-off control-plane build
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if !d.skipBuild {
		for _, b := range []struct{ bin, target string }{{d.managerBin, "build"}, {d.emulatorBin, "emulator"}} {
			if err := d.step(ctx, "building "+d.rel(b.bin)+" (make "+b.target+")", func(ctx context.Context) (string, error) {
				return "", d.make(ctx, b.target)
			}); err != nil {
				return err
			}
		}
	}
	for _, b := range []string{d.managerBin, d.emulatorBin} {
		if _, err := os.Stat(b); err != nil {
			return &stepError{"checking the binaries", fmt.Errorf("%s is missing: run make build emulator", d.rel(b))}
		}
	}
	var err error
	d.env, err = testenv.Up(testenv.Options{
		Root:      d.root,
		StateDir:  d.stateDir,
		Namespace: d.namespace,
		Binaries:  testenv.Binaries{Manager: d.managerBin, Emulator: d.emulatorBin},
		// The demo deletes nothing: no garbage collector, so no kube-controller-manager to build or start.
		NoGarbageCollector: true,
		// The push of config/samples/push (the cluster id is the kube-system namespace's UID),
		// and the fan-out of a certificate to labelled namespaces (fanout.go).
		ManagerArgs: []string{"--vault-push-secrets", "--cluster-vault-secrets"},
	}, func(title string, fn func(context.Context) (string, error)) error { return d.step(ctx, title, fn) })
	if err != nil {
		return err
	}
	before, err := d.printReport(ctx)
	if err != nil {
		return &stepError{"reading the synced Secrets", err}
	}
	if err := d.rotate(ctx, before); err != nil {
		return err
	}
	if err := d.push(ctx); err != nil {
		return err
	}
	return d.fanout(ctx)
}

// step prints a progress line, runs fn, says every progressEvery that it
// still runs, and prints how long it took and the time since the start.
func (d *demo) step(ctx context.Context, title string, fn func(context.Context) (string, error)) error {
	_, _ = fmt.Fprintf(d.out, "==> %s ...\n", title)
	start := time.Now()
	done, ticking := make(chan struct{}), make(chan struct{})
	go func() { // the only writer to d.out while fn runs
		defer close(ticking)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_, _ = fmt.Fprintf(d.out, "      ... %s\n", elapsed(time.Since(start)))
			}
		}
	}()
	detail, err := fn(ctx)
	close(done)
	<-ticking
	if err != nil {
		if ctx.Err() != nil && !strings.Contains(err.Error(), ctx.Err().Error()) {
			err = fmt.Errorf("%w (%v)", err, context.Cause(ctx)) //nolint:errorlint // the cause is a note: the step failed with err, not with the cancellation
		}
		return &stepError{step: title, err: err}
	}
	if detail != "" {
		detail = ", " + detail
	}
	_, _ = fmt.Fprintf(d.out, "    ok (%s%s) [%s since the start]\n", seconds(time.Since(start)), detail, elapsed(time.Since(d.clock)))
	return nil
}

// controlPlaneBins are the control-plane programs the demo runs, with what
// each took to build on an empty Go cache on 2 cores (the figures of Banner).
var controlPlaneBins = []struct {
	name string
	cold time.Duration
}{{"etcd", 81 * time.Second}, {"kube-apiserver", 428 * time.Second}, {"kubectl", 27 * time.Second}}

// buildControlPlane builds the control-plane programs that are missing,
// one step each, with hack/build-control-plane.sh (what make envtest-bins
// runs for all four).
func (d *demo) buildControlPlane(ctx context.Context) error {
	binDir, err := testenv.BinDir()
	if err != nil {
		return err
	}
	for _, b := range controlPlaneBins {
		if _, err := os.Stat(filepath.Join(binDir, b.name)); err == nil {
			continue
		}
		title := fmt.Sprintf("building %s (Kubernetes %s) into %s from the Go module proxy, once; about %s on 2 cores with empty Go caches",
			b.name, testenv.K8sVersion, d.rel(binDir), elapsed(b.cold))
		if err := d.step(ctx, title, func(ctx context.Context) (string, error) {
			cmd := exec.CommandContext(ctx, filepath.Join(d.root, "hack", "build-control-plane.sh"), b.name)
			cmd.Dir = d.root
			cmd.Env = append(os.Environ(), "BIN_DIR="+binDir, "K8S_VERSION="+testenv.K8sVersion)
			if out, err := cmd.CombinedOutput(); err != nil {
				return "", fmt.Errorf("hack/build-control-plane.sh %s: %w\n%s", b.name, err, indent(lastLines(string(out), 15), "  "))
			}
			return "", nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// elapsed is a duration rounded to the second, as 45s or 7m05s.
func elapsed(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

func (d *demo) make(ctx context.Context, targets ...string) error {
	cmd := exec.CommandContext(ctx, "make", targets...)
	cmd.Dir = d.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("make %s: %w\n%s", strings.Join(targets, " "), err, indent(lastLines(string(out), 15), "  "))
	}
	return nil
}

// rotation is what the report remembers of the rotated VaultSecret.
type rotation struct {
	version, hash, resourceVersion string
	length                         int
}

// rotate adds a new version of DbPassword in the emulator, forces a sync
// and shows the new version arriving. The new value is random and never
// printed; the Secret is compared with it in memory.
func (d *demo) rotate(ctx context.Context, before rotation) error {
	var newValue string
	var newVersion string
	if err := d.step(ctx, "rotating "+rotateObject+" in the emulator (a new secret version through the admin API)", func(ctx context.Context) (string, error) {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		newValue = base64.RawURLEncoding.EncodeToString(b)
		vi, err := d.env.Emulator.Admin.SetSecret(ctx, testenv.Vault, rotateObject, testenv.SecretVersion{Value: newValue, ContentType: "text/plain"})
		if err != nil {
			return "", err
		}
		newVersion = vi.Version
		return "new version " + vi.Version, nil
	}); err != nil {
		return err
	}
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	if err := d.step(ctx, "forcing a sync of "+rotateVaultSecret+" (annotation "+v1alpha1.AnnotationForceSync+")", func(ctx context.Context) (string, error) {
		_, err := testenv.Kubectl(ctx, d.env.CP, "annotate", "--overwrite", "-n", d.namespace, "vaultsecret", rotateVaultSecret,
			v1alpha1.AnnotationForceSync+"="+stamp)
		return "", err
	}); err != nil {
		return err
	}
	var after rotation
	matches := false
	if err := d.step(ctx, "waiting for the new version to reach Secret "+rotateVaultSecret, func(ctx context.Context) (string, error) {
		err := testenv.Poll(ctx, time.Minute, 100*time.Millisecond, func() (bool, error) {
			if exited, err := d.env.Manager.Exited(); exited {
				return false, fmt.Errorf("the operator exited (%v)", err) //nolint:errorlint // err is nil on a clean exit: %w would print %!w(<nil>)
			}
			vs := &v1alpha1.VaultSecret{}
			if err := d.env.K8s.Get(ctx, client.ObjectKey{Namespace: d.namespace, Name: rotateVaultSecret}, vs); err != nil {
				return false, nil
			}
			if vs.Status.LastForceSync != stamp || vs.Status.SyncedVersions[rotateKey] != newVersion || !testenv.IsReady(vs) {
				return false, nil
			}
			s := &corev1.Secret{}
			if err := d.env.K8s.Get(ctx, client.ObjectKey{Namespace: d.namespace, Name: vs.TargetName()}, s); err != nil {
				return false, nil
			}
			matches = string(s.Data[rotateKey]) == newValue
			after = rotation{version: newVersion, hash: vs.Status.DataHash, resourceVersion: s.ResourceVersion, length: len(s.Data[rotateKey])}
			return matches, nil
		})
		return "", err
	}); err != nil {
		return err
	}
	writeRotation(d.out, rotateObject, rotateVaultSecret, rotateKey, before, after, matches)
	return nil
}

// cleanup stops everything the demo started, newest first. It is bounded
// in time and safe to call after a partial start.
func (d *demo) cleanup() {
	if d.env == nil || !d.env.Started() {
		return
	}
	_, _ = fmt.Fprintf(d.out, "==> cleaning up (operator, emulator, control plane) ...\n")
	start := time.Now()
	stopped := d.env.Down()
	_, _ = fmt.Fprintf(d.out, "    ok (%s, stopped %s; logs kept in %s)\n",
		seconds(time.Since(start)), strings.Join(stopped, ", "), d.rel(d.stateDir))
}

// rel shortens a path below the repository root for display.
func (d *demo) rel(p string) string {
	if r, err := filepath.Rel(d.root, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}
