package test

import (
	"slices"
	"testing"

	"github.com/coredns/coredns/core/dnsserver"

	"github.com/stretchr/testify/require"
)

// bluegreen must run immediately before cache: cache's key ignores ECS, so
// anything after it would replay one client's pool to every client.
func TestDirectiveBeforeCache(t *testing.T) {
	bg := slices.Index(dnsserver.Directives, "bluegreen")
	cache := slices.Index(dnsserver.Directives, "cache")
	require.GreaterOrEqual(t, bg, 0, "bluegreen is not a directive: %v", dnsserver.Directives)
	require.GreaterOrEqual(t, cache, 0, "cache is not a directive: %v", dnsserver.Directives)
	require.Equal(t, cache-1, bg, "expected bluegreen immediately before cache, got order %v", dnsserver.Directives)
	require.Equal(t, 1, countOf(dnsserver.Directives, "bluegreen"), "bluegreen listed more than once")
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
