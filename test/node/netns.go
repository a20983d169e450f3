package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/var/run/netns"

// createNetns creates a named network namespace with its loopback up.
func createNetns(ctx context.Context, name string) (string, error) {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.CommandContext(ctx, "ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		_ = deleteNetns(name)
		return "", fmt.Errorf("ip -n %s link set lo up: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return filepath.Join(netnsDir, name), nil
}

// deleteNetns removes a named network namespace (gone already is fine).
func deleteNetns(name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip netns delete %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// listNetns lists the named network namespaces starting with prefix.
func listNetns(prefix string) []string {
	entries, _ := os.ReadDir(netnsDir)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// inNetns runs fn on an OS thread that has joined the network namespace
// at nsPath. Sockets fn creates belong to that namespace for their whole
// life, whichever thread uses them later. The thread returns to the
// agent's namespace afterwards; if it cannot, it is left locked so the Go
// runtime throws it away instead of reusing it.
func inNetns(nsPath string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = orig.Close() }()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = target.Close() }()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", nsPath, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("returning to the agent's network namespace: %w", err))
			return // thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// ListenIn opens a TCP listener inside a network namespace.
func ListenIn(nsPath, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNetns(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}

// DialIn connects to addr from inside a network namespace. Only loopback
// addresses are accepted: a Pod's namespace has nothing else.
func DialIn(ctx context.Context, nsPath, addr string, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("refusing to dial %s: only loopback addresses are reachable in a Pod", addr)
	}
	var c net.Conn
	err = inNetns(nsPath, func() error {
		d := net.Dialer{Timeout: timeout}
		var err error
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// forwarder accepts on a listener and hands each connection to dial,
// copying bytes both ways until either side closes. It serves until Close,
// not until the context it was started with ends: the containers of a Pod
// still reach the API server during their grace period, after the agent's
// context is cancelled.
type forwarder struct {
	l    net.Listener
	dial func(ctx context.Context) (net.Conn, error)
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// startForwarder serves l. The dials see ctx's values, never its
// cancellation (see forwarder).
func startForwarder(ctx context.Context, l net.Listener, dial func(ctx context.Context) (net.Conn, error)) *forwarder {
	f := &forwarder{l: l, dial: dial, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve(context.WithoutCancel(ctx))
	return f
}

func (f *forwarder) serve(ctx context.Context) {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.handle(ctx, c)
		}()
	}
}

func (f *forwarder) track(c net.Conn, add bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if add {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

func (f *forwarder) handle(ctx context.Context, in net.Conn) {
	f.track(in, true)
	defer f.track(in, false)
	defer func() { _ = in.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	out, err := f.dial(ctx)
	cancel()
	if err != nil {
		return
	}
	f.track(out, true)
	defer f.track(out, false)
	defer func() { _ = out.Close() }()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

// Close stops accepting, cuts open connections and waits for the copiers.
func (f *forwarder) Close() {
	_ = f.l.Close()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// hostDial dials the agent's own loopback.
func hostDial(port int) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	}
}
