package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
)

// Profiles of the main convergence (the phase the rate goals are about):
//
//   - -cpuprofile: this process, where the manager runs; its goroutines carry
//     the pprof label component=manager (go tool pprof -tagfocus
//     component=manager), the rest is the bench's own client.
//   - -memprofile: this process's heap when every VaultSecret is Ready.
//   - -apiserver-profile PREFIX: kube-apiserver's CPU profile over the same
//     phase (PREFIX-cpu-N.pprof, 5 s windows; go tool pprof merges them when
//     given all) and PREFIX-metrics.txt, the growth of its request, admission
//     and CEL metrics, summarised in the table too.
type profiler struct {
	cpuFile, memFile, apiPrefix string
	cfg                         *rest.Config
	// phase names what was profiled in the table (default: the main convergence).
	phase string

	cpu     *os.File
	stop    chan struct{}
	wg      sync.WaitGroup
	windows int
	before  map[string]*dto.MetricFamily
	errs    []error
}

func (p *profiler) enabled() bool { return p.cpuFile != "" || p.memFile != "" || p.apiPrefix != "" }

// start begins the CPU profiles and reads the apiserver's metrics.
func (p *profiler) start() error {
	if p.cpuFile != "" {
		f, err := os.Create(p.cpuFile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return err
		}
		p.cpu = f
	}
	if p.apiPrefix == "" {
		return nil
	}
	var err error
	if p.before, err = p.apiMetrics(); err != nil {
		return fmt.Errorf("reading the apiserver's metrics: %w", err)
	}
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			p.windows++
			if err := p.apiCPU(fmt.Sprintf("%s-cpu-%d.pprof", p.apiPrefix, p.windows), 5); err != nil {
				p.errs = append(p.errs, err)
				return
			}
		}
	}()
	return nil
}

