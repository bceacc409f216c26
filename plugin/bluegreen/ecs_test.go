package bluegreen

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/coredns/coredns/plugin/test"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func subnetOpt(family uint16, bits uint8, addr string) *dns.EDNS0_SUBNET {
	e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: bits}
	if addr != "" {
		e.Address = net.ParseIP(addr)
		if family == 1 && e.Address != nil && e.Address.To4() != nil {
			e.Address = e.Address.To4()
		}
	}
	return e
}

func TestRequestECS(t *testing.T) {
	e := subnetOpt(1, 24, "192.0.2.0")
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"}
	tests := []struct {
		opts    []dns.EDNS0
		noOPT   bool
		wantOPT bool
		wantECS bool
	}{
		{noOPT: true},
		{wantOPT: true},
		{opts: []dns.EDNS0{cookie}, wantOPT: true},
		{opts: []dns.EDNS0{e}, wantOPT: true, wantECS: true},
		{opts: []dns.EDNS0{cookie, e}, wantOPT: true, wantECS: true},
	}
	for i, tc := range tests {
		m := query("www.example.org.", dns.TypeA)
		if !tc.noOPT {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = tc.opts
		}
		opt, got := requestECS(m)
		if (opt != nil) != tc.wantOPT || (got != nil) != tc.wantECS {
			t.Errorf("Test %d: expected OPT %t and ECS %t, got %v and %v", i, tc.wantOPT, tc.wantECS, opt, got)
		}
		if tc.wantECS && got != e {
			t.Errorf("Test %d: expected the request's own ECS option, got %v", i, got)
		}
	}
}

func TestECSAddr(t *testing.T) {
	v4in16 := subnetOpt(1, 24, "192.0.2.0")
	v4in16.Address = net.ParseIP("192.0.2.0").To16() // as unpacked off the wire
	scoped := subnetOpt(1, 24, "192.0.2.0")
	scoped.SourceScope = 24
	scoped0 := subnetOpt(0, 0, "")
	scoped0.SourceScope = 8
	tests := []struct {
		e    *dns.EDNS0_SUBNET
		addr string // "" for the zero address
		bits int
		ok   bool
	}{
		{subnetOpt(1, 24, "192.0.2.0"), "192.0.2.0", 24, true},
		{v4in16, "192.0.2.0", 24, true},
		{subnetOpt(1, 32, "192.0.2.77"), "192.0.2.77", 32, true},
		{subnetOpt(1, 0, "0.0.0.0"), "0.0.0.0", 0, true},
		{subnetOpt(1, 25, "192.0.2.128"), "192.0.2.128", 25, true},
		{subnetOpt(2, 56, "2001:db8:1:200::"), "2001:db8:1:200::", 56, true},
		{subnetOpt(2, 128, "2001:db8::1"), "2001:db8::1", 128, true},
		{subnetOpt(2, 0, "::"), "::", 0, true},
		{subnetOpt(0, 0, ""), "", 0, true}, // dig +subnet=0
		// IPv4-mapped: the IPv4 subnet, its prefix 96 shorter.
		{subnetOpt(2, 128, "::ffff:10.1.0.1"), "10.1.0.1", 32, true},
		{subnetOpt(2, 120, "::ffff:10.1.0.0"), "10.1.0.0", 24, true},
		{subnetOpt(2, 97, "::ffff:128.0.0.0"), "128.0.0.0", 1, true},
		{subnetOpt(2, 96, "::ffff:0.0.0.0"), "0.0.0.0", 0, true},
		// Shorter than /96 it is an IPv6 subnet (::ffff:0:0 is not in it).
		{subnetOpt(2, 80, "::"), "::", 80, true},
		// Malformed (RFC 7871 §7.1.2): FORMERR.
		{subnetOpt(0, 8, ""), "", 0, false},
		{subnetOpt(1, 33, "192.0.2.77"), "", 0, false},
		{subnetOpt(1, 24, ""), "", 0, false},
		{subnetOpt(1, 24, "2001:db8::1"), "", 0, false},
		{subnetOpt(2, 129, "2001:db8::1"), "", 0, false},
		{&dns.EDNS0_SUBNET{Family: 2, SourceNetmask: 56, Address: net.IP{1, 2, 3}}, "", 0, false},
		{&dns.EDNS0_SUBNET{Family: 2, SourceNetmask: 24, Address: net.IP{192, 0, 2, 0}}, "", 0, false},
		{subnetOpt(3, 24, "192.0.2.77"), "", 0, false},
		{subnetOpt(65535, 0, ""), "", 0, false},
		// Address bits beyond the source prefix (a longer ADDRESS than the
		// prefix needs, with octets that are not zero).
		{subnetOpt(1, 24, "192.0.2.77"), "", 0, false},
		{subnetOpt(1, 0, "192.0.2.77"), "", 0, false},
		{subnetOpt(1, 25, "192.0.2.200"), "", 0, false},
		{subnetOpt(1, 20, "198.51.100.0"), "", 0, false},
		{subnetOpt(2, 56, "2001:db8:1:2ff::1"), "", 0, false},
		{subnetOpt(2, 0, "2001:db8::1"), "", 0, false},
		{subnetOpt(2, 120, "::ffff:10.1.0.1"), "", 0, false},
		{subnetOpt(2, 80, "::ffff:10.1.0.0"), "", 0, false},
		// A SCOPE PREFIX-LENGTH in a query.
		{scoped, "", 0, false},
		{scoped0, "", 0, false},
	}
	for i, tc := range tests {
		a, bits, ok := ecsAddr(tc.e)
		if ok != tc.ok {
			t.Errorf("Test %d: expected ok %t for %v, got %t", i, tc.ok, tc.e, ok)
			continue
		}
		if !ok {
			continue
		}
		var want netip.Addr
		if tc.addr != "" {
			want = netip.MustParseAddr(tc.addr)
		}
		if a != want || bits != tc.bits {
			t.Errorf("Test %d: expected %s/%d for %v, got %s/%d", i, want, tc.bits, tc.e, a, bits)
		}
	}
}

