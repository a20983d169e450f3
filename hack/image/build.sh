#!/usr/bin/env bash
# Builds the vaultsync image from the repository's Dockerfile with buildah,
# without a container engine, and saves it as an OCI archive (make image).
#
# The Dockerfile's two bases, golang:1.26 and gcr.io/distroless/static:nonroot,
# cannot be pulled on machines without registry access, so this script first
# makes local stand-ins under the same names, from Debian packages
# (debootstrap) and the local Go toolchain, and then builds with --pull=never:
# a stand-in is only ever used from local storage, never pulled or pushed.
# Both carry the label io.vaultsync.standin, which the image inherits.
#
# Storage: buildah's vfs driver in its own root (IMAGE_STORAGE_ROOT, default
# /var/lib/vaultsync/containers), apart from any other container storage on the
# machine and outside the source tree (a vfs root holds whole copies of Debian
# and the Go sources, which go, grep and editors would otherwise walk). The
# RUN --mount=type=cache directories (Go modules and build cache) persist
# between builds in $IMAGE_STORAGE_ROOT.tmp. The debootstrap result is cached as
# one tarball under bin/image/cache (IMAGE_CACHE_DIR), so Debian is fetched once.
#
# Environment (the Makefile sets the first three):
#   VERSION         version linked into the manager (as make build does)
#   IMAGE_TAG       name of the image in storage and in the archive (vaultsync:dev)
#   IMAGE_ARCHIVE   path of the OCI archive (bin/image/vaultsync.tar)
#   IMAGE_STORAGE_ROOT, IMAGE_RUN_ROOT, IMAGE_CACHE_DIR, DEBIAN_MIRROR
#   IMAGE_ISOLATION  buildah --isolation of the RUN steps (default chroot)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VERSION="${VERSION:-dev}"
IMAGE_TAG="${IMAGE_TAG:-vaultsync:dev}"
IMAGE_ARCHIVE="${IMAGE_ARCHIVE:-$ROOT/bin/image/vaultsync.tar}"
IMAGE_CACHE_DIR="${IMAGE_CACHE_DIR:-$ROOT/bin/image/cache}"
IMAGE_STORAGE_ROOT="${IMAGE_STORAGE_ROOT:-/var/lib/vaultsync/containers}"
IMAGE_RUN_ROOT="${IMAGE_RUN_ROOT:-/run/vaultsync/containers}"
IMAGE_ISOLATION="${IMAGE_ISOLATION:-chroot}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SUITE=bookworm

# The bases named by the Dockerfile. Docker reads golang:1.26 as
# docker.io/library/golang:1.26; the stand-in is stored under that full name.
BUILDER_BASE=golang:1.26
BUILDER_BASE_FULL=docker.io/library/golang:1.26
RUNTIME_BASE=gcr.io/distroless/static:nonroot
STANDIN_LABEL=io.vaultsync.standin

log() { echo "==> $*" >&2; }
die() { echo "hack/image/build.sh: $*" >&2; exit 1; }

need() { # need COMMAND PACKAGE: install PACKAGE from Debian when COMMAND is missing
	command -v "$1" >/dev/null 2>&1 && return
	[ "$(id -u)" = 0 ] || die "$1 is missing; install the Debian package $2 (needs root)"
	log "installing $2"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >/dev/null ||
		{ apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >/dev/null; }
}

[ "$(id -u)" = 0 ] || die "run as root: buildah's vfs storage, debootstrap and chroot isolation need it"
need buildah buildah
need runc runc
need debootstrap debootstrap
need go golang # only when no Go is on PATH; the stand-in checks the version below

# The script makes stand-ins for exactly these two bases; a Dockerfile naming
# others needs this script changed with it.
grep -q "^FROM .*[[:space:]]$BUILDER_BASE AS builder\$" "$ROOT/Dockerfile" ||
	die "the Dockerfile's builder base is no longer $BUILDER_BASE; update hack/image/build.sh"
grep -q "^FROM $RUNTIME_BASE\$" "$ROOT/Dockerfile" ||
	die "the Dockerfile's runtime base is no longer $RUNTIME_BASE; update hack/image/build.sh"

