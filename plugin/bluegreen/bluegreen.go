package bluegreen

import (
	"context"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/fall"
	"github.com/coredns/coredns/request"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/pick"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"

	"github.com/miekg/dns"
)

// Bluegreen is the plugin handler for one switch.
type Bluegreen struct {
	Next plugin.Handler

	cfg     *config
	origins []string
	loader  *loader
	sw      *state.Switch
	seed    uint64 // pick.SwitchSeed(switch name)
	fall    fall.F

	// seedSnap is a snapshot of this instance's pools at their seed weights.
	seedSnap *state.Snapshot
	// remap caches the switch's current snapshot remapped to this
	// instance's pools, for while the switch has other pools (see remapped).
	remap atomic.Pointer[remappedSnap]

	// choiceKey is choiceKey{switch name}, boxed once: looking it up in a
	// context does not allocate.
	choiceKey any

	poolFuncs []metadata.Func // returns the pool name, one per pool
	baseFunc  metadata.Func
	counters  *answerCounters
}

func newBluegreen(cfg *config, ld *loader) *Bluegreen {
	b := &Bluegreen{
		cfg:       cfg,
		origins:   cfg.origins,
		loader:    ld,
		seed:      pick.SwitchSeed(cfg.name),
		choiceKey: choiceKey{cfg.name},
		fall:      cfg.fall,
		baseFunc:  func() string { return baseLabel },
		counters:  newAnswerCounters(cfg),
	}
	for _, p := range cfg.pools {
		name := p.name
		b.poolFuncs = append(b.poolFuncs, func() string { return name })
	}
	return b
}

// Name implements plugin.Handler.
func (b *Bluegreen) Name() string { return "bluegreen" }

// ServeDNS implements plugin.Handler.
func (b *Bluegreen) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	st := request.Request{W: w, Req: r}
	qname := st.Name()
	origin := matchOrigin(b.origins, qname)
	if origin == "" {
		return plugin.NextOrFailure(b.Name(), b.Next, ctx, w, r)
	}
	if r.Opcode != dns.OpcodeQuery {
		// No NOTIFY (bluegreen is no secondary), no UPDATE (its records
		// come from files): the server writes NOTIMP.
		return dns.RcodeNotImplemented, nil
	}
	if qt := st.QType(); qt == dns.TypeAXFR || qt == dns.TypeIXFR {
		return dns.RcodeRefused, nil
	}
	cl := b.client(w, r)
	if cl.formErr {
		// The server writes FORMERR with an OPT (RFC 7871 §7.1.2).
		return dns.RcodeFormatError, nil
	}
	zd := b.loader.data.Load()
	z := zd.byOrigin[origin]
	snap := b.sw.Load()
	if snap.PoolsID != b.seedSnap.PoolsID {
		snap = b.remapped(snap)
	}

	// A query this switch makes through the plugin chain (see choiceKey)
	// takes the pool the query that made it chose.
	outer, _ := ctx.Value(b.choiceKey).(*choice)
	idx, inherited := b.inherit(outer)
	if !inherited {
		var pinned bool
		if idx, pinned = b.pinned(cl.addr); !pinned {
			var p uint64
			if b.cfg.sticky == stickyOff {
				p = pick.Random()
			} else {
				p = pick.Point(b.seed, cl.key)
			}
			idx = snap.Pick(p)
		}
	}

	ans := zd.answers[origin]
	key := preparedKey{qname: qname, qtype: st.QType(), pool: uint8(idx), do: st.Do()}
	var pa *prepared
	if !inherited {
		// A query the chain brought back may be deep in a CNAME chain,
		// where the file plugin stops following it: looked up, not kept.
		pa = ans.load(key)
	}
	loaded := pa != nil
	var mine *choice
	if pa == nil {
		// The lookup may resolve a CNAME target through the plugin chain.
		lctx := ctx
		if !inherited {
			mine = &choice{b: b, idx: idx}
			lctx = context.WithValue(ctx, b.choiceKey, mine)
		}
		pa = ans.lookup(lctx, z, st, key)
	}
	answer, ns, extra, result, switched := pa.answer, pa.ns, pa.extra, pa.result, pa.switched
	if inherited {
		if switched {
			outer.switched.Store(true)
		}
	} else if mine != nil && mine.switched.Load() {
		// The chain left the zone and came back to a switched name.
		switched = true
	}

	if pa.absent && b.fall.Through(qname) {
		return plugin.NextOrFailure(b.Name(), b.Next, ctx, w, r)
	}

	scope := uint8(0)
	if switched {
		scope = cl.scope
	}
	max, min := ttlBounds(b.cfg.ttlMax, b.cfg.ttlMin, snap.NextChange, now(snap))
	if loaded {
		// A kept answer goes out as bytes when nothing else would see
		// the message (see wireReply).
		if buf, ttl, ok := wireReply(w, r, &st, key, pa, &cl, scope, max, min); ok {
			b.count(ctx, inherited, switched, idx, ttl)
			if wireWritten != nil {
				wireWritten()
			}
			w.Write(*buf)
			wireBufs.Put(buf)
			return dns.RcodeSuccess, nil
		}
	}

	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.Answer, m.Ns, m.Extra = copyTTL(answer, ns, extra, max, min)

	switch result {
	case file.Success, file.NoData:
	case file.NameError:
		m.Rcode = dns.RcodeNameError
	case file.Delegation:
		if len(m.Answer) == 0 {
			m.Authoritative = false
		}
	case file.ServerFailure:
		if len(m.Answer) == 0 {
			return dns.RcodeServerFailure, nil
		}
		m.Rcode = dns.RcodeServerFailure
	}

	if cl.ecs != nil {
		m.Extra = withReplyOPT(m.Extra, cl.opt, cl.ecs, scope)
	}
	b.count(ctx, inherited, switched, idx, maxTTL(m.Answer, m.Ns, m.Extra))
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// count sets the bluegreen/pool metadata of an answer, counts it for its
// pool or for base and notes the largest TTL of a switched one (for
// effective_at). An inherited query's records
// are part of the answer that made it, which counts them (and notes their
// TTL) itself.
func (b *Bluegreen) count(ctx context.Context, inherited, switched bool, idx int, ttl uint32) {
	if switched {
		metadata.SetValueFunc(ctx, "bluegreen/pool", b.poolFuncs[idx])
	} else {
		metadata.SetValueFunc(ctx, "bluegreen/pool", b.baseFunc)
	}
	if inherited {
		return
	}
	counters := b.counters.get(metrics.WithServer(ctx))
	if switched {
		b.sw.NoteTTL(ttl)
		counters.pools[idx].Inc()
	} else {
		counters.base.Inc()
	}
}

