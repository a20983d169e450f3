package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/controllers"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

// sharedSecrets are the 3 Key Vault secrets every VaultSecret of the main scenario reads.
var sharedSecrets = []string{"shared-0", "shared-1", "shared-2"}

const refreshInterval = time.Minute // the smallest the API allows

// runInfo is what converge leaves for the later figures.
type runInfo struct {
	ns       string
	n        int
	allReady time.Time
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns the first error.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// plainCreateRate creates n small Secrets with a plain client (no
// client-side rate limit) at the given concurrency and returns Secrets per second.
func (b *bench) plainCreateRate(ctx context.Context, ns string, n, workers int) (float64, error) {
	if _, err := b.env.NewNamespace(ctx, ns); err != nil {
		return 0, err
	}
	start := time.Now()
	err := parallel(n, workers, func(i int) error {
		return b.env.Client.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("plain-%d", i)},
			Data:       map[string][]byte{"a": []byte("value-a"), "b": []byte("value-b"), "c": []byte("value-c")},
		})
	})
	if err != nil {
		return 0, err
	}
	took := time.Since(start)
	rate := float64(n) / took.Seconds()
	b.t.info(fmt.Sprintf("plain client: Secret creates per second (%d goroutines, no client-side limit)", workers),
		fmt.Sprintf("%.0f/s", rate), fmt.Sprintf("%d creates in %.2f s", n, took.Seconds()))
	return rate, nil
}

func vsSpec(vaultURL string, interval time.Duration, names ...string) v1alpha1.VaultSecretSpec {
	spec := v1alpha1.VaultSecretSpec{
		Vault: &v1alpha1.VaultRef{URL: vaultURL, Auth: v1alpha1.VaultAuth{
			WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{ServiceAccountName: inprocess.ServiceAccount},
		}},
		RefreshInterval: &metav1.Duration{Duration: interval},
	}
	for i, n := range names {
		spec.Data = append(spec.Data, v1alpha1.DataItem{Key: fmt.Sprintf("k%d", i), Remote: v1alpha1.RemoteRef{Name: n}})
	}
	return spec
}

func (b *bench) seedShared() error {
	for _, s := range sharedSecrets {
		if _, err := b.env.Emu.SetSecret(inprocess.Vault, s, emulator.SecretVersion{Value: "bench-value-of-" + s + strings.Repeat("x", 48)}); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) createVaultSecrets(ctx context.Context, ns string, n int, spec func(i int) v1alpha1.VaultSecretSpec) error {
	return parallel(n, 16, func(i int) error {
		return b.env.Client.Create(ctx, &v1alpha1.VaultSecret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("vs-%d", i)},
			Spec:       spec(i),
		})
	})
}

func (b *bench) waitReady(ctx context.Context, ns string, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := b.track.WaitFor(ctx, func(v View) bool { return v.Count(ns, IsReady) >= n })
	if err != nil {
		var reasons []string
		b.track.WaitFor(context.Background(), func(v View) bool { //nolint:errcheck // reads once
			seen := map[string]int{}
			for k, s := range v {
				if k.Namespace == ns && !IsReady(s) {
					seen[s.Reason+": "+s.Message]++
				}
			}
			for r, c := range seen {
				reasons = append(reasons, fmt.Sprintf("%d× %q", c, r))
			}
			return true
		})
		return fmt.Errorf("%d VaultSecrets in %s not Ready within %s: %s", n, ns, timeout, strings.Join(reasons, "; "))
	}
	return nil
}

