package zones

import (
	"fmt"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/file/tree"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// nodes counts the distinct nodes of trees, shared ones once.
func nodes(trees ...*tree.Tree) int {
	seen := map[*tree.Node]bool{}
	var walk func(n *tree.Node)
	walk = func(n *tree.Node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		walk(n.Left)
		walk(n.Right)
	}
	for _, t := range trees {
		walk(t.Root)
	}
	return len(seen)
}

func bigBase(n int) string {
	var b strings.Builder
	b.WriteString(baseDB)
	for i := range n {
		fmt.Fprintf(&b, "h%d IN A 192.0.2.%d\n", i, i%250)
	}
	return b.String()
}

// The views share the base tree: three pools of one name over a base of
// 5,000 names hold the base's nodes once plus a path per pool name, and
// every view still holds (and finds) every base name and its own.
func TestViewsShareBase(t *testing.T) {
	const n = 5000
	one := func(addr string) string { return "$ORIGIN example.org.\n$TTL 60\nwww IN A " + addr + "\n" }
	z := build(t, bigBase(n), one("192.0.2.10"), one("192.0.2.11"), one("192.0.2.12"))
	var trees []*tree.Tree
	for _, v := range z.Views {
		trees = append(trees, v.Tree)
	}
	base := nodes(z.common)
	all := nodes(trees...)
	require.Greater(t, base, n)
	// A tree of ~5,000 nodes is at most 2*log2(5000) ~ 25 deep: each view
	// copies at most that many nodes.
	require.LessOrEqual(t, all, base+3*26, "expected the views to share the base's %d nodes, got %d distinct nodes", base, all)
	for i, v := range z.Views {
		require.Equal(t, z.common.Len()+1, v.Tree.Len())
		for _, q := range []string{"h0.example.org.", "h4999.example.org.", "mail.example.org.", "www.example.org."} {
			e, ok := v.Tree.Search(q)
			require.True(t, ok, "Test %d: expected %s in the view", i, q)
			if q == "www.example.org." {
				require.Equal(t, fmt.Sprintf("192.0.2.1%d", i), e.Type(dns.TypeA)[0].(*dns.A).A.String())
			}
		}
	}
}

// A reload that changes one pool parses only that pool and keeps the base
// tree and the other views' trees; one that changes what base shadows
// rebuilds the base tree once, not once per pool.
func TestReloadReusesBase(t *testing.T) {
	base := src("", bigBase(1000))
	base.Path = "base.db"
	pools := []Source{src("blue", blueDB), src("green", greenDB)}
	z1, err := BuildWith(origin, &base, pools, Options{BoundTTL: true, TTLMax: 30, TTLMin: 1})
	require.NoError(t, err)

	pools[1] = src("green", greenDB+"extra IN A 198.51.100.99\n")
	z2, err := BuildWith(origin, &base, pools, Options{BoundTTL: true, TTLMax: 30, TTLMin: 1, Prev: z1})
	require.NoError(t, err)
	require.Same(t, z1.base, z2.base, "base is not parsed again")
	require.Same(t, z1.common, z2.common, "the base tree is reused")
	require.Same(t, z1.pools[0], z2.pools[0], "an unchanged pool is not parsed again")
	require.Same(t, z1.Views[0].Tree, z2.Views[0].Tree, "an unchanged pool's view is reused")
	require.NotSame(t, z1.pools[1], z2.pools[1])
	_, ok := z2.Views[1].Tree.Search("extra.example.org.")
	require.True(t, ok, "the changed pool's new name is served")
	_, ok = z2.Views[0].Tree.Search("extra.example.org.")
	require.False(t, ok, "the other pool's view does not hold it")

	// green now holds h7, which base holds: base's h7 is shadowed, so the
	// base tree is built again (once).
	pools[1] = src("green", greenDB+"h7 IN A 198.51.100.7\n")
	z3, err := BuildWith(origin, &base, pools, Options{BoundTTL: true, TTLMax: 30, TTLMin: 1, Prev: z2})
	require.NoError(t, err)
	require.Same(t, z2.base, z3.base)
	require.NotSame(t, z2.common, z3.common)
	_, ok = z3.Views[0].Tree.Search("h7.example.org.")
	require.False(t, ok, "a name a pool holds is not served from base in other views")
	require.LessOrEqual(t, nodes(z3.common, z3.Views[0].Tree, z3.Views[1].Tree), nodes(z3.common)+2*30)

	// Other TTL bounds: everything is parsed again.
	z4, err := BuildWith(origin, &base, pools, Options{BoundTTL: true, TTLMax: 20, TTLMin: 1, Prev: z3})
	require.NoError(t, err)
	require.NotSame(t, z3.base, z4.base)
}
