// Package pick maps a client to a pool: the client key, the stable hash and
// the weighted choice. It knows nothing of CoreDNS's server.
//
// The hash is XXH64 (seed 0, github.com/cespare/xxhash/v2) of a fixed byte
// layout, so every process on every machine computes the same point for a
// client:
//
//	p = XXH64( BE64(XXH64(switch)) || family || masked address )
//
// where family is 4 or 6 and the address is 4 or 16 bytes, masked to the
// prefix the sticky mode uses. The pool is the first i (declared order) with
// p * Σw / 2^64 < W_i, W_i the cumulative weights, computed with exact
// 128-bit integer arithmetic.
package pick

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"

	"github.com/cespare/xxhash/v2"
)

// SwitchSeed returns the per-switch part of the hash input, XXH64(switch).
// It is computed once per switch, not per query.
func SwitchSeed(name string) uint64 { return xxhash.Sum64String(name) }

// Point returns the 64-bit point of a client address already masked to the
// prefix the sticky mode uses. It does not allocate.
func Point(seed uint64, addr netip.Addr) uint64 {
	var buf [8 + 1 + 16]byte
	binary.BigEndian.PutUint64(buf[:8], seed)
	n := 9
	if addr.Is4() {
		buf[8] = 4
		a := addr.As4()
		n += copy(buf[9:], a[:])
	} else {
		buf[8] = 6
		a := addr.As16()
		n += copy(buf[9:], a[:])
	}
	return xxhash.Sum64(buf[:n])
}

// Random returns a uniformly random point, for sticky off. The generator is
// safe for concurrent use.
func Random() uint64 { return rand.Uint64() }

// Index returns the pool index for point p given cumulative weights cum
// (cum[i] = w_0 + ... + w_i). The last element is the total and must be
// above zero. It returns the first i with floor(p * total / 2^64) < cum[i].
func Index(p uint64, cum []uint64) int {
	total := cum[len(cum)-1]
	hi, _ := bits.Mul64(p, total)
	// hi = floor(p*total / 2^64) < total, so some i always matches.
	for i, c := range cum {
		if hi < c {
			return i
		}
	}
	return len(cum) - 1
}

// Cumulative returns the cumulative sums of w. It returns nil when the sum is
// zero.
func Cumulative(w []uint64) []uint64 {
	cum := make([]uint64, len(w))
	var s uint64
	for i, x := range w {
		s += x
		cum[i] = s
	}
	if s == 0 {
		return nil
	}
	return cum
}

// Mask masks addr to bits (clamped to the address length).
func Mask(addr netip.Addr, bits int) netip.Addr {
	if bits > addr.BitLen() {
		bits = addr.BitLen()
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return addr
	}
	return p.Addr()
}