GOROOT_HOST="$(go env GOROOT)"
GOVERSION_HOST="$(go env GOVERSION)"
case "$GOVERSION_HOST" in
go1.26 | go1.26.*) ;;
*) die "the builder stand-in $BUILDER_BASE needs a local Go 1.26 toolchain, found $GOVERSION_HOST" ;;
esac

bah() { buildah --storage-driver vfs --root "$IMAGE_STORAGE_ROOT" --runroot "$IMAGE_RUN_ROOT" "$@"; }

# buildah keeps the RUN --mount=type=cache directories under $TMPDIR
# (buildah-cache-0); a directory next to the storage root keeps them, and the
# scratch space of this script, out of /var/tmp cleaners' and the source tree's way.
export TMPDIR="$IMAGE_STORAGE_ROOT.tmp"
mkdir -p "$IMAGE_CACHE_DIR" "$IMAGE_STORAGE_ROOT" "$TMPDIR" "$(dirname "$IMAGE_ARCHIVE")"

# The storage root belongs to this script alone, and one run at a time holds
# it (make image in two worktrees waits here), so every working container in
# it is one of ours: those a failed build leaves behind are removed on exit.
exec 9>"$IMAGE_STORAGE_ROOT.lock"
flock 9
work="$(mktemp -d "$TMPDIR/work.XXXXXX")"
cleanup() {
	bah umount --all >/dev/null 2>&1 || true
	bah rm --all >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
bah rm --all >/dev/null

# label_of IMAGE: the stand-in label's value of IMAGE in local storage, empty when absent.
label_of() {
	bah inspect --type image --format "{{index .OCIv1.Config.Labels \"$STANDIN_LABEL\"}}" "$1" 2>/dev/null || true
}

# A minimal Debian root (minbase, plus CA certificates and time zones), made
# once and kept as a tarball.
DEBIAN_TAR="$IMAGE_CACHE_DIR/debian-$DEBIAN_SUITE-minbase.tar"
if [ ! -s "$DEBIAN_TAR" ]; then
	log "debootstrap $DEBIAN_SUITE (minbase) from $DEBIAN_MIRROR, once; cached in $DEBIAN_TAR"
	rootfs="$work/rootfs"
	debootstrap --variant=minbase --include=ca-certificates,tzdata \
		"$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/*
	tar -C "$rootfs" --numeric-owner -cf "$DEBIAN_TAR.tmp" .
	mv "$DEBIAN_TAR.tmp" "$DEBIAN_TAR"
	rm -rf "$rootfs"
fi
standin_id="local stand-in, never push: debian-$DEBIAN_SUITE-minbase+$GOVERSION_HOST"

# The builder must reach the same module proxy as this machine's go, which may
# sit behind a TLS-inspecting proxy whose CA this machine trusts locally
# (Debian keeps such CAs in /usr/local/share/ca-certificates). The builder
# stand-in trusts them too; the runtime stand-in, which ends up in the image,
# gets Debian's bundle only.
local_cas=()
for f in /usr/local/share/ca-certificates/*.crt; do [ -f "$f" ] && local_cas+=("$f"); done
builder_id="$standin_id+cas:$(cat /dev/null "${local_cas[@]}" | sha256sum | cut -c1-12)"

# Builder stand-in: the Debian root with the local Go toolchain at /usr/local/go,
# laid out like the official golang image (GOPATH=/go, GOTOOLCHAIN=local).
if [ "$(label_of "$BUILDER_BASE_FULL")" != "$builder_id" ]; then
	log "making the builder stand-in $BUILDER_BASE (Debian $DEBIAN_SUITE + $GOVERSION_HOST from $GOROOT_HOST)"
	c="$(bah from --pull=never scratch)"
	mnt="$(bah mount "$c")"
	tar -C "$mnt" --numeric-owner -xf "$DEBIAN_TAR"
	mkdir -p "$mnt/usr/local"
	cp -a "$GOROOT_HOST" "$mnt/usr/local/go"
	if [ "${#local_cas[@]}" -gt 0 ]; then
		mkdir -p "$mnt/usr/local/share/ca-certificates"
		cp "${local_cas[@]}" "$mnt/usr/local/share/ca-certificates/"
		cat "${local_cas[@]}" >>"$mnt/etc/ssl/certs/ca-certificates.crt"
	fi
	mkdir -p "$mnt/go/bin" "$mnt/go/src"
	chmod 1777 "$mnt/go"
	bah umount "$c" >/dev/null
	bah config \
		--env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env GOPATH=/go --env GOTOOLCHAIN=local --env "GOLANG_VERSION=${GOVERSION_HOST#go}" \
		--workingdir /go --cmd bash \
		--label "$STANDIN_LABEL=$builder_id" \
		"$c"
	bah commit --quiet --rm "$c" "$BUILDER_BASE_FULL" >/dev/null
fi

# Runtime stand-in: what distroless/static:nonroot holds and the manager uses:
# users root, nobody and nonroot (65532), a CA bundle, time zones, /tmp and
# the nonroot home. No shell, no package manager, no libc.
if [ "$(label_of "$RUNTIME_BASE")" != "$standin_id" ]; then
	log "making the runtime stand-in $RUNTIME_BASE (from scratch; CA bundle and zoneinfo from Debian)"
	c="$(bah from --pull=never scratch)"
	mnt="$(bah mount "$c")"
	tar -C "$mnt" --numeric-owner -xf "$DEBIAN_TAR" ./etc/ssl/certs/ca-certificates.crt ./usr/share/zoneinfo
	mkdir -p "$mnt/tmp" "$mnt/root" "$mnt/home/nonroot"
	chmod 1777 "$mnt/tmp"
	chmod 0700 "$mnt/root" "$mnt/home/nonroot"
	chown 65532:65532 "$mnt/home/nonroot"
	cat >"$mnt/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/sbin/nologin
		nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
		nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
	EOF
	cat >"$mnt/etc/group" <<-'EOF'
		root:x:0:
		nobody:x:65534:
		nonroot:x:65532:
	EOF
	chmod 0644 "$mnt/etc/passwd" "$mnt/etc/group"
	bah umount "$c" >/dev/null
	bah config \
		--env PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin \
		--env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
		--user 65532 --workingdir /home/nonroot \
		--label "$STANDIN_LABEL=$standin_id" \
		"$c"
	bah commit --quiet --rm "$c" "$RUNTIME_BASE" >/dev/null
fi

# The image itself, from the Dockerfile as written. The module proxy settings
# of this machine go in as build arguments; the RUN cache mounts keep Go's
# module and build caches between builds.
log "building $IMAGE_TAG (version $VERSION) from the Dockerfile"
bah build \
	--pull=never \
	--isolation "$IMAGE_ISOLATION" \
	--network host \
	--layers=false \
	--build-arg "TARGETOS=linux" \
	--build-arg "TARGETARCH=$(go env GOARCH)" \
	--build-arg "VERSION=$VERSION" \
	--build-arg "GOPROXY=$(go env GOPROXY)" \
	--build-arg "GOSUMDB=$(go env GOSUMDB)" \
	--build-arg "GONOSUMDB=$(go env GONOSUMDB)" \
	--build-arg "GOFLAGS=$(go env GOFLAGS)" \
	--label "org.opencontainers.image.version=$VERSION" \
	--file "$ROOT/Dockerfile" \
	--tag "$IMAGE_TAG" \
	"$ROOT"

log "saving $IMAGE_TAG to $IMAGE_ARCHIVE"
rm -f "$IMAGE_ARCHIVE.tmp"
bah push --quiet "$IMAGE_TAG" "oci-archive:$IMAGE_ARCHIVE.tmp:$IMAGE_TAG"
mv "$IMAGE_ARCHIVE.tmp" "$IMAGE_ARCHIVE"
# The previous build of the tag is now unnamed; vfs keeps whole copies, so drop it.
bah rmi --prune >/dev/null 2>&1 || true
log "done: $IMAGE_ARCHIVE ($(du -h "$IMAGE_ARCHIVE" | cut -f1))"
