// Package state holds the live state of every switch: its pools, weights,
// version, rollout, pool health and history. A switch outlives Corefile
// reloads: it is kept in a package-level registry keyed by the switch name.
// The query path reads it through one immutable Snapshot behind an atomic
// pointer; writers commit to the switch's store first and publish a new
// snapshot after.
package state

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/bluegreen-dns/bluegreen/internal/clock"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/pick"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
	"github.com/cespare/xxhash/v2"
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
	// FailOpen is true when every weighted pool is unhealthy and the
	// configured weights apply as they are.
	FailOpen bool
	// PoolsID identifies the pool list (a hash of the names in order): a
	// plugin instance whose Corefile declared other pools must not index
	// its zone data with this snapshot.
	PoolsID uint64
}

// PoolsID returns the identity of a pool list: XXH64 of the names in
// order, each followed by a zero byte.
func PoolsID(pools []string) uint64 {
	d := xxhash.New()
	for _, p := range pools {
		d.WriteString(p)
		d.Write([]byte{0})
	}
	return d.Sum64()
}

// Remap returns the snapshot's weights for another pool list, matched by
// name: a pool the snapshot does not know gets weight 0. It serves a plugin
// instance whose Corefile declared other pools than the switch now has (the
// old instance during a Corefile reload that changes the pools), so its
// answers follow the current weights for every pool both lists share. The
// effective weights carry over; if no shared pool has an effective weight,
// the configured ones apply, and if none has a weight at all, Remap
// returns nil and the caller uses its own seed weights.
func (s *Snapshot) Remap(pools []string) *Snapshot {
	w := make([]uint64, len(pools))
	eff := make([]uint64, len(pools))
	var sumW, sumE uint64
	for i, p := range pools {
		if j := s.Index(p); j >= 0 {
			w[i], eff[i] = s.Weights[j], s.Effective[j]
			sumW += w[i]
			sumE += eff[i]
		}
	}
	if sumW == 0 {
		return nil
	}
	r := &Snapshot{
		Version: s.Version, Pools: append([]string(nil), pools...), Weights: w, Effective: eff,
		UpdatedAt: s.UpdatedAt, NextChange: s.NextChange, FailOpen: s.FailOpen, PoolsID: PoolsID(pools),
	}
	if sumE == 0 {
		copy(r.Effective, w)
		r.FailOpen = true
	}
	r.Cum = pick.Cumulative(r.Effective)
	return r
}

// Pick returns the pool index for point p.
func (s *Snapshot) Pick(p uint64) int { return pick.Index(p, s.Cum) }

// Share returns pool i's share of traffic under the effective weights.
func (s *Snapshot) Share(i int) float64 {
	return float64(s.Effective[i]) / float64(s.Cum[len(s.Cum)-1])
}

// Index returns the index of pool name, or -1.
func (s *Snapshot) Index(name string) int { return indexOf(s.Pools, name) }

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
	pools   []string
	seed    []uint64
	info    Info
	explain func(netip.Addr) Explanation

	// health holds the pools with probes; a pool not in it is healthy.
	health   map[string]Health
	failOpen bool
	// timer fires at the next rollout boundary; pubAt is the time the
	// current snapshot was computed for.
	timer clock.Timer
	pubAt time.Time
	// clock is the time source of every timing decision.
	clock clock.Clock
	// querier measures rollout analysis (nil: none configured); anTimer
	// fires at the next interval; measuring is true while queries run.
	querier   analysis.Querier
	anTimer   clock.Timer
	measuring bool

	// watching is the shared store being watched (etcd), with the means to
	// stop the watch; stale is true while it does not answer.
	watching    store.Store
	watchCancel context.CancelFunc
	stale       bool

	// maxTTL is the largest TTL served for a switched answer since the last
	// change; effectiveAt is when answers served under older weights have
	// expired from conforming caches.
	maxTTL      atomic.Uint32
	effectiveAt time.Time
	// started is when the switch was made (at process start): answers an
	// earlier process served are not in maxTTL, but expire by started+MAX.
	started time.Time
}

// Health is a pool's probe state.
type Health struct {
	Healthy bool      `json:"healthy"`
	Since   time.Time `json:"since"`
	Detail  string    `json:"detail,omitempty"`
}

// Load returns the current snapshot; never nil for a switch made by Configure.
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
	// StartupTimeout bounds the wait for a shared store that does not
	// answer at setup (default DefaultStartupTimeout).
	StartupTimeout time.Duration
	// Analysis measures rollouts that ask for analysis; nil refuses them.
	Analysis analysis.Querier
	// Clock is the time source (default clock.Real); tests pass a fake.
	// It is set when the switch is made and kept across reloads.
	Clock clock.Clock
}

