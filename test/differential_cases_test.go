package test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// The cases the generated differential test (differential_test.go) does
// not reach: nested origins in one server block, a name only the 64th pool
// holds, TC with pool glue asked without ECS (so the replies must be equal
// record for record), ECS source prefixes 0, /32 and /128 checked against
// the exactly computed pool, and CNAME chains and loops that differ
// between pools.

// writeFiles writes each name's text into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
}

// diffVariant is how a question is asked: transport, EDNS buffer and DO.
type diffVariant struct {
	network string
	size    uint16
	do      bool
}

var diffVariants = []diffVariant{{"udp", 1232, false}, {"tcp", 1232, true}, {"udp", 512, true}}

// compareWithFile asks every name and type of pool i's clients (pinned by
// ECS 10.0.i.0/24) from bg and from refs[i], a file plugin server holding
// what pool i's clients must see, in every variant, and returns each
// difference (wire as in TestDifferentialFile).
func compareWithFile(t *testing.T, bg *server, refs []*server, names []string, types []uint16) (diffs []string, n int) {
	t.Helper()
	for _, qname := range names {
		for _, qtype := range types {
			for i, ref := range refs {
				for _, v := range diffVariants {
					q := new(dns.Msg)
					q.SetQuestion(qname, qtype)
					q.SetEdns0(v.size, v.do)
					want := exchange(t, v.network, addrOf(ref, v.network), q)
					q.IsEdns0().Option = append(q.IsEdns0().Option, ecsOption(netip.MustParsePrefix(fmt.Sprintf("10.0.%d.0/24", i))))
					got := exchange(t, v.network, addrOf(bg, v.network), q)
					if want.Truncated && got.Truncated {
						want = subset(want, got) // the echoed ECS takes room
					}
					if w, g := wire(want), wire(got); w != g {
						diffs = append(diffs, fmt.Sprintf("pool p%d: %s %s %s/%d do=%v:\nfile:\n%s\nbluegreen:\n%s", i, qname, dns.TypeToString[qtype], v.network, v.size, v.do, w, g))
					}
					n++
				}
			}
		}
	}
	return diffs, n
}