func TestMoreECS(t *testing.T) {
	e := subnetOpt(1, 24, "192.0.2.0")
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"}
	tests := []struct {
		opts []dns.EDNS0
		want bool
	}{
		{nil, false},
		{[]dns.EDNS0{e}, false},
		{[]dns.EDNS0{cookie, e}, false},
		{[]dns.EDNS0{e, e}, true},
		{[]dns.EDNS0{e, cookie, subnetOpt(2, 56, "2001:db8::")}, true},
	}
	for i, tc := range tests {
		if got := moreECS(&dns.OPT{Option: tc.opts}); got != tc.want {
			t.Errorf("Test %d: expected more than one ECS %t for %v, got %t", i, tc.want, tc.opts, got)
		}
	}
}

// otherAddrWriter is a ResponseWriter whose remote is neither UDP nor TCP.
type otherAddrWriter struct{ test.ResponseWriter }

func (*otherAddrWriter) RemoteAddr() net.Addr { return &net.IPAddr{IP: net.ParseIP("192.0.2.1")} }

func TestSourceAddr(t *testing.T) {
	tests := []struct {
		w    dns.ResponseWriter
		want string
	}{
		{&test.ResponseWriter{}, "10.240.0.1"},
		{&test.ResponseWriter{RemoteIP: "192.0.2.1"}, "192.0.2.1"},
		{&test.ResponseWriter{RemoteIP: "192.0.2.1", TCP: true}, "192.0.2.1"},
		{&test.ResponseWriter{RemoteIP: "::ffff:192.0.2.1"}, "192.0.2.1"},
		{&test.ResponseWriter{RemoteIP: "2001:db8::1", TCP: true}, "2001:db8::1"},
		{&test.ResponseWriter6{}, "fe80::42:ff:feca:4c65"},
		{&test.ResponseWriter{RemoteIP: "not an address"}, ""},
		{&otherAddrWriter{}, ""},
	}
	for i, tc := range tests {
		var want netip.Addr
		if tc.want != "" {
			want = netip.MustParseAddr(tc.want)
		}
		if got := sourceAddr(tc.w); got != want {
			t.Errorf("Test %d: expected source %s, got %s", i, want, got)
		}
	}
}

