package events

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// DefaultPath is where Server mounts the handler.
const DefaultPath = "/events"

// Server serves a Handler on an address: over TLS with a certificate and key read from files
// (reloaded when they change, as cert-manager rotates them), or over plain HTTP when no files are
// given, for use behind an Ingress or gateway that terminates TLS (never expose plain HTTP to the
// internet: the shared secret travels in every request). It implements controller-runtime's
// manager.Runnable (Start) and LeaderElectionRunnable (NeedLeaderElection), so a manager runs it.
type Server struct {
	// Addr is the listen address, e.g. ":9443".
	Addr string
	// Handler receives the deliveries (mounted on Path; GET /healthz answers ok).
	Handler http.Handler
	// Path is the delivery path (default /events).
	Path string
	// CertFile and KeyFile hold the PEM certificate chain and key; both empty: plain HTTP.
	CertFile, KeyFile string
	// LeaderOnly makes the manager run the server on the leader only. Off by default: every
	// replica receives events, so a sink must not assume it runs on the leader.
	LeaderOnly bool
	// Gate, when set, holds the listener back until it is closed: the sink
	// is not ready before (its routing index is being rebuilt), and a
	// connection refused makes Event Grid retry, where an accepted delivery
	// routed nowhere would be lost.
	Gate <-chan struct{}
	// OnListen, when set, is called once the server accepts connections
	// (for example to label the Pod a Service selects).
	OnListen func()
	// Logger logs start and stop.
	Logger logr.Logger
	// ShutdownTimeout bounds the graceful stop (default 10s).
	ShutdownTimeout time.Duration
}

// NeedLeaderElection implements controller-runtime's LeaderElectionRunnable.
func (s *Server) NeedLeaderElection() bool { return s.LeaderOnly }

// Start listens on Addr and serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if s.Gate != nil {
		select {
		case <-s.Gate:
		case <-ctx.Done():
			return nil
		}
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("events: listen on %s: %w", s.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (closed on return) until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Handler == nil {
		_ = ln.Close()
		return errors.New("events: Server needs a Handler")
	}
	path := s.Path
	if path == "" {
		path = DefaultPath
	}
	mux := http.NewServeMux()
	mux.Handle(path, s.Handler)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	tlsOn := s.CertFile != "" || s.KeyFile != ""
	if tlsOn {
		if s.CertFile == "" || s.KeyFile == "" {
			_ = ln.Close()
			return errors.New("events: both a certificate and a key file are needed for TLS")
		}
		rl := &certReloader{certFile: s.CertFile, keyFile: s.KeyFile}
		if _, err := rl.load(); err != nil {
			_ = ln.Close()
			return err
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: rl.get}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.Logger.Info("serving Event Grid deliveries", "address", ln.Addr().String(), "path", path, "tls", tlsOn)
	if s.OnListen != nil {
		s.OnListen()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// certReloader serves the certificate from files, reading them again when their modification
// time changes (checked at most every reloadCheck).
type certReloader struct {
	certFile, keyFile string

	mu        sync.Mutex
	cert      *tls.Certificate
	modCert   time.Time
	modKey    time.Time
	lastCheck time.Time
}

// reloadCheck is how often the files are looked at (a variable for tests).
var reloadCheck = 10 * time.Second

func (r *certReloader) load() (*tls.Certificate, error) {
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return nil, fmt.Errorf("events: TLS certificate: %w", err)
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("events: TLS key: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastCheck = time.Now()
	if r.cert != nil && ci.ModTime().Equal(r.modCert) && ki.ModTime().Equal(r.modKey) {
		return r.cert, nil
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil // keep serving the previous pair while a rotation is half written
		}
		return nil, fmt.Errorf("events: loading the TLS key pair: %w", err)
	}
	r.cert, r.modCert, r.modKey = &c, ci.ModTime(), ki.ModTime()
	return r.cert, nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	fresh := time.Since(r.lastCheck) < reloadCheck && r.cert != nil
	c := r.cert
	r.mu.Unlock()
	if fresh {
		return c, nil
	}
	return r.load()
}
