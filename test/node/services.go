package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// ServicePort is one published Service port of the kube-proxy stand-in.
type ServicePort struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Port      int32  `json:"port"`
	PortName  string `json:"portName,omitempty"`
	// Address is the host loopback address that forwards to the Service.
	Address string `json:"address"`
}

type svcKey struct {
	ns, name string
	port     int32
}

type svcEntry struct {
	ServicePort
	fwd *forwarder
}

// serviceProxy stands in for kube-proxy: each TCP port of each Service
// with a selector gets a listener on 127.0.0.1:<allocated port> on the
// host. A connection goes to a ready endpoint of the Service's
// EndpointSlices, chosen round-robin at connection time (so a change of
// the slices applies to the next connection), by dialling the target port
// inside that Pod's network namespace.
type serviceProxy struct {
	a      *Agent
	slices discoverylisters.EndpointSliceLister

	mu      sync.Mutex
	entries map[svcKey]*svcEntry
	next    map[svcKey]int
	closed  bool
}

func newServiceProxy(a *Agent) *serviceProxy {
	return &serviceProxy{a: a, entries: map[svcKey]*svcEntry{}, next: map[svcKey]int{}}
}

// register watches the Services of the factory; ctx is the agent's context.
func (s *serviceProxy) register(ctx context.Context, f informers.SharedInformerFactory) {
	s.slices = f.Discovery().V1().EndpointSlices().Lister()
	_ = f.Discovery().V1().EndpointSlices().Informer()
	_, _ = f.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.sync(ctx, obj.(*corev1.Service), false) },
		UpdateFunc: func(_, obj any) { s.sync(ctx, obj.(*corev1.Service), false) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if svc, ok := obj.(*corev1.Service); ok {
				s.sync(ctx, svc, true)
			}
		},
	})
}

func (s *serviceProxy) watched(ns string) bool {
	if len(s.a.o.ServiceNamespaces) == 0 {
		return true
	}
	for _, n := range s.a.o.ServiceNamespaces {
		if n == ns {
			return true
		}
	}
	return false
}

func (s *serviceProxy) sync(ctx context.Context, svc *corev1.Service, deleted bool) {
	if !s.watched(svc.Namespace) {
		return
	}
	want := map[svcKey]corev1.ServicePort{}
	if !deleted && len(svc.Spec.Selector) > 0 {
		for _, p := range svc.Spec.Ports {
			if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
				want[svcKey{svc.Namespace, svc.Name, p.Port}] = p
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for k, e := range s.entries {
		if k.ns != svc.Namespace || k.name != svc.Name {
			continue
		}
		if p, ok := want[k]; !ok || p.Name != e.PortName {
			e.fwd.Close()
			delete(s.entries, k)
		}
	}
	for k, p := range want {
		if _, ok := s.entries[k]; ok {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.a.log.Printf("service %s/%s port %d: %v", k.ns, k.name, k.port, err)
			continue
		}
		key, portName := k, p.Name
		e := &svcEntry{ServicePort: ServicePort{
			Namespace: k.ns, Name: k.name, Port: k.port, PortName: p.Name, Address: l.Addr().String(),
		}}
		e.fwd = startForwarder(ctx, l, func(ctx context.Context) (net.Conn, error) { return s.dial(ctx, key, portName) })
		s.entries[k] = e
		s.a.log.Printf("service %s/%s port %d -> %s", k.ns, k.name, k.port, e.Address)
	}
	s.publishLocked()
}

// endpoint is one ready backend of a Service port.
type endpoint struct {
	ip   string
	port int32
}

// readyEndpoints lists the ready endpoints of a Service port from its
// EndpointSlices, sorted so round-robin is stable.
func (s *serviceProxy) readyEndpoints(k svcKey, portName string) []endpoint {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: k.name})
	slices, err := s.slices.EndpointSlices(k.ns).List(sel)
	if err != nil {
		return nil
	}
	var out []endpoint
	for _, sl := range slices {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		var port int32 = -1
		for _, p := range sl.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if name == portName && p.Port != nil {
				port = *p.Port
			}
		}
		if port < 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, ip := range ep.Addresses {
				out = append(out, endpoint{ip, port})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ip < out[j].ip })
	return out
}

// dial connects a Service connection to a ready endpoint, trying the next
// one when a Pod refuses.
func (s *serviceProxy) dial(ctx context.Context, k svcKey, portName string) (net.Conn, error) {
	eps := s.readyEndpoints(k, portName)
	if len(eps) == 0 {
		return nil, fmt.Errorf("service %s/%s has no ready endpoint", k.ns, k.name)
	}
	s.mu.Lock()
	start := s.next[k]
	s.next[k] = start + 1
	s.mu.Unlock()
	var lastErr error
	for i := range eps {
		ep := eps[(start+i)%len(eps)]
		w := s.a.workerByIP(ep.ip)
		if w == nil {
			lastErr = fmt.Errorf("endpoint %s is no Pod of this node", ep.ip)
			continue
		}
		w.mu.Lock()
		ns := w.netnsPth
		w.mu.Unlock()
		if ns == "" {
			continue
		}
		c, err := DialIn(ctx, ns, fmt.Sprintf("127.0.0.1:%d", ep.port), 5*time.Second)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// publishLocked writes services.json in the state directory.
func (s *serviceProxy) publishLocked() {
	list := make([]ServicePort, 0, len(s.entries))
	for _, e := range s.entries {
		list = append(list, e.ServicePort)
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Port < b.Port
	})
	b, _ := json.MarshalIndent(list, "", "  ")
	p := filepath.Join(s.a.o.StateDir, "services.json")
	_ = os.WriteFile(p+".tmp", b, 0o644)
	_ = os.Rename(p+".tmp", p)
}

func (s *serviceProxy) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for k, e := range s.entries {
		e.fwd.Close()
		delete(s.entries, k)
	}
	s.publishLocked()
}

func (s *serviceProxy) lookup(ns, name string, port int32) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[svcKey{ns, name, port}]
	if !ok {
		return "", false
	}
	return e.Address, true
}

// ServiceAddress is the host loopback address (127.0.0.1:<port>) that
// forwards to a Service port, as kube-proxy makes the ClusterIP do.
func (a *Agent) ServiceAddress(namespace, name string, port int32) (string, bool) {
	if a.services == nil {
		return "", false
	}
	return a.services.lookup(namespace, name, port)
}
