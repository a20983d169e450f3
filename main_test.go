package main

import (
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
