package bluegreen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/pick"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Zone files shared by the tests: base holds the apex and names that are not
// switched, blue and green the two deployments.
const baseDB = `$ORIGIN example.org.
$TTL 300
@         IN SOA   ns1.example.org. hostmaster.example.org. 2026112201 7200 3600 1209600 60
@         IN NS    ns1.example.org.
@         IN MX    10 mail.example.org.
ns1       IN A     127.0.0.1
mail      IN A     192.0.2.25
shared    IN A     192.0.2.99
shared    IN TXT   "base"
www       IN A     192.0.2.250
alias     IN CNAME www.example.org.
zero    0 IN A     192.0.2.98
_sip._tcp IN SRV   10 5 5060 sip.example.org.
sip       IN A     192.0.2.60
sub       IN NS    ns.sub.example.org.
ns.sub    IN A     192.0.2.53
selfloop  IN CNAME selfloop.example.org.
`

const blueDB = `$ORIGIN example.org.
$TTL 60
www         IN A     192.0.2.10
www         IN A     192.0.2.11
www         IN AAAA  2001:db8::10
api         IN CNAME www.example.org.
chain       IN CNAME api.example.org.
version     IN TXT   "blue"
*.wild      IN A     192.0.2.30
onlyblue    IN A     192.0.2.40
_https._tcp IN SRV   0 0 443 www.example.org.
svc         IN MX    10 www.example.org.
short     5 IN A     192.0.2.41
`

const greenDB = `$ORIGIN example.org.
$TTL 60
www         IN A     198.51.100.10
www         IN A     198.51.100.11
www         IN AAAA  2001:db8::20
api         IN CNAME www.example.org.
chain       IN CNAME api.example.org.
version     IN TXT   "green"
x.wild      IN A     198.51.100.30
long   3600 IN A     198.51.100.50
_https._tcp IN SRV   0 0 8443 www.example.org.
svc         IN MX    20 www.example.org.
short     5 IN A     198.51.100.41
`

// The addresses of www in each pool.
var (
	blueAddrs  = []string{"192.0.2.10", "192.0.2.11"}
	greenAddrs = []string{"198.51.100.10", "198.51.100.11"}
)

const pools3 = "base base.db\npool blue blue.db\npool green green.db\n"

var nameSeq atomic.Int64

// uniqueName returns a switch name no other test uses: switches live in a
// process-wide registry.
func uniqueName() string { return fmt.Sprintf("bgtest-%d", nameSeq.Add(1)) }

func forget(name string) { state.Forget(name) }

// writeZones writes files into a new temporary directory and returns it.
func writeZones(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return dir
}

// nextRcode is what the next handler returns: a value bluegreen never
// returns itself, so a test can tell that the query was passed on.
const nextRcode = dns.RcodeNotZone

var nextHandler = test.HandlerFunc(func(context.Context, dns.ResponseWriter, *dns.Msg) (int, error) {
	return nextRcode, nil
})

// newTestBluegreen sets up "bluegreen example.org { name UNIQUE; body }"
// through setup, with file names relative to dir, and returns the handler
// with nextHandler behind it.
func newTestBluegreen(t testing.TB, dir, body string) *Bluegreen {
	t.Helper()
	input := "bluegreen example.org {\nname " + uniqueName() + "\nadmin off\n" + body + "\n}"
	c := caddy.NewTestController("dns", input)
	dnsserver.GetConfig(c).Root = dir
	require.NoError(t, setup(c))
	plugins := dnsserver.GetConfig(c).Plugin
	require.Len(t, plugins, 1)
	b := plugins[0](nextHandler).(*Bluegreen)
	t.Cleanup(func() { forget(b.cfg.name) })
	return b
}

// stdZones writes the shared zone files.
func stdZones(t testing.TB) string {
	return writeZones(t, map[string]string{"base.db": baseDB, "blue.db": blueDB, "green.db": greenDB})
}

// serve sends m from remote (an IP address; "" for test.ResponseWriter's
// default 10.240.0.1) and returns the reply written, the rcode and error.
func serve(ctx context.Context, b *Bluegreen, m *dns.Msg, remote string) (*dns.Msg, int, error) {
	rec := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: remote})
	rcode, err := b.ServeDNS(ctx, rec, m)
	return rec.Msg, rcode, err
}

func query(qname string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(qname), qtype)
	return m
}

// ecs returns a query for qname carrying an EDNS Client Subnet option for
// prefix, sent through pack and unpack like a query off the wire.
func ecs(t testing.TB, qname string, qtype uint16, prefix string) *dns.Msg {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: uint8(p.Bits()), Address: net.IP(p.Addr().AsSlice())}
	e.Family = 1
	if p.Addr().Is6() {
		e.Family = 2
	}
	return withOption(t, query(qname, qtype), e, true)
}

// withOption adds an OPT with option o to m; with wire set the message is
// packed and unpacked.
func withOption(t testing.TB, m *dns.Msg, o dns.EDNS0, wire bool) *dns.Msg {
	t.Helper()
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, o)
	if !wire {
		return m
	}
	buf, err := m.Pack()
	require.NoError(t, err)
	out := new(dns.Msg)
	require.NoError(t, out.Unpack(buf))
	return out
}

// replyECS returns the ECS option of a reply, or nil.
func replyECS(m *dns.Msg) *dns.EDNS0_SUBNET {
	if m == nil {
		return nil
	}
	_, e := requestECS(m)
	return e
}

// poolOf says which pool's www addresses an answer holds: "blue", "green",
// "mixed" or "" when it holds none.
func poolOf(m *dns.Msg) string {
	var blue, green int
	for _, rr := range m.Answer {
		a, ok := rr.(*dns.A)
		if !ok {
			continue
		}
		switch {
		case slices.Contains(blueAddrs, a.A.String()):
			blue++
		case slices.Contains(greenAddrs, a.A.String()):
			green++
		default:
			return "mixed"
		}
	}
	switch {
	case blue == 2 && green == 0:
		return "blue"
	case green == 2 && blue == 0:
		return "green"
	case blue+green == 0:
		return ""
	}
	return "mixed"
}

// expectedPool computes the pool a sticky key gets, independently of the
// plugin's own code path: XXH64 point and the weighted index.
func expectedPool(name string, weights []uint64, key netip.Addr) string {
	return []string{"blue", "green"}[pick.Index(pick.Point(pick.SwitchSeed(name), key), pick.Cumulative(weights))]
}