func TestReplyOPT(t *testing.T) {
	tests := []struct {
		udp       uint16
		do        bool
		e         *dns.EDNS0_SUBNET
		scope     uint8
		wantScope uint8
	}{
		{1232, false, subnetOpt(1, 24, "192.0.2.0"), 24, 24},
		{4096, true, subnetOpt(1, 24, "192.0.2.0"), 0, 0},
		{512, false, subnetOpt(1, 16, "192.0.0.0"), 24, 16}, // never above the source prefix
		{1232, false, subnetOpt(2, 48, "2001:db8::"), 56, 48},
		{1232, false, subnetOpt(2, 64, "2001:db8::"), 56, 56},
		{1232, false, subnetOpt(0, 0, ""), 24, 0},
	}
	for i, tc := range tests {
		req := test.OPT(int(tc.udp), tc.do)
		o := replyOPT(req, tc.e, tc.scope)
		if o.UDPSize() != tc.udp || o.Do() != tc.do || o.Hdr.Name != "." || o.Hdr.Rrtype != dns.TypeOPT {
			t.Errorf("Test %d: expected OPT with UDP size %d and DO %t, got %v", i, tc.udp, tc.do, o)
		}
		require.Len(t, o.Option, 1, "Test %d", i)
		got := o.Option[0].(*dns.EDNS0_SUBNET)
		if got.SourceScope != tc.wantScope || got.Family != tc.e.Family || got.SourceNetmask != tc.e.SourceNetmask || !got.Address.Equal(tc.e.Address) {
			t.Errorf("Test %d: expected %v echoed with scope %d, got %v", i, tc.e, tc.wantScope, got)
		}
		if got == tc.e {
			t.Errorf("Test %d: expected a new option, not the request's", i)
		}
		// The reply must survive the wire.
		m := new(dns.Msg)
		m.SetQuestion("www.example.org.", dns.TypeA)
		m.Extra = []dns.RR{o}
		buf, err := m.Pack()
		if err != nil {
			t.Errorf("Test %d: expected the reply to pack, got %v", i, err)
			continue
		}
		back := new(dns.Msg)
		require.NoError(t, back.Unpack(buf))
		_, e := requestECS(back)
		require.NotNil(t, e)
		assert.Equal(t, tc.wantScope, e.SourceScope, "Test %d", i)
	}
}

