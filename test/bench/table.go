package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vaultsync/vaultsync/test/testenv"
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
	// started and loadStart are when the run began and the load average then (see testenv.LoadAvg).
	started   time.Time
	loadStart string
}

func newTable() *table { return &table{started: time.Now(), loadStart: testenv.LoadAvg()} }

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

// write prints the table as Markdown with the machine it ran on, the date, how long it took and
// the load average before and after (the CPU others used meanwhile shows there).
func (t *table) write(w io.Writer, command string) {
	fmt.Fprintf(w, "Machine: %s\n\nCommand: `%s`\n\n", testenv.Machine(), command)
	fmt.Fprintf(w, "Run: %s, %.0f s; load average (1, 5, 15 min) %s at the start, %s at the end\n\n",
		t.started.UTC().Format("2006-01-02 15:04 MST"), time.Since(t.started).Seconds(), t.loadStart, testenv.LoadAvg())
	fmt.Fprintln(w, "| figure | measured | target | result | note |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", cell(r.Figure), cell(r.Measured), cell(r.Target), r.Verdict, cell(r.Note))
	}
}
