// Package image checks the container image that `make image` saves as an OCI
// archive (bin/image/vaultsync.tar), reading the archive with the standard
// library only: the tag, the entrypoint and user, a runtime file system
// without shell or package manager, the users, CA bundle and time zones the
// manager needs, and a static manager that prints the same version as the
// binary of `make build`.
//
// Run it with `make test-image`, which builds the image first. Without the
// archive the test skips, unless VAULTSYNC_REQUIRE_IMAGE=1 makes that a
// failure. IMAGE_ARCHIVE, IMAGE_TAG and VERSION name another archive, tag or
// expected version (the Makefile passes its own).
package image
