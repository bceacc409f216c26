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

// copyTTL returns copies of the sections, every record copied too, with
// every TTL within [min, max]; the three slices share one allocation (each
// clipped, so appending to one copies it). The copies share their RDATA
// (never changed) but not their headers: plugins that wrap the writer set
// TTLs on the records they are handed (the cache plugin does), and the
// views' own records must never change. A copy of the common types costs
// one allocation.
func copyTTL(answer, ns, extra []dns.RR, max, min uint32) ([]dns.RR, []dns.RR, []dns.RR) {
	n := len(answer) + len(ns) + len(extra)
	if n == 0 {
		return answer, ns, extra
	}
	buf := make([]dns.RR, n)
	a := copySection(buf[:len(answer):len(answer)], answer, max, min)
	buf = buf[len(answer):]
	s := copySection(buf[:len(ns):len(ns)], ns, max, min)
	buf = buf[len(ns):]
	e := copySection(buf[:len(extra):len(extra)], extra, max, min)
	return a, s, e
}

func copySection(out, rrs []dns.RR, max, min uint32) []dns.RR {
	if len(rrs) == 0 {
		return rrs
	}
	for i, rr := range rrs {
		c := shallowCopy(rr)
		if h := c.Header(); h.Rrtype != dns.TypeOPT {
			switch {
			case h.Ttl > max:
				h.Ttl = max
			case h.Ttl < min:
				h.Ttl = min
			}
		}
		out[i] = c
	}
	return out
}

// shallowCopy copies a record's struct: the header is its own, slices in
// the RDATA are shared.
func shallowCopy(rr dns.RR) dns.RR {
	switch r := rr.(type) {
	case *dns.A:
		return shallow(r)
	case *dns.AAAA:
		return shallow(r)
	case *dns.CNAME:
		return shallow(r)
	case *dns.NS:
		return shallow(r)
	case *dns.SOA:
		return shallow(r)
	case *dns.MX:
		return shallow(r)
	case *dns.TXT:
		return shallow(r)
	case *dns.SRV:
		return shallow(r)
	case *dns.PTR:
		return shallow(r)
	case *dns.DNAME:
		return shallow(r)
	case *dns.CAA:
		return shallow(r)
	case *dns.RRSIG:
		return shallow(r)
	}
	return dns.Copy(rr)
}

func shallow[T any, P interface {
	*T
	dns.RR
}](r P) dns.RR {
	c := *r
	return P(&c)
}
