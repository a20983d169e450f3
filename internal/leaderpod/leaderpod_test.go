package leaderpod

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

const key = "vaultsync.io/leader"

func newLabel(t *testing.T, labels map[string]string) (*Label, client.Client) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "vaultsync-system", Name: "manager-0", Labels: labels}}
	c := fake.NewClientBuilder().WithObjects(pod).Build()
	return &Label{Client: c, Namespace: "vaultsync-system", Name: "manager-0", Key: key, Logger: logr.Discard(),
		RetryInterval: 10 * time.Millisecond}, c
}

func podLabels(t *testing.T, c client.Client) map[string]string {
	t.Helper()
	pod := &corev1.Pod{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "vaultsync-system", Name: "manager-0"}, pod); err != nil {
		t.Fatal(err)
	}
	return pod.Labels
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClearRemovesAStaleLabelAndKeepsTheOthers(t *testing.T) {
	l, c := newLabel(t, map[string]string{key: Value, "app": "vaultsync"})
	if err := l.Clear(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := podLabels(t, c)
	if _, ok := got[key]; ok {
		t.Errorf("label %s still set after Clear: %v", key, got)
	}
	if got["app"] != "vaultsync" {
		t.Errorf("Clear touched another label: %v", got)
	}
	// Twice is harmless.
	if err := l.Clear(context.Background()); err != nil {
		t.Errorf("second Clear: %v", err)
	}
}

func TestClearOfAnotherPodNamesTheFix(t *testing.T) {
	l, _ := newLabel(t, nil)
	l.Name = "not-this-pod"
	err := l.Clear(context.Background())
	if err == nil {
		t.Fatal("Clear of a missing Pod succeeded")
	}
	for _, want := range []string{"POD_NAME", "patch on pods", "vaultsync-system/not-this-pod"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLabelsOnlyOnceListeningAndRemovesOnStepDown(t *testing.T) {
	l, c := newLabel(t, map[string]string{"app": "vaultsync"})
	ready := make(chan struct{})
	l.Ready = ready
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Start(ctx) }()

	// Not listening yet: no label. The Start goroutine has nothing to do
	// before ready closes, so a short look is enough to catch an early patch.
	time.Sleep(50 * time.Millisecond)
	if v, ok := podLabels(t, c)[key]; ok {
		t.Fatalf("labelled (%q) before the events server listens", v)
	}
	close(ready)
	waitFor(t, "the leader label", func() bool { return podLabels(t, c)[key] == Value })

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Start returned %v", err)
	}
	got := podLabels(t, c)
	if _, ok := got[key]; ok {
		t.Errorf("label still set after stepping down: %v", got)
	}
	if got["app"] != "vaultsync" {
		t.Errorf("other labels changed: %v", got)
	}
}

func TestStartRetriesUntilThePodCanBePatched(t *testing.T) {
	l, c := newLabel(t, nil)
	l.Name = "manager-1" // does not exist yet: every patch fails
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Start(ctx) }()
	time.Sleep(50 * time.Millisecond)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "vaultsync-system", Name: "manager-1"}}
	if err := c.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the label after retries", func() bool {
		p := &corev1.Pod{}
		_ = c.Get(context.Background(), client.ObjectKeyFromObject(pod), p)
		return p.Labels[key] == Value
	})
	cancel()
	<-done
}

func TestNeedsLeaderElection(t *testing.T) {
	if !(&Label{}).NeedLeaderElection() {
		t.Error("the label must follow leadership")
	}
}