func TestServeDNS(t *testing.T) {
	dir := stdZones(t)
	blue := newTestBluegreen(t, dir, pools3+"weights blue 1 green 0")
	green := newTestBluegreen(t, dir, pools3+"weights blue 0 green 1")

	soa := test.SOA("example.org. 30 IN SOA ns1.example.org. hostmaster.example.org. 2026112201 7200 3600 1209600 60")
	ns := test.NS("example.org. 30 IN NS ns1.example.org.")
	tests := []struct {
		b  *Bluegreen
		tc test.Case
	}{
		// The whole RRset of one pool, never base's www.
		{blue, test.Case{Qname: "www.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("www.example.org. 30 IN A 192.0.2.10"), test.A("www.example.org. 30 IN A 192.0.2.11")}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "www.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("www.example.org. 30 IN A 198.51.100.10"), test.A("www.example.org. 30 IN A 198.51.100.11")}, Ns: []dns.RR{ns}}},
		{blue, test.Case{Qname: "WWW.Example.ORG.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("www.example.org. 30 IN A 192.0.2.10"), test.A("www.example.org. 30 IN A 192.0.2.11")}, Ns: []dns.RR{ns}}},
		{blue, test.Case{Qname: "www.example.org.", Qtype: dns.TypeAAAA,
			Answer: []dns.RR{test.AAAA("www.example.org. 30 IN AAAA 2001:db8::10")}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "www.example.org.", Qtype: dns.TypeAAAA,
			Answer: []dns.RR{test.AAAA("www.example.org. 30 IN AAAA 2001:db8::20")}, Ns: []dns.RR{ns}}},
		// NODATA for a switched name.
		{blue, test.Case{Qname: "www.example.org.", Qtype: dns.TypeTXT, Ns: []dns.RR{soa}}},
		// In-zone CNAME chains stay inside the pool.
		{blue, test.Case{Qname: "api.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{
				test.CNAME("api.example.org. 30 IN CNAME www.example.org."),
				test.A("www.example.org. 30 IN A 192.0.2.10"), test.A("www.example.org. 30 IN A 192.0.2.11"),
			}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "chain.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{
				test.CNAME("api.example.org. 30 IN CNAME www.example.org."),
				test.CNAME("chain.example.org. 30 IN CNAME api.example.org."),
				test.A("www.example.org. 30 IN A 198.51.100.10"), test.A("www.example.org. 30 IN A 198.51.100.11"),
			}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "api.example.org.", Qtype: dns.TypeCNAME,
			Answer: []dns.RR{test.CNAME("api.example.org. 30 IN CNAME www.example.org.")}, Ns: []dns.RR{ns}}},
		// A base CNAME into a switched name follows the selected pool.
		{blue, test.Case{Qname: "alias.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{
				test.CNAME("alias.example.org. 30 IN CNAME www.example.org."),
				test.A("www.example.org. 30 IN A 192.0.2.10"), test.A("www.example.org. 30 IN A 192.0.2.11"),
			}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "alias.example.org.", Qtype: dns.TypeAAAA,
			Answer: []dns.RR{
				test.CNAME("alias.example.org. 30 IN CNAME www.example.org."),
				test.AAAA("www.example.org. 30 IN AAAA 2001:db8::20"),
			}, Ns: []dns.RR{ns}}},
		// TXT.
		{blue, test.Case{Qname: "version.example.org.", Qtype: dns.TypeTXT,
			Answer: []dns.RR{test.TXT(`version.example.org. 30 IN TXT "blue"`)}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "version.example.org.", Qtype: dns.TypeTXT,
			Answer: []dns.RR{test.TXT(`version.example.org. 30 IN TXT "green"`)}, Ns: []dns.RR{ns}}},
		// Wildcards: blue synthesises, green has one name and NXDOMAIN else.
		{blue, test.Case{Qname: "foo.wild.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("foo.wild.example.org. 30 IN A 192.0.2.30")}, Ns: []dns.RR{ns}}},
		{blue, test.Case{Qname: "x.wild.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("x.wild.example.org. 30 IN A 192.0.2.30")}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "x.wild.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("x.wild.example.org. 30 IN A 198.51.100.30")}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "foo.wild.example.org.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{soa}}},
		// A name only one pool holds: NXDOMAIN for the other.
		{blue, test.Case{Qname: "onlyblue.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("onlyblue.example.org. 30 IN A 192.0.2.40")}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "onlyblue.example.org.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{soa}}},
		{blue, test.Case{Qname: "long.example.org.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{soa}}},
		// TTL capped at MAX, raised to MIN, kept in between.
		{green, test.Case{Qname: "long.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("long.example.org. 30 IN A 198.51.100.50")}, Ns: []dns.RR{ns}}},
		{blue, test.Case{Qname: "zero.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("zero.example.org. 1 IN A 192.0.2.98")}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "short.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("short.example.org. 5 IN A 198.51.100.41")}, Ns: []dns.RR{ns}}},
		// Base names, the same for every pool.
		{blue, test.Case{Qname: "shared.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("shared.example.org. 30 IN A 192.0.2.99")}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "shared.example.org.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("shared.example.org. 30 IN A 192.0.2.99")}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "shared.example.org.", Qtype: dns.TypeTXT,
			Answer: []dns.RR{test.TXT(`shared.example.org. 30 IN TXT "base"`)}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "shared.example.org.", Qtype: dns.TypeAAAA, Ns: []dns.RR{soa}}},
		{blue, test.Case{Qname: "nowhere.example.org.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{soa}}},
		{green, test.Case{Qname: "sub.www.example.org.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{soa}}},
		{blue, test.Case{Qname: "example.org.", Qtype: dns.TypeSOA, Answer: []dns.RR{soa}, Ns: []dns.RR{ns}}},
		{green, test.Case{Qname: "example.org.", Qtype: dns.TypeNS, Answer: []dns.RR{ns},
			Extra: []dns.RR{test.A("ns1.example.org. 30 IN A 127.0.0.1")}}},
		// MX and SRV with additional-section addresses from the same pool.
		{blue, test.Case{Qname: "example.org.", Qtype: dns.TypeMX,
			Answer: []dns.RR{test.MX("example.org. 30 IN MX 10 mail.example.org.")}, Ns: []dns.RR{ns},
			Extra: []dns.RR{test.A("mail.example.org. 30 IN A 192.0.2.25")}}},
		{green, test.Case{Qname: "svc.example.org.", Qtype: dns.TypeMX,
			Answer: []dns.RR{test.MX("svc.example.org. 30 IN MX 20 www.example.org.")}, Ns: []dns.RR{ns},
			Extra: []dns.RR{
				test.A("www.example.org. 30 IN A 198.51.100.10"), test.A("www.example.org. 30 IN A 198.51.100.11"),
				test.AAAA("www.example.org. 30 IN AAAA 2001:db8::20"),
			}}},
		{blue, test.Case{Qname: "_https._tcp.example.org.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{test.SRV("_https._tcp.example.org. 30 IN SRV 0 0 443 www.example.org.")}, Ns: []dns.RR{ns},
			Extra: []dns.RR{
				test.A("www.example.org. 30 IN A 192.0.2.10"), test.A("www.example.org. 30 IN A 192.0.2.11"),
				test.AAAA("www.example.org. 30 IN AAAA 2001:db8::10"),
			}}},
		{green, test.Case{Qname: "_https._tcp.example.org.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{test.SRV("_https._tcp.example.org. 30 IN SRV 0 0 8443 www.example.org.")}, Ns: []dns.RR{ns},
			Extra: []dns.RR{
				test.A("www.example.org. 30 IN A 198.51.100.10"), test.A("www.example.org. 30 IN A 198.51.100.11"),
				test.AAAA("www.example.org. 30 IN AAAA 2001:db8::20"),
			}}},
		{green, test.Case{Qname: "_sip._tcp.example.org.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{test.SRV("_sip._tcp.example.org. 30 IN SRV 10 5 5060 sip.example.org.")}, Ns: []dns.RR{ns},
			Extra: []dns.RR{test.A("sip.example.org. 30 IN A 192.0.2.60")}}},
		// A delegation from base: a referral, not authoritative.
		{blue, test.Case{Qname: "www.sub.example.org.", Qtype: dns.TypeA,
			Ns:    []dns.RR{test.NS("sub.example.org. 30 IN NS ns.sub.example.org.")},
			Extra: []dns.RR{test.A("ns.sub.example.org. 30 IN A 192.0.2.53")}}},
	}
	const referral = "www.sub.example.org."
	for i, tt := range tests {
		m, rcode, err := serve(context.Background(), tt.b, tt.tc.Msg(), "")
		if err != nil || rcode != dns.RcodeSuccess || m == nil {
			t.Errorf("Test %d: expected a written reply and no error, got rcode %d, error %v, reply %v", i, rcode, err, m)
			continue
		}
		if err := test.SortAndCheck(m, tt.tc); err != nil {
			t.Errorf("Test %d (%s %s): expected %v, got %v", i, tt.tc.Qname, dns.TypeToString[tt.tc.Qtype], err, m)
		}
		if wantAA := tt.tc.Qname != referral; m.Authoritative != wantAA {
			t.Errorf("Test %d: expected AA %t, got %t", i, wantAA, m.Authoritative)
		}
		if !m.Response || len(m.Question) != 1 || m.Question[0].Name != tt.tc.Qname {
			t.Errorf("Test %d: expected a reply to the question, got %v", i, m)
		}
	}
}

// TestServeDNSBaseWildcard: a base wildcard answers names no pool holds,
// never a switched name the selected pool lacks.
func TestServeDNSBaseWildcard(t *testing.T) {
	dir := writeZones(t, map[string]string{
		"base.db":  baseDB + "*.example.org. IN A 203.0.113.200\n",
		"blue.db":  blueDB,
		"green.db": greenDB,
	})
	blue := newTestBluegreen(t, dir, pools3+"weights blue 1")
	green := newTestBluegreen(t, dir, pools3+"weights green 1")
	tests := []struct {
		b      *Bluegreen
		qname  string
		rcode  int
		answer string
	}{
		{blue, "anything.example.org.", dns.RcodeSuccess, "203.0.113.200"},
		{green, "anything.example.org.", dns.RcodeSuccess, "203.0.113.200"},
		{blue, "onlyblue.example.org.", dns.RcodeSuccess, "192.0.2.40"},
		{green, "onlyblue.example.org.", dns.RcodeNameError, ""},
		{blue, "long.example.org.", dns.RcodeNameError, ""},
		{green, "long.example.org.", dns.RcodeSuccess, "198.51.100.50"},
	}
	for i, tc := range tests {
		m, _, err := serve(context.Background(), tc.b, query(tc.qname, dns.TypeA), "")
		require.NoError(t, err)
		var got string
		if len(m.Answer) == 1 {
			got = m.Answer[0].(*dns.A).A.String()
		}
		if m.Rcode != tc.rcode || got != tc.answer || len(m.Answer) > 1 {
			t.Errorf("Test %d: expected %s %q for %s, got %s %v", i, dns.RcodeToString[tc.rcode], tc.answer, tc.qname, dns.RcodeToString[m.Rcode], m.Answer)
		}
	}
}

// TestServeDNSServerFailure: a CNAME loop is a SERVFAIL the server writes.
func TestServeDNSServerFailure(t *testing.T) {
	b := newTestBluegreen(t, stdZones(t), pools3)
	m, rcode, err := serve(context.Background(), b, query("selfloop.example.org.", dns.TypeA), "")
	require.NoError(t, err)
	assert.Equal(t, dns.RcodeServerFailure, rcode)
	assert.Nil(t, m, "expected the server, not the plugin, to write the SERVFAIL")
}

// TestServeDNSOnePool: across many clients under a 50/50 split every answer
// holds the records of exactly one pool, CNAME chains included, and the pool
// is the one the stable hash gives the client's /24.
func TestServeDNSOnePool(t *testing.T) {
	b := newTestBluegreen(t, stdZones(t), pools3+"weights blue 50 green 50")
	weights := []uint64{50, 50}
	seen := map[string]int{}
	for i := range 1000 {
		remote := fmt.Sprintf("10.%d.%d.%d", i/256, i%256, 1+i%250)
		want := expectedPool(b.cfg.name, weights, pick.Mask(netip.MustParseAddr(remote), 24))
		for j, qname := range []string{"www.example.org.", "api.example.org.", "chain.example.org.", "alias.example.org."} {
			ctx := metadata.ContextWithMetadata(context.Background())
			m, _, err := serve(ctx, b, query(qname, dns.TypeA), remote)
			require.NoError(t, err)
			got := poolOf(m)
			if got != want {
				t.Fatalf("Test %d/%d: expected client %s to get pool %s for %s, got %s: %v", i, j, remote, want, qname, got, m.Answer)
			}
			if md := metadata.ValueFunc(ctx, "bluegreen/pool"); md == nil || md() != want {
				t.Fatalf("Test %d/%d: expected metadata bluegreen/pool %s, got %v", i, j, want, md)
			}
			for _, rr := range m.Answer {
				if c, ok := rr.(*dns.CNAME); ok && c.Target != "www.example.org." && c.Target != "api.example.org." {
					t.Fatalf("Test %d/%d: expected an in-zone chain, got %v", i, j, c)
				}
			}
		}
		seen[want]++
	}
	if seen["blue"] < 400 || seen["green"] < 400 {
		t.Errorf("expected both pools to get about half of 1000 clients, got %v", seen)
	}
}

// TestServeDNSSticky: the sticky key is the /24 (subnet), the whole address
// (ip), or nothing (off).
func TestServeDNSSticky(t *testing.T) {
	dir := stdZones(t)
	body := pools3 + "weights blue 1 green 1\n"
	subnet := newTestBluegreen(t, dir, body)
	ip := newTestBluegreen(t, dir, body+"sticky ip")
	wide := newTestBluegreen(t, dir, body+"sticky subnet 16 32")
	weights := []uint64{1, 1}

	// Find hosts in one /24 whose own pool differs from the /24's, so the
	// modes are told apart.
	var split []string
	for h := 1; h < 255 && len(split) < 8; h++ {
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(h)})
		if expectedPool(ip.cfg.name, weights, a) != expectedPool(ip.cfg.name, weights, pick.Mask(a, 24)) {
			split = append(split, a.String())
		}
	}
	require.NotEmpty(t, split)

	tests := []struct {
		b      *Bluegreen
		remote string
		key    string // the address the pool is computed from
	}{
		{subnet, "192.0.2.1", "192.0.2.0"},
		{subnet, "192.0.2.200", "192.0.2.0"},
		{subnet, "2001:db8:1:2ff::1", "2001:db8:1:200::"},
		{wide, "192.0.77.1", "192.0.0.0"},
		{wide, "2001:db8:1:2ff::1", "2001:db8::"},
		{ip, "2001:db8:1:2ff::1", "2001:db8:1:2ff::1"},
		{ip, "::ffff:192.0.2.9", "192.0.2.9"}, // an IPv4-mapped source is its IPv4 address
	}
	for _, s := range split {
		tests = append(tests, struct {
			b      *Bluegreen
			remote string
			key    string
		}{ip, s, s}, struct {
			b      *Bluegreen
			remote string
			key    string
		}{subnet, s, "192.0.2.0"})
	}
	for i, tc := range tests {
		want := expectedPool(tc.b.cfg.name, weights, netip.MustParseAddr(tc.key))
		for range 3 {
			m, _, err := serve(context.Background(), tc.b, query("www.example.org.", dns.TypeA), tc.remote)
			require.NoError(t, err)
			if got := poolOf(m); got != want {
				t.Errorf("Test %d: expected %s (key %s, sticky %s) to get %s, got %s", i, tc.remote, tc.key, tc.b.cfg.sticky, want, got)
				break
			}
		}
	}
}

func TestServeDNSStickyOff(t *testing.T) {
	dir := stdZones(t)
	even := newTestBluegreen(t, dir, pools3+"weights blue 1 green 1\nsticky off")
	allBlue := newTestBluegreen(t, dir, pools3+"weights blue 1 green 0\nsticky off")
	seen := map[string]int{}
	for range 1000 {
		m, _, err := serve(context.Background(), even, query("www.example.org.", dns.TypeA), "192.0.2.1")
		require.NoError(t, err)
		seen[poolOf(m)]++
		m, _, err = serve(context.Background(), allBlue, query("www.example.org.", dns.TypeA), "192.0.2.1")
		require.NoError(t, err)
		if got := poolOf(m); got != "blue" {
			t.Fatalf("expected a pool with weight 0 never to be chosen, got %s", got)
		}
	}
	if seen["blue"] < 400 || seen["green"] < 400 || len(seen) != 2 {
		t.Errorf("expected one client to get both pools about evenly with sticky off, got %v", seen)
	}
}

func TestServeDNSPins(t *testing.T) {
	dir := stdZones(t)
	pins := pools3 + "weights blue 1 green 0\npin green 10.9.0.0/16 2001:db8:9::/48\n"
	subnet := newTestBluegreen(t, dir, pins)
	ip := newTestBluegreen(t, dir, pins+"sticky ip")
	off := newTestBluegreen(t, dir, pins+"sticky off")

	tests := []struct {
		b      *Bluegreen
		remote string
		ecs    string
		want   string
	}{
		{subnet, "10.9.1.1", "", "green"},
		{subnet, "10.8.1.1", "", "blue"},
		{subnet, "2001:db8:9::1", "", "green"},
		{subnet, "2001:db8:8::1", "", "blue"},
		{subnet, "::ffff:10.9.1.1", "", "green"},
		// In subnet mode the ECS address is the client.
		{subnet, "10.8.1.1", "10.9.3.0/24", "green"},
		{subnet, "10.9.1.1", "10.8.0.0/24", "blue"},
		{subnet, "10.8.1.1", "2001:db8:9:100::/56", "green"},
		{subnet, "2001:db8:9::1", "192.0.2.0/24", "blue"},
		// An ECS prefix of 0 says nothing: the source is the client.
		{subnet, "10.9.1.1", "0.0.0.0/0", "green"},
		{subnet, "10.8.1.1", "0.0.0.0/0", "blue"},
		// sticky ip and off match the source address.
		{ip, "10.9.1.1", "", "green"},
		{ip, "10.8.1.1", "10.9.3.0/24", "blue"},
		{ip, "2001:db8:9::1", "", "green"},
		{off, "10.9.1.1", "", "green"},
		{off, "2001:db8:9::77", "", "green"},
		{off, "10.8.1.1", "", "blue"},
	}
	for i, tc := range tests {
		m := query("www.example.org.", dns.TypeA)
		if tc.ecs != "" {
			m = ecs(t, "www.example.org.", dns.TypeA, tc.ecs)
		}
		for range 5 { // sticky off must not matter
			r, _, err := serve(context.Background(), tc.b, m.Copy(), tc.remote)
			require.NoError(t, err)
			if got := poolOf(r); got != tc.want {
				t.Errorf("Test %d: expected %s (ECS %q, sticky %s) to get %s, got %s", i, tc.remote, tc.ecs, tc.b.cfg.sticky, tc.want, got)
				break
			}
		}
	}
}

// TestServeDNSECSKey: in subnet mode the ECS address, masked, is the key.
func TestServeDNSECSKey(t *testing.T) {
	b := newTestBluegreen(t, stdZones(t), pools3+"weights blue 1 green 1")
	weights := []uint64{1, 1}
	src := netip.MustParseAddr("192.0.2.1")
	srcPool := expectedPool(b.cfg.name, weights, pick.Mask(src, 24))
	// ECS subnets whose pool differs from the source's.
	n := 0
	for i := 0; i < 256 && n < 10; i++ {
		sub := netip.AddrFrom4([4]byte{198, 51, byte(i), 0})
		want := expectedPool(b.cfg.name, weights, sub)
		if want == srcPool {
			continue
		}
		n++
		for j, p := range []string{sub.String() + "/24", netip.AddrFrom4([4]byte{198, 51, byte(i), 77}).String() + "/32"} {
			m, _, err := serve(context.Background(), b, ecs(t, "www.example.org.", dns.TypeA, p), src.String())
			require.NoError(t, err)
			if got := poolOf(m); got != want {
				t.Errorf("Test %d/%d: expected ECS %s to get %s (the source gets %s), got %s", i, j, p, want, srcPool, got)
			}
		}
	}
	require.Equal(t, 10, n)
}

// TestServeDNSECSScope: the reply echoes ECS with the prefix the choice
// depended on.
func TestServeDNSECSScope(t *testing.T) {
	dir := stdZones(t)
	subnet := newTestBluegreen(t, dir, pools3+"weights blue 1 green 1")
	wide := newTestBluegreen(t, dir, pools3+"weights blue 1 green 1\nsticky subnet 20 48")
	ip := newTestBluegreen(t, dir, pools3+"weights blue 1 green 1\nsticky ip")
	off := newTestBluegreen(t, dir, pools3+"weights blue 1 green 1\nsticky off")
	pinned := newTestBluegreen(t, dir, pools3+"weights blue 1\npin green 192.0.2.128/25")

	tests := []struct {
		b     *Bluegreen
		qname string
		ecs   string
		scope uint8
	}{
		{subnet, "www", "192.0.2.0/24", 24},
		{subnet, "www", "192.0.0.0/16", 16},
		{subnet, "www", "192.0.2.77/32", 24},
		{subnet, "www", "192.0.2.0/25", 24},
		{subnet, "www", "2001:db8:1::/64", 56},
		{subnet, "www", "2001:db8::/48", 48},
		{subnet, "www", "2001:db8:1::1/128", 56},
		{subnet, "www", "0.0.0.0/0", 0},
		{subnet, "www", "::/0", 0},
		// Switched names, answered or not, depend on the choice.
		{subnet, "api", "192.0.2.0/24", 24},
		{subnet, "alias", "192.0.2.0/24", 24}, // a base CNAME into a switched name
		{subnet, "onlyblue", "192.0.2.0/24", 24},
		{subnet, "foo.wild", "192.0.2.0/24", 24},
		// Base names depend on no choice.
		{subnet, "shared", "192.0.2.0/24", 0},
		{subnet, "nowhere", "192.0.2.0/24", 0},
		{subnet, "example.org.", "192.0.2.0/24", 0},
		{wide, "www", "192.0.2.0/24", 20},
		{wide, "www", "192.0.0.0/18", 18},
		{wide, "www", "2001:db8:1::/64", 48},
		{ip, "www", "192.0.2.0/24", 0},
		{ip, "www", "2001:db8:1::/64", 0},
		{off, "www", "192.0.2.0/24", 0},
		// A pin longer than V4LEN that splits the /24 narrows the scope.
		{pinned, "www", "192.0.2.200/32", 25},
		{pinned, "www", "192.0.2.10/32", 25},
		{pinned, "www", "192.0.2.0/24", 24},
		{pinned, "www", "198.51.100.0/24", 24},
		{pinned, "shared", "192.0.2.200/32", 0},
	}
	for i, tc := range tests {
		qname := tc.qname
		if !strings.HasSuffix(qname, ".") {
			qname += ".example.org."
		}
		q := ecs(t, qname, dns.TypeA, tc.ecs)
		sent := replyECS(q)
		m, _, err := serve(context.Background(), tc.b, q, "10.0.0.1")
		require.NoError(t, err)
		got := replyECS(m)
		if got == nil {
			t.Errorf("Test %d: expected ECS echoed for %s %s, got none: %v", i, qname, tc.ecs, m.Extra)
			continue
		}
		if got.SourceScope != tc.scope {
			t.Errorf("Test %d: expected scope %d for %s %s (sticky %s), got %d", i, tc.scope, qname, tc.ecs, tc.b.cfg.sticky, got.SourceScope)
		}
		if got.Family != sent.Family || got.SourceNetmask != sent.SourceNetmask || !got.Address.Equal(sent.Address) {
			t.Errorf("Test %d: expected family, source prefix and address echoed as %v, got %v", i, sent, got)
		}
		// The reply must pack: it goes on the wire.
		if _, err := m.Pack(); err != nil {
			t.Errorf("Test %d: expected the reply to pack, got %v", i, err)
		}
	}
}

// TestServeDNSECSOpt: the echoed OPT keeps the request's UDP size and DO
// bit; without ECS the plugin adds no OPT of its own.
func TestServeDNSECSOpt(t *testing.T) {
	b := newTestBluegreen(t, stdZones(t), pools3)
	q := query("www.example.org.", dns.TypeA)
	q.SetEdns0(4000, true)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("192.0.2.0").To4()})
	m, _, err := serve(context.Background(), b, q, "")
	require.NoError(t, err)
	opt := m.IsEdns0()
	require.NotNil(t, opt)
	assert.Equal(t, uint16(4000), opt.UDPSize())
	assert.True(t, opt.Do())
	assert.Len(t, opt.Option, 1)

	// No ECS in the query: no OPT from the plugin (the server adds its own).
	q = query("www.example.org.", dns.TypeA)
	q.SetEdns0(4000, false)
	m, _, err = serve(context.Background(), b, q, "")
	require.NoError(t, err)
	assert.Nil(t, m.IsEdns0())
	m, _, err = serve(context.Background(), b, query("www.example.org.", dns.TypeA), "")
	require.NoError(t, err)
	assert.Nil(t, m.IsEdns0())
}

// TestServeDNSECSFamilyZero: dig's +subnet=0 sends family 0 with source
// prefix 0 — legal; it is echoed with scope 0 and the source address is the
// client.
func TestServeDNSECSFamilyZero(t *testing.T) {
	b := newTestBluegreen(t, stdZones(t), pools3+"weights blue 1\npin green 10.9.0.0/16")
	q := withOption(t, query("www.example.org.", dns.TypeA), &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 0}, true)
	for i, tc := range []struct{ remote, want string }{{"10.9.0.1", "green"}, {"10.8.0.1", "blue"}} {
		m, _, err := serve(context.Background(), b, q.Copy(), tc.remote)
		require.NoError(t, err)
		assert.Equal(t, tc.want, poolOf(m), "Test %d: pool", i)
		e := replyECS(m)
		if e == nil {
			t.Errorf("Test %d: expected ECS family 0 echoed, got none", i)
			continue
		}
		if e.Family != 0 || e.SourceNetmask != 0 || e.SourceScope != 0 {
			t.Errorf("Test %d: expected family 0, source 0, scope 0, got %v", i, e)
		}
		_, err = m.Pack()
		assert.NoError(t, err, "Test %d: pack", i)
	}
}

// TestServeDNSECSMalformed: a query whose ECS option RFC 7871 §7.1.2 has a
// server reject gets FORMERR (written by the server, with an OPT), never
// an answer: not one for the subnet it names, not one for the source.
func TestServeDNSECSMalformed(t *testing.T) {
	// Everyone gets blue, except clients in 198.51.100.0/24.
	b := newTestBluegreen(t, stdZones(t), pools3+"weights blue 1\npin green 198.51.100.0/24")
	v4 := net.ParseIP("198.51.100.1").To4()
	scoped := subnetOpt(1, 24, "198.51.100.0")
	scoped.SourceScope = 24
	tests := [][]dns.EDNS0{
		{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 33, Address: v4}},
		{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 255, Address: v4}},
		{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: nil}},
		{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("2001:db8::1")}},
		{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IP{198, 51}}},
		{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 129, Address: net.ParseIP("::ffff:198.51.100.1")}},
		{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 56, Address: net.IP{1, 2, 3}}},
		{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 3, SourceNetmask: 24, Address: v4}},
		{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 0, SourceNetmask: 24, Address: v4}},
		// Bits set beyond the source prefix.
		{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: v4}},
		{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 120, Address: net.ParseIP("::ffff:198.51.100.1")}},
		// A scope in a query.
		{scoped},
		// Two ECS options, well formed each.
		{subnetOpt(1, 24, "198.51.100.0"), subnetOpt(1, 24, "192.0.2.0")},
	}
	for i, opts := range tests {
		q := query("www.example.org.", dns.TypeA)
		q.SetEdns0(1232, false)
		q.IsEdns0().Option = opts
		m, rcode, err := serve(context.Background(), b, q, "192.0.2.1")
		require.NoError(t, err)
		if rcode != dns.RcodeFormatError || m != nil {
			t.Errorf("Test %d: expected FORMERR left to the server for %v, got rcode %s and reply %v", i, opts, dns.RcodeToString[rcode], m)
		}
	}
	// The control: the same subnet, well formed, is pinned to green.
	m, _, err := serve(context.Background(), b, ecs(t, "www.example.org.", dns.TypeA, "198.51.100.0/24"), "192.0.2.1")
	require.NoError(t, err)
	assert.Equal(t, "green", poolOf(m))
}

