# syntax=docker/dockerfile:1
# The Key Vault + Entra ID emulator (test/emulator) as an image, for the
# end-to-end suite on a kind cluster (make test-e2e-kind). It runs as a
# native sidecar of the manager pod and listens on the pod's loopback only;
# the configuration is the demo's (hack/demo/emulator.yaml). Test use only.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY test/emulator/ test/emulator/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -o kv-emulator ./test/emulator/cmd/kv-emulator

FROM gcr.io/distroless/static:nonroot
COPY --from=builder /workspace/kv-emulator /kv-emulator
COPY hack/demo/emulator.yaml /etc/kv-emulator/config.yaml
USER 65532:65532
# The state dir is an emptyDir shared with the manager, which reads ca.pem from it (SSL_CERT_FILE).
ENTRYPOINT ["/kv-emulator", "--config", "/etc/kv-emulator/config.yaml", "--state-dir", "/var/run/kv-emulator"]
