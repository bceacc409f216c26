package harness

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"sort"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// RefPool is an independent implementation of the selection the spec fixes
// for every release (and the plugin's package doc names):
//
//	p = XXH64( BE64(XXH64(switch)) || family || masked address )
//
// and the pool is the first i with floor(p * Σw / 2^64) < W_i. Tests
// compare each client's answer with it instead of measuring a share
// within a tolerance.
func RefPool(switchName string, key netip.Addr, weights []uint64) int {
	buf := binary.BigEndian.AppendUint64(nil, xxhash.Sum64String(switchName))
	if key.Is4() {
		a := key.As4()
		buf = append(append(buf, 4), a[:]...)
	} else {
		a := key.As16()
		buf = append(append(buf, 6), a[:]...)
	}
	p := xxhash.Sum64(buf)
	var total uint64
	for _, w := range weights {
		total += w
	}
	hi, _ := bits.Mul64(p, total)
	var cum uint64
	for i, w := range weights {
		cum += w
		if hi < cum {
			return i
		}
	}
	return len(weights) - 1
}

// ShareSubnet is the i-th client subnet Shares asks as.
func ShareSubnet(i int) netip.Prefix {
	a := [4]byte{10, byte(i >> 8), byte(i), 0}
	if i >= 65536 {
		a[0] = 11
	}
	return netip.PrefixFrom(netip.AddrFrom4(a), 24)
}

// Weights are a switch's effective weights by pool, for WantShares and
// RequireShares.
type Weights map[string]uint64

// WantShares returns the pool each of Shares' first n client subnets gets
// under weights for switchName (sticky subnet with the default /24),
// counted by pool: what Shares must return, exactly. Pools with weight 0
// never appear.
func WantShares(switchName string, weights Weights, n int) map[string]int {
	pools, ws := order(weights)
	want := map[string]int{}
	for i := range n {
		want[pools[RefPool(switchName, ShareSubnet(i).Addr(), ws)]]++
	}
	return want
}

// RequireShares asks as n client subnets, like Shares, and fails the test
// unless every client got exactly the pool the spec's formula gives it
// under weights; it returns the counts per pool.
func RequireShares(t testing.TB, addr, switchName string, weights Weights, n int) map[string]int {
	t.Helper()
	pools, ws := order(weights)
	got := PoolsByClient(t, addr, n)
	counts := map[string]int{}
	wrong := 0
	for i, p := range got {
		counts[p]++
		if want := pools[RefPool(switchName, ShareSubnet(i).Addr(), ws)]; p != want {
			if wrong < 5 {
				t.Errorf("client %s: got pool %q, the weights %v give %q", ShareSubnet(i), p, weights, want)
			}
			wrong++
		}
	}
	if wrong > 0 {
		t.Fatalf("%d of %d clients answered against the weights %v (counts %v)", wrong, n, weights, counts)
	}
	return counts
}

// order returns the pools in declaration order and their weights. The
// harness's zones and the tests declare pools in alphabetical order (blue,
// green, red), which is what this assumes.
func order(w Weights) ([]string, []uint64) {
	pools := make([]string, 0, len(w))
	for p := range w {
		pools = append(pools, p)
	}
	sort.Strings(pools)
	ws := make([]uint64, len(pools))
	for i, p := range pools {
		ws[i] = w[p]
	}
	return pools, ws
}

// PoolsByClient asks for www.example.org A as each of the first n Shares
// subnets and returns the pool of each answer in order ("" for an answer
// from neither pool). Any query error fails the test.
func PoolsByClient(t testing.TB, addr string, n int) []string {
	t.Helper()
	out := make([]string, n)
	errs := make([]error, n)
	work := make(chan int)
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range work {
				r, err := QueryECS(addr, "www.example.org", ShareSubnet(i).String())
				if err != nil {
					errs[i] = err
					continue
				}
				out[i] = PoolOf(r)
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	for range 8 {
		<-done
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("query as %s: %v", ShareSubnet(i), err)
		}
	}
	return out
}
