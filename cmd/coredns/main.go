// Command coredns is CoreDNS with its standard plugins plus bluegreen,
// placed immediately before cache in the directive order.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/bluegreen-dns/bluegreen/internal/build" // Standard plugins plus bluegreen.
)

func main() { coremain.Run() }
