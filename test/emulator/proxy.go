package emulator

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// connListener hands tunnelled TLS connections to the inner HTTP server.
type connListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

func (l *connListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

// hostKind tells what an emulated host name is: "entra", "vault" or "" (not emulated).
func (e *Emulator) hostKind(host string) (string, error) {
	host = strings.ToLower(host)
	if _, ok := cloudForLoginHost(host); ok {
		return "entra", nil
	}
	if name, _, ok := splitVaultHost(host); ok {
		e.mu.Lock()
		_, exists := e.vaults[host]
		e.mu.Unlock()
		if !exists {
			return "", fmt.Errorf("no vault named %q is emulated (host %s)", name, host)
		}
		return "vault", nil
	}
	return "", fmt.Errorf("host %s is not emulated", host)
}

// serveProxy is the loopback proxy: CONNECT to emulated hosts on port 443 is terminated here;
// everything else is refused, nothing is ever forwarded.
func (e *Emulator) serveProxy(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		if r.URL.IsAbs() {
			e.record(&admin.LogEntry{Service: admin.ServiceProxy, Host: r.URL.Host, Method: r.Method, Path: r.URL.Path, Operation: "PlainProxyRequest", Status: http.StatusForbidden})
			http.Error(w, "kv-emulator: only CONNECT tunnels to emulated https hosts are supported; plain HTTP requests are not forwarded anywhere", http.StatusForbidden)
			return
		}
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		http.Error(w, "kv-emulator proxy: use this address as HTTPS_PROXY", http.StatusNotFound)
		return
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, "443"
	}
	host = strings.ToLower(host)
	if port != "443" {
		e.refuseConnect(w, r, host, http.StatusForbidden, fmt.Sprintf("port %s is not emulated (only 443)", port))
		return
	}
	if _, err := e.hostKind(host); err != nil {
		status := http.StatusForbidden
		if _, _, isVault := splitVaultHost(host); isVault {
			status = http.StatusBadGateway
		}
		e.refuseConnect(w, r, host, status, err.Error()+"; nothing is forwarded")
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "hijacking not supported", http.StatusInternalServerError)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	if _, err := brw.WriteString("HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		_ = conn.Close()
		return
	}
	if err := brw.Flush(); err != nil {
		_ = conn.Close()
		return
	}
	raw := conn
	if n := brw.Reader.Buffered(); n > 0 {
		buf, _ := brw.Peek(n)
		raw = &prefixConn{Conn: conn, prefix: append([]byte(nil), buf...)}
	}
	tconn := tls.Server(raw, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name := strings.ToLower(hello.ServerName)
			if name == "" {
				name = host
			}
			if _, err := e.hostKind(name); err != nil {
				return nil, err
			}
			return e.ca.leaf(name)
		},
	})
	if !e.tunnels.push(tconn) {
		_ = tconn.Close()
	}
}

func (e *Emulator) refuseConnect(w http.ResponseWriter, r *http.Request, host string, status int, msg string) {
	e.record(&admin.LogEntry{Service: admin.ServiceProxy, Host: host, Method: r.Method, Path: r.Host, Operation: "Connect", Status: status})
	http.Error(w, "kv-emulator: "+msg, status)
}

// prefixConn replays bytes the proxy had already buffered.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// serveTunnel dispatches a request that arrived through a tunnel by its Host.
func (e *Emulator) serveTunnel(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if r.TLS != nil && r.TLS.ServerName != "" && !strings.EqualFold(r.TLS.ServerName, host) {
		http.Error(w, "Host does not match TLS server name", http.StatusMisdirectedRequest)
		return
	}
	if c, ok := cloudForLoginHost(host); ok {
		e.serveEntra(w, r, c)
		return
	}
	if _, _, ok := splitVaultHost(host); ok {
		e.serveVault(w, r, host)
		return
	}
	http.Error(w, "not emulated", http.StatusMisdirectedRequest)
}

// errConnReset marks a deliberately dropped connection.
var errConnReset = errors.New("connection dropped by fault injection")

// dropConnection closes the client connection without an answer.
func dropConnection(w http.ResponseWriter) error {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return errConnReset
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return err
	}
	if tc, ok := conn.(*tls.Conn); ok {
		_ = tc.NetConn().SetDeadline(time.Now())
		return tc.NetConn().Close()
	}
	return conn.Close()
}