// finish ends the profiles and returns the apiserver's metric growth.
func (p *profiler) finish(t *table) error {
	if p.cpu != nil {
		pprof.StopCPUProfile()
		if err := p.cpu.Close(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: CPU profile of this process (manager goroutines labelled component=manager) in %s\n", p.cpuFile)
	}
	if p.memFile != "" {
		runtime.GC()
		f, err := os.Create(p.memFile)
		if err != nil {
			return err
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			_ = f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: heap profile in %s\n", p.memFile)
	}
	if p.apiPrefix == "" {
		return nil
	}
	after, err := p.apiMetrics()
	if err != nil {
		return fmt.Errorf("reading the apiserver's metrics: %w", err)
	}
	close(p.stop)
	p.wg.Wait() // the last window runs to its end (at most 5 s)
	if len(p.errs) > 0 {
		return fmt.Errorf("apiserver CPU profile: %w", p.errs[0])
	}
	s := summarise(p.before, after)
	if err := os.WriteFile(p.apiPrefix+"-metrics.txt", []byte(s.text()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: kube-apiserver CPU profiles in %s-cpu-{1..%d}.pprof, metric growth in %s-metrics.txt\n",
		p.apiPrefix, p.windows, p.apiPrefix)
	phase := p.phase
	if phase == "" {
		phase = "convergence"
	}
	s.rows(t, phase)
	return nil
}

func (p *profiler) get(path string, w io.Writer) error {
	hc, err := rest.HTTPClientFor(p.cfg)
	if err != nil {
		return err
	}
	hc.Timeout = time.Minute
	resp, err := hc.Get(strings.TrimSuffix(p.cfg.Host, "/") + path)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

func (p *profiler) apiCPU(file string, seconds int) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := p.get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func (p *profiler) apiMetrics() (map[string]*dto.MetricFamily, error) {
	var b strings.Builder
	if err := p.get("/metrics", &b); err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(strings.NewReader(b.String()))
}

// apiSummary is the apiserver's metric growth over the phase: seconds spent
// and counts, by what the time was spent on.
type apiSummary struct {
	requests  []stat // by verb and resource
	admission []stat // by admission step type and operation
	plugins   []stat // by admission controller
	cel       []stat // CRD validation rules: compilation and evaluation
}

type stat struct {
	what    string
	seconds float64
	count   uint64
}

func summarise(before, after map[string]*dto.MetricFamily) apiSummary {
	return apiSummary{
		requests: growth(before, after, "apiserver_request_duration_seconds", func(l map[string]string) string {
			return l["verb"] + " " + l["resource"] + subresource(l["subresource"])
		}),
		admission: growth(before, after, "apiserver_admission_step_admission_duration_seconds", func(l map[string]string) string {
			return l["type"] + " " + l["operation"]
		}),
		plugins: growth(before, after, "apiserver_admission_controller_admission_duration_seconds", func(l map[string]string) string {
			return l["name"] + " (" + l["type"] + " " + l["operation"] + ")"
		}),
		cel: append(growth(before, after, "apiserver_cel_compilation_duration_seconds", func(map[string]string) string { return "compilation" }),
			growth(before, after, "apiserver_cel_evaluation_duration_seconds", func(map[string]string) string { return "evaluation" })...),
	}
}

func subresource(s string) string {
	if s == "" {
		return ""
	}
	return "/" + s
}

// growth sums a histogram's seconds and counts by key(labels), after minus
// before, largest first.
func growth(before, after map[string]*dto.MetricFamily, name string, key func(map[string]string) string) []stat {
	sum := func(fams map[string]*dto.MetricFamily) map[string]stat {
		out := map[string]stat{}
		f := fams[name]
		if f == nil {
			return out
		}
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			k := key(labels)
			s := out[k]
			s.what, s.seconds, s.count = k, s.seconds+h.GetSampleSum(), s.count+h.GetSampleCount()
			out[k] = s
		}
		return out
	}
	b, a := sum(before), sum(after)
	var out []stat
	for k, s := range a {
		s.seconds -= b[k].seconds
		s.count -= b[k].count
		if s.count > 0 {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seconds > out[j].seconds })
	return out
}

func (s apiSummary) text() string {
	var b strings.Builder
	for _, part := range []struct {
		title string
		stats []stat
	}{
		{"requests (apiserver_request_duration_seconds) by verb and resource", s.requests},
		{"admission steps (apiserver_admission_step_admission_duration_seconds)", s.admission},
		{"admission controllers (apiserver_admission_controller_admission_duration_seconds)", s.plugins},
		{"CRD validation rules (apiserver_cel_*_duration_seconds)", s.cel},
	} {
		fmt.Fprintf(&b, "%s\n", part.title)
		if len(part.stats) == 0 {
			fmt.Fprintf(&b, "  (none)\n")
		}
		for _, st := range part.stats {
			fmt.Fprintf(&b, "  %-60s %9.3f s %8d  %8.3f ms each\n", st.what, st.seconds, st.count, 1000*st.seconds/float64(st.count))
		}
	}
	return b.String()
}

// rows adds the largest entries to the table.
func (s apiSummary) rows(t *table, phase string) {
	top := func(stats []stat, n int) string {
		var parts []string
		for i, st := range stats {
			if i == n {
				break
			}
			parts = append(parts, fmt.Sprintf("%s %.2f s/%d (%.2f ms)", st.what, st.seconds, st.count, 1000*st.seconds/float64(st.count)))
		}
		if len(parts) == 0 {
			return "none"
		}
		return strings.Join(parts, "; ")
	}
	var total float64
	for _, st := range s.requests {
		total += st.seconds
	}
	t.info("apiserver request time during "+phase+" (by verb and resource)", fmt.Sprintf("%.1f s in all", total), top(s.requests, 5))
	t.info("apiserver admission time during "+phase, top(s.admission, 3), "controllers: "+top(s.plugins, 3))
	t.info("CRD validation rules (CEL) during "+phase, top(s.cel, 2), "compilation happens when a CRD is installed or changes; evaluation on every write")
}