// TestClient checks the sticky key, the address pins match and the scope
// for each mode.
func TestClient(t *testing.T) {
	mk := func(sticky string, v4, v6 int, pins ...string) *Bluegreen {
		cfg := &config{sticky: sticky, v4len: v4, v6len: v6}
		for _, p := range pins {
			cfg.pins = append(cfg.pins, pin{pool: 1, prefix: netip.MustParsePrefix(p)})
		}
		return &Bluegreen{cfg: cfg}
	}
	subnet := mk(stickySubnet, 24, 56)
	pinned := mk(stickySubnet, 24, 56, "192.0.2.128/26")
	ip := mk(stickyIP, 24, 56)
	off := mk(stickyOff, 24, 56)

	tests := []struct {
		b      *Bluegreen
		remote string
		e      *dns.EDNS0_SUBNET
		key    string
		addr   string
		scope  uint8
		echo   bool
	}{
		{subnet, "192.0.2.77", nil, "192.0.2.0", "192.0.2.77", 0, false},
		{subnet, "2001:db8:1:2ff::1", nil, "2001:db8:1:200::", "2001:db8:1:2ff::1", 0, false},
		{subnet, "192.0.2.77", subnetOpt(1, 24, "198.51.100.0"), "198.51.100.0", "198.51.100.0", 24, true},
		{subnet, "192.0.2.77", subnetOpt(1, 32, "198.51.100.9"), "198.51.100.0", "198.51.100.9", 24, true},
		{subnet, "192.0.2.77", subnetOpt(1, 20, "198.51.96.0"), "198.51.96.0", "198.51.96.0", 20, true},
		{subnet, "192.0.2.77", subnetOpt(2, 64, "2001:db8:1:2ff::"), "2001:db8:1:200::", "2001:db8:1:2ff::", 56, true},
		{subnet, "2001:db8::1", subnetOpt(1, 24, "198.51.100.0"), "198.51.100.0", "198.51.100.0", 24, true},
		{subnet, "192.0.2.77", subnetOpt(1, 0, "0.0.0.0"), "192.0.2.0", "192.0.2.77", 0, true},
		{subnet, "192.0.2.77", subnetOpt(0, 0, ""), "192.0.2.0", "192.0.2.77", 0, true},
		// IPv4-mapped ECS is the IPv4 client; the scope is echoed in the
		// client's family.
		{subnet, "192.0.2.77", subnetOpt(2, 128, "::ffff:198.51.100.9"), "198.51.100.0", "198.51.100.9", 120, true},
		{subnet, "192.0.2.77", subnetOpt(2, 116, "::ffff:198.51.96.0"), "198.51.96.0", "198.51.96.0", 116, true},
		{subnet, "192.0.2.77", subnetOpt(2, 96, "::ffff:0.0.0.0"), "192.0.2.0", "192.0.2.77", 0, true},
		{pinned, "10.0.0.1", subnetOpt(2, 128, "::ffff:192.0.2.1"), "192.0.2.0", "192.0.2.1", 122, true},
		{ip, "192.0.2.77", subnetOpt(2, 128, "::ffff:198.51.100.9"), "192.0.2.77", "192.0.2.77", 0, true},
		// A pin inside the client's /24 narrows the scope to its length.
		{pinned, "10.0.0.1", subnetOpt(1, 32, "192.0.2.1"), "192.0.2.0", "192.0.2.1", 26, true},
		{pinned, "10.0.0.1", subnetOpt(1, 25, "192.0.2.0"), "192.0.2.0", "192.0.2.0", 25, true},
		{pinned, "10.0.0.1", subnetOpt(1, 24, "198.51.100.0"), "198.51.100.0", "198.51.100.0", 24, true},
		{ip, "192.0.2.77", nil, "192.0.2.77", "192.0.2.77", 0, false},
		{ip, "192.0.2.77", subnetOpt(1, 24, "198.51.100.0"), "192.0.2.77", "192.0.2.77", 0, true},
		{off, "192.0.2.77", subnetOpt(1, 24, "198.51.100.0"), "192.0.2.77", "192.0.2.77", 0, true},
	}
	for i, tc := range tests {
		m := query("www.example.org.", dns.TypeA)
		if tc.e != nil {
			m = withOption(t, m, tc.e, false)
		}
		cl := tc.b.client(&test.ResponseWriter{RemoteIP: tc.remote}, m)
		if cl.formErr {
			t.Errorf("Test %d: expected %v to be well formed", i, tc.e)
			continue
		}
		if cl.key != netip.MustParseAddr(tc.key) || cl.addr != netip.MustParseAddr(tc.addr) || cl.scope != tc.scope || (cl.ecs != nil) != tc.echo {
			t.Errorf("Test %d: expected key %s, addr %s, scope %d, echo %t; got key %s, addr %s, scope %d, echo %t",
				i, tc.key, tc.addr, tc.scope, tc.echo, cl.key, cl.addr, cl.scope, cl.ecs != nil)
		}
	}
}

