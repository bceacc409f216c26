// Package state holds the live state of every switch: its pools, weights,
// version and history. A switch outlives Corefile reloads: it is kept in a
// package-level registry keyed by the switch name. The query path reads it
// through one immutable Snapshot behind an atomic pointer; writers commit to
// the switch's store first and publish a new snapshot after.
package state

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/pick"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

var log = clog.NewWithPlugin("bluegreen")

// Snapshot is an immutable view of a switch's weights, read once per query.
type Snapshot struct {
	Version   uint64
	Pools     []string  // declared order
	Weights   []uint64  // configured weights, by pool index
	Effective []uint64  // effective weights (unhealthy pools at 0, fail open)
	Cum       []uint64  // cumulative effective weights; last is the total
	UpdatedAt time.Time // time of the last change
	// NextChange is when the weights change next by schedule (a rollout
	// step); zero when nothing is scheduled.
	NextChange time.Time
}

// Pick returns the pool index for point p.
func (s *Snapshot) Pick(p uint64) int { return pick.Index(p, s.Cum) }

// Share returns pool i's share of traffic under the effective weights.
func (s *Snapshot) Share(i int) float64 {
	return float64(s.Effective[i]) / float64(s.Cum[len(s.Cum)-1])
}

// Index returns the index of pool name, or -1.
func (s *Snapshot) Index(name string) int {
	for i, p := range s.Pools {
		if p == name {
			return i
		}
	}
	return -1
}

// Info is the per-switch configuration the API reports.
type Info struct {
	TTLMax, TTLMin uint32
	Sticky         string
}

// Explanation says which pool a client gets and why.
type Explanation struct {
	Client string `json:"client"`
	Pool   string `json:"pool"`
	Reason string `json:"reason"`
	// Key is the address the sticky hash is computed over, Point the hash
	// and Position the point scaled to the weight total (pool i is chosen
	// when Position < the cumulative weight of pools 0..i).
	Key      string `json:"key,omitempty"`
	Point    uint64 `json:"point,omitempty"`
	Position uint64 `json:"position,omitempty"`
	Total    uint64 `json:"total,omitempty"`
}

// Switch is one switch: a set of pools in declared order and their weights.
type Switch struct {
	Name string

	mu      sync.Mutex // serialises writers and reconfiguration
	snap    atomic.Pointer[Snapshot]
	st      store.Store
	rec     *store.Record // last committed record; nil until the first change
	seed    []uint64
	info    Info
	explain func(netip.Addr) Explanation

	// maxTTL is the largest TTL served for a switched answer since the last
	// change; effectiveAt is when answers served under older weights have
	// expired from conforming caches.
	maxTTL      atomic.Uint32
	effectiveAt time.Time
}

// Load returns the current snapshot; never nil for a switch made by Get.
func (s *Switch) Load() *Snapshot { return s.snap.Load() }

// NoteTTL records that a switched answer with TTL ttl was served. It costs
// one atomic load in the common case.
func (s *Switch) NoteTTL(ttl uint32) {
	for {
		cur := s.maxTTL.Load()
		if ttl <= cur || s.maxTTL.CompareAndSwap(cur, ttl) {
			return
		}
	}
}

// NewSnapshot builds a snapshot for pools and weights, checking them.
func NewSnapshot(version uint64, pools []string, weights []uint64, updated time.Time) (*Snapshot, error) {
	if len(pools) != len(weights) {
		return nil, fmt.Errorf("%d pools but %d weights", len(pools), len(weights))
	}
	cum := pick.Cumulative(weights)
	if cum == nil {
		return nil, fmt.Errorf("weights sum to zero")
	}
	return &Snapshot{
		Version:   version,
		Pools:     append([]string(nil), pools...),
		Weights:   append([]uint64(nil), weights...),
		Effective: append([]uint64(nil), weights...),
		Cum:       cum,
		UpdatedAt: updated,
	}, nil
}

var (
	registryMu sync.Mutex
	registry   = map[string]*Switch{}
)

// Lookup returns the switch called name, or nil.
func Lookup(name string) *Switch {
	registryMu.Lock()
	defer registryMu.Unlock()
	return registry[name]
}

// Config is what a Corefile says about a switch.
type Config struct {
	Pools []string // declared order
	Seed  []uint64 // seed weights by pool index
	Info  Info
	// Store holds the durable state; nil keeps it in memory (a memory
	// store that lives as long as the process, across Corefile reloads).
	Store store.Store
	// Explain, when set, backs the API's explain endpoint.
	Explain func(netip.Addr) Explanation
}

// Get returns the switch called name configured by cfg, creating it the
// first time. The weights come from the store when it holds a record for
// the switch, else from the seed. A Corefile reload calls Get again: the
// weights, version and history are kept; a pool removed from the Corefile
// drops out of the weights (logged), a new pool joins with weight 0. An
// unreadable store is an error.
func Get(ctx context.Context, name string, cfg Config) (*Switch, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	s := registry[name]
	if s == nil {
		s = &Switch{Name: name}
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	st := cfg.Store
	if st == nil {
		if m, ok := s.st.(*store.Memory); ok {
			st = m
		} else {
			st = store.NewMemory()
		}
	}
	rec, err := st.Load(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("switch %s: loading state: %w", name, err)
	}

	weights := cfg.Seed
	version := uint64(0)
	updated := time.Now().UTC()
	if old := s.snap.Load(); old != nil {
		updated = old.UpdatedAt
	}
	if rec != nil {
		version, updated = rec.Version, rec.UpdatedAt
		weights = make([]uint64, len(cfg.Pools))
		for i, p := range cfg.Pools {
			weights[i] = rec.Weights[p]
		}
		for p, w := range rec.Weights {
			if indexOf(cfg.Pools, p) < 0 {
				log.Warningf("Switch %s: pool %q (weight %d) is no longer in the Corefile; it drops out of the weights", name, p, w)
			}
		}
	}
	snap, err := NewSnapshot(version, cfg.Pools, weights, updated)
	if err != nil {
		log.Warningf("Switch %s: the stored weights leave no pool with a weight above 0; using the Corefile's seed weights", name)
		if snap, err = NewSnapshot(version, cfg.Pools, cfg.Seed, updated); err != nil {
			return nil, err
		}
	}
	s.st, s.rec, s.seed, s.info, s.explain = st, rec, cfg.Seed, cfg.Info, cfg.Explain
	s.publish(snap)
	registry[name] = s
	return s, nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// publish makes snap the current snapshot and updates the gauges. Callers
// hold s.mu.
func (s *Switch) publish(snap *Snapshot) {
	s.snap.Store(snap)
	for i, p := range snap.Pools {
		weightGauge.WithLabelValues(s.Name, p).Set(float64(snap.Weights[i]))
		shareGauge.WithLabelValues(s.Name, p).Set(snap.Share(i))
	}
}

// Forget removes a switch from the registry (for tests).
func Forget(name string) {
	registryMu.Lock()
	delete(registry, name)
	registryMu.Unlock()
}
