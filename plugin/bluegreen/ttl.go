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

// clamp returns ttl within [min, max].
func clamp(ttl, max, min uint32) uint32 {
	switch {
	case ttl > max:
		return max
	case ttl < min:
		return min
	}
	return ttl
}

// copyTTL returns copies of the sections, every record copied too, with
// every TTL within [min, max]; the three slices share one allocation (each
// clipped, so appending to one copies it). The copies share their RDATA
// (never changed) but not their headers: plugins that wrap the writer set
// TTLs on the records they are handed (the cache plugin does), and the
// views' own records must never change. A copy of the common types costs
// one allocation; the RRSIG and NSEC records of a DNSSEC answer share one
// allocation per type.
func copyTTL(answer, ns, extra []dns.RR, max, min uint32) ([]dns.RR, []dns.RR, []dns.RR) {
	n := len(answer) + len(ns) + len(extra)
	if n == 0 {
		return answer, ns, extra
	}
	buf := make([]dns.RR, n)
	var ar arena
	for _, sec := range [][]dns.RR{answer, ns, extra} {
		ar.count(sec)
	}
	a := copySection(buf[:len(answer):len(answer)], answer, max, min, &ar)
	buf = buf[len(answer):]
	s := copySection(buf[:len(ns):len(ns)], ns, max, min, &ar)
	buf = buf[len(ns):]
	e := copySection(buf[:len(extra):len(extra)], extra, max, min, &ar)
	return a, s, e
}

// arena holds the copies of a reply's RRSIG and NSEC records, allocated
// together.
type arena struct {
	sigs  []dns.RRSIG
	nsecs []dns.NSEC
	nsig  int
	nnsec int
}

func (ar *arena) count(rrs []dns.RR) {
	for _, rr := range rrs {
		switch rr.(type) {
		case *dns.RRSIG:
			ar.nsig++
		case *dns.NSEC:
			ar.nnsec++
		}
	}
}

// copyOf returns a shallow copy of rr, from the arena when it is an RRSIG
// or NSEC.
func (ar *arena) copyOf(rr dns.RR) dns.RR {
	switch r := rr.(type) {
	case *dns.RRSIG:
		if ar.sigs == nil {
			ar.sigs = make([]dns.RRSIG, 0, ar.nsig)
		}
		ar.sigs = append(ar.sigs, *r)
		return &ar.sigs[len(ar.sigs)-1]
	case *dns.NSEC:
		if ar.nsecs == nil {
			ar.nsecs = make([]dns.NSEC, 0, ar.nnsec)
		}
		ar.nsecs = append(ar.nsecs, *r)
		return &ar.nsecs[len(ar.nsecs)-1]
	}
	return shallowCopy(rr)
}

func copySection(out, rrs []dns.RR, max, min uint32, ar *arena) []dns.RR {
	if len(rrs) == 0 {
		return rrs
	}
	for i, rr := range rrs {
		c := ar.copyOf(rr)
		if h := c.Header(); h.Rrtype != dns.TypeOPT {
			h.Ttl = clamp(h.Ttl, max, min)
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
	case *dns.NSEC:
		return shallow(r)
	case *dns.DNSKEY:
		return shallow(r)
	case *dns.DS:
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
