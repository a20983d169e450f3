// Package leaderpod marks the manager's own Pod with a label while that
// replica leads, so a Service can select the leader alone.
//
// The Key Vault events endpoint listens on the leader only (standbys do not
// reconcile, so they must not accept deliveries). A Service that selected
// every ready replica would send a share of the deliveries to standbys,
// which refuse them; Event Grid retries, but every refusal costs latency.
// Selecting on this label instead keeps readiness what it is (the process
// is healthy), so a rollout never waits on a standby that can never become
// "ready" while the old leader holds the lease, and the Service still
// routes to exactly one Pod: the leader, once it listens.
//
// The label is removed when this process starts (a restarted container of a
// former leader must not keep it) and when it stops leading.
package leaderpod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Value is the label's value on the leader's Pod.
const Value = "true"

// Label keeps Key=Value on the Pod Namespace/Name while the manager leads.
// It implements controller-runtime's Runnable and LeaderElectionRunnable:
// the manager starts it once this replica is elected.
type Label struct {
	// Client talks to the API server directly (no cache: Pods are not watched).
	Client client.Client
	// Namespace and Name identify the manager's own Pod (POD_NAMESPACE, POD_NAME).
	Namespace, Name string
	// Key is the label key, e.g. vaultsync.io/leader.
	Key string
	// Ready, when set, holds the label back until it is closed: the events
	// server closes it once it listens, so the Service never routes to a
	// leader that would refuse the connection.
	Ready <-chan struct{}
	// Logger logs the label's changes.
	Logger logr.Logger
	// RetryInterval is the first pause between failed patches (default 1s,
	// doubling up to 30s).
	RetryInterval time.Duration
}

// NeedLeaderElection implements controller-runtime's LeaderElectionRunnable.
func (l *Label) NeedLeaderElection() bool { return true }

// Start labels the Pod once Ready is closed, then removes the label when ctx
// ends (the manager stops leading or shuts down).
func (l *Label) Start(ctx context.Context) error {
	if l.Ready != nil {
		select {
		case <-l.Ready:
		case <-ctx.Done():
			return nil
		}
	}
	delay := l.RetryInterval
	if delay <= 0 {
		delay = time.Second
	}
	for {
		err := l.patch(ctx, ptr(Value))
		if err == nil {
			l.Logger.Info("labelled this Pod as the leader", "pod", l.Namespace+"/"+l.Name, "label", l.Key)
			break
		}
		l.Logger.Error(err, "labelling this Pod as the leader failed; retrying", "pod", l.Namespace+"/"+l.Name, "retryIn", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
	<-ctx.Done()
	// Best effort: a leader that stops leading usually exits right after, and
	// its next start clears the label anyway (Clear).
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.patch(cctx, nil); err != nil {
		l.Logger.Error(err, "removing the leader label on stepping down failed; the next start removes it", "pod", l.Namespace+"/"+l.Name)
	}
	return nil
}

// Clear removes the label, if present. Call it before the manager starts: a
// container that restarts in the Pod of a former leader must not keep
// receiving the leader's traffic.
func (l *Label) Clear(ctx context.Context) error {
	if err := l.patch(ctx, nil); err != nil {
		return fmt.Errorf("removing the leader label %q from this Pod %s/%s (the manager needs get and patch on pods in its namespace; "+
			"POD_NAME and POD_NAMESPACE must name its own Pod): %w", l.Key, l.Namespace, l.Name, err)
	}
	return nil
}

// patch sets the label to *value, or removes it when value is nil.
func (l *Label) patch(ctx context.Context, value *string) error {
	if l.Client == nil || l.Name == "" || l.Namespace == "" || l.Key == "" {
		return errors.New("leaderpod: Client, Namespace, Name and Key are required")
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{l.Key: value}}})
	if err != nil {
		return err
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name}}
	return l.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, body))
}

func ptr(s string) *string { return &s }
