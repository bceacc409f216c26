package bluegreen

import (
	"context"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// A pool holding a record at the apex makes the apex a name some pool
// holds, but the apex is in every view: the other pools' clients still get
// the apex NS with base's glue, as the file plugin gives it, and the NS
// answer does not depend on the pool (scope 0). Found by the nested-origins
// differential test (test/differential_cases_test.go).
func TestApexNSGlueWhenAPoolHoldsTheApex(t *testing.T) {
	dir := writeZones(t, map[string]string{
		"base.db": "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 h 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.254\n",
		"p0.db":   "$ORIGIN example.org.\n$TTL 300\n@ IN TXT \"p0\"\n",
		"p1.db":   "$ORIGIN example.org.\n$TTL 300\nwww IN A 192.0.2.1\n",
	})
	b := newTestBluegreen(t, dir, "base base.db\npool p0 p0.db\npool p1 p1.db\npin p0 10.0.0.0/24\npin p1 10.0.1.0/24")
	for i, client := range []string{"10.0.0.0/24", "10.0.1.0/24"} {
		m, _, err := serve(context.Background(), b, ecs(t, "example.org.", dns.TypeNS, client), "")
		require.NoError(t, err)
		require.Len(t, m.Answer, 1, "Test %d: expected the apex NS, got %v", i, m.Answer)
		var glue []string
		for _, rr := range m.Extra {
			if rr.Header().Rrtype != dns.TypeOPT {
				glue = append(glue, rr.String())
			}
		}
		require.Equal(t, []string{"ns1.example.org.\t30\tIN\tA\t192.0.2.254"}, glue, "Test %d: expected base's glue for pool p%d's clients", i, i)
		require.Equal(t, uint8(0), replyECS(m).SourceScope, "Test %d: expected scope 0, the NS answer is every pool's", i)
	}
	// The apex TXT is p0's alone: switched.
	for i, client := range []string{"10.0.0.0/24", "10.0.1.0/24"} {
		m, _, err := serve(context.Background(), b, ecs(t, "example.org.", dns.TypeTXT, client), "")
		require.NoError(t, err)
		require.Equal(t, dns.RcodeSuccess, m.Rcode, "Test %d", i)
		require.Len(t, m.Answer, 1-i, "Test %d: expected p0's TXT for p0's clients only", i)
		require.Equal(t, uint8(24), replyECS(m).SourceScope, "Test %d: expected the sticky scope", i)
	}
}
