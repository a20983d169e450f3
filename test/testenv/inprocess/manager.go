package inprocess

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/vaultsync/vaultsync/controllers"
)

// HashKey is the status.dataHash key of every manager the harness starts.
var HashKey = []byte("harness-hash-key-harness-hash-32")

// ManagerOptions configure StartManager.
type ManagerOptions struct {
	// Options are the controllers' options; zero means controllers.DefaultOptions
	// with HashKey.
	Options *controllers.Options
	// QPS and Burst limit the manager's client, as main's --kube-api-qps and
	// --kube-api-burst do (0: main's defaults).
	QPS   float32
	Burst int
	// Gate, when set, routes the manager's apiserver traffic through it.
	Gate *Gate
	// Counter, when set, counts the manager's apiserver requests.
	Counter *APICounter
	// APIFault, when set, sees every apiserver request first and may answer
	// it itself by returning a response (see ConflictResponse).
	APIFault func(*http.Request) *http.Response
	// LeaderElection enables leader election with a Lease in LeaderElectionNamespace.
	LeaderElection          bool
	LeaderElectionNamespace string
	LeaseDuration           time.Duration
	RenewDeadline           time.Duration
	RetryPeriod             time.Duration
	// ReleaseOnCancel releases the lease on a clean stop (a killed process does not).
	ReleaseOnCancel bool
	// Log receives the manager's log (nil: discarded).
	Log io.Writer
	// Name tells managers apart in logs.
	Name string
}

// Main's defaults for the kube-apiserver client.
const (
	DefaultQPS   = 200
	DefaultBurst = 400
)

// Manager is a manager running in this process.
type Manager struct {
	Mgr     ctrl.Manager
	Counter *APICounter
	cancel  context.CancelFunc
	done    chan error
}

// StartManager starts the real vaultsync manager (controllers.Setup) in this
// process. Several managers may run one after the other or side by side.
func (e *Env) StartManager(o ManagerOptions) (*Manager, error) {
	cfg := rest.CopyConfig(e.CP.Config)
	cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	if o.QPS != 0 {
		cfg.QPS = o.QPS
	}
	if o.Burst != 0 {
		cfg.Burst = o.Burst
	}
	cfg.UserAgent = "vaultsync-harness/" + o.Name
	if o.Gate != nil {
		u, err := url.Parse(cfg.Host)
		if err != nil {
			return nil, err
		}
		u.Host = o.Gate.Addr()
		cfg.Host = u.String()
	}
	if o.Counter == nil {
		o.Counter = NewAPICounter()
	}
	cfg.Wrap(o.Counter.Wrap)
	if o.APIFault != nil {
		fault := o.APIFault
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
				if resp := fault(r); resp != nil {
					return resp, nil
				}
				return rt.RoundTrip(r)
			})
		})
	}

	opts := controllers.DefaultOptions()
	if o.Options != nil {
		opts = *o.Options
	}
	if len(opts.HashKey) == 0 {
		opts.HashKey = HashKey
	}
	var log logr.Logger
	if o.Log != nil {
		log = zap.New(zap.WriteTo(o.Log), zap.UseDevMode(true))
	} else {
		log = logr.Discard()
	}
	log = log.WithName(o.Name)
	cacheOpts := cache.Options{}
	controllers.RestrictCache(&cacheOpts)
	mo := ctrl.Options{
		Scheme:                        e.Scheme,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		Cache:                         cacheOpts,
		Logger:                        log,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              "vaultsync.vaultsync.io",
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: o.ReleaseOnCancel,
		// Several managers live in one process one after another.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if o.LeaseDuration > 0 {
		mo.LeaseDuration, mo.RenewDeadline, mo.RetryPeriod = &o.LeaseDuration, &o.RenewDeadline, &o.RetryPeriod
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, err
	}
	if err := controllers.Setup(mgr, opts); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{Mgr: mgr, Counter: o.Counter, cancel: cancel, done: make(chan error, 1)}
	// Profiles of a process that runs a manager tell its work apart by
	// this label (go tool pprof -tagfocus component=manager).
	go pprof.Do(ctx, pprof.Labels("component", "manager"), func(ctx context.Context) { m.done <- mgr.Start(ctx) })
	return m, nil
}

// Elected is closed when the manager is the leader (at once without leader election).
func (m *Manager) Elected() <-chan struct{} { return m.Mgr.Elected() }

// WaitSynced waits until the manager's caches are synced.
func (m *Manager) WaitSynced(ctx context.Context) error {
	if !m.Mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("manager caches did not sync")
	}
	return nil
}

// Stop cancels the manager, as a killed process would stop (in-flight
// reconciles are abandoned), and waits up to a minute for it to return.
func (m *Manager) Stop() error {
	m.cancel()
	select {
	case err := <-m.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	case <-time.After(time.Minute):
		return fmt.Errorf("manager did not stop within a minute")
	}
}

// Done returns the manager's exit error once it has stopped.
func (m *Manager) Done() <-chan error { return m.done }

// ConflictResponse is a 409 Conflict as the kube-apiserver sends it when an
// object changed under a write.
func ConflictResponse(r *http.Request) *http.Response {
	body := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected)","reason":"Conflict","code":409}`
	return &http.Response{
		StatusCode: http.StatusConflict, Status: "409 Conflict", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": []string{"application/json"}},
		Body:    io.NopCloser(strings.NewReader(body)),
		Request: r, ContentLength: int64(len(body)),
	}
}