// Configure returns the switch called name configured by cfg, creating it the
// first time. The weights come from the store when it holds a record for
// the switch, else from the seed. A Corefile reload calls Configure again: the
// weights, version, rollout and history are kept; a pool removed from the
// Corefile drops out of the weights (logged), a new pool joins with weight
// 0. An unreadable store is an error.
func Configure(ctx context.Context, name string, cfg Config) (*Switch, error) {
	if len(cfg.Pools) != len(cfg.Seed) {
		return nil, fmt.Errorf("switch %s: %d pools but %d seed weights", name, len(cfg.Pools), len(cfg.Seed))
	}
	if pick.Cumulative(cfg.Seed) == nil {
		return nil, fmt.Errorf("switch %s: seed weights sum to zero", name)
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	s := registry[name]
	isNew := s == nil
	if isNew {
		clk := cfg.Clock
		if clk == nil {
			clk = clock.Real
		}
		s = &Switch{Name: name, clock: clk, started: clk.Now()}
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
	var rec *store.Record
	stale := false
	if _, shared := st.(store.Watcher); shared {
		timeout := cfg.StartupTimeout
		if timeout == 0 {
			timeout = DefaultStartupTimeout
		}
		var err error
		if rec, stale, err = loadShared(ctx, st, name, timeout); err != nil {
			return nil, fmt.Errorf("switch %s: loading state: %w", name, err)
		}
	} else {
		var err error
		if rec, err = st.Load(ctx, name); err != nil {
			return nil, fmt.Errorf("switch %s: loading state: %w", name, err)
		}
	}
	settle(rec)
	if rec != nil {
		for p, w := range rec.Weights {
			if indexOf(cfg.Pools, p) < 0 {
				log.Warningf("Switch %s: pool %q (weight %d) is no longer in the Corefile; it drops out of the weights", name, p, w)
			}
		}
	}
	s.st, s.rec, s.pools, s.seed, s.info, s.explain = st, rec, cfg.Pools, cfg.Seed, cfg.Info, cfg.Explain
	s.querier = cfg.Analysis
	if isNew && rec != nil {
		// What an earlier process served before the last change may be
		// cached until MAX after it.
		s.effectiveAt = rec.UpdatedAt.Add(time.Duration(cfg.Info.TTLMax) * time.Second).UTC()
	}
	if s.health == nil {
		s.health = map[string]Health{}
	}
	for p := range s.health {
		if indexOf(cfg.Pools, p) < 0 {
			delete(s.health, p)
		}
	}
	if rec != nil && weightsOf(cfg.Pools, rec.Weights) == nil {
		log.Warningf("Switch %s: the stored weights leave no pool with a weight above 0; using the Corefile's seed weights", name)
	}
	s.stale = stale
	storeStale.WithLabelValues(name).Set(boolFloat(stale))
	// Counters exist from the start at 0, so alerts and rate() see the
	// first increment.
	storeErrors.WithLabelValues(name)
	failOpenTotal.WithLabelValues(name)
	for _, src := range []string{SourceAPI, SourceRollout, SourceHealth, SourceAnalysis} {
		changesTotal.WithLabelValues(name, src)
	}
	s.publishLocked(s.clock.Now())
	s.watchLocked(st)
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

// weightsOf maps w onto pools; nil when they sum to zero.
func weightsOf(pools []string, w map[string]uint64) []uint64 {
	out := make([]uint64, len(pools))
	var sum uint64
	for i, p := range pools {
		out[i] = w[p]
		sum += out[i]
	}
	if sum == 0 {
		return nil
	}
	return out
}

// configuredLocked returns the configured weights at now (from the running
// rollout step, else the stored weights, else the seed) and the next
// scheduled change.
func (s *Switch) configuredLocked(now time.Time) ([]uint64, time.Time) {
	if s.rec == nil {
		return s.seed, time.Time{}
	}
	if p := s.rec.Rollout; p != nil && p.Outcome == "" && p.PausedAt == nil {
		st := p.At(now)
		if w := weightsOf(s.pools, st.Weights); w != nil {
			// The last step's end completes the rollout but changes no
			// weight: no TTL needs to reach it.
			return w, st.Next
		}
	}
	if w := weightsOf(s.pools, s.rec.Weights); w != nil {
		return w, time.Time{}
	}
	return s.seed, time.Time{}
}

// expiryLocked returns when the last answer served under old, replaced
// now, expires from conforming caches: now plus the largest TTL this
// process served since the previous change; no earlier than started + MAX
// (what the process before a restart served); with a shared store no
// earlier than now + MAX (what other replicas served). When old had a
// scheduled change, every answer was capped to reach it (floored at MIN),
// so none outlives max(that time, now + MIN). Callers hold s.mu.
func (s *Switch) expiryLocked(old *Snapshot, now time.Time) time.Time {
	maxTTL := time.Duration(s.info.TTLMax) * time.Second
	exp := now.Add(time.Duration(s.maxTTL.Swap(0)) * time.Second)
	exp = maxTime(exp, s.started.Add(maxTTL))
	if _, shared := s.st.(store.Watcher); shared {
		exp = maxTime(exp, now.Add(maxTTL))
	}
	if !old.NextChange.IsZero() {
		floor := now.Add(time.Duration(s.info.TTLMin) * time.Second)
		if bound := maxTime(old.NextChange, floor); bound.Before(exp) {
			exp = bound
		}
	}
	return exp.UTC()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// publishLocked computes the snapshot for now, makes it current, updates
// the gauges and arms the timer for the next scheduled change. Callers hold
// s.mu.
func (s *Switch) publishLocked(now time.Time) {
	weights, next := s.configuredLocked(now)
	version, updated := uint64(0), now.UTC()
	if old := s.snap.Load(); old != nil {
		updated = old.UpdatedAt
	}
	if s.rec != nil {
		version, updated = s.rec.Version, s.rec.UpdatedAt
	}
	snap, _ := NewSnapshot(version, s.pools, weights, updated) // weights sum above 0
	snap.NextChange = next
	snap.PoolsID = PoolsID(s.pools)

	var sum uint64
	for i, p := range s.pools {
		if h, ok := s.health[p]; ok && !h.Healthy {
			snap.Effective[i] = 0
		}
		sum += snap.Effective[i]
	}
	failOpen := sum == 0
	if failOpen {
		copy(snap.Effective, snap.Weights)
		snap.FailOpen = true
	}
	if failOpen != s.failOpen {
		s.failOpen = failOpen
		if failOpen {
			failOpenTotal.WithLabelValues(s.Name).Inc()
			log.Warningf("Switch %s: every pool with a weight above 0 is unhealthy; failing open to the configured weights", s.Name)
		} else {
			log.Infof("Switch %s: a weighted pool is healthy again; effective weights apply", s.Name)
		}
	}
	if failOpen {
		failOpenGauge.WithLabelValues(s.Name).Set(1)
	} else {
		failOpenGauge.WithLabelValues(s.Name).Set(0)
	}
	snap.Cum = pick.Cumulative(snap.Effective)

	if old := s.snap.Load(); old != nil && !sameWeights(old.Effective, snap.Effective) {
		if exp := s.expiryLocked(old, now); exp.After(s.effectiveAt) {
			s.effectiveAt = exp
		}
	}
	s.snap.Store(snap)
	s.pubAt = now
	rp := s.runningLocked()
	rolloutPaused.WithLabelValues(s.Name).Set(boolFloat(rp != nil && rp.PausedAt != nil))
	for i, p := range snap.Pools {
		weightGauge.WithLabelValues(s.Name, p).Set(float64(snap.Weights[i]))
		shareGauge.WithLabelValues(s.Name, p).Set(snap.Share(i))
	}
	s.armLocked(now)
	s.armAnalysisLocked(now)
}

func sameWeights(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// armLocked sets the timer to the next moment a running rollout needs
// attention: the next step, or the end of the last one.
func (s *Switch) armLocked(now time.Time) {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	p := s.runningLocked()
	if p == nil {
		return
	}
	st := p.At(now)
	at := st.Next
	if at.IsZero() {
		at = p.End()
	}
	d := at.Sub(now)
	if p.PausedAt != nil {
		// Frozen: only resume moves it (the tick would record nothing,
		// and with a manual change while paused it would fire forever).
		return
	}
	if st.Done || !sameMap(s.rec.Weights, st.Weights) {
		d = 0 // the store does not hold this step yet
	} else if st.Waiting {
		return // the analysis moves it on
	}
	if d < 0 {
		d = 0
	}
	s.timer = s.clock.AfterFunc(d, s.tick)
}

// Forget removes a switch from the registry and stops its timer (for
// tests).
func Forget(name string) {
	registryMu.Lock()
	s := registry[name]
	delete(registry, name)
	registryMu.Unlock()
	if s != nil {
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.anTimer != nil {
			s.anTimer.Stop()
		}
		s.querier = nil
		s.stopWatchLocked()
		s.mu.Unlock()
	}
}