// TestServeDNSOpcode: bluegreen answers QUERY only; NOTIFY, UPDATE and the
// others get NOTIMP (written by the server) for its zones, and go to the
// next plugin for other zones.
func TestServeDNSOpcode(t *testing.T) {
	b := newTestBluegreen(t, stdZones(t), pools3)
	for i, op := range []int{dns.OpcodeNotify, dns.OpcodeUpdate, dns.OpcodeIQuery, dns.OpcodeStatus, 6} {
		for _, qname := range []string{"example.org.", "www.example.org."} {
			q := query(qname, dns.TypeSOA)
			q.Opcode = op
			m, rcode, err := serve(context.Background(), b, q, "")
			require.NoError(t, err)
			if rcode != dns.RcodeNotImplemented || m != nil {
				t.Errorf("Test %d: expected %s for %s to be NOTIMP, got rcode %s and reply %v", i, dns.OpcodeToString[op], qname, dns.RcodeToString[rcode], m)
			}
		}
		q := query("example.net.", dns.TypeSOA)
		q.Opcode = op
		_, rcode, err := serve(context.Background(), b, q, "")
		require.NoError(t, err)
		assert.Equal(t, nextRcode, rcode, "Test %d: %s outside the zones goes on", i, dns.OpcodeToString[op])
	}
}

