package bluegreen

import (
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/test"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
)

func TestTTLBounds(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		max, min uint32
		next     time.Duration // from now; 0 means nothing scheduled
		none     bool          // nothing scheduled
		wantMax  uint32
		wantMin  uint32
	}{
		{30, 1, 0, true, 30, 1},
		{0, 0, 0, true, 0, 0},
		{3600, 10, 0, true, 3600, 10},
		// A scheduled change lowers the cap to the whole seconds left.
		{30, 1, 10 * time.Second, false, 10, 1},
		{30, 1, 10*time.Second + 900*time.Millisecond, false, 10, 1},
		{30, 1, 29 * time.Second, false, 29, 1},
		{30, 1, 30 * time.Second, false, 30, 1},
		{30, 1, 31 * time.Second, false, 30, 1},
		{30, 1, time.Hour, false, 30, 1},
		// Never below the floor.
		{30, 1, 500 * time.Millisecond, false, 1, 1},
		{30, 5, 3 * time.Second, false, 5, 5},
		{30, 0, 500 * time.Millisecond, false, 0, 0},
		// The change is due or overdue: the floor.
		{30, 1, 0, false, 1, 1},
		{30, 1, -time.Minute, false, 1, 1},
		{30, 7, -time.Second, false, 7, 7},
	}
	for i, tc := range tests {
		var next time.Time
		if !tc.none {
			next = now.Add(tc.next)
		}
		gotMax, gotMin := ttlBounds(tc.max, tc.min, next, now)
		if gotMax != tc.wantMax || gotMin != tc.wantMin {
			t.Errorf("Test %d: expected bounds %d %d for ttl %d %d and a change in %v, got %d %d", i, tc.wantMax, tc.wantMin, tc.max, tc.min, tc.next, gotMax, gotMin)
		}
	}
}

func TestCopyTTL(t *testing.T) {
	tests := []struct {
		in       []uint32
		max, min uint32
		want     []uint32
	}{
		{[]uint32{60, 300}, 30, 1, []uint32{30, 30}},
		{[]uint32{0, 1, 30}, 30, 1, []uint32{1, 1, 30}},
		{[]uint32{5, 10, 20}, 30, 1, []uint32{5, 10, 20}},
		{[]uint32{5, 10, 20}, 30, 10, []uint32{10, 10, 20}},
		{[]uint32{2147483647}, 2147483647, 0, []uint32{2147483647}},
		{[]uint32{3600}, 0, 0, []uint32{0}},
		{nil, 30, 1, nil},
	}
	for i, tc := range tests {
		var in []dns.RR
		for _, ttl := range tc.in {
			rr := test.A("a.example.org. 0 IN A 192.0.2.1")
			rr.Hdr.Ttl = ttl
			in = append(in, rr)
		}
		ns := []dns.RR{test.NS("example.org. 300 IN NS ns1.example.org.")}
		orig := append([]dns.RR(nil), in...)
		out, outNS, outExtra := copyTTL(in, ns, nil, tc.max, tc.min)
		if len(out) != len(tc.want) || len(outNS) != 1 || len(outExtra) != 0 {
			t.Fatalf("Test %d: expected %d, 1 and 0 records, got %d, %d and %d", i, len(tc.want), len(out), len(outNS), len(outExtra))
		}
		for j := range out {
			if got := out[j].Header().Ttl; got != tc.want[j] {
				t.Errorf("Test %d: expected record %d TTL %d, got %d", i, j, tc.want[j], got)
			}
			// The input records and slice are never changed, and every
			// record of the output is a copy of its own.
			if in[j] != orig[j] || in[j].Header().Ttl != tc.in[j] {
				t.Errorf("Test %d: expected record %d of the input untouched (TTL %d), got TTL %d", i, j, tc.in[j], in[j].Header().Ttl)
			}
			if out[j] == in[j] {
				t.Errorf("Test %d: expected record %d copied", i, j)
			}
			if out[j].String() != dns.RR(&dns.A{Hdr: dns.RR_Header{Name: "a.example.org.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: tc.want[j]}, A: in[j].(*dns.A).A}).String() {
				t.Errorf("Test %d: expected record %d equal to the input but for its TTL, got %v", i, j, out[j])
			}
		}
		if outNS[0] == ns[0] || ns[0].Header().Ttl != 300 {
			t.Errorf("Test %d: expected the authority record copied and its original untouched", i)
		}
		// Appending to a section never writes into the next one.
		if len(out) > 0 {
			_ = append(out, test.A("b.example.org. 1 IN A 192.0.2.2"))
			if outNS[0].Header().Rrtype != dns.TypeNS {
				t.Errorf("Test %d: appending to the answer changed the authority section", i)
			}
		}
	}
}

// TestCopyTTLOPT: an OPT record's TTL field holds flags (DO), not a TTL.
func TestCopyTTLOPT(t *testing.T) {
	opt := test.OPT(4096, true)
	ttl := opt.Hdr.Ttl
	_, _, out := copyTTL(nil, nil, []dns.RR{opt}, 30, 1)
	assert.Equal(t, ttl, out[0].Header().Ttl)
	assert.True(t, out[0].(*dns.OPT).Do())
}
