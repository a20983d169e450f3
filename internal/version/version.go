// Package version holds the build version, set by the linker
// (see hack/build-flags.sh).
package version

// Version is the vaultsync release, or "dev" for local builds.
var Version = "dev"