// mixedCase upper-cases every other letter of name, so a question in
// mixed case is asked too.
func mixedCase(name string) string {
	b := []byte(name)
	for i := 0; i < len(b); i += 2 {
		if b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// nestedNames are the questions at and around the cut between example.org
// and sub.example.org.
var nestedNames = []string{
	"example.org.", "www.example.org.", "ns1.example.org.", "api.example.org.", "nope.example.org.",
	"sub.example.org.", "www.sub.example.org.", "api.sub.example.org.", "ns1.sub.example.org.",
	"x.sub.example.org.", "y.x.sub.example.org.", "a.w.sub.example.org.", "w.sub.example.org.",
	"alias.sub.example.org.", "up.sub.example.org.", "sub.sub.example.org.", "x.sub.sub.example.org.",
	"nope.sub.example.org.", "alias.sub.sub.example.org.", "up.example.org.", "x.example.org.", "a.w.example.org.",
	"sub2.example.org.", "y.sub2.example.org.", "sub2.sub.example.org.", "y.sub2.sub.example.org.",
}

const nestedDS = "12345 13 2 3A2B1C0D9E8F7A6B5C4D3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F3A2B"

// Nested origins in one server block, "example.org sub.example.org": one
// switch serving both zones from the same (relative) files, a switch for
// the child with file serving the parent, and a switch for the parent with
// a plugin behind it serving the child. Each pool's clients must get what
// the file plugin gives with that pool's view in the switch's zone(s),
// serving both zones in the same block, except where the switch serves the
// parent: there it answers the child's names too (a referral in p0's
// view, NXDOMAIN in p1's), as file does in its place, unless fallthrough
// names the child.
func TestDifferentialNestedOrigins(t *testing.T) {
	const apexRel = "$TTL 300\n@ IN SOA ns1 h 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.254\n"
	// Relative names: the same file is a zone for either origin.
	relBase := apexRel + "www IN A 192.0.2.1\nsub IN NS ns1.sub\nns1.sub IN A 192.0.2.53\nsub IN DS " + nestedDS + "\nalias.sub IN CNAME www\n"
	relPools := []string{
		"$TTL 300\napi IN A 192.0.2.10\nx IN A 192.0.2.11\n*.w IN TXT \"p0\"\n@ IN TXT \"p0\"\n",
		"$TTL 300\napi IN A 192.0.2.20\nup IN CNAME api\nsub2 IN NS ns.sub2\nns.sub2 IN A 192.0.2.22\n",
	}
	parentAbs := "$ORIGIN example.org.\n" + apexRel + "www IN A 192.0.2.1\napi IN A 192.0.2.2\nsub IN NS ns1.sub\nns1.sub IN A 192.0.2.53\nsub IN DS " + nestedDS + "\n"
	childBase := "$ORIGIN sub.example.org.\n" + apexRel + "www IN A 192.0.2.101\nalias IN CNAME www.example.org.\n"
	childAbs := childBase + "api IN A 192.0.2.102\n"
	childPools := []string{
		"$ORIGIN sub.example.org.\n$TTL 300\napi IN A 192.0.2.110\n*.w IN TXT \"p0\"\nx IN A 192.0.2.111\nup IN CNAME api.example.org.\n",
		"$ORIGIN sub.example.org.\n$TTL 300\napi IN A 192.0.2.120\n@ IN TXT \"p1\"\nup IN CNAME www\n",
	}
	// The parent's pools: p0 delegates sub.example.org, p1 does not.
	parentPools := []string{
		"$ORIGIN example.org.\n$TTL 300\napi IN A 192.0.2.10\nsub IN NS ns1.sub\nns1.sub IN A 192.0.2.53\nsub IN DS " + nestedDS + "\n",
		"$ORIGIN example.org.\n$TTL 300\napi IN A 192.0.2.20\nx.sub IN A 192.0.2.21\n",
		// No name at or below sub.example.org.
		"$ORIGIN example.org.\n$TTL 300\napi IN A 192.0.2.10\nx IN A 192.0.2.11\n",
		"$ORIGIN example.org.\n$TTL 300\napi IN A 192.0.2.20\n@ IN TXT \"p1\"\n",
	}
	parentBase := "$ORIGIN example.org.\n" + apexRel + "www IN A 192.0.2.1\n"

	const block = "example.org:0 sub.example.org:0 {\n bind 127.0.0.1\n"
	pins := "admin off\nreload 0\nttl 300 1\npin p0 10.0.0.0/24\npin p1 10.0.1.0/24\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		bg    string   // the server block's plugins
		refs  []string // pool i's file plugin lines
	}{
		{
			name: "one switch for both",
			files: map[string]string{"base.db": relBase, "p0.db": relPools[0], "p1.db": relPools[1],
				"view0.db": relBase + relPools[0], "view1.db": relBase + relPools[1]},
			bg:   "bluegreen {\n" + pins + "base DIR/base.db\npool p0 DIR/p0.db\npool p1 DIR/p1.db\n}\n",
			refs: []string{"file DIR/view0.db example.org sub.example.org\n", "file DIR/view1.db example.org sub.example.org\n"},
		},
		{
			name: "switch for the child",
			files: map[string]string{"parent.db": parentAbs, "base.db": childBase, "p0.db": childPools[0], "p1.db": childPools[1],
				"view0.db": childBase + childPools[0], "view1.db": childBase + childPools[1]},
			bg:   "bluegreen sub.example.org {\n" + pins + "base DIR/base.db\npool p0 DIR/p0.db\npool p1 DIR/p1.db\n}\nfile DIR/parent.db example.org\n",
			refs: []string{"file DIR/parent.db example.org\nfile DIR/view0.db sub.example.org\n", "file DIR/parent.db example.org\nfile DIR/view1.db sub.example.org\n"},
		},
		{
			// The switch answers every name below its zone, the child
			// zone's too, before the file plugin behind it sees them: as
			// the file plugin does in the switch's place, ahead of auto
			// serving the child.
			name: "switch for the parent",
			files: map[string]string{"auto/db.sub.example.org": childAbs, "base.db": parentBase, "p0.db": parentPools[0], "p1.db": parentPools[1],
				"view0.db": parentBase + parentPools[0], "view1.db": parentBase + parentPools[1]},
			bg:   "bluegreen example.org {\n" + pins + "base DIR/base.db\npool p0 DIR/p0.db\npool p1 DIR/p1.db\n}\nauto sub.example.org {\n directory DIR/auto\n}\n",
			refs: []string{"file DIR/view0.db example.org\nauto sub.example.org {\n directory DIR/auto\n}\n", "file DIR/view1.db example.org\nauto sub.example.org {\n directory DIR/auto\n}\n"},
		},
		{
			// With fallthrough for the child and no pool name at or below
			// it, the split is file's.
			name: "switch for the parent, fallthrough to the child",
			files: map[string]string{"child.db": childAbs, "base.db": parentBase, "p0.db": parentPools[2], "p1.db": parentPools[3],
				"view0.db": parentBase + parentPools[2], "view1.db": parentBase + parentPools[3]},
			bg:   "bluegreen example.org {\n" + pins + "base DIR/base.db\npool p0 DIR/p0.db\npool p1 DIR/p1.db\nfallthrough sub.example.org\n}\nfile DIR/child.db sub.example.org\n",
			refs: []string{"file DIR/view0.db example.org\nfile DIR/child.db sub.example.org\n", "file DIR/view1.db example.org\nfile DIR/child.db sub.example.org\n"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(dir, "auto"), 0o755))
			writeFiles(t, dir, tc.files)
			bg := startServer(t, block+tc.bg+"}", dir)
			var refs []*server
			for _, r := range tc.refs {
				refs = append(refs, startServer(t, block+r+"}", dir))
			}
			var names []string
			for _, n := range nestedNames {
				names = append(names, n, mixedCase(n))
			}
			diffs, n := compareWithFile(t, bg, refs, names, diffTypes)
			t.Logf("%d answers compared, %d differ", n, len(diffs))
			for _, d := range diffs {
				t.Log(d)
			}
			require.Empty(t, diffs)
		})
	}
}

