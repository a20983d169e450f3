package node

import (
	"errors"
	"os"
	"os/exec"
)

// TestEnv is the variable that turns on the suites that run the agent
// (make test-node sets it). They need root, runc and iproute2 and change
// the host (network namespaces, mounts, cgroups), so plain `go test ./...`
// skips them.
const TestEnv = "VAULTSYNC_NODE_TEST"

// Unavailable says why the agent cannot run here, or "" when it can.
func Unavailable() string {
	if os.Getenv(TestEnv) != "1" {
		return TestEnv + "=1 is not set (make test-node sets it; the suite needs root, runc and iproute2)"
	}
	if os.Geteuid() != 0 {
		return "the node agent needs root (network namespaces, mounts, runc)"
	}
	for _, b := range []string{"runc", "ip"} {
		if _, err := exec.LookPath(b); err != nil {
			return b + " is not installed: apt-get install -y runc iproute2"
		}
	}
	if _, err := os.Stat("/proc/self/ns/net"); errors.Is(err, os.ErrNotExist) {
		return "no network namespaces on this kernel"
	}
	return ""
}
