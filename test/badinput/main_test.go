// Package badinput is vaultsync's bad-input catalogue: every case names an
// input and its expected outcome. Either the kube-apiserver refuses it at
// admission with a message naming the field (the generated CRD's OpenAPI and
// CEL rules), or the operator reports Ready=False with a specific reason
// while the Secret keeps its last good data and the operator stays healthy.
// It runs the real manager in-process against the local control plane and
// the Key Vault emulator.
package badinput

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/vaultsync/vaultsync/controllers"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

var (
	env *inprocess.Env
	mgr *inprocess.Manager
	seq atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	klog.SetLogger(logr.Discard())
	var err error
	if env, err = inprocess.Start(inprocess.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "badinput:", err)
		return 1
	}
	defer env.Close()
	o := controllers.DefaultOptions()
	o.BackoffMin, o.BackoffMax = 200*time.Millisecond, 2*time.Second
	if mgr, err = env.StartManager(inprocess.ManagerOptions{Options: &o, QPS: -1, Name: "badinput"}); err != nil {
		fmt.Fprintln(os.Stderr, "badinput:", err)
		return 1
	}
	defer func() { _ = mgr.Stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := mgr.WaitSynced(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "badinput:", err)
		return 1
	}
	return m.Run()
}

func uniq(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }
