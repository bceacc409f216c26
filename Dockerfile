# CoreDNS with the bluegreen plugin: a static binary on distroless, non-root.
#
#   docker build -t bluegreen \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg GIT_COMMIT=$(git rev-parse --short HEAD) .
#
# VERSION and GIT_COMMIT are what the Makefile's ldflags set (the build
# context has no .git), so `coredns -version` matches `make build`'s binary;
# test/image runs this file's build commands without Docker and checks that.
ARG GO_IMAGE=golang:1.26-bookworm
ARG DEBIAN_IMAGE=debian:stable-slim
ARG BASE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
ARG VERSION=dev
ARG GIT_COMMIT=
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -ldflags "-X github.com/bluegreen-dns/bluegreen/internal/build.Version=${VERSION} -X github.com/coredns/coredns/coremain.GitCommit=${GIT_COMMIT}" -o bin/coredns ./cmd/coredns

# Let the non-root user bind port 53, as CoreDNS's own image does.
FROM ${DEBIAN_IMAGE} AS caps
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get -qq update && apt-get -qq --no-install-recommends install libcap2-bin
COPY --from=build /src/bin/coredns /coredns
RUN setcap cap_net_bind_service=+ep /coredns

FROM ${BASE}
COPY --from=caps /coredns /coredns
# Numeric (distroless "nonroot"), so Kubernetes can verify runAsNonRoot.
USER 65532:65532
WORKDIR /
# DNS, and the admin API when the Corefile says `admin 0.0.0.0:8053` (which
# needs `token`).
EXPOSE 53/udp 53/tcp 8053
ENTRYPOINT ["/coredns"]
CMD ["-conf", "/etc/coredns/Corefile"]
