package bluegreen

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coredns/coredns/core/dnsserver"
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
	// switched: at least two pools' views answer the question
	// differently (see lookup). It sets the ECS scope, the pool label and the TTL noted for
	// effective_at.
	switched bool
	// absent: every pool's view answers with no records and the same
	// rcode, NXDOMAIN or an empty non-terminal's NOERROR (their SOA may
	// differ): the name is absent from everything, which fallthrough
	// passes on.
	absent bool
	// packed is the answer as bytes, for wireReply (see wire).
	packed atomic.Pointer[wireAnswer]
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

	probeOnce sync.Once
	probes    [][2]*file.Zone // see probeZones
}

// load returns the prepared answer for key, or nil.
func (a *answers) load(key preparedKey) *prepared {
	if p, ok := a.m.Load(key); ok {
		return p.(*prepared)
	}
	return nil
}

// lookup works out pool key.pool's answer to the query and whether it is
// switched, and keeps it for load. An answer is switched exactly when at
// least two pools' views answer the question differently, so lookup asks
// every pool's view (through probe zones that answer in-zone CNAME targets
// from the same view instead of through the plugin chain) and compares.
// Every pool's answer is kept, so a question costs this once per zone
// generation. Answers that leave the zone (a CNAME target resolved through
// the plugin chain, with ctx) or fail are looked up again in the real view
// and never kept.
func (a *answers) lookup(ctx context.Context, z *zones.Zone, st request.Request, key preparedKey) *prepared {
	probes := a.probeZones(z)
	per := make([]*prepared, len(probes))
	// The probes count CNAME hops from where this query is, as the file
	// plugin does through the plugin chain; only a query that starts a
	// chain (loop 0) gives an answer that is kept.
	loop, _ := ctx.Value(dnsserver.LoopKey{}).(int)
	pctx := context.WithValue(context.Background(), dnsserver.LoopKey{}, loop)
	for i, pz := range probes {
		answer, ns, extra, result := pz[viewIndex(z, key.qname, i)].Lookup(pctx, st, key.qname)
		per[i] = &prepared{answer: clip(answer), ns: clip(ns), extra: clip(extra), result: result}
	}
	switched, absent := false, true
	for _, p := range per {
		switched = switched || !sameAnswer(per[0], p)
		absent = absent && len(p.answer) == 0 && p.result == per[0].result && (p.result == file.NameError || p.result == file.Success)
	}
	idx := int(key.pool)
	mine := per[idx]
	if mine.result == file.ServerFailure || !inZone(z.Origin, mine.answer, mine.ns, mine.extra) {
		view := z.Views[idx]
		if viewIndex(z, key.qname, idx) == 1 {
			view = z.Only[idx]
		}
		answer, ns, extra, result := view.Lookup(ctx, st, key.qname)
		return &prepared{answer: clip(answer), ns: clip(ns), extra: clip(extra), result: result, switched: switched, absent: absent}
	}
	for i, p := range per {
		p.switched, p.absent = switched, absent
		if loop > 0 || p.result == file.ServerFailure || !inZone(z.Origin, p.answer, p.ns, p.extra) || a.n.Load() >= maxPrepared {
			continue
		}
		k := key
		k.pool = uint8(i)
		if _, loaded := a.m.LoadOrStore(k, p); !loaded {
			a.n.Add(1)
		}
	}
	return mine
}

func clip(rrs []dns.RR) []dns.RR { return rrs[:len(rrs):len(rrs)] }

// viewIndex returns 1 when pool idx answers qname from its own records
// only (Zone.Only): a switched name other pools hold and it does not gets
// NXDOMAIN or NODATA, whatever base holds. Else 0: its view (Zone.Views).
// The apex is in every view (its NS glue is base's): always 0.
func viewIndex(z *zones.Zone, qname string, idx int) int {
	if _, held := z.Switched(qname); held != 0 && held&(1<<uint(idx)) == 0 && qname != z.Origin {
		return 1
	}
	return 0
}

// probeZones returns, per pool, copies of its view and of its Only zone
// (sharing their trees) whose upstream answers a CNAME target inside the
// zone from the pool's view, as the file plugin does from its zone, and
// fails any other name. Comparing the pools'
// answers through them never leaves the zone.
func (a *answers) probeZones(z *zones.Zone) [][2]*file.Zone {
	a.probeOnce.Do(func() {
		a.probes = make([][2]*file.Zone, len(z.Views))
		for i := range z.Views {
			for j, fz := range []*file.Zone{z.Views[i], z.Only[i]} {
				pz := file.NewZone(z.Origin, "")
				pz.Apex = fz.Apex
				pz.Tree = fz.Tree
				pz.Upstream = &probeUpstream{a: a, z: z, idx: i}
				a.probes[i][j] = pz
			}
		}
	})
	return a.probes
}

// probeUpstream resolves CNAME targets for probe zones.
type probeUpstream struct {
	a   *answers
	z   *zones.Zone
	idx int
}

func (u *probeUpstream) Lookup(ctx context.Context, st request.Request, name string, typ uint16) (*dns.Msg, error) {
	name = strings.ToLower(name)
	if !inside(name, u.z.Origin) {
		return nil, errLeaves
	}
	req := st.NewWithQuestion(name, typ)
	answer, ns, extra, result := u.a.probeZones(u.z)[u.idx][0].Lookup(ctx, req, name)
	m := new(dns.Msg)
	m.SetReply(req.Req)
	m.Answer, m.Ns, m.Extra = answer, ns, extra
	switch result {
	case file.NameError:
		m.Rcode = dns.RcodeNameError
	case file.ServerFailure:
		m.Rcode = dns.RcodeServerFailure
	}
	return m, nil
}

var errLeaves = errors.New("the name is outside the zone")

// sameAnswer reports whether two pools' answers are the same on the wire:
// the same rcode and AA bit (NODATA and an empty non-terminal's NOERROR
// are the same reply) and the same records in each section (as sets,
// compared by text).
func sameAnswer(p, q *prepared) bool {
	return wireResult(p.result) == wireResult(q.result) && sameRRs(p.answer, q.answer) && sameRRs(p.ns, q.ns) && sameRRs(p.extra, q.extra)
}

func wireResult(r file.Result) file.Result {
	if r == file.NoData {
		return file.Success
	}
	return r
}

func sameRRs(a, b []dns.RR) bool {
	if len(a) != len(b) {
		return false
	}
	same := true
	for i := range a {
		if a[i] != b[i] {
			same = false
			break
		}
	}
	if same {
		return true // the same records of a shared tree
	}
	as, bs := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		as[i], bs[i] = a[i].String(), b[i].String()
	}
	slices.Sort(as)
	slices.Sort(bs)
	return slices.Equal(as, bs)
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
