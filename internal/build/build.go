// Package build adds the bluegreen plugin to CoreDNS's directive list,
// immediately before cache, and links in CoreDNS's standard plugin set. It is
// what cmd/coredns and the integration tests import; a stock CoreDNS build
// gets the same result from one line in plugin.cfg instead.
package build

import (
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/core/plugin" // CoreDNS's standard plugins.

	_ "github.com/bluegreen-dns/bluegreen/plugin/bluegreen" // Registers bluegreen.
)

// Directive is the name of the plugin in the Corefile.
const Directive = "bluegreen"

// Before is the directive bluegreen is placed in front of.
const Before = "cache"

func init() { dnsserver.Directives = Insert(dnsserver.Directives) }

// Insert returns directives with bluegreen immediately before cache. It is a
// no-op when bluegreen is already listed.
func Insert(directives []string) []string {
	for _, d := range directives {
		if d == Directive {
			return directives
		}
	}
	out := make([]string, 0, len(directives)+1)
	for _, d := range directives {
		if d == Before {
			out = append(out, Directive)
		}
		out = append(out, d)
	}
	if len(out) == len(directives) {
		panic("bluegreen: directive " + Before + " not found")
	}
	return out
}

// Version is the bluegreen version, set by the Makefile from git describe.
var Version = "dev"
