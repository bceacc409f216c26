package test

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shareClients is the number of distinct client /24s the share test asks
// for; at a 10 % share the sample's noise is about ±0.2 points (95 %).
const shareClients = 100_000

func clients(n, offset int) []netip.Prefix {
	cs := make([]netip.Prefix, n)
	for i := range cs {
		cs[i] = subnet(offset + i)
	}
	return cs
}

func count(pools []string) map[string]int {
	c := map[string]int{}
	for _, p := range pools {
		c[p]++
	}
	return c
}

// Over 100,000 client subnets every client gets the pool the spec's formula
// gives it (that the formula's shares match the weights is pick's test).
func TestShareMatchesWeights(t *testing.T) {
	dir := zoneDir(t)
	for _, tc := range []struct {
		pools   []string
		weights []uint64
	}{
		{[]string{"blue", "green"}, []uint64{90, 10}},
		{[]string{"blue", "green", "red"}, []uint64{500, 300, 200}},
	} {
		t.Run(fmt.Sprint(tc.weights), func(t *testing.T) {
			name := fmt.Sprintf("share%d.test", len(tc.pools))
			body := ""
			w := "weights"
			for i, p := range tc.pools {
				body += fmt.Sprintf("pool %s DIR/%s.db\n", p, p)
				w += fmt.Sprintf(" %s %d", p, tc.weights[i])
			}
			s := startServer(t, `.:0 {
	bind 127.0.0.1
	bluegreen example.org {
		admin off
		base DIR/base.db
		`+body+w+`
		name `+name+`
	}
}`, dir)
			n := shareClients
			if len(tc.pools) > 2 {
				n = shareClients / 4 // the formula check below is what matters here
			}
			cs := clients(n, 0)
			start := time.Now()
			got := poolsByClient(t, s.udp, "pool.example.org", cs, 90*time.Second)
			t.Logf("%d clients in %v", n, time.Since(start).Round(time.Millisecond))

			t.Logf("shares: %v", count(got))
			mismatch := 0
			for i, cl := range cs {
				if want := tc.pools[refPool(name, cl.Addr(), tc.weights)]; got[i] != want {
					if mismatch < 5 {
						t.Errorf("client %s: got pool %s, the spec's formula gives %s", cl, got[i], want)
					}
					mismatch++
				}
			}
			require.Zero(t, mismatch, "clients answered against the formula")
		})
	}
}

// A client gets the same pool every time: over UDP and TCP, repeated, and
// from any address inside its /24 (the default sticky prefix).
func TestSameClientSamePool(t *testing.T) {
	dir := zoneDir(t)
	s := startServer(t, bgCorefile(`weights blue 50 green 50
		name same.test`), dir)
	cs := clients(2000, 5000)
	first := poolsByClient(t, s.udp, "pool.example.org", cs, 30*time.Second)
	for round := range 2 {
		again := poolsByClient(t, s.udp, "pool.example.org", cs, 30*time.Second)
		for i := range cs {
			require.Equal(t, first[i], again[i], "round %d: client %s changed pool", round, cs[i])
		}
	}
	// Hosts inside the client's /24, as /32 and /28 sources.
	var hosts []netip.Prefix
	for _, c := range cs[:500] {
		a := c.Addr().As4()
		a[3] = byte(1 + len(hosts)%250)
		hosts = append(hosts, netip.PrefixFrom(netip.AddrFrom4(a), 32))
		a[3] = 0xf0
		hosts = append(hosts, netip.PrefixFrom(netip.AddrFrom4(a), 28))
	}
	got := poolsByClient(t, s.udp, "pool.example.org", hosts, 30*time.Second)
	for i, h := range hosts {
		require.Equal(t, first[i/2], got[i], "host %s of client %s", h, cs[i/2])
	}
	// TCP agrees with UDP.
	for i, c := range cs[:100] {
		r := exchange(t, "tcp", s.tcp, query("pool.example.org", dns.TypeTXT, c))
		require.Equal(t, first[i], onePool(t, r), "client %s over TCP", c)
	}
	c := count(first)
	assert.Positive(t, c["blue"])
	assert.Positive(t, c["green"])
}

