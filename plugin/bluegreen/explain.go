package bluegreen

import (
	"fmt"
	"math/bits"
	"net/netip"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/pick"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

// explain says which pool a client at addr (source address, or the ECS
// address a resolver would send for it) gets now and why. It follows the
// same steps as ServeDNS: an IPv4-mapped address (::ffff:a.b.c.d) is the
// IPv4 client a.b.c.d, as a mapped source address or ECS subnet is there.
func (b *Bluegreen) explain(addr netip.Addr) state.Explanation {
	addr = addr.Unmap()
	snap := b.sw.Load()
	if snap.PoolsID != b.seedSnap.PoolsID {
		snap = b.remapped(snap) // as ServeDNS does while a reload changes the pools
	}
	e := state.Explanation{Client: addr.String()}
	if i, ok := b.pinned(addr); ok {
		e.Pool = b.cfg.pools[i].name
		for _, p := range b.cfg.pins {
			if p.pool == i && p.prefix.Contains(addr) {
				e.Reason = fmt.Sprintf("pinned to %s by %s", e.Pool, p.prefix)
				break
			}
		}
		return e
	}
	total := snap.Cum[len(snap.Cum)-1]
	if b.cfg.sticky == stickyOff {
		e.Pool = ""
		e.Reason = "sticky off: every query is an independent weighted random choice"
		e.Total = total
		return e
	}
	key := addr
	if b.cfg.sticky == stickySubnet {
		l := b.cfg.v4len
		if addr.Is6() {
			l = b.cfg.v6len
		}
		key = pick.Mask(addr, l)
		e.Key = netip.PrefixFrom(key, l).String()
	} else {
		e.Key = key.String()
	}
	e.Point = pick.Point(b.seed, key)
	e.Position, _ = bits.Mul64(e.Point, total)
	e.Total = total
	i := snap.Pick(e.Point)
	e.Pool = snap.Pools[i]
	lo := uint64(0)
	if i > 0 {
		lo = snap.Cum[i-1]
	}
	e.Reason = fmt.Sprintf("sticky %s: key %s hashes to position %d of %d, inside %s's range [%d, %d)",
		b.cfg.sticky, e.Key, e.Position, total, e.Pool, lo, snap.Cum[i])
	return e
}
