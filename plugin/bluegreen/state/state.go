// Package state holds the live state of every switch: its pools, weights,
// version and history. A switch outlives Corefile reloads: it is kept in a
// package-level registry keyed by the switch name, and the query path reads
// it through one immutable snapshot behind an atomic pointer.
package state

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/pick"
)

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
	total := s.Cum[len(s.Cum)-1]
	return float64(s.Effective[i]) / float64(total)
}

// Switch is one switch: a set of pools in declared order and their weights.
type Switch struct {
	Name string

	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[Snapshot]
	seed []uint64 // seed weights from the Corefile
	// stored is true once a change was made after setup; from then on the seed
	// weights of a reloaded Corefile no longer apply.
	stored bool
}

// Load returns the current snapshot. It never returns nil for a switch made
// by Get.
func (s *Switch) Load() *Snapshot { return s.snap.Load() }

// NewSnapshot builds a snapshot for pools and weights, checking them.
func NewSnapshot(version uint64, pools []string, weights []uint64, updated time.Time) (*Snapshot, error) {
	if len(pools) != len(weights) {
		return nil, fmt.Errorf("%d pools but %d weights", len(pools), len(weights))
	}
	cum := pick.Cumulative(weights)
	if cum == nil {
		return nil, fmt.Errorf("weights sum to zero")
	}
	eff := append([]uint64(nil), weights...)
	return &Snapshot{
		Version:   version,
		Pools:     append([]string(nil), pools...),
		Weights:   append([]uint64(nil), weights...),
		Effective: eff,
		Cum:       cum,
		UpdatedAt: updated,
	}, nil
}

var (
	registryMu sync.Mutex
	registry   = map[string]*Switch{}
)

// Get returns the switch called name, creating it with the seed weights
// when it does not exist yet. An existing switch keeps its weights and
// version across Corefile reloads unless they were never changed after
// setup, in which case the new seed applies. Pools added to the Corefile
// join with weight 0; removed pools drop out.
func Get(name string, pools []string, seed []uint64) (*Switch, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	s, ok := registry[name]
	if !ok {
		snap, err := NewSnapshot(1, pools, seed, time.Now().UTC())
		if err != nil {
			return nil, err
		}
		s = &Switch{Name: name, seed: seed}
		s.snap.Store(snap)
		registry[name] = s
		return s, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.Load()
	weights := seed
	if s.stored {
		weights = make([]uint64, len(pools))
		for i, p := range pools {
			for j, q := range old.Pools {
				if p == q {
					weights[i] = old.Weights[j]
				}
			}
		}
	}
	snap, err := NewSnapshot(old.Version, pools, weights, old.UpdatedAt)
	if err != nil {
		// Every remaining pool has weight 0: fall back to the seed.
		snap, err = NewSnapshot(old.Version, pools, seed, old.UpdatedAt)
		if err != nil {
			return nil, err
		}
	}
	s.seed = seed
	s.snap.Store(snap)
	return s, nil
}

// Set replaces the weights (by pool index) and bumps the version.
func (s *Switch) Set(weights []uint64) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.Load()
	snap, err := NewSnapshot(old.Version+1, old.Pools, weights, time.Now().UTC())
	if err != nil {
		return nil, err
	}
	s.stored = true
	s.snap.Store(snap)
	return snap, nil
}

// Forget removes a switch from the registry (for tests).
func Forget(name string) {
	registryMu.Lock()
	delete(registry, name)
	registryMu.Unlock()
}