var pools64Runs atomic.Int64

// putWeights sets the switch's weights through the admin API and fails
// the test unless it answers 200.
func putWeights(t *testing.T, admin, switchName string, weights []uint64) {
	t.Helper()
	parts := make([]string, len(weights))
	for i, w := range weights {
		parts[i] = fmt.Sprintf(`"p%d":%d`, i, w)
	}
	body := `{"weights":{` + strings.Join(parts, ",") + `},"reason":"differential test"}`
	req, err := http.NewRequest(http.MethodPut, admin+"/v1/switches/"+switchName+"/weights", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "PUT weights: %s", b)
}

// A name only the 64th pool (zones.MaxPools) holds: with that pool at
// weight 100 every client gets it, exactly as the file plugin serves that
// pool's view; moved to the first pool through the API, every client gets
// NXDOMAIN as from the first pool's view; with all 64 pools at weight 1,
// and with only the last two at 1, each client gets it exactly when the
// spec's formula picks pool 63.
func TestDifferentialSixtyFourthPool(t *testing.T) {
	// Switch state is process-wide: each run (go test -count=N) names its
	// own switch, so the weights a run leaves are not the next one's.
	const pools = 64
	name := fmt.Sprintf("pools64-%d.test", pools64Runs.Add(1))
	dir := t.TempDir()
	base := "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 h 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.254\nwww IN A 192.0.2.1\n"
	common := "$ORIGIN example.org.\n$TTL 300\nall IN TXT \"every pool\"\n"
	last := "last IN TXT \"p63\"\nlast IN A 192.0.2.63\n*.wild IN TXT \"p63\"\n"
	files := map[string]string{"base.db": base, "view0.db": base + common, "view63.db": base + common + last}
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	body := fmt.Sprintf("name %s\nadmin %s\nreload 0\nttl 300 1\nbase DIR/base.db\nweights p63 100\n", name, admin)
	for i := range pools {
		f := common
		if i == pools-1 {
			f += last
		}
		files[fmt.Sprintf("p%d.db", i)] = f
		body += fmt.Sprintf("pool p%d DIR/p%d.db\n", i, i)
	}
	writeFiles(t, dir, files)
	bg := startServer(t, ".:0 {\n bind 127.0.0.1\n bluegreen example.org {\n"+body+" }\n}", dir)
	ref0 := startServer(t, ".:0 {\n bind 127.0.0.1\n file DIR/view0.db example.org\n}", dir)
	ref63 := startServer(t, ".:0 {\n bind 127.0.0.1\n file DIR/view63.db example.org\n}", dir)

	names := []string{"last.example.org.", "LaSt.example.org.", "x.last.example.org.", "a.wild.example.org.", "wild.example.org.", "all.example.org.", "www.example.org.", "example.org."}
	types := []uint16{dns.TypeA, dns.TypeTXT, dns.TypeANY}
	// The names p63's view answers differently (wild is an empty
	// non-terminal there, NXDOMAIN elsewhere); x.last is NXDOMAIN in
	// every view.
	switched := map[string]bool{"last.example.org.": true, "a.wild.example.org.": true, "wild.example.org.": true}
	// compare checks every name and type for clients against ref, and the
	// ECS scope.
	compare := func(ref *server, clients []netip.Prefix) {
		t.Helper()
		for _, c := range clients {
			for _, qname := range names {
				for _, qtype := range types {
					q := query(qname, qtype, netip.Prefix{})
					want := exchange(t, "udp", ref.udp, q)
					got := exchange(t, "udp", bg.udp, query(qname, qtype, c))
					require.Equal(t, wire(want), wire(got), "client %s: %s %s", c, qname, dns.TypeToString[qtype])
					scope := uint8(0)
					if switched[strings.ToLower(qname)] {
						scope = 24
					}
					require.Equal(t, scope, replyECS(got).SourceScope, "client %s: %s %s scope", c, qname, dns.TypeToString[qtype])
				}
			}
		}
	}
	few := clients(40, 700_000)
	compare(ref63, few)

	weights := make([]uint64, pools)
	weights[0] = 100
	putWeights(t, "http://"+admin, name, weights)
	compare(ref0, few)

	// Under shared weights the formula decides, client by client.
	many := clients(4000, 800_000)
	for _, ws := range [][]uint64{
		slices.Repeat([]uint64{1}, pools),
		append(make([]uint64, pools-2), 1, 1),
	} {
		putWeights(t, "http://"+admin, name, ws)
		msgs := make([]*dns.Msg, len(many))
		for i, c := range many {
			msgs[i] = query("last.example.org", dns.TypeTXT, c)
		}
		on63 := 0
		for i, r := range exchangeMany(t, bg.udp, msgs, 256, 60*time.Second) {
			want := refPool(name, many[i].Addr(), ws) == pools-1
			got := r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
			require.Equal(t, want, got, "weights %v: client %s: pool 63 by the formula %v, reply:\n%s", ws, many[i], want, r)
			if !got {
				require.Equal(t, dns.RcodeNameError, r.Rcode, "client %s: NXDOMAIN from the other pools", many[i])
			}
			if got {
				on63++
			}
		}
		t.Logf("weights %v: %d of %d clients on p63", ws, on63, len(many))
		require.Positive(t, on63, "no client on p63")
		require.Less(t, on63, len(many), "every client on p63")
	}
}