// TestServeDNSInheritsChoice: a query whose context carries a choice for
// its switch (made by the query whose CNAME chain led back here) is
// answered from that pool, whatever the weights and pins, is not counted
// again, and tells the outer query when its answer was the pool's.
func TestServeDNSInheritsChoice(t *testing.T) {
	dir := stdZones(t)
	b := newTestBluegreen(t, dir, pools3+"weights blue 1\npin blue 10.9.0.0/16")
	other := newTestBluegreen(t, dir, pools3+"weights blue 1")
	count := func(pool string) float64 {
		return testutil.ToFloat64(answersTotal.WithLabelValues("", b.cfg.name, pool))
	}
	// Another instance of the switch, whose pools are in another order.
	elsewhere := &Bluegreen{cfg: &config{pools: []poolConf{{name: "red"}, {name: "green"}, {name: "blue"}}}}

	tests := []struct {
		name     string
		c        *choice
		key      any
		qname    string
		want     string
		switched bool
		counted  bool
	}{
		{"own choice", &choice{b: b, idx: 1}, b.choiceKey, "www.example.org.", "green", true, false},
		{"own choice, base name", &choice{b: b, idx: 1}, b.choiceKey, "shared.example.org.", "", false, false},
		{"another instance, by pool name", &choice{b: elsewhere, idx: 1}, b.choiceKey, "www.example.org.", "green", true, false},
		{"another instance, pool unknown here", &choice{b: elsewhere, idx: 0}, b.choiceKey, "www.example.org.", "blue", false, true},
		{"another switch's choice", &choice{b: other, idx: 1}, other.choiceKey, "www.example.org.", "blue", false, true},
	}
	for i, tc := range tests {
		blue, green, base := count("blue"), count("green"), count(baseLabel)
		ctx := context.WithValue(context.Background(), tc.key, tc.c)
		m, _, err := serve(ctx, b, query(tc.qname, dns.TypeA), "10.9.0.1")
		require.NoError(t, err)
		if tc.want == "" {
			// A base name: base's record.
			require.Len(t, m.Answer, 1, "Test %d (%s)", i, tc.name)
			assert.Equal(t, "192.0.2.99", m.Answer[0].(*dns.A).A.String(), "Test %d (%s)", i, tc.name)
		} else if got := poolOf(m); got != tc.want {
			t.Errorf("Test %d (%s): expected pool %q, got %q", i, tc.name, tc.want, got)
		}
		if got := tc.c.switched.Load(); got != tc.switched {
			t.Errorf("Test %d (%s): expected the choice marked switched %t, got %t", i, tc.name, tc.switched, got)
		}
		counted := count("blue")+count("green")+count(baseLabel) != blue+green+base
		if counted != tc.counted {
			t.Errorf("Test %d (%s): expected the answer counted %t, got %t", i, tc.name, tc.counted, counted)
		}
	}
}

