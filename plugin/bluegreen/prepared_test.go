package bluegreen

import (
	"context"
	"testing"

	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

func TestInZone(t *testing.T) {
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		require.NoError(t, err)
		return r
	}
	tests := []struct {
		rrs  []dns.RR
		want bool
	}{
		{[]dns.RR{rr("www.example.org. 30 IN A 192.0.2.1")}, true},
		{[]dns.RR{rr("example.org. 30 IN NS ns1.example.org.")}, true},
		{[]dns.RR{rr("api.example.org. 30 IN CNAME www.example.org."), rr("www.example.org. 30 IN A 192.0.2.1")}, true},
		// A CNAME out of the zone is resolved through the plugin chain,
		// whatever that returns: never kept.
		{[]dns.RR{rr("api.example.org. 30 IN CNAME api.example.net.")}, false},
		{[]dns.RR{rr("api.example.org. 30 IN CNAME api.example.net."), rr("api.example.net. 30 IN A 192.0.2.1")}, false},
		{[]dns.RR{rr("notexample.org. 30 IN A 192.0.2.1")}, false},
		{[]dns.RR{rr("a\\.example.org. 30 IN A 192.0.2.1")}, false},
		{nil, true},
	}
	for i, tc := range tests {
		if got := inZone("example.org.", tc.rrs); got != tc.want {
			t.Errorf("Test %d: expected inZone %v for %v, got %v", i, tc.want, tc.rrs, got)
		}
	}
}

// A prepared answer is the lookup's answer, kept per pool, question and DO
// bit; appending to it (as the server does with an OPT) copies.
func TestPreparedAnswers(t *testing.T) {
	bg := newTestBluegreen(t, stdZones(t), pools3+"weights blue 1 green 1")
	zd := bg.loader.data.Load()
	a := zd.answers["example.org."]
	for i, qname := range []string{"www.example.org.", "api.example.org.", "nowhere.example.org.", "mail.example.org.", "onlyblue.example.org."} {
		for pool := range 2 {
			first, _, err := serve(context.Background(), bg, query(qname, dns.TypeA), "")
			require.NoError(t, err)
			require.NotNil(t, first)
			before := a.n.Load()
			m := query(qname, dns.TypeA)
			st := requestFor(m)
			p1 := a.answer(context.Background(), zd.byOrigin["example.org."], st, qname, pool)
			p2 := a.answer(context.Background(), zd.byOrigin["example.org."], st, qname, pool)
			require.Same(t, p1, p2, "Test %d/%d: the second lookup is the prepared answer", i, pool)
			require.LessOrEqual(t, a.n.Load(), before+1)
			for _, s := range [][]dns.RR{p1.answer, p1.ns, p1.extra} {
				require.Equal(t, len(s), cap(s), "Test %d/%d: prepared sections are clipped", i, pool)
			}
		}
	}
}

func requestFor(m *dns.Msg) request.Request {
	return request.Request{W: &test.ResponseWriter{}, Req: m}
}