// choiceKey is the context key under which ServeDNS leaves the pool it
// chose, one key per switch name. A pool's view resolves a CNAME target
// outside the zone the way the file plugin does, through the server's
// plugin chain (plugin/pkg/upstream) with the context it is given. When
// that chain comes back into the switch (api CNAME x.example.net.,
// x.example.net. CNAME www.example.org.), the query for www must be
// answered from the pool api was answered from, or one response would
// hold records of two pools: with sticky off every query picks anew, and
// in the sticky modes the weights can change between the two queries.
//
// Only a lookup that misses the prepared answers can reach the chain
// (answers through a CNAME out of the zone are never kept), so only those
// pay for the context value.
type choiceKey struct{ name string }

// choice is the pool a query chose, for the queries its answer makes
// through the plugin chain.
type choice struct {
	b   *Bluegreen
	idx int
	// switched: a query made under this choice was answered from the pool
	// (so the answer that made it depends on the choice too).
	switched atomic.Bool
}

// inherit returns the pool of c, a choice found in the context, for this
// instance.
func (b *Bluegreen) inherit(c *choice) (int, bool) {
	if c == nil {
		return 0, false
	}
	if c.b == b {
		return c.idx, true
	}
	// Another instance of the switch (another Corefile generation's): the
	// same pool by name, if this one has it.
	i := b.cfg.poolIndex(c.b.cfg.pools[c.idx].name)
	return i, i >= 0
}

// matchOrigin returns the longest of origins that qname (lower case, fully
// qualified) is in, or "". It is plugin.Zones.Matches without allocating.
func matchOrigin(origins []string, qname string) string {
	for off, end := 0, false; !end; off, end = dns.NextLabel(qname, off) {
		for _, o := range origins {
			if qname[off:] == o {
				return o
			}
		}
	}
	for _, o := range origins {
		if o == "." {
			return o
		}
	}
	return ""
}