func TestServeDNSFallthrough(t *testing.T) {
	dir := stdZones(t)
	all := newTestBluegreen(t, dir, pools3+"weights blue 0 green 1\nfallthrough")
	none := newTestBluegreen(t, dir, pools3+"weights blue 0 green 1")
	other := newTestBluegreen(t, dir, pools3+"weights blue 0 green 1\nfallthrough example.net")
	sub := newTestBluegreen(t, dir, pools3+"weights blue 0 green 1\nfallthrough sub2.example.org")

	tests := []struct {
		b     *Bluegreen
		qname string
		qtype uint16
		next  bool
		rcode int // of the written reply when not passed on
	}{
		{all, "nowhere.example.org.", dns.TypeA, true, 0},
		{all, "sub.www.example.org.", dns.TypeA, true, 0},
		{all, "www.example.org.", dns.TypeA, false, dns.RcodeSuccess},
		{all, "shared.example.org.", dns.TypeA, false, dns.RcodeSuccess},
		// NODATA of an existing name is an answer.
		{all, "shared.example.org.", dns.TypeAAAA, false, dns.RcodeSuccess},
		{all, "www.example.org.", dns.TypeTXT, false, dns.RcodeSuccess},
		// A switched name the selected pool lacks is NXDOMAIN from that pool.
		{all, "onlyblue.example.org.", dns.TypeA, false, dns.RcodeNameError},
		{all, "foo.wild.example.org.", dns.TypeA, false, dns.RcodeNameError},
		{none, "nowhere.example.org.", dns.TypeA, false, dns.RcodeNameError},
		{other, "nowhere.example.org.", dns.TypeA, false, dns.RcodeNameError},
		{sub, "nowhere.example.org.", dns.TypeA, false, dns.RcodeNameError},
		{sub, "x.sub2.example.org.", dns.TypeA, true, 0},
	}
	for i, tc := range tests {
		m, rcode, err := serve(context.Background(), tc.b, query(tc.qname, tc.qtype), "")
		require.NoError(t, err)
		if tc.next {
			if rcode != nextRcode || m != nil {
				t.Errorf("Test %d: expected %s to be passed to the next plugin, got rcode %d, reply %v", i, tc.qname, rcode, m)
			}
			continue
		}
		if rcode == nextRcode || m == nil {
			t.Errorf("Test %d: expected %s to be answered, got rcode %d", i, tc.qname, rcode)
			continue
		}
		if m.Rcode != tc.rcode {
			t.Errorf("Test %d: expected rcode %s for %s, got %s", i, dns.RcodeToString[tc.rcode], tc.qname, dns.RcodeToString[m.Rcode])
		}
	}
}