// exchangeFrom sends m over network from the loopback address src (Linux
// routes all of 127.0.0.0/8 to lo) and returns the reply.
func exchangeFrom(t *testing.T, network string, src netip.Addr, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	var local net.Addr = &net.UDPAddr{IP: src.AsSlice()}
	if network == "tcp" {
		local = &net.TCPAddr{IP: src.AsSlice()}
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, Dialer: &net.Dialer{LocalAddr: local}}
	var (
		r   *dns.Msg
		err error
	)
	for range 3 {
		if r, _, err = c.Exchange(m.Copy(), addr); err == nil {
			return r
		}
	}
	require.NoError(t, err, "%s query %s from %s", network, m.Question[0].Name, src)
	return r
}

// TC with pool glue: a pool's delegation with its glue, a base delegation
// whose glue (names below its cut) only the pools hold, and a base MX
// whose target's addresses only the pools hold, each too large for 512
// bytes. Asked without ECS
// (the pools are pinned by source address), so nothing but the records
// takes room: every reply, truncated or not, equals file's record for
// record, TC bit included. Asked with ECS, a truncated reply may hold
// fewer records (compareWithFile).
func TestDifferentialTruncatedPoolGlue(t *testing.T) {
	dir := t.TempDir()
	base := []string{"$ORIGIN example.org.", "$TTL 300", "@ IN SOA ns1 h 1 7200 3600 1209600 300", "@ IN NS ns1", "ns1 IN A 192.0.2.254",
		"mx IN MX 10 mail"}
	for i := range 20 {
		base = append(base, fmt.Sprintf("deleg2 IN NS ns%d.deleg2", i))
	}
	pool := func(v4, v6 string) string {
		p := []string{"$ORIGIN example.org.", "$TTL 300"}
		for i := range 30 {
			p = append(p, fmt.Sprintf("deleg IN NS ns%d.deleg", i), fmt.Sprintf("ns%d.deleg IN A %s.%d", i, v4, i+1), fmt.Sprintf("ns%d.deleg IN AAAA %s%x", i, v6, i+1))
		}
		for i := range 20 {
			p = append(p, fmt.Sprintf("ns%d.deleg2 IN A %s.%d", i, v4, 100+i), fmt.Sprintf("ns%d.deleg2 IN AAAA %s%x", i, v6, 100+i))
		}
		for i := range 40 {
			p = append(p, fmt.Sprintf("mail IN A %s.%d", v4, 150+i), fmt.Sprintf("mail IN AAAA %s%x", v6, 150+i))
		}
		return strings.Join(p, "\n") + "\n"
	}
	pools := []string{pool("192.0.2", "2001:db8::"), pool("198.51.100", "2001:db8:1::")}
	b := strings.Join(base, "\n") + "\n"
	writeFiles(t, dir, map[string]string{"base.db": b, "p0.db": pools[0], "p1.db": pools[1], "view0.db": b + pools[0], "view1.db": b + pools[1]})
	bg := startServer(t, ".:0 {\n bind 127.0.0.1\n bluegreen example.org {\n admin off\n reload 0\n ttl 300 1\n base DIR/base.db\n pool p0 DIR/p0.db\n pool p1 DIR/p1.db\n pin p0 127.0.0.0/24 10.0.0.0/24\n pin p1 127.0.1.0/24 10.0.1.0/24\n }\n}", dir)
	refs := []*server{
		startServer(t, ".:0 {\n bind 127.0.0.1\n file DIR/view0.db example.org\n}", dir),
		startServer(t, ".:0 {\n bind 127.0.0.1\n file DIR/view1.db example.org\n}", dir),
	}
	names := []string{"x.deleg.example.org.", "deleg.example.org.", "x.deleg2.example.org.", "deleg2.example.org.", "mx.example.org.", "mail.example.org.", "ns1.deleg2.example.org.", "MX.Example.org."}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeNS, dns.TypeDS, dns.TypeMX, dns.TypeANY}
	truncated, n := 0, 0
	for i, src := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.1.1")} {
		for _, qname := range names {
			for _, qtype := range types {
				for _, v := range []struct {
					network string
					size    uint16 // 0: no EDNS
					do      bool
				}{{"udp", 512, false}, {"udp", 512, true}, {"udp", 0, false}, {"udp", 1232, true}, {"tcp", 512, true}} {
					q := new(dns.Msg)
					q.SetQuestion(qname, qtype)
					if v.size > 0 {
						q.SetEdns0(v.size, v.do)
					}
					want := exchangeFrom(t, v.network, src, addrOf(refs[i], v.network), q)
					got := exchangeFrom(t, v.network, src, addrOf(bg, v.network), q)
					require.Equal(t, wire(want), wire(got), "pool p%d (source %s): %s %s %s bufsize %d do=%v", i, src, qname, dns.TypeToString[qtype], v.network, v.size, v.do)
					if want.Truncated {
						truncated++
					}
					n++
				}
			}
		}
	}
	// The glue and the MX target's addresses are the pool's: p1's for
	// p1's clients.
	for _, c := range []struct {
		qname string
		qtype uint16
		ns    int
		extra int
	}{{"x.deleg2.example.org.", dns.TypeA, 20, 40}, {"x.deleg.example.org.", dns.TypeA, 30, 60}, {"mx.example.org.", dns.TypeMX, -1, 80}} {
		q := new(dns.Msg)
		q.SetQuestion(c.qname, c.qtype)
		r := exchangeFrom(t, "tcp", netip.MustParseAddr("127.0.1.1"), bg.tcp, q)
		if c.ns >= 0 {
			require.Len(t, r.Ns, c.ns, "%s: referral:\n%s", c.qname, r)
		}
		require.Len(t, r.Extra, c.extra, "%s: additional:\n%s", c.qname, r)
		for _, rr := range r.Extra {
			require.Regexp(t, `198\.51\.100\.|2001:db8:1::`, rr.String(), "%s: p1's addresses only", c.qname)
		}
	}
	t.Logf("%d answers compared without ECS, %d of them truncated", n, truncated)
	require.Greater(t, truncated, 20, "the test must truncate replies")

	diffs, m := compareWithFile(t, bg, refs, names, types)
	require.Empty(t, diffs)
	t.Logf("%d answers compared with ECS", m)
}

