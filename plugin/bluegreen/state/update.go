package state

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

// MaxWeight is the largest weight a pool may have.
const MaxWeight = 1_000_000

// Sources of a change.
const (
	SourceAPI     = "api"
	SourceRollout = "rollout"
	SourceHealth  = "health"
)

var (
	// ErrVersion: the If-Match version is not the current one (412).
	ErrVersion = errors.New("version does not match the current version")
	// ErrNothingToRollBack: there is no earlier change to go back to (409).
	ErrNothingToRollBack = errors.New("no earlier change to roll back to")
)

// InvalidError is a request the switch cannot apply (400); the message says
// what is wrong.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

// StoreError is a failure to commit (503): nothing changed.
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return "store: " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// Update is one requested change of weights.
type Update struct {
	// IfMatch, when set, is the version the change applies to.
	IfMatch *uint64
	// Weights names every pool.
	Weights map[string]uint64
	Source  string
	Reason  string
	Remote  string
}

// CheckWeights checks that w names every pool of the switch exactly, each
// weight in range and the sum above zero.
func (s *Switch) CheckWeights(w map[string]uint64) error {
	return checkWeights(s.Load().Pools, w)
}

func checkWeights(pools []string, w map[string]uint64) error {
	var unknown, missing []string
	for p := range w {
		if indexOf(pools, p) < 0 {
			unknown = append(unknown, p)
		}
	}
	for _, p := range pools {
		if _, ok := w[p]; !ok {
			missing = append(missing, p)
		}
	}
	sort.Strings(unknown)
	switch {
	case len(unknown) > 0:
		return &InvalidError{fmt.Sprintf("unknown pool %q (pools: %s)", unknown[0], strings.Join(pools, ", "))}
	case len(missing) > 0:
		return &InvalidError{fmt.Sprintf("missing weight for pool %q: every pool must be named", missing[0])}
	}
	var sum uint64
	for _, p := range pools {
		if w[p] > MaxWeight {
			return &InvalidError{fmt.Sprintf("weight %d of pool %q is above the maximum %d", w[p], p, MaxWeight)}
		}
		sum += w[p]
	}
	if sum == 0 {
		return &InvalidError{"weights sum to zero"}
	}
	return nil
}

// Apply commits u and publishes the new weights; it returns once the store
// has committed, so the next query after it returns is answered under the
// new weights. On error nothing changed.
func (s *Switch) Apply(ctx context.Context, u Update) (*View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.applyLocked(ctx, u); err != nil {
		return nil, err
	}
	return s.viewLocked(), nil
}

func (s *Switch) applyLocked(ctx context.Context, u Update) error {
	cur := s.snap.Load()
	if u.IfMatch != nil && *u.IfMatch != cur.Version {
		return ErrVersion
	}
	if err := checkWeights(cur.Pools, u.Weights); err != nil {
		return err
	}
	now := time.Now().UTC()
	rec := &store.Record{}
	if s.rec != nil {
		rec = s.rec.Clone()
	}
	from := weightsMap(cur.Pools, cur.Weights)
	rec.Weights = cloneMap(u.Weights)
	rec.UpdatedAt = now
	rec.History = append(rec.History, store.Change{
		Version: cur.Version + 1, // the bbolt and memory stores count by one
		Time:    now,
		Source:  u.Source,
		From:    from,
		To:      cloneMap(u.Weights),
		Reason:  u.Reason,
		Remote:  u.Remote,
	})
	if n := len(rec.History); n > store.MaxHistory {
		rec.History = append([]store.Change(nil), rec.History[n-store.MaxHistory:]...)
	}
	committed, err := s.st.CompareAndSwap(ctx, s.Name, cur.Version, rec)
	if errors.Is(err, store.ErrConflict) {
		return ErrVersion
	}
	if err != nil {
		storeErrors.WithLabelValues(s.Name).Inc()
		return &StoreError{err}
	}
	committed.History[len(committed.History)-1].Version = committed.Version

	weights := make([]uint64, len(cur.Pools))
	for i, p := range cur.Pools {
		weights[i] = u.Weights[p]
	}
	snap, err := NewSnapshot(committed.Version, cur.Pools, weights, now)
	if err != nil {
		return &InvalidError{err.Error()} // unreachable: checked above
	}
	// Answers served under the old weights expire by now + the largest TTL
	// served since the previous change.
	exp := now.Add(time.Duration(s.maxTTL.Swap(0)) * time.Second)
	if exp.After(s.effectiveAt) {
		s.effectiveAt = exp
	}
	s.rec = committed
	s.publish(snap)
	changesTotal.WithLabelValues(s.Name, u.Source).Inc()
	return nil
}

// Promote sends all traffic to pool: it gets 100, the others 0.
func (s *Switch) Promote(ctx context.Context, pool string, u Update) (*View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.snap.Load()
	if indexOf(cur.Pools, pool) < 0 {
		return nil, &InvalidError{fmt.Sprintf("unknown pool %q (pools: %s)", pool, strings.Join(cur.Pools, ", "))}
	}
	u.Weights = map[string]uint64{}
	for _, p := range cur.Pools {
		u.Weights[p] = 0
	}
	u.Weights[pool] = 100
	if u.Reason == "" {
		u.Reason = "promote " + pool
	}
	if err := s.applyLocked(ctx, u); err != nil {
		return nil, err
	}
	return s.viewLocked(), nil
}

// Rollback restores the weights from before the last change.
func (s *Switch) Rollback(ctx context.Context, u Update) (*View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil || len(s.rec.History) == 0 {
		return nil, ErrNothingToRollBack
	}
	last := s.rec.History[len(s.rec.History)-1]
	cur := s.snap.Load()
	u.Weights = map[string]uint64{}
	for _, p := range cur.Pools {
		u.Weights[p] = last.From[p]
	}
	if err := checkWeights(cur.Pools, u.Weights); err != nil {
		return nil, &InvalidError{"cannot roll back: the earlier weights are not valid for the current pools: " + err.Error()}
	}
	if u.Reason == "" {
		u.Reason = fmt.Sprintf("rollback of version %d", last.Version)
	}
	if err := s.applyLocked(ctx, u); err != nil {
		return nil, err
	}
	return s.viewLocked(), nil
}

// Explain says which pool client gets now and why.
func (s *Switch) Explain(client netip.Addr) (Explanation, bool) {
	s.mu.Lock()
	f := s.explain
	s.mu.Unlock()
	if f == nil {
		return Explanation{}, false
	}
	return f(client), true
}

func weightsMap(pools []string, w []uint64) map[string]uint64 {
	m := make(map[string]uint64, len(pools))
	for i, p := range pools {
		m[p] = w[i]
	}
	return m
}

func cloneMap(w map[string]uint64) map[string]uint64 {
	c := make(map[string]uint64, len(w))
	for k, v := range w {
		c[k] = v
	}
	return c
}
