# syntax=docker/dockerfile:1

# castle-destination container image: a static Go binary on distroless
# static (CA certificates, tzdata, a nonroot user; no shell, no libc).
#
# Build with the version stamped from git:
#
#   docker build \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse HEAD)" \
#     -t castle-destination:dev .
#
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ...
# (the builder cross-compiles; it never runs under emulation).

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
# CGO off: a static binary that runs on distroless/static. -trimpath: no
# local paths in the binary. -s -w: no symbol table or DWARF (smaller).
# -buildvcs=false: .git is not in the build context; the commit comes from
# the COMMIT build argument.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w \
        -X github.com/castle-destination/castle-destination/version.Version=${VERSION} \
        -X github.com/castle-destination/castle-destination/version.Commit=${COMMIT}" \
      -o /out/castle-destination ./cmd/castle-destination

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=
LABEL org.opencontainers.image.title="castle-destination" \
      org.opencontainers.image.description="Segment-compatible destination worker for Castle: Segment messages from Kafka to Castle (/v1/log; /v1/risk and /v1/filter when scoring)" \
      org.opencontainers.image.source="https://github.com/castle-destination/castle-destination" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/castle-destination /castle-destination
# nonroot is uid/gid 65532 in distroless; numeric so that Kubernetes
# runAsNonRoot can verify it without resolving a name.
USER 65532:65532
# METRICS_ADDR default: /metrics, /healthz, /readyz.
EXPOSE 9090
ENTRYPOINT ["/castle-destination"]
CMD ["run"]