// ECS source prefixes at the edges, each answer checked against the pool
// the spec's formula gives: /32 and /128 are keyed on the address masked
// to V4LEN / V6LEN and echoed with that scope; a source prefix of 0
// (0.0.0.0/0, ::/0, and family 0 as dig +subnet=0 sends) says nothing, so
// the source address masked to V4LEN is the key and the scope is 0. Names
// base answers get scope 0 whatever the prefix.
func TestDifferentialECSPrefixEdges(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"base.db": "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 h 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.254\nshared IN TXT \"base\"\n",
		"p0.db":   "$ORIGIN example.org.\n$TTL 300\npool IN TXT \"p0\"\n",
		"p1.db":   "$ORIGIN example.org.\n$TTL 300\npool IN TXT \"p1\"\n",
	})
	const name = "ecsprefix.test"
	weights := []uint64{1, 1}
	for _, tc := range []struct {
		sticky       string
		v4len, v6len int
	}{{"", 24, 56}, {"sticky subnet 20 48", 20, 48}} {
		t.Run(fmt.Sprintf("v4len %d v6len %d", tc.v4len, tc.v6len), func(t *testing.T) {
			bg := startServer(t, ".:0 {\n bind 127.0.0.1\n bluegreen example.org {\n name "+name+"\n admin off\n reload 0\n ttl 300 1\n base DIR/base.db\n pool p0 DIR/p0.db\n pool p1 DIR/p1.db\n weights p0 1 p1 1\n "+tc.sticky+"\n }\n}", dir)
			// check asks pool and shared TXT with ECS option e from src
			// and checks the pool, the scope and the echo.
			seen := map[string]int{}
			check := func(network string, src netip.Addr, e *dns.EDNS0_SUBNET, key netip.Addr, scope uint8) {
				t.Helper()
				want := fmt.Sprintf("p%d", refPool(name, key, weights))
				for _, qname := range []string{"pool.example.org.", "shared.example.org."} {
					q := new(dns.Msg)
					q.SetQuestion(qname, dns.TypeTXT)
					q.SetEdns0(1232, false)
					q.IsEdns0().Option = append(q.IsEdns0().Option, e)
					r := exchangeFrom(t, network, src, addrOf(bg, network), q)
					require.Equal(t, dns.RcodeSuccess, r.Rcode, "%s from %s ECS %v:\n%s", qname, src, e, r)
					require.Len(t, r.Answer, 1, "%s from %s ECS %v:\n%s", qname, src, e, r)
					got := r.Answer[0].(*dns.TXT).Txt[0]
					echo := replyECS(r)
					require.NotNil(t, echo, "%s from %s ECS %v: no ECS echoed", qname, src, e)
					require.Equal(t, e.Family, echo.Family, "family echoed")
					require.Equal(t, e.SourceNetmask, echo.SourceNetmask, "source prefix echoed")
					if qname == "shared.example.org." {
						require.Equal(t, "base", got)
						require.Zero(t, echo.SourceScope, "%s from %s ECS %v: base answers depend on no choice", qname, src, e)
						continue
					}
					require.Equal(t, want, got, "from %s ECS %v: key %s", src, e, key)
					require.Equal(t, scope, echo.SourceScope, "from %s ECS %v: scope", src, e)
					seen[fmt.Sprintf("%d/%s", e.SourceNetmask, got)]++
				}
			}
			lo := netip.MustParseAddr("127.0.0.1")
			for i := range 64 {
				// /32: the address masked to V4LEN is the key.
				a := netip.AddrFrom4([4]byte{11, byte(i * 7), byte(i * 37), byte(1 + i*3)})
				check("udp", lo, ecsOption(netip.PrefixFrom(a, 32)), netip.PrefixFrom(a, tc.v4len).Masked().Addr(), uint8(tc.v4len))
				// /128: masked to V6LEN.
				a6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i), byte(i * 13), byte(i * 29), byte(i * 53), 0, 0, 0, 0, 0, 0, 0, byte(1 + i)})
				check("udp", lo, ecsOption(netip.PrefixFrom(a6, 128)), netip.PrefixFrom(a6, tc.v6len).Masked().Addr(), uint8(tc.v6len))
				// Prefix 0, three ways: the source decides, scope 0.
				src := netip.AddrFrom4([4]byte{127, byte(i * 4), byte(i * 37), byte(1 + i)})
				key := netip.PrefixFrom(src, tc.v4len).Masked().Addr()
				network := []string{"udp", "tcp"}[i%2]
				check(network, src, ecsOption(netip.MustParsePrefix("0.0.0.0/0")), key, 0)
				check(network, src, ecsOption(netip.MustParsePrefix("::/0")), key, 0)
				check(network, src, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET}, key, 0)
			}
			t.Logf("answers by source prefix and pool: %v", seen)
			// Each kind of prefix reached both pools, so the checks tell
			// the keys apart.
			for _, k := range []string{"32/p0", "32/p1", "128/p0", "128/p1", "0/p0", "0/p1"} {
				require.Positive(t, seen[k], "no answer %s: %v", k, seen)
			}
		})
	}
}