func TestServeDNSOutsideZone(t *testing.T) {
	b := newTestBluegreen(t, stdZones(t), pools3)
	for i, qname := range []string{"example.net.", "www.example.net.", "org.", ".", "wwwexample.org."} {
		m, rcode, err := serve(context.Background(), b, query(qname, dns.TypeA), "")
		require.NoError(t, err)
		if rcode != nextRcode || m != nil {
			t.Errorf("Test %d: expected %s to go to the next plugin, got rcode %d, reply %v", i, qname, rcode, m)
		}
	}
	// Without a next plugin the query fails the way CoreDNS's plugins do.
	b.Next = nil
	rcode, err := b.ServeDNS(context.Background(), &test.ResponseWriter{}, query("example.net.", dns.TypeA))
	assert.Equal(t, dns.RcodeServerFailure, rcode)
	assert.Error(t, err)
}

func TestServeDNSTransferRefused(t *testing.T) {
	b := newTestBluegreen(t, stdZones(t), pools3)
	for i, qtype := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
		for _, qname := range []string{"example.org.", "www.example.org."} {
			m, rcode, err := serve(context.Background(), b, query(qname, qtype), "")
			require.NoError(t, err)
			if rcode != dns.RcodeRefused || m != nil {
				t.Errorf("Test %d: expected %s %s refused, got rcode %d, reply %v", i, dns.TypeToString[qtype], qname, rcode, m)
			}
		}
	}
}

