package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/rollout"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

type rolloutPlan = rollout.Plan

const (
	completed = rollout.Completed
	aborted   = rollout.Aborted
)

// RolloutRequest starts a rollout.
type RolloutRequest struct {
	Steps            []rollout.Step
	AbortOnUnhealthy bool
	// Analysis, when set, gates every step on metric checks.
	Analysis *analysis.Spec
}

// StartRollout starts a rollout whose first step takes effect now. A
// second rollout while one is in progress is a ConflictError.
func (s *Switch) StartRollout(ctx context.Context, r RolloutRequest, u Update) (*View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now().UTC()
	cur := s.snap.Load()
	if u.IfMatch != nil && *u.IfMatch != cur.Version {
		return nil, ErrVersion
	}
	if p := s.runningLocked(); p != nil && !(p.PausedAt == nil && p.At(now).Done) {
		return nil, ErrRolloutExists
	}
	plan := &rollout.Plan{
		Steps:            r.Steps,
		Start:            now,
		Before:           weightsMap(s.pools, cur.Weights),
		AbortOnUnhealthy: r.AbortOnUnhealthy,
	}
	if err := plan.Validate(func(w map[string]uint64) error { return checkWeights(s.pools, w) }); err != nil {
		return nil, &InvalidError{err.Error()}
	}
	if err := s.checkAnalysisLocked(r.Analysis); err != nil {
		return nil, err
	}
	if r.Analysis != nil {
		plan.Analysis = analysis.NewRun(*r.Analysis)
	}
	if plan.AbortOnUnhealthy {
		// Health aborts on a transition only: a pool already down would
		// otherwise get its share, and with every weighted pool down the
		// switch fails open to it.
		for _, p := range s.pools {
			if inPlan(plan, p) && !s.healthyLocked(p) {
				return nil, &ConflictError{fmt.Sprintf("pool %s is unhealthy: a rollout with abort_on_unhealthy that gives it a weight cannot start", p)}
			}
		}
	}
	plan = plan.Clone()
	rec := s.recordLocked(now)
	rec.Rollout = plan
	rec.Weights = maps.Clone(plan.Steps[0].Weights)
	reason := u.Reason
	if reason == "" {
		reason = fmt.Sprintf("rollout started: step 1/%d", len(plan.Steps))
	}
	if finishDue(rec, now) {
		// One step without a hold: no timer records it later.
		reason += "; rollout completed"
	}
	if err := s.commitLocked(ctx, rec, store.Change{
		Time: now, Source: SourceRollout, From: plan.Before, To: maps.Clone(rec.Weights), Reason: reason, Remote: u.Remote,
	}); err != nil {
		return nil, err
	}
	s.publishLocked(now)
	return s.viewLocked(), nil
}

// PauseRollout freezes the rollout at its current step.
func (s *Switch) PauseRollout(ctx context.Context, u Update) (*View, error) {
	return s.changeRollout(ctx, u, func(rec *store.Record, now time.Time) (string, error) {
		if err := rec.Rollout.Pause(now); err != nil {
			return "", &ConflictError{err.Error()}
		}
		rec.Weights = maps.Clone(rec.Rollout.At(now).Weights)
		return "rollout paused", nil
	})
}

// ResumeRollout continues a paused rollout; later steps move by the time it
// was paused.
func (s *Switch) ResumeRollout(ctx context.Context, u Update) (*View, error) {
	return s.changeRollout(ctx, u, func(rec *store.Record, now time.Time) (string, error) {
		if err := rec.Rollout.Resume(now); err != nil {
			return "", &ConflictError{err.Error()}
		}
		if a := rec.Rollout.Analysis; a != nil {
			a.Resumed()
		}
		rec.Weights = maps.Clone(rec.Rollout.At(now).Weights)
		return "rollout resumed", nil
	})
}

// AbortRollout ends the rollout and restores the weights from before it.
func (s *Switch) AbortRollout(ctx context.Context, u Update) (*View, error) {
	return s.changeRollout(ctx, u, func(rec *store.Record, now time.Time) (string, error) {
		reason := u.Reason
		if reason == "" {
			reason = "aborted through the API"
		}
		s.abortRecord(rec, reason, now)
		return "rollout aborted: " + reason, nil
	})
}

