#!/usr/bin/env bash
# Copies the release version from the VERSION file to every place that names
# it, so that one edit of VERSION (and `make verify`) moves them all:
#
#   charts/vaultsync/Chart.yaml         version and appVersion (the image tag
#                                       defaults to appVersion)
#   config/manager/kustomization.yaml   the image's newTag (kubectl apply -k)
#   config/default/kustomization.yaml   the app.kubernetes.io/version label of
#                                       everything kustomize installs, the CRDs
#                                       included (the chart labels its CRDs with
#                                       appVersion through vaultsync.labels)
#   docs/install.md,                    the pinned versions: helm --version, image and
#   charts/vaultsync/README.md          chart references, the kustomize ref=v<version>
#
# Run by `make sync-version` and `make verify`; test/release checks the built
# binary, the rendered chart and the rendered kustomization against VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(tr -d ' \t\r\n' <VERSION)
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
	echo "sync-version: VERSION holds '$version', not MAJOR.MINOR.PATCH[-PRERELEASE]" >&2
	exit 1
fi

# replace <file> <extended regexp> <replacement>: every matching line, and at
# least one must match (a file that lost its line fails here, not silently).
replace() {
	local file="$1" re="$2" with="$3"
	if ! grep -Eq "$re" "$file"; then
		echo "sync-version: no line of $file matches /$re/; update this script" >&2
		exit 1
	fi
	sed -E -i "s|$re|$with|g" "$file"
}

replace charts/vaultsync/Chart.yaml '^version: .*$' "version: $version"
replace charts/vaultsync/Chart.yaml '^appVersion: .*$' "appVersion: \"$version\""
replace config/manager/kustomization.yaml '^(  newTag: ).*$' "\\1\"$version\""
replace config/default/kustomization.yaml '^(    app.kubernetes.io/version: ).*$' "\\1\"$version\""
# pin <file>: the versions a document pins (helm --version, ghcr.io image and
# chart references, kustomize ref=v<version>); at least one must be there.
semver='[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?'
pin() {
	local file="$1"
	if ! grep -Eq -e "--version $semver" -e "ghcr\.io/vaultsync/[a-z/]+:$semver" -e "ref=v$semver" "$file"; then
		echo "sync-version: $file pins no version; update this script" >&2
		exit 1
	fi
	sed -E -i -e "s|(--version )$semver|\\1$version|g" \
		-e "s|(ghcr\.io/vaultsync/[a-z/]+:)$semver|\\1$version|g" \
		-e "s|(ref=v)$semver|\\1$version|g" "$file"
}
pin docs/install.md
pin charts/vaultsync/README.md
