#!/usr/bin/env bash
# Prints the release notes of one version: its section of CHANGELOG.md (Keep a
# Changelog: "## [VERSION] - DATE" up to the next "## [" heading), without the
# heading. Fails when the section is missing or empty, so a release cannot be
# published without notes.
#
#   hack/release-notes.sh [VERSION]   (default: the VERSION file)
set -euo pipefail
cd "$(dirname "$0")/.."

version="${1:-$(tr -d ' \t\r\n' <VERSION)}"
notes=$(awk -v v="$version" '
	index($0, "## [" v "]") == 1 { on = 1; next }
	on && /^## \[/ { exit }
	on && /^\[[^]]*\]: / { next }
	on { print }
' CHANGELOG.md | sed -e '/./,$!d')
if [[ -z "${notes//[[:space:]]/}" ]]; then
	echo "release-notes: CHANGELOG.md has no notes under '## [$version]'" >&2
	exit 1
fi
printf '%s\n' "$notes"
