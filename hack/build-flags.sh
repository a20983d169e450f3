#!/usr/bin/env bash
# Prints the linker flags of the manager binary. The Makefile (`make build`)
# and the Dockerfile both call this script, so the binary tested here is
# linked exactly as the one in the image. Both build with
# CGO_ENABLED=0 go build -trimpath -ldflags "$(hack/build-flags.sh)".
set -euo pipefail
VERSION="${VERSION:-dev}"
echo "-s -w -X github.com/vaultsync/vaultsync/internal/version.Version=${VERSION}"
