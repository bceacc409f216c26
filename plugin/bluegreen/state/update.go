package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

// MaxWeight is the largest weight a pool may have.
const MaxWeight = store.MaxWeight

// Sources of a change.
const (
	SourceAPI     = "api"
	SourceRollout = "rollout"
	SourceHealth  = "health"
)

// ErrVersion: the If-Match version is not the current one (412).
var ErrVersion = errors.New("version does not match the current version")

// ConflictError is a request that conflicts with the switch's state, such
// as a rollout in progress (409); the message says what to do.
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

var (
	// ErrNothingToRollBack: there is no earlier change to go back to (409).
	ErrNothingToRollBack = &ConflictError{"no earlier change to roll back to"}
	// ErrRolloutActive: a manual change while a rollout runs (409).
	ErrRolloutActive = &ConflictError{"a rollout is in progress: pause it (POST .../rollout/pause) or abort it (DELETE .../rollout) first"}
	// ErrRolloutExists: a second rollout while one runs (409).
	ErrRolloutExists = &ConflictError{"a rollout is already in progress: abort it (DELETE .../rollout) before starting another"}
	// ErrNoRollout: pause, resume or abort without a rollout (409).
	ErrNoRollout = &ConflictError{"no rollout is in progress"}
)

// InvalidError is a request the switch cannot apply (400); the message says
// what is wrong.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

// StoreError is a failure to commit (503): nothing changed.
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return "store: " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// Update is one requested change and its audit details.
type Update struct {
	// IfMatch, when set, is the version the change applies to.
	IfMatch *uint64
	// Weights names every pool (for Apply).
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
		return &InvalidError{fmt.Sprintf("unknown pool %s (pools: %s)", quoteShort(unknown[0]), strings.Join(pools, ", "))}
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

// recordLocked returns a copy of the current record to change, or a new one
// holding the current configured weights.
func (s *Switch) recordLocked(now time.Time) *store.Record {
	if s.rec != nil {
		return s.rec.Clone()
	}
	w, _ := s.configuredLocked(now)
	return &store.Record{Weights: weightsMap(s.pools, w)}
}

// commitLocked appends c to rec's history and stores rec with a
// compare-and-swap on the current version. It does not publish.
func (s *Switch) commitLocked(ctx context.Context, rec *store.Record, c store.Change) error {
	return s.commitChangeLocked(ctx, rec, &c)
}

// commitChangeLocked is commitLocked with an optional history entry: an
// analysis measurement that changes nothing else is stored without one.
func (s *Switch) commitChangeLocked(ctx context.Context, rec *store.Record, c *store.Change) error {
	if s.stale {
		storeErrors.WithLabelValues(s.Name).Inc()
		return &StoreError{fmt.Errorf("the %s store does not answer", s.st.Kind())}
	}
	var prev uint64
	if s.rec != nil {
		prev = s.rec.Version
	}
	rec.Version = prev
	settle(rec)
	rec.Quiet = c == nil
	if c != nil {
		rec.UpdatedAt = c.Time
		c.Version = prev + 1 // the memory and bbolt stores count by one; settled below
		rec.History = append(rec.History, *c)
		if n := len(rec.History); n > store.MaxHistory {
			rec.History = append([]store.Change(nil), rec.History[n-store.MaxHistory:]...)
		}
	}
	committed, err := s.st.CompareAndSwap(ctx, s.Name, prev, rec)
	if errors.Is(err, store.ErrConflict) {
		return ErrVersion
	}
	if err != nil {
		storeErrors.WithLabelValues(s.Name).Inc()
		return &StoreError{err}
	}
	s.rec = settle(committed)
	if c == nil {
		return nil
	}
	changesTotal.WithLabelValues(s.Name, c.Source).Inc()
	return nil
}

// settle sets the version of rec's newest history entry to rec.Version:
// an entry is written before its commit, and with a store whose versions
// jump (etcd's revisions) its version is known only after.
func settle(rec *store.Record) *store.Record {
	if rec != nil && !rec.Quiet && len(rec.History) > 0 {
		rec.History[len(rec.History)-1].Version = rec.Version
	}
	return rec
}

// runningLocked returns the rollout plan when one is in progress (running
// or paused), else nil.
func (s *Switch) runningLocked() *rolloutPlan {
	if s.rec == nil || s.rec.Rollout == nil || s.rec.Rollout.Outcome != "" {
		return nil
	}
	return s.rec.Rollout
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
	now := s.clock.Now()
	cur := s.snap.Load()
	if u.IfMatch != nil && *u.IfMatch != cur.Version {
		return ErrVersion
	}
	if err := checkWeights(s.pools, u.Weights); err != nil {
		return err
	}
	if p := s.runningLocked(); p != nil && p.PausedAt == nil && !p.At(now).Done {
		return ErrRolloutActive
	}
	rec := s.recordLocked(now)
	finishDue(rec, now) // the plan's last hold has passed: it completed
	rec.Weights = maps.Clone(u.Weights)
	err := s.commitLocked(ctx, rec, store.Change{
		Time:   now.UTC(),
		Source: u.Source,
		From:   weightsMap(s.pools, cur.Weights),
		To:     maps.Clone(u.Weights),
		Reason: u.Reason,
		Remote: u.Remote,
	})
	if err != nil {
		return err
	}
	s.publishLocked(now)
	return nil
}

// Promote sends all traffic to pool: it gets 100, the others 0.
func (s *Switch) Promote(ctx context.Context, pool string, u Update) (*View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if indexOf(s.pools, pool) < 0 {
		return nil, &InvalidError{fmt.Sprintf("unknown pool %s (pools: %s)", quoteShort(pool), strings.Join(s.pools, ", "))}
	}
	u.Weights = map[string]uint64{}
	for _, p := range s.pools {
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

// Rollback restores the weights from before the last change of weights.
// History entries that changed no weight (health transitions, a rollout
// paused, resumed or completed) are passed over: rolling back after a
// probe flapped still undoes the operator's change.
func (s *Switch) Rollback(ctx context.Context, u Update) (*View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last *store.Change
	if s.rec != nil {
		for i := len(s.rec.History) - 1; i >= 0; i-- {
			if h := &s.rec.History[i]; !maps.Equal(h.From, h.To) {
				last = h
				break
			}
		}
	}
	if last == nil {
		return nil, ErrNothingToRollBack
	}
	u.Weights = map[string]uint64{}
	for _, p := range s.pools {
		u.Weights[p] = last.From[p]
	}
	if err := checkWeights(s.pools, u.Weights); err != nil {
		return nil, &ConflictError{"cannot roll back: the earlier weights are not valid for the current pools: " + err.Error()}
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

func sameMap(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// quoteShort quotes a name from a request for an error message, cut to
// the length the admin API echoes of any name.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
