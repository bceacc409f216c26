package bluegreen_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	coretest "github.com/coredns/coredns/test"

	"github.com/bluegreen-dns/bluegreen/internal/freeport"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The zones of a server where a pool's CNAME leaves the switch's zone and
// comes back: api is xb.example.net in blue and xg.example.net in green,
// both of which (served by the file plugin) point back at www.example.org,
// whose address differs per pool. alias, a base name, leaves and comes
// back the same way; gone too, to onlyblue, which green lacks.
const (
	chainSOA  = "@ 3600 IN SOA ns1 hostmaster 2026010101 7200 3600 1209600 120\n@ 3600 IN NS ns1\nns1 3600 IN A 127.0.0.1\n"
	chainBase = "$ORIGIN example.org.\n" + chainSOA + "alias 60 IN CNAME xa.example.net.\n" +
		"gone 60 IN CNAME xo.example.net.\n"
	chainBlue = "$ORIGIN example.org.\n" +
		"api 60 IN CNAME xb.example.net.\n" +
		"www 60 IN A 10.1.0.1\n" +
		"onlyblue 60 IN A 10.1.0.9\n"
	chainGreen = "$ORIGIN example.org.\n" +
		"api 60 IN CNAME xg.example.net.\n" +
		"www 60 IN A 10.2.0.1\n"
	chainNet = "$ORIGIN example.net.\n" + chainSOA +
		"xb 60 IN CNAME www.example.org.\n" +
		"xg 60 IN CNAME www.example.org.\n" +
		"xa 60 IN CNAME www.example.org.\n" +
		"xo 60 IN CNAME onlyblue.example.org.\n"
)

// chainServer starts a server on 127.0.0.1 for example.org (bluegreen,
// pools blue and green, with the lines given) and example.net (the
// file plugin), and returns its address.
func chainServer(t *testing.T, lines ...string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{"base.db": chainBase, "blue.db": chainBlue, "green.db": chainGreen, "example.net.db": chainNet} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600))
	}
	port := freeport.T(t)
	name := fmt.Sprintf("chain-%s", strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-"))
	t.Cleanup(func() { state.Forget(name) })
	corefile := fmt.Sprintf(`example.org:%[1]d example.net:%[1]d {
	bind 127.0.0.1
	bluegreen example.org {
		base %[2]s/base.db
		pool blue %[2]s/blue.db
		pool green %[2]s/green.db
		name %[3]s
		reload 0
		admin off
		%[4]s
	}
	file %[2]s/example.net.db example.net
}
`, port, dir, name, strings.Join(lines, "\n\t\t"))
	inst, err := coretest.CoreDNSServer(corefile)
	require.NoError(t, err, "starting CoreDNS with:\n%s", corefile)
	t.Cleanup(func() {
		inst.Stop()
		inst.ShutdownCallbacks()
	})
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// chainPools returns the pool the first CNAME of an answer to api points
// into (xb: blue, xg: green) and the pool of its A records ("mixed" when
// they disagree among themselves, "" when there are none).
func chainPools(m *dns.Msg) (cname, addrs string) {
	for _, rr := range m.Answer {
		switch x := rr.(type) {
		case *dns.CNAME:
			if cname != "" {
				continue
			}
			switch x.Target {
			case "xb.example.net.":
				cname = "blue"
			case "xg.example.net.":
				cname = "green"
			default:
				cname = "other"
			}
		case *dns.A:
			p := "other"
			switch x.A.String() {
			case "10.1.0.1", "10.1.0.9":
				p = "blue"
			case "10.2.0.1":
				p = "green"
			}
			if addrs != "" && addrs != p {
				p = "mixed"
			}
			addrs = p
		}
	}
	return cname, addrs
}

// TestChainOnePool: an answer whose CNAME chain leaves the zone and comes
// back through the server's plugin chain holds records of one pool only,
// with sticky off (every query an independent choice) and in subnet mode
// with ECS; and the way back into a switched name makes the answer
// switched (ECS scope of the choice), a negative answer too.
func TestChainOnePool(t *testing.T) {
	const queries = 200
	t.Run("sticky off", func(t *testing.T) {
		addr := chainServer(t, "weights blue 1 green 1", "sticky off")
		seen := map[string]int{}
		for i := range queries {
			m := new(dns.Msg)
			m.SetQuestion("api.example.org.", dns.TypeA)
			r, err := dns.Exchange(m, addr)
			require.NoError(t, err, "query %d", i)
			require.Equal(t, dns.RcodeSuccess, r.Rcode, "query %d: %v", i, r)
			cname, addrs := chainPools(r)
			if cname == "" || cname == "other" || cname != addrs {
				t.Fatalf("Query %d: expected the A records of the pool of the first CNAME, got CNAME into %q and A records of %q: %v", i, cname, addrs, r.Answer)
			}
			seen[cname]++
		}
		// Both pools answered: the test saw independent choices.
		assert.Len(t, seen, 2, "pools seen: %v", seen)
	})
	t.Run("sticky subnet", func(t *testing.T) {
		addr := chainServer(t, "weights blue 1 green 1", "pin green 10.9.0.0/16")
		seen := map[string]int{}
		for i := range queries {
			sub := net.IPv4(198, 51, byte(i), 0).To4()
			if i%10 == 0 {
				sub = net.IPv4(10, 9, byte(i), 0).To4() // pinned to green
			}
			pool := ""
			for _, qname := range []string{"api.example.org.", "alias.example.org.", "gone.example.org."} {
				m := new(dns.Msg)
				m.SetQuestion(qname, dns.TypeA)
				m.SetEdns0(1232, false)
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: sub})
				r, err := dns.Exchange(m, addr)
				require.NoError(t, err, "query %d", i)
				cname, addrs := chainPools(r)
				switch qname {
				case "api.example.org.":
					require.Equal(t, dns.RcodeSuccess, r.Rcode, "query %d: %v", i, r)
					if cname == "" || cname == "other" || cname != addrs {
						t.Fatalf("Query %d: expected the A records of the pool of the first CNAME for ECS %s/24, got CNAME into %q and A records of %q: %v", i, sub, cname, addrs, r.Answer)
					}
					pool = addrs
					seen[pool]++
				case "alias.example.org.":
					if addrs != pool {
						t.Errorf("Query %d: expected %s for ECS %s/24, as for api, got %q: %v", i, qname, sub, addrs, r)
					}
				case "gone.example.org.":
					// Blue has onlyblue; green answers NXDOMAIN.
					if (pool == "blue") != (r.Rcode == dns.RcodeSuccess && addrs == "blue") || (pool == "green") != (r.Rcode == dns.RcodeNameError) {
						t.Errorf("Query %d: expected %s's answer for ECS %s/24, as for api, got %v", i, pool, sub, r)
					}
				}
				if sub[0] == 10 && pool != "green" {
					t.Errorf("Query %d: expected pinned ECS %s/24 to get green for %s, got %q", i, sub, qname, pool)
				}
				// Every answer depends on the choice: ECS echoed with scope 24.
				var e *dns.EDNS0_SUBNET
				if opt := r.IsEdns0(); opt != nil {
					for _, o := range opt.Option {
						if s, ok := o.(*dns.EDNS0_SUBNET); ok {
							e = s
						}
					}
				}
				if e == nil || e.SourceScope != 24 || !e.Address.Equal(sub) {
					t.Errorf("Query %d: expected ECS %s/24 echoed with scope 24 for %s, got %v", i, sub, qname, e)
				}
			}
		}
		assert.Len(t, seen, 2, "pools seen: %v", seen)
	})
}