// Raising the last pool's weight never moves a client out of it; lowering
// it never moves a client into it. The server is restarted with new seed
// weights for each step.
func TestMonotoneCanary(t *testing.T) {
	dir := zoneDir(t)
	const name = "monotone.test"
	cs := clients(25_000, 200_000)
	steps := [][2]uint64{{99, 1}, {90, 10}, {50, 50}, {1, 999}, {75, 25}}
	var prev []string
	for k, w := range steps {
		s := startServer(t, bgCorefile(fmt.Sprintf(`weights blue %d green %d
			name %s`, w[0], w[1], name)), dir)
		got := poolsByClient(t, s.udp, "pool.example.org", cs, 60*time.Second)
		s.stop()
		c := count(got)
		t.Logf("weights blue %d green %d: %v", w[0], w[1], c)
		for i := range cs {
			if want := []string{"blue", "green"}[refPool(name, cs[i].Addr(), w[:])]; got[i] != want {
				t.Fatalf("weights %v: client %s got %s, the spec's formula gives %s", w, cs[i], got[i], want)
			}
		}
		if prev != nil {
			raised := w[1]*(steps[k-1][0]+steps[k-1][1]) > steps[k-1][1]*(w[0]+w[1])
			moved := 0
			for i := range cs {
				if raised && prev[i] == "green" && got[i] != "green" {
					t.Errorf("%v -> %v: client %s moved out of green to %s", steps[k-1], w, cs[i], got[i])
				}
				if !raised && prev[i] != "green" && got[i] == "green" {
					t.Errorf("%v -> %v: client %s moved into green", steps[k-1], w, cs[i])
				}
				if prev[i] != got[i] {
					moved++
				}
			}
			require.False(t, t.Failed(), "monotone canary broken at step %d", k)
			assert.Positive(t, moved, "%v -> %v: no client moved at all", steps[k-1], w)
		}
		prev = got
	}
}

// Two servers started separately answer every client of a large sample
// with the same pool. (The end-to-end test does the same across two
// processes of the built binary.)
func TestTwoServersAgree(t *testing.T) {
	dir := zoneDir(t)
	cfg := bgCorefile(`weights blue 70 green 30
		name example.org`)
	a := startServer(t, cfg, dir)
	b := startServer(t, cfg, dir)
	require.NotEqual(t, a.udp, b.udp)
	cs := clients(20_000, 400_000)
	pa := poolsByClient(t, a.udp, "pool.example.org", cs, 60*time.Second)
	pb := poolsByClient(t, b.udp, "pool.example.org", cs, 60*time.Second)
	for i := range cs {
		require.Equal(t, pa[i], pb[i], "client %s", cs[i])
		require.Equal(t, []string{"blue", "green"}[refPool("example.org", cs[i].Addr(), []uint64{70, 30})], pa[i], "client %s against the formula", cs[i])
	}
	c := count(pa)
	assert.Positive(t, c["blue"])
	assert.Positive(t, c["green"])
}

// clientFrom sends a query from a given loopback source address (Linux
// routes all of 127.0.0.0/8 to lo).
func clientFrom(t testing.TB, src netip.Addr, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: src.AsSlice()}}}
	var (
		r   *dns.Msg
		err error
	)
	for range 3 {
		if r, _, err = c.Exchange(m.Copy(), addr); err == nil {
			return r
		}
	}
	require.NoError(t, err, "query from %s", src)
	return r
}

func loopbackSources(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{127, 0, byte(i / 250), byte(1 + i%250)})
	}
	return out
}

// sticky ip: the source address alone decides; ECS is ignored (scope 0).
// sticky subnet without ECS: the source's /24 decides.
func TestStickyIP(t *testing.T) {
	dir := zoneDir(t)
	const name = "stickyip.test"
	weights := []uint64{50, 50}
	s := startServer(t, bgCorefile(`weights blue 50 green 50
		sticky ip
		name `+name), dir)
	srcs := loopbackSources(500)
	seen := map[string]int{}
	for _, src := range srcs {
		want := []string{"blue", "green"}[refPool(name, src, weights)]
		for _, ecs := range []netip.Prefix{{}, subnet(1), subnet(2)} {
			r := clientFrom(t, src, s.udp, query("pool.example.org", dns.TypeTXT, ecs))
			require.Equal(t, want, onePool(t, r), "source %s ECS %v", src, ecs)
			if ecs.IsValid() {
				e := replyECS(r)
				require.NotNil(t, e)
				require.Zero(t, e.SourceScope, "sticky ip: ECS scope")
			}
		}
		seen[want]++
	}
	// The sources cover both pools, so the checks above tell them apart.
	assert.Positive(t, seen["blue"], "sources on blue: %v", seen)
	assert.Positive(t, seen["green"], "sources on green: %v", seen)

	// In subnet mode, those sources without ECS share a few /24s.
	s2 := startServer(t, bgCorefile(`weights blue 50 green 50
		name `+name), dir)
	for _, src := range srcs[:300] {
		key := netip.PrefixFrom(src, 24).Masked().Addr()
		want := []string{"blue", "green"}[refPool(name, key, weights)]
		r := clientFrom(t, src, s2.udp, query("pool.example.org", dns.TypeTXT, netip.Prefix{}))
		require.Equal(t, want, onePool(t, r), "sticky subnet, source %s", src)
	}
}