// converge creates n VaultSecrets reading the 3 shared secrets and measures
// how long until all are Ready, what it cost on the kube-apiserver, in Key
// Vault and in Entra ID.
func (b *bench) converge(ctx context.Context, mgr *inprocess.Manager, ns string, n int, interval time.Duration, plainRate float64, report bool) (*runInfo, error) {
	if err := b.seedShared(); err != nil {
		return nil, err
	}
	if err := mgr.WaitSynced(ctx); err != nil {
		return nil, err
	}
	if _, err := b.env.NewNamespace(ctx, ns); err != nil {
		return nil, err
	}
	url := b.env.VaultURL(inprocess.Vault)
	before := mgr.Counter.Snapshot()
	prof := report && b.c.prof.enabled()
	if prof {
		b.c.prof.cfg = b.env.CP.Config
		if err := b.c.prof.start(); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	if err := b.createVaultSecrets(ctx, ns, n, func(int) v1alpha1.VaultSecretSpec { return vsSpec(url, interval, sharedSecrets...) }); err != nil {
		return nil, err
	}
	created := time.Since(start)
	if err := b.waitReady(ctx, ns, n, 10*time.Minute); err != nil {
		return nil, err
	}
	took := time.Since(start)
	if prof {
		if err := b.c.prof.finish(b.t); err != nil {
			return nil, err
		}
	}
	allReady := time.Now()
	time.Sleep(2 * time.Second) // events are sent asynchronously
	d := mgr.Counter.Snapshot().Sub(before)
	gets := b.env.Emu.Count(emulator.LogFilter{Service: "keyvault", Vault: inprocess.Vault, Operation: "GetSecret", Since: start})
	tokens := b.env.Emu.Count(emulator.LogFilter{Service: "entra", Operation: "Token", Since: start})
	rate := float64(n) / took.Seconds()
	if !report {
		note := fmt.Sprintf("creating them took %.2f s", created.Seconds())
		if plainRate > 0 {
			note += fmt.Sprintf("; plain client %.0f Secret creates/s", plainRate)
		}
		b.t.info(fmt.Sprintf("convergence of %d new VaultSecrets", n), fmt.Sprintf("%.1f s (%.0f/s)", took.Seconds(), rate), note)
		return &runInfo{ns: ns, n: n, allReady: allReady}, nil
	}
	per := func(x int) float64 { return float64(x) / float64(n) }
	b.t.check(fmt.Sprintf("convergence of %d new VaultSecrets (3 items, %s Key Vault latency)", n, b.c.latency),
		fmt.Sprintf("%.2f s (%.0f/s)", took.Seconds(), rate), "≥ 400/s (1,000 in ≤ 2.5 s)", rate >= 400,
		fmt.Sprintf("creating them took %.2f s; %d workers, QPS %.0f/burst %d", created.Seconds(), b.c.workers, b.c.qps, b.c.burst))
	sent := d.Total()
	b.t.check("convergence rate vs plain Secret creates", fmt.Sprintf("%.2f × (%.0f/s vs %.0f/s)", rate/plainRate, rate, plainRate),
		"≥ 0.4 ×", rate >= 0.4*plainRate,
		fmt.Sprintf("the manager sent %.2f apiserver requests per VaultSecret (%.2f writes, %.2f reads; watches excluded), the plain client 1 per Secret",
			per(sent), per(d.Writes("")), per(d.Reads(""))))
	w := d.Writes("secrets") + d.Writes("vaultsecrets/status")
	b.t.check("Kubernetes writes per VaultSecret, first sync (Secret + status)", fmt.Sprintf("%.2f (Secret %.2f, status %.2f)", per(w), per(d.Writes("secrets")), per(d.Writes("vaultsecrets/status"))),
		"≤ 2", per(w) <= 2, fmt.Sprintf("plus %.2f Events; %d TokenRequests", per(d.Writes("events")), d.Writes("serviceaccounts/token")))
	// None of the targets existed, so the writer has nothing to confirm with a live read; a
	// LIST of anything would be a cache bypass that grows with the cluster.
	lists, secretGets := d.Verb("list"), d.Get("get", "secrets")
	b.t.check("reads that bypass the cache per VaultSecret, first sync", fmt.Sprintf("%.2f (%s)", per(d.Reads("")), readsOf(d)),
		"0 LIST; 0 Secret GET (no target Secret existed)", lists == 0 && secretGets == 0,
		fmt.Sprintf("%d LIST, %d Secret GET, %d other GET", lists, secretGets, d.Reads("")-lists-secretGets))
	window := controllers.DefaultOptions().CoalesceWindow
	okGets := b.env.Emu.Count(emulator.LogFilter{Service: "keyvault", Vault: inprocess.Vault, Operation: "GetSecret", Status: 200, Since: start})
	// A new VaultSecret accepts a read made up to one window before its creation (however long
	// it waits in the queue), so the bound follows how long the creates took, not the syncs.
	bound := len(sharedSecrets) * (int(created/window) + 1)
	b.t.check("Key Vault GETs answered 200 during the first sync", fmt.Sprintf("%d (%d requests in all)", okGets, gets),
		fmt.Sprintf("≤ %d: one per object per %s coalescing window of the creates", bound, window), okGets <= bound,
		fmt.Sprintf("%d VaultSecrets × %d items = %d item reads in %.1f s", n, len(sharedSecrets), len(sharedSecrets)*n, took.Seconds()))
	perID, maxPer := tokensByIdentity(b.env.Emu.Requests(emulator.LogFilter{Service: "entra", Operation: "Token", Since: start}))
	b.t.check("Entra token requests per identity (first sync)", fmt.Sprintf("%d requests, %d identities, at most %d per identity", tokens, len(perID), maxPer),
		"≤ 1 per identity", maxPer <= 1, "")
	return &runInfo{ns: ns, n: n, allReady: allReady}, nil
}

// tokensByIdentity counts token requests by identity and returns the largest count.
func tokensByIdentity(log []emulator.LogEntry) (map[string]int, int) {
	by := map[string]int{}
	most := 0
	for _, e := range log {
		id := e.Identity
		if id == "" {
			id = e.AppID
		}
		by[id]++
		most = max(most, by[id])
	}
	return by, most
}

func readsOf(d inprocess.Counts) string {
	var parts []string
	for k, v := range d {
		if k.Verb == "get" || k.Verb == "list" {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// refreshCycle waits until every VaultSecret of the run has refreshed once
// and reports what the cycle cost.
func (b *bench) refreshCycle(ctx context.Context, mgr *inprocess.Manager, r *runInfo) error {
	// The first refresh after a sync comes 0.5 to 1.5 intervals later, on the slot's grid: when
	// the first syncs took a while, some VaultSecrets reach the grid one instant before the
	// others. Wait until every one has refreshed once and the burst is over; from then on all
	// refresh at the same instants, and the measured cycle holds exactly one of them.
	limit := refreshInterval*2 + time.Minute
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := b.track.WaitFor(wctx, func(v View) bool {
		return v.Count(r.ns, func(s *VSState) bool { return s.Syncs >= 2 }) >= r.n
	}); err != nil {
		return fmt.Errorf("not every VaultSecret refreshed within %s: %w", limit, err)
	}
	b.settle(r.ns, 5*time.Second)

	snap := b.syncsOf(r.ns)
	syncsBefore := map[types.NamespacedName]int{}
	for k, s := range b.states(r.ns) {
		syncsBefore[k] = s.Syncs
	}
	before := mgr.Counter.Snapshot()
	since := time.Now()
	wctx, cancel = context.WithTimeout(ctx, limit)
	defer cancel()
	err := b.track.WaitFor(wctx, func(v View) bool {
		n := 0
		for k, s := range v {
			if k.Namespace == r.ns && s.Syncs > syncsBefore[k] {
				n++
			}
		}
		return n >= r.n
	})
	if err != nil {
		return fmt.Errorf("not every VaultSecret refreshed again within %s: %w", limit, err)
	}
	time.Sleep(time.Second)
	d := mgr.Counter.Snapshot().Sub(before)
	gets := b.env.Emu.Count(emulator.LogFilter{Service: "keyvault", Vault: inprocess.Vault, Operation: "GetSecret", Since: since})
	tokens := b.env.Emu.Count(emulator.LogFilter{Service: "entra", Operation: "Token", Since: since})
	var first, last time.Time
	for k, s := range b.states(r.ns) {
		if s.Syncs < 2 || snap[k].Equal(s.LastSync) {
			continue
		}
		if first.IsZero() || s.LastSync.Before(first) {
			first = s.LastSync
		}
		if s.LastSync.After(last) {
			last = s.LastSync
		}
	}
	refreshes := 0
	for k, s := range b.states(r.ns) {
		refreshes += s.Syncs - syncsBefore[k]
	}
	statusWrites := d.Writes("vaultsecrets/status")
	b.t.check(fmt.Sprintf("Key Vault GETs per refresh cycle (%d VaultSecrets, 3 shared secrets)", r.n), fmt.Sprintf("%d", gets), "≤ 3", gets <= 3,
		fmt.Sprintf("%d refreshes; refreshInterval %s; the refreshes were spread over %.1f s", refreshes, refreshInterval, last.Sub(first).Seconds()))
	b.t.check("Secret writes per no-op refresh", fmt.Sprintf("%d", d.Writes("secrets")), "0", d.Writes("secrets") == 0, "")
	b.t.check("status writes per refresh", fmt.Sprintf("%.2f", float64(statusWrites)/float64(max(refreshes, 1))), "≤ 1",
		statusWrites <= refreshes, fmt.Sprintf("%d status writes, %d refreshes of %d VaultSecrets", statusWrites, refreshes, r.n))
	b.t.check("reads that bypass the cache per refresh", fmt.Sprintf("%d (%s)", d.Reads(""), readsOf(d)), "0", d.Reads("") == 0, "")
	b.t.check("Entra token requests during the refresh cycle", fmt.Sprintf("%d", tokens), "0 (token still valid)", tokens == 0, "")
	throttled := b.env.Emu.Count(emulator.LogFilter{Service: "keyvault", Vault: inprocess.Vault, Status: 429, Since: since})
	o := controllers.DefaultOptions()
	b.t.check("429 answers during the refresh cycle", fmt.Sprintf("%d", throttled), "0", throttled == 0,
		fmt.Sprintf("client budget %d requests per %s per vault", o.VaultRequests, o.VaultInterval))
	return nil
}

// settle waits until the VaultSecrets of ns have not synced for quiet (5 minutes at most).
func (b *bench) settle(ns string, quiet time.Duration) {
	total := func() int {
		n := 0
		for _, s := range b.states(ns) {
			n += s.Syncs
		}
		return n
	}
	last, since := total(), time.Now()
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if n := total(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}

func (b *bench) states(ns string) map[types.NamespacedName]VSState {
	out := map[types.NamespacedName]VSState{}
	for k, v := range b.track.Snapshot() {
		if k.Namespace == ns {
			out[k] = v
		}
	}
	return out
}

func (b *bench) syncsOf(ns string) map[types.NamespacedName]time.Time {
	out := map[types.NamespacedName]time.Time{}
	for k, v := range b.states(ns) {
		out[k] = v.LastSync
	}
	return out
}

// reconciles returns the number of reconciles of the vaultsecret controller
// in this process so far (all managers share controller-runtime's registry).
func reconciles() int {
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return 0
	}
	return sumCounter(mfs, "controller_runtime_reconcile_total", "vaultsecret")
}

func sumCounter(mfs []*dto.MetricFamily, name, controller string) int {
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return int(n)
}

// restart stops the manager as a kill would and starts a new one; it checks
// that the new manager writes nothing and that refreshes keep their schedule.
func (b *bench) restart(ctx context.Context, old *inprocess.Manager, r *runInfo, name string) (*inprocess.Manager, error) {
	if err := old.Stop(); err != nil {
		return nil, err
	}
	prev := b.states(r.ns)
	total := len(b.track.Snapshot())
	since := time.Now()
	r0 := reconciles()
	mgr, err := b.startManager(name, b.c.workers, b.c.qps, b.c.burst)
	if err != nil {
		return nil, err
	}
	if err := mgr.WaitSynced(ctx); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for reconciles()-r0 < total && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	settled := time.Since(since)
	time.Sleep(2 * time.Second)
	d := mgr.Counter.Snapshot()
	gets := b.env.Emu.Count(emulator.LogFilter{Service: "keyvault", Vault: inprocess.Vault, Operation: "GetSecret", Since: since})
	moved := 0
	var nexts []time.Time
	for k, s := range b.states(r.ns) {
		if !s.NextSync.Equal(prev[k].NextSync) {
			moved++
		}
		nexts = append(nexts, s.NextSync)
	}
	slices.SortFunc(nexts, func(a, b time.Time) int { return a.Compare(b) })
	b.t.check(fmt.Sprintf("restart with %d synced VaultSecrets: Secret writes", r.n), fmt.Sprintf("%d", d.Writes("secrets")), "0", d.Writes("secrets") == 0,
		fmt.Sprintf("all %d VaultSecrets reconciled %.1f s after the start", reconciles()-r0, settled.Seconds()))
	b.t.check("restart: status writes, Key Vault GETs", fmt.Sprintf("%d, %d", d.Writes("vaultsecrets/status"), gets), "0, 0",
		d.Writes("vaultsecrets/status") == 0 && gets == 0, fmt.Sprintf("plus %d Events, %d other writes", d.Writes("events"), d.Writes("")-d.Writes("events")-d.Writes("vaultsecrets/status")-d.Writes("secrets")))
	spread := 0.0
	if len(nexts) > 1 {
		spread = nexts[len(nexts)-1].Sub(nexts[0]).Seconds()
	}
	b.t.check("restart: nextSyncTime kept from status", fmt.Sprintf("%d of %d moved", moved, r.n), "0 moved", moved == 0,
		fmt.Sprintf("their next refreshes span %.0f s", spread))
	if !b.c.refresh {
		return mgr, nil
	}
	// The next refreshes must come when status said, not all at once.
	wctx, cancel := context.WithTimeout(ctx, refreshInterval*2+time.Minute)
	defer cancel()
	err = b.track.WaitFor(wctx, func(v View) bool {
		n := 0
		for k, s := range v {
			if k.Namespace == r.ns && !prev[k].NextSync.IsZero() && s.LastSync.After(prev[k].NextSync.Add(-time.Second)) {
				n++
			}
		}
		return n >= r.n
	})
	if err != nil {
		return mgr, fmt.Errorf("refreshes after the restart: %w", err)
	}
	var late []float64
	for k, s := range b.states(r.ns) {
		late = append(late, s.LastSync.Sub(prev[k].NextSync).Seconds())
	}
	sort.Float64s(late)
	p50, p100 := late[len(late)/2], late[len(late)-1]
	b.t.check("restart: refreshes start at the nextSyncTime kept in status (lateness min / p50 / max)",
		fmt.Sprintf("%.0f s / %.0f s / %.0f s", late[0], p50, p100), "first within 1 s; none early", late[0] >= -1 && late[0] <= 1,
		fmt.Sprintf("%d VaultSecrets; lastSyncTime − the nextSyncTime status held before the restart, 1 s resolution", len(late)))
	return mgr, nil
}

// budget makes a vault that allows 100 requests per 5 s serve many
// VaultSecrets with distinct secrets, and reads the emulator's request log:
// after a 429 no request may reach the vault before Retry-After but one probe.
func (b *bench) budget(ctx context.Context, mgr *inprocess.Manager, n int) error {
	const vault = "throttled"
	if err := b.env.Emu.AddVault(emulator.Vault{Name: vault, Limits: &emulator.Limits{Requests: 100, Window: emulator.DurationOf(5 * time.Second)},
		RoleAssignments: []emulator.RoleAssignment{{Principal: inprocess.Identity, Role: "Key Vault Secrets User"}}}); err != nil {
		return err
	}
	for i := range n {
		if _, err := b.env.Emu.SetSecret(vault, fmt.Sprintf("t-%d", i), emulator.SecretVersion{Value: "throttled-value"}); err != nil {
			return err
		}
	}
	ns := "budget"
	if _, err := b.env.NewNamespace(ctx, ns); err != nil {
		return err
	}
	url := b.env.VaultURL(vault)
	start := time.Now()
	if err := b.createVaultSecrets(ctx, ns, n, func(i int) v1alpha1.VaultSecretSpec { return vsSpec(url, refreshInterval, fmt.Sprintf("t-%d", i)) }); err != nil {
		return err
	}
	if err := b.waitReady(ctx, ns, n, 5*time.Minute); err != nil {
		return err
	}
	took := time.Since(start)
	var nexts []time.Time
	for _, st := range b.states(ns) {
		nexts = append(nexts, st.NextSync)
	}
	slices.SortFunc(nexts, func(a, b time.Time) int { return a.Compare(b) })
	tenths := map[int64]bool{}
	for _, t := range nexts {
		tenths[t.UnixNano()%int64(refreshInterval)/int64(refreshInterval/10)] = true
	}
	b.t.check(fmt.Sprintf("refresh slots of %d VaultSecrets reading distinct secrets, created together", n),
		fmt.Sprintf("%d of 10 tenths of the interval used", len(tenths)), "≥ 9 of 10", len(tenths) >= 9,
		fmt.Sprintf("next refreshes span %.0f s of the %s interval", nexts[len(nexts)-1].Sub(nexts[0]).Seconds(), refreshInterval))
	log := b.env.Emu.Requests(emulator.LogFilter{Service: "keyvault", Vault: vault, Since: start})
	st := inprocess.AnalyzePauses(log)
	b.t.check(fmt.Sprintf("after a 429: requests sent during the Retry-After pause (%d VaultSecrets, distinct secrets, vault allows 100 per 5 s)", n),
		fmt.Sprintf("%d", st.DuringPause), "0 (one probe, no storm)", st.DuringPause == 0 && st.Pauses > 0,
		fmt.Sprintf("%d requests, %d answered 429 in %d pauses (at most %d per pause: requests already in flight); all Ready in %.1f s, the vault's limit allows %.0f/s",
			st.Requests, st.Throttled, st.Pauses, st.MaxInFlight, took.Seconds(), 100.0/5))
	return nil
}

// largeRun converges and restarts a large number of VaultSecrets with a fresh manager.
func (b *bench) largeRun(ctx context.Context, n int) error {
	// Only this scenario's VaultSecrets may refresh meanwhile: the restart
	// figures count every write of the manager.
	for _, ns := range []string{"bench", "budget"} {
		if err := b.cleanup(ctx, ns); err != nil {
			return err
		}
	}
	mgr, err := b.startManager("large", b.c.workers, b.c.qps, b.c.burst)
	if err != nil {
		return err
	}
	r, err := b.converge(ctx, mgr, "large", n, time.Hour, 0, false)
	if err != nil {
		_ = mgr.Stop()
		return err
	}
	refresh := b.c.refresh
	b.c.refresh = false
	defer func() { b.c.refresh = refresh }()
	mgr, err = b.restart(ctx, mgr, r, "large-restart")
	if err != nil {
		return err
	}
	return mgr.Stop()
}

// sweep measures convergence for several worker and client settings.
func (b *bench) sweep(ctx context.Context) error {
	for i, spec := range strings.Split(b.c.sweep, ",") {
		var w, burst int
		var qps float64
		if _, err := fmt.Sscanf(spec, "%d:%g:%d", &w, &qps, &burst); err != nil {
			return fmt.Errorf("-sweep %q: want workers:qps:burst", spec)
		}
		plain, err := b.plainCreateRate(ctx, fmt.Sprintf("plain-%d", i), b.c.n, w)
		if err != nil {
			return err
		}
		mgr, err := b.startManager(fmt.Sprintf("sweep-%d", i), w, qps, burst)
		if err != nil {
			return err
		}
		ns := fmt.Sprintf("sweep-%d", i)
		r, err := b.converge(ctx, mgr, ns, b.c.n, refreshInterval, plain, false)
		if err != nil {
			_ = mgr.Stop()
			return err
		}
		b.t.rows[len(b.t.rows)-1].Figure = fmt.Sprintf("convergence of %d, workers %d, QPS %.0f, burst %d", r.n, w, qps, burst)
		if err := mgr.Stop(); err != nil {
			return err
		}
		if err := b.cleanup(ctx, ns); err != nil {
			return err
		}
	}
	return nil
}

// cleanup deletes the VaultSecrets and managed Secrets of a namespace (no
// garbage collector runs in the bench's control plane).
func (b *bench) cleanup(ctx context.Context, ns string) error {
	if err := b.env.Client.DeleteAllOf(ctx, &v1alpha1.VaultSecret{}, client.InNamespace(ns)); err != nil {
		return err
	}
	return b.env.Client.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns), client.MatchingLabels{"vaultsync.io/managed": "true"})
}