// exchangeRaw sends m, whose EDNS0 options the caller may have crafted,
// and returns the reply.
func exchangeRaw(t *testing.T, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	r, err := dns.Exchange(m, addr)
	require.NoError(t, err)
	return r
}

// TestServerRejects: through a real server, a query whose ECS option RFC
// 7871 §7.1.2 has a server reject gets FORMERR with an OPT and no answer;
// NOTIFY gets NOTIMP; an IPv4-mapped ECS subnet is the IPv4 client and is
// echoed as sent, with its scope in the IPv6 form.
func TestServerRejects(t *testing.T) {
	addr := chainServer(t, "weights green 1", "pin blue 10.1.0.0/16")
	// ecsRaw is an ECS option with the exact wire bytes given: miekg/dns
	// would mask the address when packing an EDNS0_SUBNET.
	ecsRaw := func(data ...byte) dns.EDNS0 { return &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: data} }
	for i, tc := range []struct {
		name string
		opts []dns.EDNS0
	}{
		{"bits beyond the source prefix", []dns.EDNS0{ecsRaw(0, 1, 24, 0, 10, 1, 0, 1)}},
		{"mapped, bits beyond the source prefix", []dns.EDNS0{ecsRaw(0, 2, 120, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 0, 1)}},
		{"scope in a query", []dns.EDNS0{ecsRaw(0, 1, 24, 24, 10, 1, 0)}},
		{"two options", []dns.EDNS0{ecsRaw(0, 1, 24, 0, 10, 1, 0), ecsRaw(0, 1, 24, 0, 10, 2, 0)}},
	} {
		m := new(dns.Msg)
		m.SetQuestion("www.example.org.", dns.TypeA)
		m.SetEdns0(1232, true)
		m.IsEdns0().Option = tc.opts
		r := exchangeRaw(t, addr, m)
		assert.Equal(t, dns.RcodeFormatError, r.Rcode, "Test %d (%s): rcode", i, tc.name)
		assert.Empty(t, r.Answer, "Test %d (%s): answer", i, tc.name)
		if opt := r.IsEdns0(); assert.NotNil(t, opt, "Test %d (%s): OPT in the reply", i, tc.name) {
			assert.True(t, opt.Do(), "Test %d (%s): DO echoed", i, tc.name)
		}
	}

	// NOTIFY is not implemented.
	m := new(dns.Msg)
	m.SetNotify("example.org.")
	r := exchangeRaw(t, addr, m)
	assert.Equal(t, dns.RcodeNotImplemented, r.Rcode, "NOTIFY: %v", r)
	assert.Equal(t, dns.OpcodeNotify, r.Opcode)
	assert.Empty(t, r.Answer)

	// ::ffff:10.1.0.0/120 is 10.1.0.0/24, pinned to blue; the reply echoes
	// family 2, /120 and the address, with scope 24+96.
	m = new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 120, Address: net.ParseIP("::ffff:10.1.0.0")}}
	r = exchangeRaw(t, addr, m)
	require.Len(t, r.Answer, 1, "%v", r)
	assert.Equal(t, "10.1.0.1", r.Answer[0].(*dns.A).A.String(), "the pinned pool")
	opt := r.IsEdns0()
	require.NotNil(t, opt)
	require.Len(t, opt.Option, 1)
	e := opt.Option[0].(*dns.EDNS0_SUBNET)
	assert.Equal(t, uint16(2), e.Family)
	assert.Equal(t, uint8(120), e.SourceNetmask)
	assert.Equal(t, uint8(120), e.SourceScope)
	assert.True(t, e.Address.Equal(net.ParseIP("::ffff:10.1.0.0")), "address echoed: %s", e.Address)
}
