#!/usr/bin/env bash
# Prints the version a build of this tree carries (the binary's --version).
#
# The VERSION file is the one source of the release version: the chart's
# version and appVersion, the image tag, the kustomize image tag and the CRDs'
# app.kubernetes.io/version label are copied from it (hack/sync-version.sh,
# run by `make verify`), and test/release fails when any of them disagrees.
#
# A build of the commit tagged v<VERSION>, with no local changes, prints
# VERSION unchanged. Any other build appends the commit as semver build
# metadata, so such a binary is never mistaken for the release:
#   0.1.0             the tagged release
#   0.1.0+g0eb0c95    a later (or earlier) commit
#   0.1.0+g0eb0c95.dirty  the same with uncommitted changes
# The Makefile's VERSION is this script's output (make build VERSION=... overrides it).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(tr -d ' \t\r\n' <VERSION)
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
	echo "version.sh: '$version' is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE])" >&2
	exit 1
fi
if ! commit=$(git rev-parse --short=7 HEAD 2>/dev/null); then
	echo "$version" # not a git checkout (a source tarball): the file is all there is
	exit 0
fi
dirty=""
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
	dirty=".dirty"
fi
if [[ -z "$dirty" ]] && git describe --tags --exact-match --match "v$version" HEAD >/dev/null 2>&1; then
	echo "$version"
else
	echo "$version+g$commit$dirty"
fi
