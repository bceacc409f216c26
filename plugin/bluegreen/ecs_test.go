package bluegreen

import (
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
	v4in16 := subnetOpt(1, 24, "192.0.2.77")
	v4in16.Address = net.ParseIP("192.0.2.77").To16() // as unpacked off the wire
	tests := []struct {
		e    *dns.EDNS0_SUBNET
		addr string // "" for the zero address
		bits int
		ok   bool
	}{
		{subnetOpt(1, 24, "192.0.2.77"), "192.0.2.0", 24, true},
		{v4in16, "192.0.2.0", 24, true},
		{subnetOpt(1, 32, "192.0.2.77"), "192.0.2.77", 32, true},
		{subnetOpt(1, 0, "192.0.2.77"), "0.0.0.0", 0, true},
		{subnetOpt(1, 25, "192.0.2.200"), "192.0.2.128", 25, true},
		{subnetOpt(2, 56, "2001:db8:1:2ff::1"), "2001:db8:1:200::", 56, true},
		{subnetOpt(2, 128, "2001:db8::1"), "2001:db8::1", 128, true},
		{subnetOpt(2, 0, "2001:db8::1"), "::", 0, true},
		{subnetOpt(0, 0, ""), "", 0, true}, // dig +subnet=0
		// Malformed.
		{subnetOpt(0, 8, ""), "", 0, false},
		{subnetOpt(1, 33, "192.0.2.77"), "", 0, false},
		{subnetOpt(1, 24, ""), "", 0, false},
		{subnetOpt(1, 24, "2001:db8::1"), "", 0, false},
		{subnetOpt(2, 129, "2001:db8::1"), "", 0, false},
		{&dns.EDNS0_SUBNET{Family: 2, SourceNetmask: 56, Address: net.IP{1, 2, 3}}, "", 0, false},
		{subnetOpt(3, 24, "192.0.2.77"), "", 0, false},
		{subnetOpt(65535, 0, ""), "", 0, false},
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
		{subnet, "192.0.2.77", subnetOpt(1, 20, "198.51.100.0"), "198.51.96.0", "198.51.96.0", 20, true},
		{subnet, "192.0.2.77", subnetOpt(2, 64, "2001:db8:1:2ff::"), "2001:db8:1:200::", "2001:db8:1:2ff::", 56, true},
		{subnet, "2001:db8::1", subnetOpt(1, 24, "198.51.100.0"), "198.51.100.0", "198.51.100.0", 24, true},
		{subnet, "192.0.2.77", subnetOpt(1, 0, "0.0.0.0"), "192.0.2.0", "192.0.2.77", 0, true},
		{subnet, "192.0.2.77", subnetOpt(0, 0, ""), "192.0.2.0", "192.0.2.77", 0, true},
		{subnet, "192.0.2.77", subnetOpt(1, 33, "198.51.100.0"), "192.0.2.0", "192.0.2.77", 0, false},
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
		if cl.key != netip.MustParseAddr(tc.key) || cl.addr != netip.MustParseAddr(tc.addr) || cl.scope != tc.scope || (cl.ecs != nil) != tc.echo {
			t.Errorf("Test %d: expected key %s, addr %s, scope %d, echo %t; got key %s, addr %s, scope %d, echo %t",
				i, tc.key, tc.addr, tc.scope, tc.echo, cl.key, cl.addr, cl.scope, cl.ecs != nil)
		}
	}
}
