# syntax=docker/dockerfile:1
# rollbook images, built by docker-compose.yml (or `docker build --target worker .`):
#   worker   the rollbook worker (workers/rollbook-worker) ENTRYPOINT rollbook-worker
#   cli      the rollbook CLI (starter/rollbook)          ENTRYPOINT rollbook
#   demoapi  the demo payments API (examples/demoapi)     ENTRYPOINT demoapi
# Everything is pure Go (the SQLite driver too), so the binaries are static and the
# runtime image is a small Alpine with CA certificates and wget (for health checks).
# `go build -o DIR/` names each binary after its package's folder, as `go install` does.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/ ./workers/rollbook-worker ./starter/rollbook ./examples/demoapi

FROM alpine:3.21 AS runtime
RUN apk add --no-cache ca-certificates tzdata && \
    adduser -D -H -u 10001 rollbook
USER 10001

FROM runtime AS worker
COPY --from=build /out/rollbook-worker /usr/local/bin/rollbook-worker
EXPOSE 9464
ENTRYPOINT ["rollbook-worker"]
CMD ["-config", "/etc/rollbook/worker.yaml"]

FROM runtime AS cli
COPY --from=build /out/rollbook /usr/local/bin/rollbook
WORKDIR /work
ENTRYPOINT ["rollbook"]
CMD ["--help"]

FROM runtime AS demoapi
COPY --from=build /out/demoapi /usr/local/bin/demoapi
EXPOSE 8080
ENTRYPOINT ["demoapi"]
CMD ["-listen", "0.0.0.0:8080"]
