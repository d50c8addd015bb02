# syntax=docker/dockerfile:1.7
#
# One image, four programs: /usr/local/bin/{worker,enqueue,asynqmon,sandbox}, plus
# /usr/local/bin/httpcheck for container healthchecks (the final image has no shell or curl).
# The default command is the worker; docker-compose.yml and deploy/k8s pick the program.
#
#   docker build -t linkharvest:dev .
#   docker run --rm linkharvest:dev /usr/local/bin/enqueue --help

ARG GO_VERSION=1.26

# Cross-compiles on the build host's platform for the target platform (docker buildx --platform ...).
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/ \
        ./cmd/worker ./cmd/enqueue ./cmd/asynqmon ./cmd/sandbox

# httpcheck: GET each URL, exit 0 only on 2xx. Standard library only, so it is built
# outside the module. deploy/deploy_test.go extracts and compiles this program.
COPY <<"GO" /httpcheck/main.go
// Command httpcheck GETs each URL and exits 0 only if every answer is 2xx.
// It serves HEALTHCHECK / compose healthchecks in an image without a shell or curl.
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: httpcheck URL...")
		os.Exit(2)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, u := range os.Args[1:] {
		resp, err := client.Get(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			fmt.Fprintln(os.Stderr, u, resp.Status)
			os.Exit(1)
		}
	}
}
GO
RUN cd /httpcheck && go mod init httpcheck && \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/httpcheck .

# distroless static: CA certificates (HTTPS to the vendors and S3), tzdata, /etc/passwd
# with nonroot, nothing else. The numeric USER lets Kubernetes verify runAsNonRoot.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# 9090 worker metrics and /healthz, 8080 asynqmon, 8089 sandbox. Their defaults listen on loopback
# only: a container sets METRICS_ADDR=:9090 (as docker-compose.yml and deploy/k8s do) to be reached.
EXPOSE 9090 8080 8089
CMD ["/usr/local/bin/worker"]
