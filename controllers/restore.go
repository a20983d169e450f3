package controllers

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
)

// restorer rebuilds, when a manager starts or wins the leader election,
// what the reconciler otherwise learns only while it syncs: the index from
// (vault, object) to VaultSecrets that routes Key Vault events, and the
// expiry metrics. An up-to-date VaultSecret is not synced after a restart
// or a failover, so without this an event would find no VaultSecret and
// the expiry gauges would stay empty until the next refresh, possibly
// never (refreshPolicy OnChange). It reads only the cache: status holds the
// vault each VaultSecret was synced from and the expiry of its objects.
// The events endpoint listens only once this is done (EventRouter.Ready).
type restorer struct {
	cache cache.Cache
	r     *VaultSecretReconciler
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: the index
// and the metrics are the leader's, who reconciles.
func (s *restorer) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable.
func (s *restorer) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("restore")
	if !s.cache.WaitForCacheSync(ctx) {
		return fmt.Errorf("restoring the event index: the cache did not sync")
	}
	var list v1alpha1.VaultSecretList
	if err := s.cache.List(ctx, &list); err != nil {
		return fmt.Errorf("restoring the event index: %w", err)
	}
	indexed := 0
	for i := range list.Items {
		vs := &list.Items[i]
		if !vs.DeletionTimestamp.IsZero() {
			continue
		}
		s.r.restoreExpiry(vs)
		if host := restoreHost(ctx, s.cache, vs, s.r.ClusterConnections); host != "" {
			s.r.Events.index(vs, host)
			indexed++
		}
	}
	s.r.Events.markReady()
	log.Info("restored the event index and the expiry metrics", "vaultSecrets", len(list.Items), "indexed", indexed)
	<-ctx.Done()
	return nil
}

// restoreHost is the vault host of vs: the one it was last synced from,
// else its inline vault or its connection's.
func restoreHost(ctx context.Context, c client.Reader, vs *v1alpha1.VaultSecret, clusterConnections bool) string {
	if vs.Status.SyncedVault != "" {
		return vs.Status.SyncedVault
	}
	if h := specVaultHost(vs); h != "" {
		return h
	}
	ref := vs.Spec.ConnectionRef
	if ref == nil {
		return ""
	}
	var url string
	switch ref.Kind {
	case v1alpha1.KindClusterVaultConnection:
		if !clusterConnections {
			return ""
		}
		var cc v1alpha1.ClusterVaultConnection
		if err := c.Get(ctx, client.ObjectKey{Name: ref.Name}, &cc); err != nil {
			return ""
		}
		url = cc.Spec.URL
	default:
		var vc v1alpha1.VaultConnection
		if err := c.Get(ctx, client.ObjectKey{Namespace: vs.Namespace, Name: ref.Name}, &vc); err != nil {
			return ""
		}
		url = vc.Spec.URL
	}
	return urlHost(url)
}
