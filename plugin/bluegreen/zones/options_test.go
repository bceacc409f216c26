package zones

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// BuildWith bounds every TTL in every view, the apex SOA and NS included,
// so negative answers and referrals are bounded too; Build keeps them.
func TestBuildWithBoundsTTL(t *testing.T) {
	base := `$ORIGIN example.org.
@       3600 IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60
@       3600 IN NS  ns1.example.org.
ns1        0 IN A   127.0.0.1
mail      20 IN A   192.0.2.25
`
	pool := `$ORIGIN example.org.
www      300 IN A   192.0.2.1
short      2 IN A   192.0.2.2
`
	tests := []struct {
		opts Options
		want map[string]uint32 // owner/type -> TTL in every view
	}{
		{Options{}, map[string]uint32{"example.org./SOA": 3600, "example.org./NS": 3600, "ns1.example.org./A": 0, "mail.example.org./A": 20, "www.example.org./A": 300, "short.example.org./A": 2}},
		{Options{BoundTTL: true, TTLMax: 30, TTLMin: 5}, map[string]uint32{"example.org./SOA": 30, "example.org./NS": 30, "ns1.example.org./A": 5, "mail.example.org./A": 20, "www.example.org./A": 30, "short.example.org./A": 5}},
		{Options{BoundTTL: true, TTLMax: 0, TTLMin: 0}, map[string]uint32{"example.org./SOA": 0, "example.org./NS": 0, "ns1.example.org./A": 0, "mail.example.org./A": 0, "www.example.org./A": 0, "short.example.org./A": 0}},
	}
	for i, tc := range tests {
		z, err := BuildWith(origin, &Source{Path: "base", Data: []byte(base)}, []Source{{Name: "blue", Path: "blue", Data: []byte(pool)}}, tc.opts)
		require.NoError(t, err)
		for _, view := range []string{"view", "only"} {
			fz := z.Views[0]
			if view == "only" {
				fz = z.Only[0]
			}
			for key, want := range tc.want {
				var qname string
				var qtype uint16
				for j := range key {
					if key[j] == '/' {
						qname, qtype = key[:j], dns.StringToType[key[j+1:]]
					}
				}
				if view == "only" && (qname == "ns1.example.org." || qname == "mail.example.org.") {
					continue // base names are not in the pool-only view
				}
				answer, _, _ := lookup(fz, qname, qtype)
				require.NotEmpty(t, answer, "Test %d: no %s in the %s", i, key, view)
				if got := answer[0].Header().Ttl; got != want {
					t.Errorf("Test %d: expected %s with TTL %d in the %s, got %d", i, key, want, view, got)
				}
			}
		}
	}
}
