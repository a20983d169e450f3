// Package version holds the build version, set by the linker
// (see hack/build-flags.sh).
package version

import (
	"fmt"
	"runtime"
)

// Version is the vaultsync release this binary was built as. The VERSION
// file at the repository root is its one source: a build of the commit
// tagged v<VERSION> carries it unchanged, any other build appends the commit
// as semver build metadata (0.1.0+g0eb0c95, see hack/version.sh). A binary
// built without the linker flag says "dev".
var Version = "dev"

// String is what `manager --version` prints: the name, the version, the Go
// release and the platform, separated by spaces.
func String() string {
	return fmt.Sprintf("vaultsync %s %s %s/%s", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
