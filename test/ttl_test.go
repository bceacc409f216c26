package test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ttlZones writes a base whose SOA has soaTTL and pools with records of
// long, short and zero TTLs, and returns the directory.
func ttlZones(t *testing.T, soaTTL int) string {
	dir := t.TempDir()
	files := map[string]string{
		"base.db": fmt.Sprintf(`$ORIGIN example.org.
@     %[1]d IN SOA ns1 hostmaster 1 7200 3600 1209600 %[1]d
@     3600 IN NS  ns1
ns1   3600 IN A   192.0.2.53
long  3600 IN A   192.0.2.1
tiny  1    IN A   192.0.2.2
mid   10   IN A   192.0.2.3
`, soaTTL),
	}
	for pool, n := range map[string]int{"blue": 1, "green": 2} {
		files[pool+".db"] = fmt.Sprintf(`$ORIGIN example.org.
www   3600 IN A   10.%[1]d.0.1
fast  2    IN A   10.%[1]d.0.2
zero  0    IN A   10.%[1]d.0.3
svc   10   IN A   10.%[1]d.0.4
`, n)
	}
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	return dir
}

// Every TTL the plugin answers with is capped at MAX and floored at MIN,
// on positive answers and on the SOA of negative ones.
func TestTTLCapAndFloor(t *testing.T) {
	for _, tc := range []struct {
		ttl    string
		soaTTL int
		want   map[string]uint32 // name -> TTL of every answer record
		soa    uint32            // TTL of the SOA in negative answers
		cap    uint32            // MAX
	}{
		{"ttl 20 5", 3600,
			map[string]uint32{"long": 20, "tiny": 5, "mid": 10, "www": 20, "fast": 5, "zero": 5, "svc": 10}, 20, 20},
		{"ttl 20 5", 2, map[string]uint32{"www": 20}, 5, 20},
		{"", 3600, // defaults: ttl 30 1
			map[string]uint32{"long": 30, "tiny": 1, "mid": 10, "www": 30, "fast": 2, "zero": 1}, 30, 30},
		{"ttl 7 7", 3600, map[string]uint32{"long": 7, "tiny": 7, "www": 7, "zero": 7}, 7, 7},
		{"ttl 3600 0", 86400, map[string]uint32{"long": 3600, "zero": 0, "fast": 2}, 3600, 3600},
	} {
		t.Run(fmt.Sprintf("%s/soa%d", tc.ttl, tc.soaTTL), func(t *testing.T) {
			s := startServer(t, bgCorefile(`weights blue 50 green 50
				name ttl.test
				`+tc.ttl), ttlZones(t, tc.soaTTL))
			both(t, s, func(t *testing.T, network, addr string) {
				for _, ecs := range []netip.Prefix{subnet(1), subnet(2), subnet(3), {}} {
					for name, want := range tc.want {
						r := exchange(t, network, addr, query(name+".example.org", dns.TypeA, ecs))
						require.Equal(t, dns.RcodeSuccess, r.Rcode)
						require.NotEmpty(t, r.Answer, "%s", name)
						for _, rr := range append(r.Answer, r.Ns...) {
							if rr.Header().Name == name+".example.org." {
								assert.Equal(t, want, rr.Header().Ttl, "%s: %s", name, rr)
							} else {
								// The apex NS in authority (3600) is capped too.
								assert.Equal(t, min(tc.cap, 3600), rr.Header().Ttl, "%s", rr)
							}
						}
					}
					for _, neg := range []struct {
						name  string
						qtype uint16
						rcode int
					}{
						{"nope", dns.TypeA, dns.RcodeNameError},        // NXDOMAIN, base
						{"www", dns.TypeTXT, dns.RcodeSuccess},         // NODATA, switched
						{"long", dns.TypeAAAA, dns.RcodeSuccess},       // NODATA, base
						{"x.www", dns.TypeA, dns.RcodeNameError},       // NXDOMAIN below a switched name
						{"example.org", dns.TypeTXT, dns.RcodeSuccess}, // NODATA at the apex
					} {
						qname := neg.name + ".example.org"
						if neg.name == "example.org" {
							qname = "example.org"
						}
						r := exchange(t, network, addr, query(qname, neg.qtype, ecs))
						require.Equal(t, neg.rcode, r.Rcode, "%s", qname)
						require.Empty(t, r.Answer)
						require.Len(t, r.Ns, 1, "%s: authority", qname)
						soa, ok := r.Ns[0].(*dns.SOA)
						require.True(t, ok, "%s: want SOA, got %s", qname, r.Ns[0])
						assert.Equal(t, tc.soa, soa.Hdr.Ttl, "%s %s: negative answer's SOA TTL", qname, dns.TypeToString[neg.qtype])
					}
				}
			})
		})
	}
}