// now returns the current time, or the zero time when the snapshot has no
// scheduled change (so the clock is not read on every query).
func now(s *state.Snapshot) time.Time {
	if s.NextChange.IsZero() {
		return time.Time{}
	}
	return time.Now()
}

// client works out the sticky key, the address pins match and the ECS
// scope for a query, or that its ECS option is malformed.
func (b *Bluegreen) client(w dns.ResponseWriter, r *dns.Msg) client {
	var cl client
	var (
		a    netip.Addr
		bits int
	)
	cl.opt, cl.ecs = requestECS(r)
	if cl.opt != nil && opts(r) > 1 {
		cl.formErr = true
		return cl
	}
	if cl.ecs != nil {
		var ok bool
		if a, bits, ok = ecsAddr(cl.ecs); !ok || moreECS(cl.opt) || !ecsWireOK(cl.opt, cl.ecs) {
			cl.formErr = true
			return cl
		}
	}
	if b.cfg.sticky == stickySubnet && bits > 0 {
		keyLen := b.cfg.v4len
		if a.Is6() {
			keyLen = b.cfg.v6len
		}
		if bits < keyLen {
			keyLen = bits
		}
		cl.addr = a
		cl.key = pick.Mask(a, keyLen)
		scope := b.pinScope(a, keyLen, bits)
		if cl.ecs.Family == 2 && a.Is4() {
			// An IPv4-mapped subnet: the scope goes back in the
			// client's family, under ::ffff:0:0/96.
			scope += 96
		}
		cl.scope = uint8(scope)
		return cl
	}
	src := sourceAddr(w)
	cl.addr, cl.key = src, src
	if b.cfg.sticky != stickySubnet {
		return cl
	}
	keyLen := b.cfg.v4len
	if src.Is6() {
		keyLen = b.cfg.v6len
	}
	cl.key = pick.Mask(src, keyLen)
	return cl
}

// pinScope widens the scope to the longest pin prefix that splits the
// client's subnet, so a resolver does not cache a pinned answer for
// clients outside the pin (or the other way round). It never exceeds the
// source prefix.
func (b *Bluegreen) pinScope(a netip.Addr, scope, source int) int {
	subnet := netip.PrefixFrom(a, scope).Masked()
	for _, p := range b.cfg.pins {
		if p.prefix.Bits() > scope && p.prefix.Overlaps(subnet) {
			scope = p.prefix.Bits()
		}
	}
	if scope > source {
		scope = source
	}
	return scope
}

// pinned returns the pool a pin sends addr to, if any.
func (b *Bluegreen) pinned(addr netip.Addr) (int, bool) {
	for _, p := range b.cfg.pins {
		if p.prefix.Contains(addr) {
			return p.pool, true
		}
	}
	return 0, false
}

// maxTTL returns the largest TTL in the sections.
func maxTTL(sections ...[]dns.RR) uint32 {
	var max uint32
	for _, rrs := range sections {
		for _, rr := range rrs {
			if t := rr.Header().Ttl; t > max && rr.Header().Rrtype != dns.TypeOPT {
				max = t
			}
		}
	}
	return max
}

// remappedSnap is a switch snapshot (from) and the same weights for this
// instance's pools (to).
type remappedSnap struct{ from, to *state.Snapshot }

// remapped returns snap's weights for this instance's pools. The switch has
// other pools when a Corefile reload declared them and this instance still
// serves until the new one takes over (or because the reload failed and the
// switch is being set back): matching pools by name keeps every shared
// pool at its current weight, rather than falling back to this instance's
// seed weights, which after a flip could send clients back to the pool just
// drained. Only when no shared pool has a weight do the seed weights apply.
func (b *Bluegreen) remapped(snap *state.Snapshot) *state.Snapshot {
	if r := b.remap.Load(); r != nil && r.from == snap {
		return r.to
	}
	to := snap.Remap(b.seedSnap.Pools)
	if to == nil {
		to = b.seedSnap
	}
	b.remap.Store(&remappedSnap{from: snap, to: to})
	return to
}