// sticky off: an independent weighted choice per query; one client sees
// both pools, in about the configured proportion.
func TestStickyOff(t *testing.T) {
	dir := zoneDir(t)
	s := startServer(t, bgCorefile(`weights blue 70 green 30
		sticky off
		name stickyoff.test`), dir)
	const n = 20_000
	same := make([]netip.Prefix, n)
	for i := range same {
		same[i] = netip.MustParsePrefix("203.0.113.0/24")
	}
	got := poolsByClient(t, s.udp, "pool.example.org", same, 60*time.Second)
	c := count(got)
	// Random per query, so no client's pool can be computed: 30 % of 20,000
	// has a standard deviation of 0.32 points; 1.5 is 4.6 of them.
	assert.InDelta(t, 30.0, 100*float64(c["green"])/n, 1.5, "green share %v", c)
	assert.Positive(t, c["blue"])
	assert.Positive(t, c["green"])
	// Runs of one pool are not much longer than chance allows.
	longest, run := 0, 0
	for i := range got {
		if i > 0 && got[i] == got[i-1] {
			run++
		} else {
			run = 1
		}
		longest = max(longest, run)
	}
	assert.Less(t, longest, int(math.Log(n)/-math.Log(0.7))+20, "longest run of one pool")
}

// pin: clients inside a pinned CIDR (ECS or source) get that pool whatever
// the weights; a pin shorter or longer than the sticky prefix sets the ECS
// scope so a resolver caches correctly.
func TestPin(t *testing.T) {
	dir := zoneDir(t)
	s := startServer(t, bgCorefile(`weights blue 100 green 0
		pin green 203.0.113.128/25 198.51.0.0/16 2001:db8:aa::/48 127.0.0.2/32
		name pin.test`), dir)
	for _, tc := range []struct {
		ecs   string
		pool  string
		scope int
	}{
		{"203.0.113.200/32", "green", 25},
		{"203.0.113.130/32", "green", 25},
		{"203.0.113.10/32", "blue", 25},
		{"203.0.113.0/24", "blue", 24}, // the /24's address is outside the /25
		{"198.51.7.0/24", "green", 24},
		{"198.52.7.0/24", "blue", 24},
		{"2001:db8:aa:bb00::/56", "green", 56},
		{"2001:db8:ab::/56", "blue", 56},
	} {
		p := netip.MustParsePrefix(tc.ecs)
		for _, network := range []string{"udp", "tcp"} {
			addr := map[string]string{"udp": s.udp, "tcp": s.tcp}[network]
			r := exchange(t, network, addr, query("www.example.org", dns.TypeA, p))
			require.Equal(t, tc.pool, onePool(t, r), "%s %s", network, tc.ecs)
			e := replyECS(r)
			require.NotNil(t, e)
			assert.Equal(t, tc.scope, int(e.SourceScope), "%s %s: scope", network, tc.ecs)
		}
	}
	// Without ECS, the source address is matched.
	r := clientFrom(t, netip.MustParseAddr("127.0.0.2"), s.udp, query("www.example.org", dns.TypeA, netip.Prefix{}))
	assert.Equal(t, "green", onePool(t, r), "pinned source 127.0.0.2")
	r = clientFrom(t, netip.MustParseAddr("127.0.0.3"), s.udp, query("www.example.org", dns.TypeA, netip.Prefix{}))
	assert.Equal(t, "blue", onePool(t, r), "unpinned source 127.0.0.3")
	// Weight 0 for green: no unpinned client of a large sample gets it.
	got := poolsByClient(t, s.udp, "pool.example.org", clients(5000, 0), 30*time.Second)
	assert.Equal(t, map[string]int{"blue": 5000}, count(got))
}

// Over IPv6 without ECS the source address, masked to V6LEN, decides; with
// sticky ip the whole address does.
func TestIPv6Source(t *testing.T) {
	if l, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no IPv6 loopback: %v (CI=true requires ::1)", err)
		}
		t.Skipf("no IPv6 loopback: %v; this test needs ::1", err)
	} else {
		l.Close()
	}
	dir := zoneDir(t)
	weights := []uint64{50, 50}
	for _, tc := range []struct {
		sticky string
		key    netip.Addr
	}{
		{"sticky subnet 24 56", netip.MustParseAddr("::")},
		{"sticky subnet 24 128", netip.MustParseAddr("::1")},
		{"sticky ip", netip.MustParseAddr("::1")},
	} {
		for _, name := range []string{"v6a.test", "v6b.test", "v6c.test", "v6d.test"} {
			s := startServer(t, `.:0 {
	bind ::1
	bluegreen example.org {
		admin off
		base DIR/base.db
		pool blue DIR/blue.db
		pool green DIR/green.db
		weights blue 50 green 50
		name `+name+`
		`+tc.sticky+`
	}
}`, dir)
			want := []string{"blue", "green"}[refPool(name, tc.key, weights)]
			for _, network := range []string{"udp", "tcp"} {
				addr := map[string]string{"udp": s.udp, "tcp": s.tcp}[network]
				r := exchange(t, network, addr, query("pool.example.org", dns.TypeTXT, netip.Prefix{}))
				require.Equal(t, want, onePool(t, r), "%s, switch %s, source ::1 over %s", tc.sticky, name, network)
			}
			s.stop()
		}
	}
}
