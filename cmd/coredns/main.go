// Command coredns is CoreDNS with its standard plugins plus bluegreen,
// placed immediately before cache in the directive order.
package main

import (
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/coremain"

	"github.com/bluegreen-dns/bluegreen/internal/build"
)

func main() {
	// `coredns -version` (and the startup banner) names both releases, e.g.
	// CoreDNS-1.15.0+bluegreen-v0.1.0-3-gabcdef0.
	caddy.AppVersion = coremain.CoreVersion + "+bluegreen-" + build.Version
	coremain.Run()
}
