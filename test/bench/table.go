package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// row is one line of the results table.
type row struct {
	Figure   string
	Measured string
	Target   string
	// Verdict is PASS, GAP or INFO (no target).
	Verdict string
	Note    string
}

type table struct {
	rows []row
}

func (t *table) add(r row) {
	t.rows = append(t.rows, r)
	fmt.Fprintf(os.Stderr, "bench: %-58s %-28s %s\n", r.Figure, r.Measured, r.Verdict)
}

// check adds a row whose verdict is PASS when ok, GAP otherwise.
func (t *table) check(figure, measured, target string, ok bool, note string) {
	v := "GAP"
	if ok {
		v = "PASS"
	}
	t.add(row{Figure: figure, Measured: measured, Target: target, Verdict: v, Note: note})
}

func (t *table) info(figure, measured, note string) {
	t.add(row{Figure: figure, Measured: measured, Target: "-", Verdict: "INFO", Note: note})
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// write prints the table as Markdown with the machine it ran on.
func (t *table) write(w io.Writer, command string) {
	fmt.Fprintf(w, "Machine: %s\n\nCommand: `%s`\n\n", machine(), command)
	fmt.Fprintln(w, "| figure | measured | target | result | note |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", cell(r.Figure), cell(r.Measured), cell(r.Target), r.Verdict, cell(r.Note))
	}
}

// machine describes the host: CPUs, memory, OS, Go version.
func machine() string {
	mem := "unknown memory"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				var kb int64
				_, _ = fmt.Sscan(f[1], &kb)
				mem = fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = " (" + strings.TrimSpace(v) + ")"
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs%s, %s, %s/%s, %s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