// TestClientFormErr: a malformed ECS option, or two, make the query a
// FORMERR in every sticky mode.
func TestClientFormErr(t *testing.T) {
	scoped := subnetOpt(1, 24, "192.0.2.0")
	scoped.SourceScope = 24
	for _, sticky := range []string{stickySubnet, stickyIP, stickyOff} {
		b := &Bluegreen{cfg: &config{sticky: sticky, v4len: 24, v6len: 56}}
		for i, opts := range [][]dns.EDNS0{
			{subnetOpt(1, 33, "198.51.100.0")},
			{subnetOpt(1, 24, "198.51.100.1")},
			{subnetOpt(3, 24, "198.51.100.0")},
			{scoped},
			{subnetOpt(1, 24, "198.51.100.0"), subnetOpt(1, 24, "198.51.100.0")},
		} {
			m := query("www.example.org.", dns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = opts
			if cl := b.client(&test.ResponseWriter{}, m); !cl.formErr {
				t.Errorf("Test %s/%d: expected FORMERR for %v, got a client %+v", sticky, i, opts, cl)
			}
		}
	}
}

// TestServeDNSECSMapped: an IPv4-mapped ECS subnet (::ffff:a.b.c.d/p) is
// the IPv4 client a.b.c.d/(p-96) for pins and the sticky key, as explain
// says, and the reply echoes it as sent with the scope in its family.
func TestServeDNSECSMapped(t *testing.T) {
	dir := stdZones(t)
	pinned := newTestBluegreen(t, dir, pools3+"weights green 1\npin blue 10.1.0.0/16")
	for i, tc := range []struct {
		ecs   string
		want  string
		scope uint8
	}{
		{"::ffff:10.1.0.0/120", "blue", 120},
		{"::ffff:10.1.0.1/128", "blue", 120},
		{"::ffff:10.1.0.0/112", "blue", 112},
		// /104 is 10.0.0.0/8: wider than the pin, so the pin cannot
		// apply, and the scope says the pin's length splits it.
		{"::ffff:10.0.0.0/104", "green", 104},
		{"::ffff:10.2.0.0/120", "green", 120},
		// /96 names no IPv4 bits: the source address (10.1.0.9) is the client.
		{"::ffff:0.0.0.0/96", "blue", 0},
	} {
		q := ecs(t, "www.example.org.", dns.TypeA, tc.ecs)
		sent := replyECS(q)
		m, _, err := serve(context.Background(), pinned, q, "10.1.0.9")
		require.NoError(t, err)
		assert.Equal(t, tc.want, poolOf(m), "Test %d: pool for ECS %s", i, tc.ecs)
		got := replyECS(m)
		require.NotNil(t, got, "Test %d: ECS echoed", i)
		if got.Family != 2 || got.SourceNetmask != sent.SourceNetmask || !got.Address.Equal(sent.Address) || got.SourceScope != tc.scope {
			t.Errorf("Test %d: expected %v echoed with scope %d, got %v", i, sent, tc.scope, got)
		}
		// The reply must survive the wire, scope included.
		buf, err := m.Pack()
		require.NoError(t, err, "Test %d", i)
		back := new(dns.Msg)
		require.NoError(t, back.Unpack(buf))
		assert.Equal(t, tc.scope, replyECS(back).SourceScope, "Test %d: scope after the wire", i)
	}
	// A name from base depends on no choice: scope 0.
	m, _, err := serve(context.Background(), pinned, ecs(t, "shared.example.org.", dns.TypeA, "::ffff:10.1.0.0/120"), "10.1.0.9")
	require.NoError(t, err)
	assert.Equal(t, uint8(0), replyECS(m).SourceScope)

	// explain agrees with the DNS path, for a mapped client address.
	for i, tc := range []struct{ client, want string }{{"::ffff:10.1.0.1", "blue"}, {"::ffff:10.2.0.1", "green"}} {
		e := pinned.explain(netip.MustParseAddr(tc.client))
		assert.Equal(t, tc.want, e.Pool, "Test %d: explain %s", i, tc.client)
		m, _, err := serve(context.Background(), pinned, ecs(t, "www.example.org.", dns.TypeA, tc.client+"/128"), "192.0.2.1")
		require.NoError(t, err)
		assert.Equal(t, e.Pool, poolOf(m), "Test %d: DNS for ECS %s/128 and explain", i, tc.client)
	}

	// The sticky key of a mapped subnet is the IPv4 /24: the pool is the
	// IPv4 subnet's, the one explain names, and mapped clients spread over
	// both pools (they do not share one /56 key).
	even := newTestBluegreen(t, dir, pools3+"weights blue 1 green 1")
	seen := map[string]int{}
	for i := range 64 {
		v4 := netip.AddrFrom4([4]byte{198, 51, byte(i), 0})
		mapped := netip.AddrFrom16(v4.As16())
		want := expectedPool(even.cfg.name, []uint64{1, 1}, v4)
		for _, p := range []string{mapped.String() + "/120", v4.String() + "/24"} {
			m, _, err := serve(context.Background(), even, ecs(t, "www.example.org.", dns.TypeA, p), "192.0.2.1")
			require.NoError(t, err)
			if got := poolOf(m); got != want {
				t.Errorf("Test %d: expected ECS %s to get %s (the pool of %s/24), got %s", i, p, want, v4, got)
			}
		}
		e := even.explain(mapped)
		assert.Equal(t, want, e.Pool, "Test %d: explain %s", i, mapped)
		assert.Equal(t, v4.String()+"/24", e.Key, "Test %d: explain's key for %s", i, mapped)
		seen[want]++
	}
	assert.Len(t, seen, 2, "mapped subnets spread over both pools: %v", seen)
}
