package bluegreen

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/coredns/coredns/plugin/metadata"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// Zones where base names point at switched names: an MX or SRV target, a
// delegation's glue. The file plugin adds the target's addresses to the
// additional section, so the answer depends on the pool even though its
// owner names are base's.
const additionalBaseDB = `$ORIGIN example.org.
$TTL 300
@          IN SOA   ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60
@          IN NS    ns1.example.org.
@          IN MX    10 www.example.org.
ns1        IN A     127.0.0.1
mail       IN A     192.0.2.25
basemx     IN MX    10 mail.example.org.
_sip._tcp  IN SRV   10 5 5060 WWW.example.org.
_ldap._tcp IN SRV   0 0 389 mail.example.org.
bluemx     IN MX    10 onlyblue.example.org.
_blue._tcp IN SRV   0 0 443 OnlyBlue.example.org.
dsub       IN NS    ns.dsub.example.org.
osub       IN NS    www.example.org.
`

const additionalBlueDB = `$ORIGIN example.org.
$TTL 60
www        IN A     192.0.2.10
www        IN A     192.0.2.11
www        IN AAAA  2001:db8::10
onlyblue   IN A     192.0.2.40
ns.dsub    IN A     192.0.2.53
`

const additionalGreenDB = `$ORIGIN example.org.
$TTL 60
www        IN A     198.51.100.10
www        IN A     198.51.100.11
www        IN AAAA  2001:db8::20
`

