package bluegreen

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/request"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/zones"

	"github.com/miekg/dns"
)

// maxPrepared bounds the answers prepared per zone generation, so a flood
// of random names cannot grow memory without limit; past it, answers are
// looked up every time.
const maxPrepared = 100_000

// prepared is a pool's answer to one question, worked out once per zone
// generation: a zone's views never change, so the same question gets the
// same records until the next reload.
type prepared struct {
	answer, ns, extra []dns.RR // capacity clipped: appending copies
	result            file.Result
	// switched: the answer depends on the pool choice (see poolDependent).
	// It sets the ECS scope, the pool label and the TTL noted for
	// effective_at.
	switched bool
}

type preparedKey struct {
	qname string
	qtype uint16
	pool  uint8
	do    bool
}

// answers holds a zone generation's prepared answers.
type answers struct {
	m sync.Map // preparedKey -> *prepared
	n atomic.Int64

	apexOnce sync.Once
	apex     apexDiff
}

// load returns the prepared answer for key, or nil.
func (a *answers) load(key preparedKey) *prepared {
	if p, ok := a.m.Load(key); ok {
		return p.(*prepared)
	}
	return nil
}

// lookup works out pool key.pool's answer to the query in z's views and
// keeps it for load. Answers that depend on something outside the zone (a
// CNAME target resolved through the plugin chain, with ctx) or on a
// failure are never kept.
func (a *answers) lookup(ctx context.Context, z *zones.Zone, st request.Request, key preparedKey) *prepared {
	qname, idx := key.qname, int(key.pool)
	switched, held := z.Switched(qname)
	view := z.Views[idx]
	if held != 0 && held&(1<<uint(idx)) == 0 {
		// A switched name other pools hold: this pool's own records only.
		view = z.Only[idx]
	}
	answer, ns, extra, result := view.Lookup(ctx, st, qname)
	if !switched {
		switched = a.poolDependent(z, answer, ns, extra, result)
	}
	p := &prepared{answer: clip(answer), ns: clip(ns), extra: clip(extra), result: result, switched: switched}
	if result != file.ServerFailure && inZone(z.Origin, answer, ns, extra) && a.n.Load() < maxPrepared {
		if _, loaded := a.m.LoadOrStore(key, p); !loaded {
			a.n.Add(1)
		}
	}
	return p
}

func clip(rrs []dns.RR) []dns.RR { return rrs[:len(rrs):len(rrs)] }

// poolDependent reports whether an answer to a name that is not switched
// still depends on the pool choice. Its records come from the pool's view,
// which holds base's records and the pool's own, so it does when:
//   - a record in any section belongs to a switched name: the target of a
//     CNAME chain, or the addresses the file plugin adds to the additional
//     section for an MX, SRV, SVCB or HTTPS target or as NS glue;
//   - a CNAME, MX, SRV, SVCB or HTTPS target, or the in-bailiwick target of
//     an NS record that gets glue, is a switched name: a pool that lacks it
//     adds nothing, the others add its records;
//   - it carries the apex SOA or NS and those differ between the pools'
//     views (base holds none, and the pools' own differ).
//
// The SOA in the authority section of a negative answer does not count: for
// a name that is not switched, NXDOMAIN or NODATA is the same in every
// pool, and fallthrough must see a name absent from everything as such.
// Records outside the zone come from the plugin chain (a CNAME target
// resolved upstream) and are not the pool's.
func (a *answers) poolDependent(z *zones.Zone, answer, ns, extra []dns.RR, result file.Result) bool {
	for _, rr := range answer {
		if a.rrDepends(z, rr, true, true) {
			return true
		}
	}
	for _, rr := range ns {
		// Only a referral's NS records get glue; a positive answer's
		// apex NS do not.
		if a.rrDepends(z, rr, result == file.Delegation, false) {
			return true
		}
	}
	for _, rr := range extra {
		if a.rrDepends(z, rr, false, false) {
			return true
		}
	}
	return false
}

// rrDepends reports whether rr makes an answer depend on the pool. With
// targets, the names that rr makes the file plugin look up count too; with
// soa, an apex SOA counts when the pools' differ.
func (a *answers) rrDepends(z *zones.Zone, rr dns.RR, targets, soa bool) bool {
	h := rr.Header()
	if h.Rrtype == dns.TypeOPT || !inside(h.Name, z.Origin) {
		return false
	}
	if h.Name == z.Origin {
		switch apexSet(rr) {
		case dns.TypeSOA:
			return soa && a.apexDiff(z).soa
		case dns.TypeNS:
			if a.apexDiff(z).ns {
				return true
			}
			return targets && targetSwitched(z, h.Name, rr)
		}
	}
	if sw, _ := z.Switched(h.Name); sw {
		return true
	}
	return targets && targetSwitched(z, h.Name, rr)
}

