package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vaultsync/vaultsync/test/controlplane"
)

// Binaries are the built programs an end-to-end run uses.
type Binaries struct {
	// Manager is the operator (make build: bin/manager).
	Manager string
	// Emulator is the Key Vault emulator (make emulator: bin/kv-emulator).
	Emulator string
}

// BinariesFromEnv returns the binaries named by E2E_MANAGER_BIN and
// E2E_EMULATOR_BIN (set by make test-e2e to the freshly built bin/ files).
// ok is false when either is unset.
func BinariesFromEnv() (b Binaries, ok bool, err error) {
	b = Binaries{Manager: os.Getenv("E2E_MANAGER_BIN"), Emulator: os.Getenv("E2E_EMULATOR_BIN")}
	if b.Manager == "" || b.Emulator == "" {
		return Binaries{}, false, nil
	}
	for _, f := range []string{b.Manager, b.Emulator} {
		if _, err := os.Stat(f); err != nil {
			return Binaries{}, false, fmt.Errorf("E2E_MANAGER_BIN/E2E_EMULATOR_BIN: %w", err)
		}
	}
	return b, true, nil
}

// Build compiles the manager and the emulator into dir with the same
// package paths and flags as make build and make emulator (the build cache
// makes this cheap when they are up to date).
func Build(ctx context.Context, root, dir string) (Binaries, error) {
	b := Binaries{Manager: filepath.Join(dir, "manager"), Emulator: filepath.Join(dir, "kv-emulator")}
	if err := GoBuild(ctx, root, b.Manager, "."); err != nil {
		return Binaries{}, err
	}
	if err := GoBuild(ctx, root, b.Emulator, "./test/emulator/cmd/kv-emulator"); err != nil {
		return Binaries{}, err
	}
	return b, nil
}

// GoBuild runs `go build -trimpath -o out pkg` in root with CGO disabled.
func GoBuild(ctx context.Context, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// RepoRoot is controlplane.RepoRoot as an absolute path (in a binary built
// with -trimpath it is found from the working directory, and may be ".").
func RepoRoot() (string, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Abs(root)
}
