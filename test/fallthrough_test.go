package test

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fallthroughCorefile puts a template after bluegreen that answers every A
// query in example.org with 192.0.2.200.
func fallthroughCorefile(fall string) string {
	return `.:0 {
	bind 127.0.0.1
	bluegreen example.org {
		admin off
		base DIR/base.db
		pool blue DIR/blue.db
		pool green DIR/green.db
		weights blue 50 green 50
		name fallthrough.test
		` + fall + `
	}
	template IN A example.org {
		answer "{{ .Name }} 60 IN A 192.0.2.200"
	}
}`
}

// With fallthrough, a name absent from every pool and from base goes to the
// next plugin; names bluegreen knows never do, even when the client's pool
// lacks them.
func TestFallthrough(t *testing.T) {
	dir := zoneDir(t)
	for _, tc := range []struct {
		fall    string
		through bool
	}{
		{"fallthrough", true},
		{"fallthrough example.org", true},
		{"fallthrough example.com", false},
		{"", false},
	} {
		t.Run(tc.fall, func(t *testing.T) {
			s := startServer(t, fallthroughCorefile(tc.fall), dir)
			both(t, s, func(t *testing.T, network, addr string) {
				// Absent everywhere.
				for _, name := range []string{"nope.example.org", "a.b.nope.example.org"} {
					r := exchange(t, network, addr, query(name, dns.TypeA, subnet(9)))
					if tc.through {
						require.Equal(t, dns.RcodeSuccess, r.Rcode, "%s", r)
						require.Len(t, r.Answer, 1, "%s", r)
						assert.Equal(t, "192.0.2.200", r.Answer[0].(*dns.A).A.String(), "%s: answered by the next plugin", name)
					} else {
						require.Equal(t, dns.RcodeNameError, r.Rcode, "%s: %s", name, r)
						require.Empty(t, r.Answer)
					}
				}
				// Names bluegreen serves never fall through.
				seen := map[string]bool{}
				for i := range 40 {
					ecs := subnet(i * 13)
					r := exchange(t, network, addr, query("pool.example.org", dns.TypeTXT, ecs))
					pool := onePool(t, r)
					seen[pool] = true
					other := map[string]string{"blue": "green", "green": "blue"}[pool]
					r = exchange(t, network, addr, query("only-"+other+".example.org", dns.TypeA, ecs))
					require.Equal(t, dns.RcodeNameError, r.Rcode, "a switched name the %s pool lacks: %s", pool, r)
					// An empty non-terminal in blue's view only.
					r = exchange(t, network, addr, query("ent.example.org", dns.TypeA, ecs))
					require.Equal(t, map[string]int{"blue": dns.RcodeSuccess, "green": dns.RcodeNameError}[pool], r.Rcode, "ent for a %s client: %s", pool, r)
					require.Empty(t, r.Answer, "ent for a %s client", pool)
					// Below a delegation only blue has; below a DNAME only green has.
					r = exchange(t, network, addr, query("y.sub.example.org", dns.TypeA, ecs))
					require.Empty(t, r.Answer, "y.sub for a %s client: %s", pool, r)
					r = exchange(t, network, addr, query("a.legacy.example.org", dns.TypeA, ecs))
					require.Equal(t, map[string]int{"blue": dns.RcodeNameError, "green": dns.RcodeSuccess}[pool], r.Rcode, "a.legacy for a %s client: %s", pool, r)
					r = exchange(t, network, addr, query("www.example.org", dns.TypeA, ecs))
					require.Len(t, r.Answer, 2)
					require.Equal(t, pool, onePool(t, r))
				}
				require.True(t, seen["blue"] && seen["green"], "both pools: %v", seen)
				r := exchange(t, network, addr, query("mail.example.org", dns.TypeA, subnet(1)))
				require.Len(t, r.Answer, 1)
				assert.Equal(t, "192.0.2.25", r.Answer[0].(*dns.A).A.String(), "base name")
				r = exchange(t, network, addr, query("www.example.org", dns.TypeSRV, subnet(1)))
				assert.Equal(t, dns.RcodeSuccess, r.Rcode, "NODATA of a switched name")
				assert.Empty(t, r.Answer, "NODATA of a switched name")
			})
		})
	}
}