// TestServeDNSTTLNotMutated: clamping copies records; the zone's own
// records keep their TTLs, for this instance and any other reading them.
func TestServeDNSTTLNotMutated(t *testing.T) {
	dir := stdZones(t)
	low := newTestBluegreen(t, dir, pools3+"weights blue 1\nttl 30 1")
	high := newTestBluegreen(t, dir, pools3+"weights blue 1\nttl 3600 10")
	floor := newTestBluegreen(t, dir, pools3+"weights blue 1\nttl 3600 400")

	tests := []struct {
		qname   string
		qtype   uint16
		low     uint32 // TTL of the first record of the answer (or authority)
		high    uint32
		floor   uint32
		zoneTTL uint32 // the TTL in the zone file
	}{
		{"www.example.org.", dns.TypeA, 30, 60, 400, 60},
		{"shared.example.org.", dns.TypeA, 30, 300, 400, 300},
		{"zero.example.org.", dns.TypeA, 1, 10, 400, 0},
		{"short.example.org.", dns.TypeA, 5, 10, 400, 5},
		{"nowhere.example.org.", dns.TypeA, 30, 300, 400, 300},   // NXDOMAIN: the SOA
		{"shared.example.org.", dns.TypeAAAA, 30, 300, 400, 300}, // NODATA: the SOA
		{"onlyblue.example.org.", dns.TypeAAAA, 30, 300, 400, 300},
	}
	first := func(m *dns.Msg) dns.RR {
		if len(m.Answer) > 0 {
			return m.Answer[0]
		}
		return m.Ns[0]
	}
	for i, tc := range tests {
		for round := range 2 {
			m, _, err := serve(context.Background(), low, query(tc.qname, tc.qtype), "")
			require.NoError(t, err)
			if got := first(m).Header().Ttl; got != tc.low {
				t.Errorf("Test %d/%d: expected TTL %d with ttl 30 1, got %d", i, round, tc.low, got)
			}
			m, _, err = serve(context.Background(), high, query(tc.qname, tc.qtype), "")
			require.NoError(t, err)
			if got := first(m).Header().Ttl; got != tc.high {
				t.Errorf("Test %d/%d: expected TTL %d with ttl 3600 10, got %d", i, round, tc.high, got)
			}
			m, _, err = serve(context.Background(), floor, query(tc.qname, tc.qtype), "")
			require.NoError(t, err)
			for _, rr := range append(m.Answer, m.Ns...) {
				if got := rr.Header().Ttl; got != tc.floor {
					t.Errorf("Test %d/%d: expected every TTL raised to %d with ttl 3600 400, got %d in %v", i, round, tc.floor, got, rr)
				}
			}
		}
		// Read the zone trees themselves: the views hold their own copies,
		// bounded to [MIN, MAX] once at load; serving never changes them.
		for j, sw := range []*Bluegreen{low, high, floor} {
			want := min(max(tc.zoneTTL, sw.cfg.ttlMin), sw.cfg.ttlMax)
			z := sw.loader.data.Load().byOrigin["example.org."]
			q := query(tc.qname, tc.qtype)
			answer, ns, _, _ := z.Views[0].Lookup(context.Background(), request.Request{W: &test.ResponseWriter{}, Req: q}, tc.qname)
			rr := append(answer, ns...)[0]
			if rr.Header().Ttl != want {
				t.Errorf("Test %d/%d: expected the view's record to hold TTL %d, got %d", i, j, want, rr.Header().Ttl)
			}
		}
	}
}