// abortRecord marks rec's rollout aborted and restores the weights from
// before it (when they are still valid for the pools).
func (s *Switch) abortRecord(rec *store.Record, reason string, now time.Time) {
	rec.Rollout.Finish(aborted, reason, now)
	if weightsOf(s.pools, rec.Rollout.Before) != nil {
		rec.Weights = maps.Clone(rec.Rollout.Before)
	}
}

func (s *Switch) changeRollout(ctx context.Context, u Update, f func(*store.Record, time.Time) (string, error)) (*View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now().UTC()
	cur := s.snap.Load()
	if u.IfMatch != nil && *u.IfMatch != cur.Version {
		return nil, ErrVersion
	}
	p := s.runningLocked()
	if p != nil && p.PausedAt == nil && p.At(now).Done {
		// Completed by the clock, not yet recorded by the timer: record
		// it now, so the answer and the stored state agree.
		if err := s.recordStepLocked(ctx, now); err != nil {
			return nil, err
		}
		s.publishLocked(now)
		return nil, ErrNoRollout
	}
	if p == nil {
		return nil, ErrNoRollout
	}
	rec := s.recordLocked(now)
	reason, err := f(rec, now)
	if err != nil {
		return nil, err
	}
	if err := s.commitLocked(ctx, rec, store.Change{
		Time: now, Source: u.Source, From: weightsMap(s.pools, cur.Weights), To: maps.Clone(rec.Weights), Reason: reason, Remote: u.Remote,
	}); err != nil {
		return nil, err
	}
	s.publishLocked(now)
	return s.viewLocked(), nil
}

// finishDue marks rec's running rollout completed, with the last step's
// weights, when the clock has passed its end: a write that observes such a
// plan records the completion in its own commit. It reports whether it did.
func finishDue(rec *store.Record, now time.Time) bool {
	p := rec.Rollout
	if p == nil || p.Outcome != "" || p.PausedAt != nil {
		return false
	}
	st := p.At(now)
	if !st.Done {
		return false
	}
	rec.Weights = maps.Clone(st.Weights)
	p.Finish(completed, "", p.End())
	return true
}

// tick runs at rollout boundaries: it records the step now in effect (or
// the completion) in the store and publishes the weights. The weights are
// served from the plan even before the store has recorded the step.
func (s *Switch) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now().UTC()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.recordStepLocked(ctx, now); err != nil {
		log.Errorf("Switch %s: recording rollout step failed, retrying in 1s: %v", s.Name, err)
		s.publishLocked(now)
		if s.timer != nil {
			s.timer.Stop()
		}
		s.timer = s.clock.AfterFunc(time.Second, s.tick)
		return
	}
	s.publishLocked(now)
}

// recordStepLocked records the step of the running rollout in effect at
// now, or its completion, unless the store holds it already. It does not
// publish. Callers hold s.mu.
func (s *Switch) recordStepLocked(ctx context.Context, now time.Time) error {
	p := s.runningLocked()
	if p == nil || p.PausedAt != nil {
		return nil
	}
	st := p.At(now)
	if sameMap(s.rec.Weights, st.Weights) && !st.Done {
		return nil
	}
	rec := s.rec.Clone()
	rec.Weights = maps.Clone(st.Weights)
	reason := fmt.Sprintf("rollout step %d/%d", st.Step+1, len(p.Steps))
	if st.Done {
		rec.Rollout.Finish(completed, "", p.End())
		reason = "rollout completed"
	}
	// From the weights last recorded, which need not be the step before
	// this one: a step that passed while the server was down is recorded
	// late, or not at all.
	from := map[string]uint64{}
	for _, p := range s.pools {
		from[p] = s.rec.Weights[p]
	}
	err := s.commitLocked(ctx, rec, store.Change{
		Time: now, Source: SourceRollout, From: from, To: maps.Clone(st.Weights), Reason: reason,
	})
	if errors.Is(err, ErrVersion) {
		// Another writer (a replica) got there first: take its record.
		if r, lerr := s.st.Load(ctx, s.Name); lerr == nil && r != nil {
			s.rec = settle(r)
		}
		return nil
	}
	return err
}