// extraAddrs returns the addresses in a reply's additional section, sorted.
func extraAddrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Extra {
		switch a := rr.(type) {
		case *dns.A:
			out = append(out, a.A.String())
		case *dns.AAAA:
			out = append(out, a.AAAA.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestServeDNSScopeAdditional: an answer whose additional section comes from
// the selected pool is switched: the ECS scope is the subnet length, it is
// counted under the pool, and every client gets exactly its own pool's
// addresses. An answer whose additional section comes from base has scope
// 0, like any base answer.
func TestServeDNSScopeAdditional(t *testing.T) {
	dir := writeZones(t, map[string]string{"base.db": additionalBaseDB, "blue.db": additionalBlueDB, "green.db": additionalGreenDB})
	b := newTestBluegreen(t, dir, pools3+"weights blue 1 green 1")
	weights := []uint64{1, 1}

	www := map[string][]string{
		"blue":  {"192.0.2.10", "192.0.2.11", "2001:db8::10"},
		"green": {"198.51.100.10", "198.51.100.11", "2001:db8::20"},
	}
	mail := map[string][]string{"blue": {"192.0.2.25"}, "green": {"192.0.2.25"}}
	tests := []struct {
		qname    string
		qtype    uint16
		switched bool
		extra    map[string][]string // by the pool the client gets
	}{
		{"example.org.", dns.TypeMX, true, www},
		{"_sip._tcp.example.org.", dns.TypeSRV, true, www},
		// A target only blue holds: blue's clients get its address,
		// green's none, and both depend on the choice.
		{"bluemx.example.org.", dns.TypeMX, true, map[string][]string{"blue": {"192.0.2.40"}, "green": nil}},
		{"_blue._tcp.example.org.", dns.TypeSRV, true, map[string][]string{"blue": {"192.0.2.40"}, "green": nil}},
		// A base delegation whose glue only blue holds.
		{"host.dsub.example.org.", dns.TypeA, true, map[string][]string{"blue": {"192.0.2.53"}, "green": nil}},
		// A referral to a switched name outside the cut gets no glue.
		{"host.osub.example.org.", dns.TypeA, false, nil},
		// Targets in base: nothing depends on the choice.
		{"basemx.example.org.", dns.TypeMX, false, mail},
		{"_ldap._tcp.example.org.", dns.TypeSRV, false, mail},
		{"example.org.", dns.TypeNS, false, map[string][]string{"blue": {"127.0.0.1"}, "green": {"127.0.0.1"}}},
		{"nowhere.example.org.", dns.TypeMX, false, nil},
	}
	// Client subnets that reach both pools.
	seen := map[string]bool{}
	for n := range 32 {
		seen[expectedPool(b.cfg.name, weights, netip.AddrFrom4([4]byte{10, byte(n), 0, 0}))] = true
	}
	require.Len(t, seen, 2, "the test's subnets must reach both pools")
	for i, tc := range tests {
		for n := range 32 {
			subnet := netip.AddrFrom4([4]byte{10, byte(n), 0, 0})
			want := expectedPool(b.cfg.name, weights, subnet)
			ctx := metadata.ContextWithMetadata(context.Background())
			m, _, err := serve(ctx, b, ecs(t, tc.qname, tc.qtype, subnet.String()+"/24"), "192.0.2.1")
			require.NoError(t, err)
			require.NotNil(t, m)
			e := replyECS(m)
			require.NotNil(t, e, "Test %d/%d: expected ECS echoed", i, n)
			wantScope, wantLabel := uint8(0), baseLabel
			if tc.switched {
				wantScope, wantLabel = 24, want
			}
			label := ""
			if f := metadata.ValueFunc(ctx, "bluegreen/pool"); f != nil {
				label = f()
			}
			got := extraAddrs(m)
			if e.SourceScope != wantScope || !slices.Equal(got, tc.extra[want]) || label != wantLabel {
				t.Errorf("Test %d/%d: expected scope %d, %s's additional records %v and pool label %q for %s %s from %s/24, got scope %d, %v and %q",
					i, n, wantScope, want, tc.extra[want], wantLabel, tc.qname, dns.TypeToString[tc.qtype], subnet, e.SourceScope, got, label)
				break // one message per case
			}
		}
	}
}

// TestServeDNSScopeApex: the apex SOA and NS that base provides to every
// view do not make an answer switched, even when a pool holds other
// records at the apex; a name absent from everything stays a base answer
// (scope 0, passed on with fallthrough).
func TestServeDNSScopeApex(t *testing.T) {
	dir := writeZones(t, map[string]string{
		"base.db":  additionalBaseDB,
		"blue.db":  additionalBlueDB + "@ IN A 192.0.2.1\n",
		"green.db": additionalGreenDB + "@ IN A 198.51.100.1\n",
	})
	b := newTestBluegreen(t, dir, pools3+"weights blue 1 green 1")
	fall := newTestBluegreen(t, dir, pools3+"weights blue 1 green 1\nfallthrough")
	tests := []struct {
		qname string
		qtype uint16
		scope uint8
	}{
		{"example.org.", dns.TypeA, 24},
		{"nowhere.example.org.", dns.TypeA, 0},   // NXDOMAIN: base's SOA
		{"mail.example.org.", dns.TypeA, 0},      // base's NS in authority
		{"mail.example.org.", dns.TypeAAAA, 0},   // NODATA: base's SOA
		{"example.org.", dns.TypeSOA, 0},         // base's SOA in every view, though pools hold apex records
		{"basemx.example.org.", dns.TypeMX, 0},   // base target
		{"www.example.org.", dns.TypeA, 24},      // switched name
		{"www.example.org.", dns.TypeTXT, 0},     // NODATA with base's SOA in every view
		{"onlyblue.example.org.", dns.TypeA, 24}, // NXDOMAIN for green's clients
	}
	for i, tc := range tests {
		m, _, err := serve(context.Background(), b, ecs(t, tc.qname, tc.qtype, "10.1.0.0/24"), "192.0.2.1")
		require.NoError(t, err)
		e := replyECS(m)
		require.NotNil(t, e, "Test %d: expected ECS echoed", i)
		if e.SourceScope != tc.scope {
			t.Errorf("Test %d: expected scope %d for %s %s, got %d", i, tc.scope, tc.qname, dns.TypeToString[tc.qtype], e.SourceScope)
		}
	}
	m, rcode, err := serve(context.Background(), fall, ecs(t, "nowhere.example.org.", dns.TypeA, "10.1.0.0/24"), "192.0.2.1")
	require.NoError(t, err)
	if rcode != nextRcode || m != nil {
		t.Errorf("expected a name absent from everything to be passed on, got rcode %d, reply %v", rcode, m)
	}
}

// TestServeDNSScopeNoBase: without base the apex comes from the pools; when
// their SOA or NS records differ, answers carrying them depend on the
// choice, negative answers too (their SOA differs). A name absent from
// every pool is still passed on by fallthrough.
func TestServeDNSScopeNoBase(t *testing.T) {
	dir := writeZones(t, map[string]string{
		"blue.db":  "$ORIGIN example.org.\n@ IN SOA ns1 h 1 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\nwww IN A 192.0.2.10\n",
		"green.db": "$ORIGIN example.org.\n@ IN SOA ns2 h 2 7200 3600 1209600 60\n@ IN NS ns2\nns2 IN A 198.51.100.1\nwww IN A 198.51.100.10\n",
		"same.db":  "$ORIGIN example.org.\n@ IN SOA ns1 h 1 7200 3600 1209600 60\n@ IN NS ns1\nwww IN A 198.51.100.10\n",
	})
	differ := newTestBluegreen(t, dir, "pool blue blue.db\npool green green.db\nweights blue 1 green 1")
	fall := newTestBluegreen(t, dir, "pool blue blue.db\npool green green.db\nweights blue 1 green 1\nfallthrough")
	same := newTestBluegreen(t, dir, "pool blue blue.db\npool green same.db\nweights blue 1 green 1")
	tests := []struct {
		b     *Bluegreen
		qname string
		qtype uint16
		scope uint8
	}{
		{differ, "example.org.", dns.TypeSOA, 24},
		{differ, "example.org.", dns.TypeNS, 24},
		{differ, "www.example.org.", dns.TypeA, 24},
		{differ, "nowhere.example.org.", dns.TypeA, 24}, // each pool's own SOA
		{same, "example.org.", dns.TypeSOA, 0},
		{same, "nowhere.example.org.", dns.TypeA, 0},
		{same, "www.example.org.", dns.TypeA, 24},
	}
	for i, tc := range tests {
		m, _, err := serve(context.Background(), tc.b, ecs(t, tc.qname, tc.qtype, "10.1.0.0/24"), "192.0.2.1")
		require.NoError(t, err)
		e := replyECS(m)
		require.NotNil(t, e, "Test %d: expected ECS echoed", i)
		if e.SourceScope != tc.scope {
			t.Errorf("Test %d: expected scope %d for %s %s, got %d", i, tc.scope, tc.qname, dns.TypeToString[tc.qtype], e.SourceScope)
		}
	}
	m, rcode, err := serve(context.Background(), fall, query("nowhere.example.org.", dns.TypeA), "192.0.2.1")
	require.NoError(t, err)
	if rcode != nextRcode || m != nil {
		t.Errorf("expected a name absent from every pool to be passed on, got rcode %d, reply %v", rcode, m)
	}
}

// TestServeDNSScopeSwitchedNS: when the apex NS target is a switched name,
// the NS answer carries its addresses and is switched; other answers carry
// the apex NS without glue and are not.
func TestServeDNSScopeSwitchedNS(t *testing.T) {
	dir := writeZones(t, map[string]string{
		"base.db":  "$ORIGIN example.org.\n@ IN SOA ns1 h 1 7200 3600 1209600 60\n@ IN NS ns1\nmail IN A 192.0.2.25\n",
		"blue.db":  "$ORIGIN example.org.\nns1 IN A 192.0.2.1\n",
		"green.db": "$ORIGIN example.org.\nns1 IN A 198.51.100.1\n",
	})
	b := newTestBluegreen(t, dir, pools3+"weights green 1")
	tests := []struct {
		qname string
		qtype uint16
		scope uint8
		extra []string
	}{
		{"example.org.", dns.TypeNS, 24, []string{"198.51.100.1"}},
		{"mail.example.org.", dns.TypeA, 0, nil},
		{"mail.example.org.", dns.TypeTXT, 0, nil},
		{"example.org.", dns.TypeSOA, 0, nil},
	}
	for i, tc := range tests {
		m, _, err := serve(context.Background(), b, ecs(t, tc.qname, tc.qtype, "10.1.0.0/24"), "192.0.2.1")
		require.NoError(t, err)
		e := replyECS(m)
		require.NotNil(t, e, "Test %d: expected ECS echoed", i)
		if got := extraAddrs(m); e.SourceScope != tc.scope || !slices.Equal(got, tc.extra) {
			t.Errorf("Test %d: expected scope %d and additional %v for %s %s, got %d and %v", i, tc.scope, tc.extra, tc.qname, dns.TypeToString[tc.qtype], e.SourceScope, got)
		}
	}
}