func TestServeDNSMetadata(t *testing.T) {
	dir := stdZones(t)
	green := newTestBluegreen(t, dir, pools3+"weights green 1")
	tests := []struct {
		qname string
		want  string
	}{
		{"www.example.org.", "green"},
		{"api.example.org.", "green"},
		{"alias.example.org.", "green"},
		{"onlyblue.example.org.", "green"},
		{"shared.example.org.", "_base"},
		{"nowhere.example.org.", "_base"},
		{"example.org.", "_base"},
	}
	for i, tc := range tests {
		ctx := metadata.ContextWithMetadata(context.Background())
		before := testutil.ToFloat64(answersTotal.WithLabelValues("", green.cfg.name, tc.want))
		_, _, err := serve(ctx, green, query(tc.qname, dns.TypeA), "")
		require.NoError(t, err)
		f := metadata.ValueFunc(ctx, "bluegreen/pool")
		if f == nil || f() != tc.want {
			t.Errorf("Test %d: expected metadata bluegreen/pool %q for %s, got %v", i, tc.want, tc.qname, f)
		}
		if after := testutil.ToFloat64(answersTotal.WithLabelValues("", green.cfg.name, tc.want)); after != before+1 {
			t.Errorf("Test %d: expected answers_total{pool=%q} to grow by 1, got %v -> %v", i, tc.want, before, after)
		}
	}
	// Without metadata in the context nothing breaks.
	_, _, err := serve(context.Background(), green, query("www.example.org.", dns.TypeA), "")
	require.NoError(t, err)
}

// TestServeDNSNoPoolForApex: pools without apex data leave the apex to base;
// a pool with apex data switches it.
func TestServeDNSApex(t *testing.T) {
	dir := writeZones(t, map[string]string{
		"base.db":  baseDB,
		"blue.db":  blueDB,
		"green.db": greenDB + "@ IN A 198.51.100.1\n",
	})
	blue := newTestBluegreen(t, dir, pools3+"weights blue 1")
	green := newTestBluegreen(t, dir, pools3+"weights green 1")
	tests := []struct {
		b      *Bluegreen
		qtype  uint16
		answer int
	}{
		{green, dns.TypeA, 1},
		{blue, dns.TypeA, 0},
		{green, dns.TypeSOA, 1},
		{blue, dns.TypeSOA, 1},
		{blue, dns.TypeNS, 1},
		// Base's apex MX is not served once a pool holds the apex.
		{blue, dns.TypeMX, 0},
		{green, dns.TypeMX, 0},
	}
	for i, tc := range tests {
		m, _, err := serve(context.Background(), tc.b, query("example.org.", tc.qtype), "")
		require.NoError(t, err)
		if len(m.Answer) != tc.answer || m.Rcode != dns.RcodeSuccess {
			t.Errorf("Test %d: expected %d answers and NOERROR for the apex %s, got %s %v", i, tc.answer, dns.TypeToString[tc.qtype], dns.RcodeToString[m.Rcode], m.Answer)
		}
		if tc.answer == 0 && (len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA) {
			t.Errorf("Test %d: expected NODATA with the SOA, got %v", i, m.Ns)
		}
	}
}

// TestServeDNSNoBase: without base the SOA comes from the pools.
func TestServeDNSNoBase(t *testing.T) {
	dir := writeZones(t, map[string]string{
		"blue.db":  "$ORIGIN example.org.\n@ IN SOA blue.example.org. h.example.org. 1 7200 3600 1209600 60\nwww IN A 192.0.2.10\nwww IN A 192.0.2.11\n",
		"green.db": "$ORIGIN example.org.\nwww IN A 198.51.100.10\nwww IN A 198.51.100.11\n",
	})
	b := newTestBluegreen(t, dir, "pool blue blue.db\npool green green.db\nweights green 1")
	m, _, err := serve(context.Background(), b, query("www.example.org.", dns.TypeA), "")
	require.NoError(t, err)
	assert.Equal(t, "green", poolOf(m))
	m, _, err = serve(context.Background(), b, query("nowhere.example.org.", dns.TypeA), "")
	require.NoError(t, err)
	require.Equal(t, dns.RcodeNameError, m.Rcode)
	require.Len(t, m.Ns, 1)
	assert.Equal(t, "blue.example.org.", m.Ns[0].(*dns.SOA).Ns)
}

// TestServeDNSZones: one block serving two zones, with files that use
// relative names.
func TestServeDNSZones(t *testing.T) {
	dir := writeZones(t, map[string]string{
		"base.db":  "@ IN SOA ns1 h 1 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n",
		"blue.db":  "www IN A 192.0.2.10\nwww IN A 192.0.2.11\n",
		"green.db": "www IN A 198.51.100.10\nwww IN A 198.51.100.11\n",
	})
	c := caddy.NewTestController("dns", "bluegreen example.org example.net {\nname "+uniqueName()+"\nadmin off\n"+pools3+"weights green 1\n}")
	dnsserver.GetConfig(c).Root = dir
	require.NoError(t, setup(c))
	b := dnsserver.GetConfig(c).Plugin[0](nextHandler).(*Bluegreen)
	t.Cleanup(func() { forget(b.cfg.name) })
	for i, qname := range []string{"www.example.org.", "www.example.net."} {
		m, _, err := serve(context.Background(), b, query(qname, dns.TypeA), "")
		require.NoError(t, err)
		if got := poolOf(m); got != "green" || m.Answer[0].Header().Name != qname {
			t.Errorf("Test %d: expected green's records for %s, got %v", i, qname, m.Answer)
		}
	}
}

func BenchmarkServeDNS(b *testing.B) {
	bg := newTestBluegreen(b, stdZones(b), pools3+"weights blue 90 green 10")
	q := query("www.example.org.", dns.TypeA)
	w := &test.ResponseWriter{RemoteIP: "192.0.2.1"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		bg.ServeDNS(ctx, w, q)
	}
}
