# Dockerfile: switchboard as one static binary in a distroless image.
#
#   docker build -t switchboard .
#   docker run --rm -p 127.0.0.1:8000:8000 switchboard   # embedded SQLite, memory broker
#
# docker-compose.yml builds this for the local stack (PostgreSQL, Redis, two
# replicas). cmd/switchboard/compose_test.go runs the build stage's `go build`
# line (less -trimpath) on the files .dockerignore lets through, checks the
# result is static, and that ENTRYPOINT names the path it is copied to.
# It uses no BuildKit-only syntax, so the classic builder works too.

# Build stage: Debian bookworm with the Go toolchain.
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when go.mod or
# go.sum change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: pure-Go net, os/user and SQLite (glebarez), so the binary
# needs no libc and runs on distroless/static. -trimpath and -s -w drop
# local paths and debug symbols.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/switchboard ./cmd/switchboard
# An empty directory for the secrets volume: a new named volume takes the
# owner of the image's directory, so the nonroot user can write the
# generated JWT secret there.
RUN mkdir -p /out/var-lib-switchboard

# Final stage: CA certificates, tzdata and /etc/passwd, no shell, no
# package manager; the :nonroot tag runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchboard /usr/local/bin/switchboard
COPY --from=build --chown=65532:65532 /out/var-lib-switchboard /var/lib/switchboard
# Numeric, so that Kubernetes' runAsNonRoot can verify it: 65532 is nonroot.
USER 65532:65532
# Without DATABASE_URL, switchboard.db (and its .jwt-secret) go here, in the
# nonroot user's home.
WORKDIR /home/nonroot
# In a container the server must listen on every interface, not loopback.
ENV ADDR=0.0.0.0:8000
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]
