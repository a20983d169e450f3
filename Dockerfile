# syntax=docker/dockerfile:1
# Multi-stage, multi-arch build of the vaultsync manager.
# The linker flags come from hack/build-flags.sh, the same script `make build`
# uses, so the binary tested locally is the one this image holds.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
# Go module proxy settings, for builds behind a proxy or mirror (make image
# passes the host's `go env` values). Unset, Go's defaults apply.
ARG GOPROXY
ARG GOSUMDB
ARG GONOSUMDB
ARG GOFLAGS
WORKDIR /workspace
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# Every Go file of the main package (main.go, memlimit.go, ...); the tests are not built.
COPY *.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/
COPY hack/build-flags.sh hack/build-flags.sh
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "$(VERSION=${VERSION} hack/build-flags.sh)" -o manager .

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
# The licence and the notices of what the binary links (hack/gen-notice.sh).
COPY LICENSE NOTICE /licenses/
USER 65532:65532
ENTRYPOINT ["/manager"]
