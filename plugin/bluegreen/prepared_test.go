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
			st := requestFor(query(qname, dns.TypeA))
			key := preparedKey{qname: qname, qtype: dns.TypeA, pool: uint8(pool)}
			answer := func() *prepared {
				if p := a.load(key); p != nil {
					return p
				}
				return a.lookup(context.Background(), zd.byOrigin["example.org."], st, key)
			}
			p1 := answer()
			p2 := answer()
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

// ttlWriter sets every TTL of the reply it is handed, as the cache plugin's
// writer does.
type ttlWriter struct {
	test.ResponseWriter
	msg *dns.Msg
}

func (w *ttlWriter) WriteMsg(m *dns.Msg) error {
	for _, s := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range s {
			rr.Header().Ttl = 7
		}
	}
	w.msg = m
	return nil
}

// A plugin wrapping the writer that changes the reply's records changes
// neither the views nor the prepared answers.
func TestServeDNSWriterChangesTTL(t *testing.T) {
	bg := newTestBluegreen(t, stdZones(t), pools3+"weights blue 1\nttl 30 1")
	for i, tc := range []struct {
		qname string
		qtype uint16
		ttl   uint32 // of every record
	}{
		{"www.example.org.", dns.TypeA, 30},
		{"short.example.org.", dns.TypeA, 5},
		{"nowhere.example.org.", dns.TypeA, 30},
		{"svc.example.org.", dns.TypeMX, 30},
		{"zero.example.org.", dns.TypeA, 1},
	} {
		for round := range 3 {
			w := &ttlWriter{}
			_, err := bg.ServeDNS(context.Background(), w, query(tc.qname, tc.qtype))
			require.NoError(t, err)
			m, _, err := serve(context.Background(), bg, query(tc.qname, tc.qtype), "")
			require.NoError(t, err)
			for _, rr := range append(append(m.Answer, m.Ns...), m.Extra...) {
				want := tc.ttl
				if rr.Header().Name == "example.org." || rr.Header().Name == "ns1.example.org." {
					want = 30 // apex and glue from base, TTL 300
				}
				if rr.Header().Name == "www.example.org." && tc.qtype == dns.TypeMX {
					want = 30
				}
				if got := rr.Header().Ttl; got != want {
					t.Errorf("Test %d/%d: expected TTL %d after a writer changed the last reply's, got %d in %v", i, round, want, got, rr)
				}
			}
		}
	}
}
