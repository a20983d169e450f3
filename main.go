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

// Command vaultsync is the operator's manager: it keeps Kubernetes Secrets in
// sync with Azure Key Vault objects named by VaultSecret resources.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/vaultsync/vaultsync/controllers"
	"github.com/vaultsync/vaultsync/internal/events"
	"github.com/vaultsync/vaultsync/internal/leaderpod"
	"github.com/vaultsync/vaultsync/internal/metrics"
	"github.com/vaultsync/vaultsync/internal/metricsauth"
	"github.com/vaultsync/vaultsync/internal/version"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(controllers.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr         string
		probeAddr           string
		pprofAddr           string
		secureMetrics       bool
		enableHTTP2         bool
		leaderElect         bool
		leaderElectNS       string
		watchNamespaces     string
		dev                 bool
		kubeQPS             float64
		kubeBurst           int
		operatorNS          string
		hashKeySecret       string
		eventsAddr          string
		eventsSecret        string
		eventsCert          string
		eventsKey           string
		eventsOpenHandshake bool
		metricsCertDir      string
		leaderPodLabel      string
		podName             string
		printVersion        bool
	)
	opts := controllers.DefaultOptions()

	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443",
		"Address the metrics endpoint binds to (HTTPS with authn/authz unless --metrics-secure=false). \"0\" disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "",
		"Address Go's pprof profiles are served on, without authentication, for diagnosing memory and CPU use "+
			"(empty: off; bind it to 127.0.0.1 only).")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS, allowing only callers authorised by a SubjectAccessReview.")
	flag.StringVar(&metricsCertDir, "metrics-cert-dir", "",
		"Directory holding tls.crt and tls.key for the metrics endpoint (reloaded when they change), e.g. a mounted "+
			"kubernetes.io/tls Secret; empty: a self-signed certificate generated at start, which scrapers cannot verify.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"Enable HTTP/2 for the metrics server (off by default: HTTP/2 Rapid Reset and Stream Cancellation CVEs).")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Enable leader election, so only one replica reconciles at a time.")
	flag.StringVar(&leaderElectNS, "leader-election-namespace", "",
		"Namespace of the leader-election Lease (default: the namespace the manager runs in).")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces to watch; empty watches the whole cluster.")
	flag.BoolVar(&dev, "dev", false,
		"Development mode: human-readable logs; allows the azureCLI auth method (never use in a cluster).")
	// 200/400 measured (docs/benchmarks.md): 50/100 held 1,000 new VaultSecrets to 51/s and a refresh
	// burst to 20 s; above 200 the apiserver, not the client, is the limit.
	flag.Float64Var(&kubeQPS, "kube-api-qps", 200, "Client-side QPS limit towards the Kubernetes API server.")
	flag.IntVar(&kubeBurst, "kube-api-burst", 400, "Client-side burst limit towards the Kubernetes API server.")
	flag.StringVar(&operatorNS, "operator-namespace", envOr("POD_NAMESPACE", "vaultsync-system"),
		"Namespace the operator runs in (holds the hash-key Secret and the leader-election Lease).")
	flag.StringVar(&hashKeySecret, "hash-key-secret", "vaultsync-hash-key",
		"Secret in --operator-namespace holding the HMAC key of status.dataHash; created on first start.")
	flag.StringVar(&eventsAddr, "events-bind-address", "",
		"Address of the Key Vault (Event Grid) events endpoint, e.g. :9443; empty turns it off.")
	flag.StringVar(&eventsSecret, "events-secret", "vaultsync-events",
		"Secret in --operator-namespace whose key \"key\" (at least 16 bytes) authenticates event deliveries.")
	flag.StringVar(&eventsCert, "events-cert-file", "", "TLS certificate (PEM chain) of the events endpoint; empty: plain HTTP behind a TLS-terminating Ingress.")
	flag.StringVar(&eventsKey, "events-key-file", "", "TLS key of the events endpoint.")
	flag.BoolVar(&eventsOpenHandshake, "events-allow-unauthenticated-handshake", false,
		"Answer subscription validation handshakes that carry no key (deliveries still need it): for an Event Grid "+
			"subscription that sends the key in the X-Vaultsync-Key header but not on the handshake.")
	flag.StringVar(&leaderPodLabel, "leader-pod-label", "",
		"Label this replica puts on its own Pod (--pod-name) while it leads and the events endpoint listens, and removes "+
			"at start and on stepping down, so the events Service can select the leader alone; empty turns it off.")
	flag.StringVar(&podName, "pod-name", os.Getenv("POD_NAME"), "Name of the manager's own Pod (for --leader-pod-label).")
	flag.BoolVar(&printVersion, "version", false, "Print the version and exit.")
	memoryRatio := flag.Float64("memory-limit-ratio", 0.9,
		"Unless GOMEMLIMIT is set, the Go runtime's soft memory limit as a fraction of the container's cgroup memory "+
			"limit, so garbage collection works harder near the limit instead of the container being OOM-killed (0: off).")
	gcPct := flag.Int("gc-percent", 50,
		"Unless GOGC is set, the garbage collector's target heap growth in percent (the Go runtime's default is 100): "+
			"a smaller peak memory for a little more CPU (0: the runtime's default).")
	opts.BindFlags(flag.CommandLine)
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if printVersion {
		fmt.Println("vaultsync " + version.Version)
		return
	}
	if dev {
		zapOpts.Development = true
	}
	opts.Dev = dev

	// client-go logs whole request and response bodies from verbosity 8 on:
	// for Secrets that is their data. No verbosity of this operator may do
	// that, so more verbose levels are capped.
	zapOpts.Level = capVerbosity(zapOpts.Level, zapOpts.Development, maxVerbosity)
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	log.Info("starting vaultsync", "version", version.Version)
	if from := setMemoryLimit(*memoryRatio); from != "" {
		log.Info("Go memory limit set", "from", from)
	}
	if p := setGCPercent(*gcPct); p != "" {
		log.Info("Go garbage collection target set", "percent", p)
	}

	if err := run(opts, runConfig{
		metricsAddr: metricsAddr, probeAddr: probeAddr, pprofAddr: pprofAddr, secureMetrics: secureMetrics, enableHTTP2: enableHTTP2,
		leaderElect: leaderElect, leaderElectNS: leaderElectNS, watchNamespaces: watchNamespaces,
		kubeQPS: float32(kubeQPS), kubeBurst: kubeBurst, operatorNS: operatorNS, hashKeySecret: hashKeySecret,
		eventsAddr: eventsAddr, eventsSecret: eventsSecret, eventsCert: eventsCert, eventsKey: eventsKey,
		eventsOpenHandshake: eventsOpenHandshake, metricsCertDir: metricsCertDir,
		leaderPodLabel: leaderPodLabel, podName: podName,
	}); err != nil {
		log.Error(err, "manager exited with an error")
		os.Exit(1)
	}
}

