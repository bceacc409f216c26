package bluegreen

import (
	"context"
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
	switched          bool
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
}

// answer returns pool idx's answer to the query, from the prepared answers
// when there is one. Answers that depend on something outside the zone
// (a CNAME target resolved through the plugin chain) or on a failure are
// never kept.
func (a *answers) answer(ctx context.Context, z *zones.Zone, st request.Request, qname string, idx int) *prepared {
	key := preparedKey{qname: qname, qtype: st.QType(), pool: uint8(idx), do: st.Do()}
	if p, ok := a.m.Load(key); ok {
		return p.(*prepared)
	}
	switched, held := z.Switched(qname)
	view := z.Views[idx]
	if held != 0 && held&(1<<uint(idx)) == 0 {
		// A switched name other pools hold: this pool's own records only.
		view = z.Only[idx]
	}
	answer, ns, extra, result := view.Lookup(ctx, st, qname)
	if !switched {
		switched = chainSwitched(z, answer)
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
