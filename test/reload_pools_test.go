package test

import (
	"net/netip"
	"strings"
	"testing"

	coretest "github.com/coredns/coredns/test"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// A Corefile reload that declares other pools and then fails (a later
// server block is broken) leaves the running instance answering from its
// own pools: the switch is set back, and no query indexes one instance's
// zone data with another's pool list.
func TestFailedReloadWithOtherPools(t *testing.T) {
	dir := zoneDir(t)
	body := "name pools-reload\nweights blue 0 green 1"
	s := startServer(t, bgCorefile(body), dir)
	q := query("www.example.org.", dns.TypeA, netip.MustParsePrefix("10.1.2.0/24"))
	require.Equal(t, "green", onePool(t, exchange(t, "udp", s.udp, q)))

	// red is declared first and gets every client; the second block fails.
	next := strings.Replace(bgCorefile("name pools-reload\nweights red 1 blue 0 green 0"), "pool blue DIR/blue.db",
		"pool red DIR/red.db\n\t\tpool blue DIR/blue.db", 1)
	next = strings.ReplaceAll(next, "DIR", dir) + "\nbroken.example:0 {\n\tbluegreen {\n\t\tno-such-property\n\t}\n}\n"
	_, err := s.inst.Restart(coretest.NewInput(next))
	require.Error(t, err, "the reload must fail")

	for i := 0; i < 50; i++ {
		q := query("www.example.org.", dns.TypeA, subnet(i))
		m := exchange(t, "udp", s.udp, q)
		require.Equal(t, dns.RcodeSuccess, m.Rcode, "query %d after the failed reload", i)
		require.Equal(t, "green", onePool(t, m), "query %d: the old configuration still answers", i)
	}
}