type runConfig struct {
	metricsAddr, probeAddr     string
	pprofAddr                  string
	secureMetrics, enableHTTP2 bool
	leaderElect                bool
	leaderElectNS              string
	watchNamespaces            string
	kubeQPS                    float32
	kubeBurst                  int
	operatorNS, hashKeySecret  string
	eventsAddr, eventsSecret   string
	eventsCert, eventsKey      string
	eventsOpenHandshake        bool
	metricsCertDir             string
	leaderPodLabel, podName    string
}

func run(opts controllers.Options, rc runConfig) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	ctrl.Log.WithName("setup").Info("Kubernetes API", "configuration", configSource(), "host", cfg.Host)
	cfg.QPS, cfg.Burst = rc.kubeQPS, rc.kubeBurst
	cfg.UserAgent = "vaultsync/" + version.Version

	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	opts.HashKey, err = controllers.LoadHashKey(ctx, direct, rc.operatorNS, rc.hashKeySecret)
	cancel()
	if err != nil {
		return err
	}
	if rc.leaderElectNS == "" {
		rc.leaderElectNS = rc.operatorNS
	}
	var eventsServer *events.Server
	if rc.eventsAddr != "" {
		key, err := loadEventsKey(direct, rc.operatorNS, rc.eventsSecret)
		if err != nil {
			return err
		}
		opts.Events = controllers.NewEventRouter()
		h, err := events.NewHandler(events.Options{
			Secrets: [][]byte{key}, Sink: opts.Events, Metrics: metrics.Shared(),
			AllowUnauthenticatedHandshake: rc.eventsOpenHandshake,
			Logger:                        ctrl.Log.WithName("events"),
		})
		if err != nil {
			return err
		}
		eventsServer = &events.Server{Addr: rc.eventsAddr, Handler: h, CertFile: rc.eventsCert, KeyFile: rc.eventsKey,
			// Only the leader reconciles, so only the leader listens: route
			// the Service to ready pods (standbys are not ready for events).
			LeaderOnly: rc.leaderElect, Gate: opts.Events.Ready(), Logger: ctrl.Log.WithName("events")}
	}
	var leaderLabel *leaderpod.Label
	if rc.leaderPodLabel != "" {
		leaderLabel = &leaderpod.Label{Client: direct, Namespace: rc.operatorNS, Name: rc.podName, Key: rc.leaderPodLabel,
			Logger: ctrl.Log.WithName("leader-label")}
		if eventsServer != nil {
			listening := make(chan struct{})
			eventsServer.OnListen = sync.OnceFunc(func() { close(listening) })
			leaderLabel.Ready = listening
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := leaderLabel.Clear(ctx)
		cancel()
		if err != nil {
			return err
		}
	}

	var tlsOpts []func(*tls.Config)
	if !rc.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   rc.metricsAddr,
		SecureServing: rc.secureMetrics,
		TLSOpts:       tlsOpts,
	}
	if rc.secureMetrics {
		metricsOpts.FilterProvider = metricsauth.New
	}
	if rc.metricsCertDir != "" {
		// controller-runtime falls back to a self-signed certificate when the files are
		// missing; a scraper that verifies would then fail with no hint here. Refuse instead.
		for _, f := range []string{"tls.crt", "tls.key"} {
			if _, err := os.Stat(filepath.Join(rc.metricsCertDir, f)); err != nil {
				return fmt.Errorf("--metrics-cert-dir: %w", err)
			}
		}
		metricsOpts.CertDir = rc.metricsCertDir
	}

	cacheOpts := cache.Options{}
	if ns := splitNamespaces(rc.watchNamespaces); len(ns) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, n := range ns {
			cacheOpts.DefaultNamespaces[n] = cache.Config{}
		}
		opts.WatchNamespaces = ns
	}
	// Cache only the Secrets vaultsync manages: a cluster's other Secrets
	// never enter memory (peers that cache every Secret use gigabytes).
	controllers.RestrictCache(&cacheOpts)

	leaseDuration, renewDeadline := 15*time.Second, 10*time.Second
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        rc.probeAddr,
		PprofBindAddress:              rc.pprofAddr,
		LeaderElection:                rc.leaderElect,
		LeaderElectionID:              "vaultsync.vaultsync.io",
		LeaderElectionNamespace:       rc.leaderElectNS,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		Cache:                         cacheOpts,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := controllers.Setup(mgr, opts); err != nil {
		return fmt.Errorf("setting up controllers: %w", err)
	}
	if eventsServer != nil {
		if err := mgr.Add(eventsServer); err != nil {
			return err
		}
	}
	if leaderLabel != nil {
		if err := mgr.Add(leaderLabel); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

// configSource says where the Kubernetes client configuration comes from, in
// the order controller-runtime looks: --kubeconfig, $KUBECONFIG, the Pod's
// in-cluster configuration, ~/.kube/config.
func configSource() string {
	if f := flag.Lookup("kubeconfig"); f != nil && f.Value.String() != "" {
		return "kubeconfig from --kubeconfig"
	}
	if os.Getenv("KUBECONFIG") != "" {
		return "kubeconfig from $KUBECONFIG"
	}
	if _, err := rest.InClusterConfig(); err == nil {
		return "in-cluster"
	}
	return "kubeconfig from ~/.kube/config"
}

// maxVerbosity is the most verbose log level the operator emits (V(6):
// request URLs and status codes, never bodies).
const maxVerbosity = 6

// capVerbosity returns a level filter that passes what enabler passes, down
// to V(max) and no further. A nil enabler means controller-runtime's default
// (debug in development mode, info otherwise).
func capVerbosity(enabler zapcore.LevelEnabler, development bool, max int) zapcore.LevelEnabler {
	if enabler == nil {
		if development {
			return zapcore.DebugLevel
		}
		return zapcore.InfoLevel
	}
	floor := zapcore.Level(-max) //nolint:gosec // G115: max is the constant maxVerbosity (6); zap levels are int8
	return cappedLevel{floor: floor, enabler: enabler}
}

type cappedLevel struct {
	floor   zapcore.Level
	enabler zapcore.LevelEnabler
}

func (c cappedLevel) Enabled(l zapcore.Level) bool { return l >= c.floor && c.enabler.Enabled(l) }

// loadEventsKey reads the shared secret of event deliveries.
func loadEventsKey(c client.Client, namespace, name string) ([]byte, error) {
	s := &corev1.Secret{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		return nil, fmt.Errorf("reading the events secret %s/%s (create it with a random \"key\" of at least 16 bytes): %w", namespace, name, err)
	}
	key := s.Data["key"]
	if len(key) < 16 {
		return nil, fmt.Errorf("secret %s/%s needs a \"key\" of at least 16 bytes", namespace, name)
	}
	return key, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func splitNamespaces(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}