// CNAME chains longer than the file plugin's 8 hops and a loop across
// base and a pool, where the pools differ: p0 completes base's links into
// a chain of 12 and closes the loop, p1 short-cuts the chain and ends the
// loop. (TestDifferentialFile's "chains" scenario has the same chain and
// loop in both pools.) Each pool's clients get what file serves from the
// pool's view.
func TestDifferentialCNAMEChainsDifferingPools(t *testing.T) {
	dir := t.TempDir()
	base := "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 h 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.254\nc12 IN A 192.0.2.12\nloop1 IN CNAME loop2\n"
	p0 := "$ORIGIN example.org.\n$TTL 300\nloop2 IN CNAME loop1\n"
	for i := 0; i < 12; i += 2 {
		base += fmt.Sprintf("c%d IN CNAME c%d\n", i, i+1)
		p0 += fmt.Sprintf("c%d IN CNAME c%d\n", i+1, i+2)
	}
	p1 := "$ORIGIN example.org.\n$TTL 300\nloop2 IN A 192.0.2.2\nc1 IN CNAME c10\nc11 IN CNAME c12\n"
	writeFiles(t, dir, map[string]string{"base.db": base, "p0.db": p0, "p1.db": p1, "view0.db": base + p0, "view1.db": base + p1})
	bg := startServer(t, ".:0 {\n bind 127.0.0.1\n bluegreen example.org {\n admin off\n reload 0\n ttl 300 1\n base DIR/base.db\n pool p0 DIR/p0.db\n pool p1 DIR/p1.db\n pin p0 10.0.0.0/24\n pin p1 10.0.1.0/24\n }\n}", dir)
	refs := []*server{
		startServer(t, ".:0 {\n bind 127.0.0.1\n file DIR/view0.db example.org\n}", dir),
		startServer(t, ".:0 {\n bind 127.0.0.1\n file DIR/view1.db example.org\n}", dir),
	}
	var names []string
	for i := range 13 {
		names = append(names, fmt.Sprintf("c%d.example.org.", i))
	}
	names = append(names, "loop1.example.org.", "loop2.example.org.", "LOOP1.example.org.", "x.c0.example.org.")
	diffs, n := compareWithFile(t, bg, refs, names, diffTypes)
	t.Logf("%d answers compared, %d differ", n, len(diffs))
	for _, d := range diffs {
		t.Log(d)
	}
	require.Empty(t, diffs)
}
