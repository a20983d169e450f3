package main

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestCapVerbosityNeverReachesRequestBodies(t *testing.T) {
	all := zapcore.Level(-10) // --zap-log-level=10
	capped := capVerbosity(all, false, maxVerbosity)
	if !capped.Enabled(zapcore.Level(-maxVerbosity)) || !capped.Enabled(zapcore.InfoLevel) {
		t.Fatalf("levels up to V(%d) must stay enabled", maxVerbosity)
	}
	if capped.Enabled(zapcore.Level(-8)) {
		t.Fatal("V(8), where client-go logs request bodies, must be off")
	}
	if capVerbosity(zapcore.InfoLevel, false, maxVerbosity).Enabled(zapcore.DebugLevel) {
		t.Fatal("a less verbose setting is kept")
	}
	if !capVerbosity(nil, true, maxVerbosity).Enabled(zapcore.DebugLevel) {
		t.Fatal("development mode defaults to debug")
	}
}

func TestMemoryLimitFollowsTheContainerLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v2 := write("memory.max", "268435456\n")
	unlimited := write("memory.max.unlimited", "max\n")
	v1Unlimited := write("memory.limit_in_bytes", "9223372036854771712\n")
	missing := filepath.Join(dir, "absent")
	noEnv := func(string) string { return "" }

	if got, _ := memoryLimit(0.9, noEnv, []string{missing, v2}); got != 241591910 {
		t.Fatalf("90%% of 256 MiB: got %d", got)
	}
	for name, tc := range map[string]struct {
		ratio  float64
		getenv func(string) string
		files  []string
	}{
		"GOMEMLIMIT set":       {0.9, func(k string) string { return map[string]string{"GOMEMLIMIT": "100MiB"}[k] }, []string{v2}},
		"ratio 0: off":         {0, noEnv, []string{v2}},
		"ratio above 1":        {1.5, noEnv, []string{v2}},
		"no limit (v2 max)":    {0.9, noEnv, []string{unlimited, v2}},
		"no limit (v1 2^63)":   {0.9, noEnv, []string{v1Unlimited}},
		"no cgroup file found": {0.9, noEnv, []string{missing}},
	} {
		if got, _ := memoryLimit(tc.ratio, tc.getenv, tc.files); got != 0 {
			t.Errorf("%s: got limit %d, want none", name, got)
		}
	}
}

func TestGCPercentLeavesGOGCToTheUser(t *testing.T) {
	noEnv := func(string) string { return "" }
	if got := gcPercent(50, noEnv); got != 50 {
		t.Fatalf("gc-percent 50 without GOGC: got %d", got)
	}
	if got := gcPercent(50, func(k string) string { return map[string]string{"GOGC": "200"}[k] }); got != 0 {
		t.Errorf("GOGC set: got %d, want the runtime's (0)", got)
	}
	if got := gcPercent(0, noEnv); got != 0 {
		t.Errorf("gc-percent 0: got %d, want the runtime's (0)", got)
	}
}
