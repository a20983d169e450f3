// Package version holds the build version, set by the linker
// (see hack/build-flags.sh).
package version

// Version is the vaultsync release this binary was built as (manager
// --version). The VERSION file at the repository root is its one source: a
// build of the commit tagged v<VERSION> carries it unchanged, any other build
// appends the commit as semver build metadata, 0.1.0+g0eb0c95
// (hack/version.sh). A binary built without the linker flag says "dev".
var Version = "dev"
