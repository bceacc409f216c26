package bluegreen

import (
	"time"

	"github.com/miekg/dns"
)

// ttlBounds returns the TTL cap and floor for an answer at now: the cap is
// MAX, lowered to the whole seconds left until the next scheduled weight
// change, and never below the floor MIN.
func ttlBounds(max, min uint32, next, now time.Time) (uint32, uint32) {
	if !next.IsZero() {
		left := next.Sub(now)
		switch {
		case left <= 0:
			max = min
		case left < time.Duration(max)*time.Second:
			max = uint32(left / time.Second)
		}
	}
	if max < min {
		max = min
	}
	return max, min
}

// clampTTL returns rrs with every TTL within [min, max]. Records are never
// changed in place (they belong to the zone tree): a record that needs a new
// TTL is copied, and the slice is copied on the first such record.
func clampTTL(rrs []dns.RR, max, min uint32) []dns.RR {
	copied := false
	for i, rr := range rrs {
		h := rr.Header()
		if h.Rrtype == dns.TypeOPT {
			continue
		}
		ttl := h.Ttl
		switch {
		case ttl > max:
			ttl = max
		case ttl < min:
			ttl = min
		default:
			continue
		}
		if !copied {
			rrs = append([]dns.RR(nil), rrs...)
			copied = true
		}
		c := dns.Copy(rr)
		c.Header().Ttl = ttl
		rrs[i] = c
	}
	return rrs
}
