package test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// poolNum is the number a pool's records carry (10.N.x.x, 2001:db8:N::).
var poolNum = map[string]int{"blue": 1, "green": 2, "red": 3}

// answerCase is one query and, for a client answered from pool P, the
// records it must get. In want, "P" stands for the pool's name and "N" for
// its number; TTLs are the plugin's default cap of 30 (records have 60 or
// 300).
type answerCase struct {
	qname    string
	qtype    uint16
	rcode    int
	answer   []string
	extra    []string // records the additional section must hold (OPT aside)
	soa      bool     // a negative answer: one SOA in the authority section
	switched bool     // the answer depends on the pool (ECS scope set)
}

var answerCases = []answerCase{
	{qname: "www", qtype: dns.TypeA, answer: []string{"www.example.org. 30 IN A 10.N.0.1", "www.example.org. 30 IN A 10.N.0.2"}, switched: true},
	{qname: "www", qtype: dns.TypeAAAA, answer: []string{"www.example.org. 30 IN AAAA 2001:db8:N::1"}, switched: true},
	{qname: "pool", qtype: dns.TypeTXT, answer: []string{`pool.example.org. 30 IN TXT "P"`}, switched: true},
	// In-zone CNAME chains stay inside the pool.
	{qname: "api", qtype: dns.TypeA, answer: []string{"api.example.org. 30 IN CNAME www.example.org.", "www.example.org. 30 IN A 10.N.0.1", "www.example.org. 30 IN A 10.N.0.2"}, switched: true},
	{qname: "svc", qtype: dns.TypeA, answer: []string{"svc.example.org. 30 IN CNAME svc-P.example.org.", "svc-P.example.org. 30 IN A 10.N.0.10"}, switched: true},
	{qname: "svc", qtype: dns.TypeCNAME, answer: []string{"svc.example.org. 30 IN CNAME svc-P.example.org."}, switched: true},
	{qname: "chain1", qtype: dns.TypeA, answer: []string{
		"chain1.example.org. 30 IN CNAME chain2.example.org.", "chain2.example.org. 30 IN CNAME svc.example.org.",
		"svc.example.org. 30 IN CNAME svc-P.example.org.", "svc-P.example.org. 30 IN A 10.N.0.10"}, switched: true},
	// A base CNAME to a switched name: the answer depends on the pool.
	{qname: "alias", qtype: dns.TypeA, answer: []string{"alias.example.org. 30 IN CNAME www.example.org.", "www.example.org. 30 IN A 10.N.0.1", "www.example.org. 30 IN A 10.N.0.2"}, switched: true},
	// A CNAME out of the zone, resolved through the server's plugin chain
	// (the file plugin serves example.net in the same server block); the
	// target's TTL is capped too (60 in net.db).
	{qname: "ext", qtype: dns.TypeA, answer: []string{"ext.example.org. 30 IN CNAME P.example.net.", "P.example.net. 30 IN A 10.N.100.1"}, switched: true},
	{qname: "_http._tcp.srv", qtype: dns.TypeSRV, answer: []string{"_http._tcp.srv.example.org. 30 IN SRV 10 50 80 host-P.example.org."}, extra: []string{"host-P.example.org. 30 IN A 10.N.0.20"}, switched: true},
	{qname: "mx", qtype: dns.TypeMX, answer: []string{"mx.example.org. 30 IN MX 10 mx-P.example.org."}, extra: []string{"mx-P.example.org. 30 IN A 10.N.0.25"}, switched: true},
	// Wildcards, as the file plugin does them.
	{qname: "foo.wild", qtype: dns.TypeA, answer: []string{"foo.wild.example.org. 30 IN A 10.N.9.9"}, switched: true},
	{qname: "a.b.wild", qtype: dns.TypeTXT, answer: []string{`a.b.wild.example.org. 30 IN TXT "P"`}, switched: true},
	// NODATA in every pool's view, with base's SOA: the same answer
	// whichever pool, so not switched (scope 0).
	{qname: "foo.wild", qtype: dns.TypeAAAA, soa: true},
	{qname: "www", qtype: dns.TypeTXT, soa: true},
	// A switched name only the other pool has: NXDOMAIN (see onlyCase).
	// Base names: the same for every pool, no choice made.
	{qname: "mail", qtype: dns.TypeA, answer: []string{"mail.example.org. 30 IN A 192.0.2.25"}},
	{qname: "shared", qtype: dns.TypeTXT, answer: []string{`shared.example.org. 30 IN TXT "base"`}},
	{qname: "example.org", qtype: dns.TypeMX, answer: []string{"example.org. 30 IN MX 10 mail.example.org."}, extra: []string{"mail.example.org. 30 IN A 192.0.2.25"}},
	{qname: "x.common", qtype: dns.TypeA, answer: []string{"x.common.example.org. 30 IN A 192.0.2.99"}},
	{qname: "mail", qtype: dns.TypeAAAA, soa: true},
	{qname: "nope", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
	{qname: "x.nope", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
}

// name returns the case's query name.
func (c answerCase) name() string {
	if c.qname == "example.org" {
		return "example.org."
	}
	return c.qname + ".example.org."
}

// expand fills in the pool name and number in a case's records and
// normalises them to miekg/dns's text form.
func expand(t testing.TB, rrs []string, pool string) []string {
	t.Helper()
	out := make([]string, 0, len(rrs))
	for _, s := range rrs {
		s = strings.ReplaceAll(s, "P", pool)
		s = strings.ReplaceAll(s, ".N.", fmt.Sprintf(".%d.", poolNum[pool]))
		s = strings.ReplaceAll(s, ":N:", fmt.Sprintf(":%d:", poolNum[pool]))
		rr, err := dns.NewRR(s)
		require.NoError(t, err, s)
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

// checkAnswer checks reply r to case c for a client of pool.
func checkAnswer(t testing.TB, c answerCase, pool string, ecs netip.Prefix, r *dns.Msg) {
	t.Helper()
	name := c.name()
	what := fmt.Sprintf("%s %s for a %s client (ECS %v)", name, dns.TypeToString[c.qtype], pool, ecs)
	require.Equal(t, dns.RcodeToString[c.rcode], dns.RcodeToString[r.Rcode], "%s: rcode\n%s", what, r)
	require.True(t, r.Authoritative, "%s: AA not set", what)
	require.False(t, r.Truncated, "%s: TC set", what)
	if got := onePool(t, r); got != "" {
		require.Equal(t, pool, got, "%s: records of another pool\n%s", what, r)
	}
	want := expand(t, c.answer, pool)
	if len(want) == 0 {
		want = nil
	}
	require.Equal(t, want, rrStrings(r.Answer), "%s: answer section", what)
	for _, e := range expand(t, c.extra, pool) {
		require.Contains(t, rrStrings(r.Extra), e, "%s: additional section", what)
	}
	if c.soa {
		require.Len(t, r.Ns, 1, "%s: authority section\n%s", what, r)
		soa, ok := r.Ns[0].(*dns.SOA)
		require.True(t, ok, "%s: want an SOA in authority, got %s", what, r.Ns[0])
		require.Equal(t, "example.org.", soa.Hdr.Name, what)
	}
	for _, rr := range r.Answer {
		// The base's own www record must never show: www is switched.
		if a, ok := rr.(*dns.A); ok {
			require.NotEqual(t, "192.0.2.1", a.A.String(), "%s: base record of a switched name", what)
		}
	}
	if ecs.IsValid() {
		e := replyECS(r)
		require.NotNil(t, e, "%s: ECS not echoed\n%s", what, r)
		wantScope := 0
		if c.switched {
			wantScope = min(ecs.Bits(), map[bool]int{true: 24, false: 56}[ecs.Addr().Is4()])
		}
		require.Equal(t, wantScope, int(e.SourceScope), "%s: ECS scope", what)
	} else {
		require.Nil(t, replyECS(r), "%s: ECS in the reply to a query without it", what)
	}
}

// clientSet is the clients the answer tests use: IPv4 /24s, IPv6 /56s
// and no ECS at all (the source address 127.0.0.1 decides).
func clientSet() []netip.Prefix {
	var cs []netip.Prefix
	for i := range 48 {
		cs = append(cs, subnet(i*7919))
	}
	for i := range 16 {
		cs = append(cs, netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x:%x00::/56", 0x100+i, i)))
	}
	cs = append(cs, netip.MustParsePrefix("198.51.100.0/16").Masked(), netip.MustParsePrefix("2001:db8:77::/48"))
	return append(cs, netip.Prefix{})
}

// Every answer comes from the pool the client is mapped to, over UDP and
// TCP, for every record type, chain and wildcard; base names come from base.
func TestAnswersFromOnePool(t *testing.T) {
	dir := zoneDir(t)
	s := startServer(t, bgCorefile(`weights blue 50 green 50
		name answers.test`), dir)

	both(t, s, func(t *testing.T, network, addr string) {
		seen := map[string]int{}
		for _, ecs := range clientSet() {
			r := exchange(t, network, addr, query("pool.example.org", dns.TypeTXT, ecs))
			pool := onePool(t, r)
			require.NotEmpty(t, pool, "no pool for client %v:\n%s", ecs, r)
			seen[pool]++
			for _, c := range answerCases {
				checkAnswer(t, c, pool, ecs, exchange(t, network, addr, query(c.name(), c.qtype, ecs)))
			}
			// A switched name only one pool holds: the other pool's
			// clients get NXDOMAIN, not the name from the other pool.
			for _, other := range []string{"blue", "green"} {
				c := answerCase{qname: "only-" + other, qtype: dns.TypeA, switched: true}
				if other == pool {
					c.answer = []string{"only-P.example.org. 30 IN A 10.N.0.30"}
				} else {
					c.rcode, c.soa = dns.RcodeNameError, true
				}
				checkAnswer(t, c, pool, ecs, exchange(t, network, addr, query(c.name(), c.qtype, ecs)))
			}
		}
		// The test means nothing unless both pools answered some client.
		assert.Positive(t, seen["blue"], "no client got blue: %v", seen)
		assert.Positive(t, seen["green"], "no client got green: %v", seen)
	})
}

// Names no pool holds can still have answers that depend on the pool: an
// empty non-terminal above a name only blue holds (NODATA for blue, NXDOMAIN
// for green), names below a delegation only blue has (a referral for blue)
// and names below a DNAME only green has. Their ECS scope must say so, or a resolver caches one pool's
// answer for everyone. A base name with pool names below it depends on no
// choice.
func TestPoolDependentNames(t *testing.T) {
	dir := zoneDir(t)
	s := startServer(t, bgCorefile(`weights blue 50 green 50
		name dependent.test`), dir)
	both(t, s, func(t *testing.T, network, addr string) {
		seen := map[string]bool{}
		for i := range 24 {
			ecs := subnet(i * 977)
			pool := onePool(t, exchange(t, network, addr, query("pool.example.org", dns.TypeTXT, ecs)))
			seen[pool] = true
			for _, tc := range []struct {
				qname string
				rcode map[string]int // by pool
				aa    map[string]bool
				scope int
				n     map[string]int // answer records, by pool
			}{
				{"ent", map[string]int{"blue": dns.RcodeSuccess, "green": dns.RcodeNameError}, map[string]bool{"blue": true, "green": true}, 24, nil},
				{"y.sub", map[string]int{"blue": dns.RcodeSuccess, "green": dns.RcodeNameError}, map[string]bool{"blue": false, "green": true}, 24, nil},
				{"a.legacy", map[string]int{"blue": dns.RcodeNameError, "green": dns.RcodeSuccess}, map[string]bool{"blue": true, "green": true}, 24, map[string]int{"green": 3}}, // DNAME, CNAME, A
				{"svcroot", map[string]int{"blue": dns.RcodeSuccess, "green": dns.RcodeSuccess}, map[string]bool{"blue": true, "green": true}, 0, map[string]int{"blue": 1, "green": 1}},
				{"v1.svcroot", map[string]int{"blue": dns.RcodeSuccess, "green": dns.RcodeSuccess}, map[string]bool{"blue": true, "green": true}, 24, map[string]int{"blue": 1, "green": 1}},
			} {
				r := exchange(t, network, addr, query(tc.qname+".example.org", dns.TypeA, ecs))
				what := fmt.Sprintf("%s A for a %s client", tc.qname, pool)
				require.Equal(t, dns.RcodeToString[tc.rcode[pool]], dns.RcodeToString[r.Rcode], "%s\n%s", what, r)
				require.Equal(t, tc.aa[pool], r.Authoritative, "%s: AA", what)
				require.Len(t, r.Answer, tc.n[pool], "%s: answer\n%s", what, r)
				if p := onePool(t, r); p != "" {
					require.Equal(t, pool, p, "%s\n%s", what, r)
				}
				e := replyECS(r)
				require.NotNil(t, e, what)
				require.Equal(t, tc.scope, int(e.SourceScope), "%s: ECS scope\n%s", what, r)
			}
		}
		require.True(t, seen["blue"] && seen["green"], "both pools: %v", seen)
	})
}

// Zone transfers of a switch are refused: there is no one zone to send.
func TestTransferRefused(t *testing.T) {
	s := startServer(t, bgCorefile(`weights blue 50 green 50
		name axfr.test`), zoneDir(t))
	for _, qt := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
		r := exchange(t, "tcp", s.tcp, query("example.org", qt, netip.Prefix{}))
		assert.Equal(t, "REFUSED", dns.RcodeToString[r.Rcode], "%s", dns.TypeToString[qt])
		assert.Empty(t, r.Answer, "%s", dns.TypeToString[qt])
	}
}

// A query without EDNS and a query with DO set get CoreDNS's usual
// handling; DO is reflected in the reply's OPT, with or without ECS.
func TestDOBit(t *testing.T) {
	dir := zoneDir(t)
	s := startServer(t, bgCorefile(`weights blue 50 green 50
		name do.test`), dir)
	both(t, s, func(t *testing.T, network, addr string) {
		for _, ecs := range []netip.Prefix{{}, subnet(1)} {
			for _, do := range []bool{false, true} {
				m := query("www.example.org", dns.TypeA, ecs)
				if do {
					m.IsEdns0().SetDo()
				}
				r := exchange(t, network, addr, m)
				require.Equal(t, dns.RcodeSuccess, r.Rcode)
				opt := r.IsEdns0()
				require.NotNil(t, opt, "ECS %v DO %v: no OPT in the reply", ecs, do)
				assert.Equal(t, do, opt.Do(), "ECS %v: DO in reply", ecs)
				assert.Len(t, r.Answer, 2)
				onePool(t, r)
			}
		}
		// No EDNS at all: no OPT back.
		m := new(dns.Msg)
		m.SetQuestion("www.example.org.", dns.TypeA)
		r := exchange(t, network, addr, m)
		assert.Nil(t, r.IsEdns0(), "OPT in the reply to a query without EDNS")
		assert.Len(t, r.Answer, 2)
	})
}

// A large RRset is truncated over UDP to the client's buffer (TC set, what
// is left from one pool) and served whole over TCP, from the same pool.
func TestTruncation(t *testing.T) {
	dir := zoneDir(t)
	s := startServer(t, bgCorefile(`weights blue 50 green 50
		name tc.test`), dir)
	for i := range 16 {
		ecs := subnet(i * 31)
		tcp := exchange(t, "tcp", s.tcp, query("big.example.org", dns.TypeA, ecs))
		require.False(t, tcp.Truncated, "TC over TCP")
		require.Len(t, tcp.Answer, 80, "whole RRset over TCP")
		pool := onePool(t, tcp)
		require.NotEmpty(t, pool)

		small := query("big.example.org", dns.TypeA, ecs)
		small.IsEdns0().SetUDPSize(512)
		r := exchange(t, "udp", s.udp, small)
		require.True(t, r.Truncated, "client %v: TC not set for %d answers in 512 bytes", ecs, len(r.Answer))
		require.Less(t, len(r.Answer), 80)
		e := replyECS(r)
		require.NotNil(t, e, "client %v: ECS dropped from the truncated reply", ecs)
		require.Equal(t, uint8(24), e.SourceScope, "client %v: scope in the truncated reply", ecs)
		if p := onePool(t, r); p != "" {
			require.Equal(t, pool, p, "client %v: UDP and TCP answered from different pools", ecs)
		}
		r.Compress = true
		packed, err := r.Pack()
		require.NoError(t, err)
		require.LessOrEqual(t, len(packed), 512, "truncated reply larger than the buffer")

		// Without EDNS the limit is 512 bytes too.
		plain := new(dns.Msg)
		plain.SetQuestion("big.example.org.", dns.TypeA)
		r = exchange(t, "udp", s.udp, plain)
		require.True(t, r.Truncated, "TC not set without EDNS")
		onePool(t, r)

		big := query("big.example.org", dns.TypeA, ecs)
		big.IsEdns0().SetUDPSize(4096)
		r = exchange(t, "udp", s.udp, big)
		require.False(t, r.Truncated, "TC set with a 4096-byte buffer")
		require.Len(t, r.Answer, 80)
		require.Equal(t, pool, onePool(t, r))
	}
}

// ECS is echoed with the scope the choice depended on: the sticky prefix
// (or the shorter source prefix) for switched names, 0 for base names and
// in the ip and off modes.
func TestECSScope(t *testing.T) {
	dir := zoneDir(t)
	type check struct {
		ecs   string
		qname string
		scope int
	}
	for _, tc := range []struct {
		sticky string
		checks []check
	}{
		{"", []check{ // default: subnet 24 56
			{"203.0.113.0/24", "www", 24},
			{"203.0.113.7/32", "www", 24},
			{"203.0.0.0/16", "www", 16},
			{"0.0.0.0/0", "www", 0},
			{"2001:db8:5:600::/56", "www", 56},
			{"2001:db8:5:6::1/128", "www", 56},
			{"2001:db8::/32", "www", 32},
			{"203.0.113.0/24", "alias", 24}, // base CNAME into a switched name
			{"203.0.113.0/24", "mail", 0},   // base name
			{"203.0.113.0/24", "nope", 0},   // NXDOMAIN, no pool involved
			{"2001:db8:5:6::1/128", "mail", 0},
		}},
		{"sticky subnet 16 48", []check{
			{"203.0.113.0/24", "www", 16},
			{"203.0.0.0/12", "www", 12},
			{"2001:db8:5:600::/56", "www", 48},
			{"203.0.113.0/24", "mail", 0},
		}},
		{"sticky ip", []check{
			{"203.0.113.0/24", "www", 0},
			{"2001:db8:5:600::/56", "www", 0},
		}},
		{"sticky off", []check{
			{"203.0.113.0/24", "www", 0},
		}},
	} {
		t.Run(tc.sticky, func(t *testing.T) {
			s := startServer(t, bgCorefile(`weights blue 50 green 50
				name ecs.test
				`+tc.sticky), dir)
			both(t, s, func(t *testing.T, network, addr string) {
				for _, c := range tc.checks {
					p := netip.MustParsePrefix(c.ecs)
					r := exchange(t, network, addr, query(c.qname+".example.org", dns.TypeA, p))
					e := replyECS(r)
					require.NotNil(t, e, "%s %s: ECS not echoed\n%s", c.ecs, c.qname, r)
					assert.Equal(t, c.scope, int(e.SourceScope), "%s %s: scope", c.ecs, c.qname)
					assert.Equal(t, p.Bits(), int(e.SourceNetmask), "%s: source prefix echoed", c.ecs)
					wantFamily := uint16(1)
					if p.Addr().Is6() {
						wantFamily = 2
					}
					assert.Equal(t, wantFamily, e.Family, "%s: family", c.ecs)
					got, ok := netip.AddrFromSlice(e.Address)
					require.True(t, ok)
					assert.Equal(t, p.Masked().Addr(), got.Unmap(), "%s: address echoed", c.ecs)
				}
			})
		})
	}
}

// An ECS option with family 0 and source prefix 0 (what dig +subnet=0
// sends: "do not use my subnet") is legal: the client's source address
// decides, and the reply echoes the option with scope 0.
func TestECSFamilyZero(t *testing.T) {
	dir := zoneDir(t)
	s := startServer(t, bgCorefile(`weights blue 50 green 50
		name ecs0.test`), dir)
	both(t, s, func(t *testing.T, network, addr string) {
		plain := exchange(t, network, addr, query("pool.example.org", dns.TypeTXT, netip.Prefix{}))
		m := query("pool.example.org", dns.TypeTXT, netip.Prefix{})
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET})
		r := exchange(t, network, addr, m)
		require.Equal(t, dns.RcodeSuccess, r.Rcode, "%s", r)
		assert.Equal(t, onePool(t, plain), onePool(t, r), "the source address decides")
		e := replyECS(r)
		require.NotNil(t, e, "ECS not echoed:\n%s", r)
		assert.Zero(t, e.SourceScope, "scope")
		assert.Zero(t, e.SourceNetmask, "source prefix")
	})
}

// The answer for a CNAME target outside the zone comes through the
// server's plugin chain, here a template plugin in the same server block,
// and the chain's pool part stays in the client's pool.
func TestExternalCNAMEThroughTemplate(t *testing.T) {
	dir := zoneDir(t)
	s := startServer(t, `.:0 {
	bind 127.0.0.1
	bluegreen example.org {
		admin off
		base DIR/base.db
		pool blue DIR/blue.db
		pool green DIR/green.db
		weights blue 50 green 50
		name extcname.test
	}
	template IN A example.net {
		match ^blue\.example\.net\.$
		answer "{{ .Name }} 45 IN A 10.1.200.1"
		fallthrough
	}
	template IN A example.net {
		match ^green\.example\.net\.$
		answer "{{ .Name }} 45 IN A 10.2.200.1"
	}
}`, dir)
	both(t, s, func(t *testing.T, network, addr string) {
		seen := map[string]bool{}
		for i := range 32 {
			ecs := subnet(i * 101)
			r := exchange(t, network, addr, query("ext.example.org", dns.TypeA, ecs))
			require.Equal(t, dns.RcodeSuccess, r.Rcode, "%s", r)
			require.Len(t, r.Answer, 2, "CNAME and the target's A\n%s", r)
			cname, ok := r.Answer[0].(*dns.CNAME)
			require.True(t, ok, "first record is the CNAME: %s", r.Answer[0])
			a, ok := r.Answer[1].(*dns.A)
			require.True(t, ok, "second record is the target's A: %s", r.Answer[1])
			require.Equal(t, cname.Target, a.Hdr.Name)
			pool := onePool(t, r)
			require.NotEmpty(t, pool)
			seen[pool] = true
		}
		assert.True(t, seen["blue"] && seen["green"], "both pools should answer some client: %v", seen)
	})
}
