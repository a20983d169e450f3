#!/usr/bin/env bash
# Builds, locally and without pushing anything, what a tag v$VERSION publishes
# (.github/workflows/release.yml), and prints the sha256 of each file:
#
#   manager-linux-amd64, manager-linux-arm64   the binary of each image platform,
#                                              linked as the Dockerfile links it
#   vaultsync-$VERSION.tgz                     the chart (helm lint --strict, then
#                                              helm package); its appVersion and
#                                              version must be $VERSION
#   vaultsync-$VERSION.sbom.cdx.json           CycloneDX SBOM of what the binary links
#   vaultsync-$VERSION-image.tar               the image archive, when IMAGE_ARCHIVE
#                                              names one (make image builds it)
#   SHA256SUMS
#
# Called by `make release-dry-run`, which sets VERSION, OUT, HELM and
# IMAGE_ARCHIVE.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${VERSION:?}" "${OUT:?}" "${HELM:?}"
IMAGE_ARCHIVE="${IMAGE_ARCHIVE:-}"

start=$SECONDS
step() { echo "==> [$((SECONDS - start))s] $*"; }

rm -rf "$OUT"
mkdir -p "$OUT"

# The binaries: CGO off, -trimpath and hack/build-flags.sh, as in the Dockerfile,
# stamped with the release version itself (a tag build's hack/version.sh says the same).
ldflags=$(VERSION="$VERSION" hack/build-flags.sh)
for arch in amd64 arm64; do
	step "go build linux/$arch"
	CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -ldflags "$ldflags" -o "$OUT/manager-linux-$arch" .
done
host_bin="$OUT/manager-linux-$(go env GOARCH)"
if [[ "$(go env GOOS)" == linux && -x "$host_bin" ]]; then
	got=$("$host_bin" --version | awk '{print $2}')
	if [[ "$got" != "$VERSION" ]]; then
		echo "release-dry-run: $host_bin --version says $got, VERSION says $VERSION" >&2
		exit 1
	fi
fi

step "helm lint --strict and helm package charts/vaultsync"
chart_version=$(sed -n 's/^version: *//p' charts/vaultsync/Chart.yaml)
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/vaultsync/Chart.yaml)
if [[ "$chart_version" != "$VERSION" || "$app_version" != "$VERSION" ]]; then
	echo "release-dry-run: Chart.yaml has version $chart_version and appVersion $app_version, VERSION is $VERSION: run 'make sync-version'" >&2
	exit 1
fi
"$HELM" lint --strict charts/vaultsync >/dev/null
"$HELM" package charts/vaultsync --version "$VERSION" --app-version "$VERSION" --destination "$OUT" >/dev/null

step "SBOM of manager-linux-amd64 (cyclonedx-gomod bin, CycloneDX JSON: every module and the Go standard library linked in)"
make --no-print-directory -s sbom SBOM_BIN="$OUT/manager-linux-amd64" SBOM_OUT="$OUT/vaultsync-$VERSION.sbom.cdx.json"

if [[ -n "$IMAGE_ARCHIVE" ]]; then
	if [[ ! -f "$IMAGE_ARCHIVE" ]]; then
		echo "release-dry-run: the image build left no $IMAGE_ARCHIVE" >&2
		exit 1
	fi
	step "image archive from $IMAGE_ARCHIVE"
	cp "$IMAGE_ARCHIVE" "$OUT/vaultsync-$VERSION-image.tar"
else
	step "image archive: skipped (this Makefile has no 'make image' target yet)"
fi

(cd "$OUT" && sha256sum -- * | grep -v ' SHA256SUMS$' >SHA256SUMS)
echo
echo "release $VERSION (dry run, nothing pushed) in ${OUT}, $((SECONDS - start))s:"
echo
printf '  %-40s %10s  %s\n' file bytes sha256
while read -r sum name; do
	printf '  %-40s %10s  %s\n' "$name" "$(stat -c %s "$OUT/$name")" "$sum"
done <"$OUT/SHA256SUMS"
