package inprocess

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Gate is a TCP forwarder on 127.0.0.1 in front of the kube-apiserver. A
// manager whose rest.Config points at the gate loses the apiserver when the
// gate is closed (connections are reset, new ones refused) and finds it again
// on the same address when it is opened. envtest cannot restart its
// kube-apiserver in place: Stop removes the generated certificate directory,
// so a restarted apiserver has a new serving CA and ServiceAccount signing key
// and every existing client and token is invalid. The gate gives the manager
// the same view as a stopped and restarted apiserver without that.
type Gate struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewGate starts an open gate to target (host:port) and returns it.
func NewGate(target string) (*Gate, error) {
	g := &Gate{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g.addr = ln.Addr().String()
	g.serve(ln)
	return g, nil
}

// Addr is the gate's host:port.
func (g *Gate) Addr() string { return g.addr }

// Close shuts the gate: the listener stops and every open connection is cut.
func (g *Gate) Close() {
	g.mu.Lock()
	if g.ln != nil {
		_ = g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		_ = c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// Open opens the gate again on the same address.
func (g *Gate) Open() error {
	g.mu.Lock()
	open := g.ln != nil
	g.mu.Unlock()
	if open {
		return nil
	}
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		return err
	}
	g.serve(ln)
	return nil
}

func (g *Gate) serve(ln net.Listener) {
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				g.forward(c)
			}()
		}
	}()
}

func (g *Gate) track(c net.Conn, add bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if add {
		if g.ln == nil {
			return false
		}
		g.conns[c] = struct{}{}
		return true
	}
	delete(g.conns, c)
	return true
}

func (g *Gate) forward(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", g.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !g.track(c, true) {
		return
	}
	defer g.track(c, false)
	if !g.track(up, true) {
		return
	}
	defer g.track(up, false)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}
