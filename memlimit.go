package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryFiles hold the container's memory limit: cgroup v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// memoryLimit returns the soft memory limit for the Go runtime: ratio of the
// container's memory limit read from the first of files that names one, 0
// when GOMEMLIMIT is set (the runtime already obeys it), ratio is not in
// (0, 1], or no limit is found ("max", or v1's near-2^63 "unlimited"). With
// the limit, the garbage collector works harder as the heap nears it instead
// of letting the container be OOM-killed.
func memoryLimit(ratio float64, getenv func(string) string, files []string) (int64, string) {
	if getenv("GOMEMLIMIT") != "" || ratio <= 0 || ratio > 1 {
		return 0, ""
	}
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Clean(f))
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(raw))
		if v == "max" {
			return 0, ""
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return 0, ""
		}
		return int64(float64(n) * ratio), fmt.Sprintf("%.0f%% of %s (%d bytes)", ratio*100, f, n)
	}
	return 0, ""
}

// setMemoryLimit applies memoryLimit and says what it did ("" when nothing).
func setMemoryLimit(ratio float64) string {
	limit, from := memoryLimit(ratio, os.Getenv, cgroupMemoryFiles)
	if limit <= 0 {
		return ""
	}
	debug.SetMemoryLimit(limit)
	return from
}

// gcPercent returns the garbage collector's target percentage to set: percent,
// or 0 (leave the runtime's) when GOGC is set (the runtime already obeys it)
// or percent is not positive. The manager's live heap is mostly its caches,
// which grow with the objects it serves; collecting at half the runtime's
// default growth keeps the peak closer to them for a little more CPU (see
// docs/benchmarks.md).
func gcPercent(percent int, getenv func(string) string) int {
	if getenv("GOGC") != "" || percent <= 0 {
		return 0
	}
	return percent
}

// setGCPercent applies gcPercent and says what it did ("" when nothing).
func setGCPercent(percent int) string {
	p := gcPercent(percent, os.Getenv)
	if p == 0 {
		return ""
	}
	debug.SetGCPercent(p)
	return strconv.Itoa(p)
}