// targetSwitched reports whether the name rr makes the file plugin look up
// in the zone (a CNAME chain's next name, an MX, SRV, SVCB or HTTPS
// target's addresses, an NS record's glue) is a switched name.
func targetSwitched(z *zones.Zone, owner string, rr dns.RR) bool {
	var target string
	switch x := rr.(type) {
	case *dns.CNAME:
		target = x.Target
	case *dns.MX:
		target = x.Mx
	case *dns.SRV:
		target = x.Target
	case *dns.SVCB:
		target = x.Target
	case *dns.HTTPS:
		target = x.Target
	case *dns.NS:
		target = x.Ns
	default:
		return false
	}
	target = strings.ToLower(target) // SRV targets keep their case
	if !inside(target, z.Origin) {
		return false
	}
	if rr.Header().Rrtype == dns.TypeNS && !inside(target, owner) {
		return false // glue only at or below the NS owner, as tree.Glue
	}
	sw, _ := z.Switched(target)
	return sw
}

// apexDiff says which of a zone's apex RRsets differ between the pools'
// views. They are base's when base holds them, so the same in every view;
// else each pool's own (or the first pool's).
type apexDiff struct{ soa, ns bool }

func (a *answers) apexDiff(z *zones.Zone) apexDiff {
	a.apexOnce.Do(func() {
		if len(z.Views) == 0 {
			return
		}
		soa0, ns0 := apexStrings(&z.Views[0].Apex)
		for _, v := range z.Views[1:] {
			soa, ns := apexStrings(&v.Apex)
			a.apex.soa = a.apex.soa || !slices.Equal(soa0, soa)
			a.apex.ns = a.apex.ns || !slices.Equal(ns0, ns)
		}
	})
	return a.apex
}

// apexStrings returns the text of a view's apex SOA and NS RRsets, each
// with its signatures, sorted: RRsets compared as sets.
func apexStrings(ap *file.Apex) (soa, ns []string) {
	if ap.SOA != nil {
		soa = append(soa, ap.SOA.String())
	}
	for _, rr := range ap.SIGSOA {
		soa = append(soa, rr.String())
	}
	for _, set := range [][]dns.RR{ap.NS, ap.SIGNS} {
		for _, rr := range set {
			ns = append(ns, rr.String())
		}
	}
	slices.Sort(soa)
	slices.Sort(ns)
	return soa, ns
}

// apexSet returns the apex RRset rr belongs to, dns.TypeSOA or dns.TypeNS
// (their signatures included), or 0 for any other record.
func apexSet(rr dns.RR) uint16 {
	t := rr.Header().Rrtype
	if sig, ok := rr.(*dns.RRSIG); ok {
		t = sig.TypeCovered
	}
	if t == dns.TypeSOA || t == dns.TypeNS {
		return t
	}
	return 0
}

// inZone reports whether every record's owner and every CNAME's target is
// origin or below it: the answer then comes from the zone alone, not from
// the plugin chain (which the file plugin asks for a CNAME target outside
// the zone, whether it returns records or not).
func inZone(origin string, sections ...[]dns.RR) bool {
	for _, rrs := range sections {
		for _, rr := range rrs {
			if !below(rr.Header().Name, origin) {
				return false
			}
			if c, ok := rr.(*dns.CNAME); ok && !below(strings.ToLower(c.Target), origin) {
				return false
			}
		}
	}
	return true
}

// inside is below, deciding names with escapes too (with an allocation).
func inside(name, origin string) bool {
	if strings.IndexByte(name, '\\') >= 0 {
		return dns.IsSubDomain(origin, name)
	}
	return below(name, origin)
}

// below reports whether name (lower case) is origin or below it.
func below(name, origin string) bool {
	if strings.IndexByte(name, '\\') >= 0 {
		return false // escaped dots: not worth the risk
	}
	if origin == "." {
		return true
	}
	if !strings.HasSuffix(name, origin) {
		return false
	}
	n := len(name) - len(origin)
	return n == 0 || name[n-1] == '.'
}
