package bluegreen

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// setupNamed sets up "bluegreen example.org { name NAME; admin off; body }"
// with file names relative to dir. Unlike newTestBluegreen it lets two
// instances share a switch, as the old and new instance of a Corefile
// reload do.
func setupNamed(t *testing.T, dir, name, body string) *Bluegreen {
	t.Helper()
	c := caddy.NewTestController("dns", "bluegreen example.org {\nname "+name+"\nadmin off\n"+body+"\n}")
	dnsserver.GetConfig(c).Root = dir
	require.NoError(t, setup(c))
	return dnsserver.GetConfig(c).Plugin[0](nextHandler).(*Bluegreen)
}

// versions asks n clients for version.example.org TXT and counts the pools
// named in the answers.
func versions(t *testing.T, b *Bluegreen, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := range n {
		remote := fmt.Sprintf("10.%d.%d.1", i/256, i%256)
		m, _, err := serve(context.Background(), b, query("version.example.org.", dns.TypeTXT), remote)
		require.NoError(t, err)
		require.Len(t, m.Answer, 1, "client %s: %v", remote, m)
		seen[m.Answer[0].(*dns.TXT).Txt[0]]++
	}
	return seen
}

// During a Corefile reload that changes the pool list, the old instance
// serves until the new one takes over, while the switch already has the new
// pools. It must keep following the current weights for the pools both
// lists share, not fall back to its seed weights: after a flip to green, a
// reload that adds a canary pool must not send clients back to blue.
func TestOldInstanceFollowsWeightsAcrossPoolChange(t *testing.T) {
	name := uniqueName()
	t.Cleanup(func() { forget(name) })
	canaryDB := "$ORIGIN example.org.\n$TTL 60\nversion IN TXT \"canary\"\n"
	dir := writeZones(t, map[string]string{"base.db": baseDB, "blue.db": blueDB, "green.db": greenDB, "canary.db": canaryDB})

	old := setupNamed(t, dir, name, pools3+"weights blue 90 green 10")
	sw := state.Lookup(name)
	_, err := sw.Apply(context.Background(), state.Update{Weights: map[string]uint64{"blue": 0, "green": 100}, Source: state.SourceAPI})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"green": 500}, versions(t, old, 500))

	// The new instance declares canary first, so every pool index moves.
	niu := setupNamed(t, dir, name, "base base.db\npool canary canary.db\npool blue blue.db\npool green green.db\nweights canary 1 blue 1 green 1")
	require.Equal(t, []string{"canary", "blue", "green"}, sw.Load().Pools)
	require.Equal(t, map[string]int{"green": 500}, versions(t, niu, 500), "the new instance: weights carried over by name")
	require.Equal(t, map[string]int{"green": 500}, versions(t, old, 500), "the old instance: current weights, not its seed 90/10")
	require.Equal(t, "green", old.explain(netip.MustParseAddr("10.0.0.1")).Pool, "the old instance's explain agrees")

	// A change made now applies to the old instance's pools too.
	_, err = sw.Apply(context.Background(), state.Update{Weights: map[string]uint64{"canary": 0, "blue": 100, "green": 0}, Source: state.SourceAPI})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"blue": 500}, versions(t, old, 500))

	// Only when no pool the old instance knows has a weight do its seed
	// weights apply (it has nowhere else to send clients).
	_, err = sw.Apply(context.Background(), state.Update{Weights: map[string]uint64{"canary": 100, "blue": 0, "green": 0}, Source: state.SourceAPI})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"canary": 500}, versions(t, niu, 500))
	seen := versions(t, old, 500)
	require.Equal(t, 500, seen["blue"]+seen["green"], "seed weights: %v", seen)
	require.Greater(t, seen["blue"], seen["green"], "seed weights 90/10: %v", seen)
}
