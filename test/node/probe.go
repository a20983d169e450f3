package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ProbeDialer connects to a port of the Pod (inside its network namespace).
type ProbeDialer func(ctx context.Context, port int, timeout time.Duration) (net.Conn, error)

// ProbeExec runs a command in the container and returns its exit code.
type ProbeExec func(ctx context.Context, cmd []string) (int, error)

// RunProbe performs one probe attempt: nil is success.
func RunProbe(ctx context.Context, p *corev1.Probe, c *corev1.Container, dial ProbeDialer, exec ProbeExec) error {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		port, err := ResolvePort(p.HTTPGet.Port, c)
		if err != nil {
			return err
		}
		return httpProbe(ctx, p.HTTPGet, port, timeout, dial)
	case p.TCPSocket != nil:
		port, err := ResolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return err
		}
		conn, err := dial(ctx, port, timeout)
		if err != nil {
			return err
		}
		return conn.Close()
	case p.Exec != nil:
		if exec == nil {
			return fmt.Errorf("exec probes need a running container")
		}
		code, err := exec(ctx, p.Exec.Command)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("command %q exited with %d", strings.Join(p.Exec.Command, " "), code)
		}
		return nil
	case p.GRPC != nil:
		return fmt.Errorf("grpc probes are not supported by the node agent")
	}
	return fmt.Errorf("probe has no handler")
}

// ResolvePort turns a numeric or named port into a number, named ports
// looked up in the container's ports.
func ResolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, p.StrVal)
}

func httpProbe(ctx context.Context, h *corev1.HTTPGetAction, port int, timeout time.Duration, dial ProbeDialer) error {
	scheme := "http"
	if h.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	// The probe always goes to the Pod's own loopback: a host other than
	// the Pod is never dialled, whatever httpGet.host says.
	url := fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, path)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx, port, timeout)
		},
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelets do not verify probe certificates either
		DisableKeepAlives: true,
		Proxy:             nil,
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	req.Header.Set("Accept", "*/*")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Set(hd.Name, hd.Value)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// ProbeState counts consecutive results against a probe's thresholds.
type ProbeState struct {
	Probe     *corev1.Probe
	successes int
	failures  int
	// Result is the current verdict: true after successThreshold
	// successes in a row, false after failureThreshold failures.
	Result bool
}

// Observe records one attempt and reports whether the verdict changed.
func (s *ProbeState) Observe(ok bool) (changed bool) {
	succ := int(s.Probe.SuccessThreshold)
	if succ <= 0 {
		succ = 1
	}
	fail := int(s.Probe.FailureThreshold)
	if fail <= 0 {
		fail = 3
	}
	before := s.Result
	if ok {
		s.failures = 0
		s.successes++
		if s.successes >= succ {
			s.Result = true
		}
	} else {
		s.successes = 0
		s.failures++
		if s.failures >= fail {
			s.Result = false
		}
	}
	return before != s.Result
}

// Failed reports whether failureThreshold failures came in a row.
func (s *ProbeState) Failed() bool {
	fail := int(s.Probe.FailureThreshold)
	if fail <= 0 {
		fail = 3
	}
	return s.failures >= fail
}

// Period is the probe's period (default 10s).
func period(p *corev1.Probe) time.Duration {
	if p.PeriodSeconds <= 0 {
		return 10 * time.Second
	}
	return time.Duration(p.PeriodSeconds) * time.Second
}
