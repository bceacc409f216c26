package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/rollout"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

// SourceAnalysis is the history source of a rollout aborted or paused by
// its analysis.
const SourceAnalysis = "analysis"

// ErrNoAnalysis: a rollout asks for analysis, the switch has none (400).
var ErrNoAnalysis = &InvalidError{`"analysis": no analysis is configured for this switch: add 'analysis prometheus URL' to its bluegreen block`}

// checkAnalysisLocked validates a rollout's analysis for this switch.
func (s *Switch) checkAnalysisLocked(spec *analysis.Spec) error {
	if spec == nil {
		return nil
	}
	if s.querier == nil {
		return ErrNoAnalysis
	}
	if err := spec.Validate(s.pools); err != nil {
		return &InvalidError{err.Error()}
	}
	return nil
}

// stepEffectiveLocked returns when measurements of step count from: the
// moment stored by the first measurement of the step, else the step's
// effective_at as this process sees it (answers under the previous weights
// expired), at least the step's start plus MIN.
func (s *Switch) stepEffectiveLocked(p *rollout.Plan, step int) time.Time {
	if r := p.Analysis; r.Step == step && !r.EffectiveAt.IsZero() {
		return r.EffectiveAt
	}
	floor := p.StepStart(step).Add(time.Duration(s.info.TTLMin) * time.Second)
	return maxTime(s.effectiveAt, floor).UTC()
}

// analysedLocked returns the running, unpaused plan with analysis whose
// current step at now is measured, with that step; nil when none.
func (s *Switch) analysedLocked(now time.Time) (*rollout.Plan, int) {
	p := s.runningLocked()
	if p == nil || p.PausedAt != nil || p.Analysis == nil {
		return nil, 0
	}
	st := p.At(now)
	if st.Done || !p.Analysed(st.Step) {
		return nil, 0
	}
	return p, st.Step
}

// armAnalysisLocked sets the analysis timer to the next interval of the
// step in effect. Callers hold s.mu.
func (s *Switch) armAnalysisLocked(now time.Time) {
	if s.anTimer != nil {
		s.anTimer.Stop()
		s.anTimer = nil
	}
	if s.querier == nil || s.measuring {
		return // a measurement in flight re-arms when it is recorded
	}
	p, step := s.analysedLocked(now)
	if p == nil {
		return
	}
	run := *p.Analysis // the fields Due reads; not changed
	if run.Step != step || run.EffectiveAt.IsZero() {
		run.Index, run.EffectiveAt = -1, s.stepEffectiveLocked(p, step)
	}
	k, at := run.Due(now)
	d := at.Sub(now)
	if d < 0 {
		d = 0
	}
	s.anTimer = s.clock.AfterFunc(d, func() { s.measure(step, k) })
}

// measure takes interval k of step: every check is queried (without s.mu,
// bounded by the querier's timeout), then counted in the stored record.
func (s *Switch) measure(step int, k int64) {
	s.mu.Lock()
	now := s.clock.Now()
	p, cur := s.analysedLocked(now)
	if p == nil || cur != step || s.measuring || s.querier == nil ||
		(p.Analysis.Step == step && !p.Analysis.EffectiveAt.IsZero() && k <= p.Analysis.Index) {
		s.armAnalysisLocked(now)
		s.mu.Unlock()
		return
	}
	eff := s.stepEffectiveLocked(p, step)
	checks := p.Analysis.Clone().Spec.Checks
	q := s.querier
	s.measuring = true
	s.mu.Unlock()

	ms := query(q, checks, analysis.Vars{Switch: s.Name, Step: step}, now)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.measuring = false
	s.countLocked(step, k, eff, ms)
	s.publishLocked(s.clock.Now())
}

// query measures every check at once, each bounded by q's timeout. A
// querier that panics gives an inconclusive measurement, not a crash.
func query(q analysis.Querier, checks []analysis.Check, vars analysis.Vars, at time.Time) []analysis.Measurement {
	ms := make([]analysis.Measurement, len(checks))
	ctx, cancel := context.WithTimeout(context.Background(), q.Timeout())
	defer cancel()
	var wg sync.WaitGroup
	for i := range checks {
		c := &checks[i]
		v := vars
		v.Pool = c.Pool
		text, err := analysis.Template(c.Query, v)
		ms[i] = analysis.Measurement{Check: c.Name, Step: vars.Step, Time: at.UTC(), Query: text}
		if err != nil {
			ms[i].Result, ms[i].Detail = c.Judge(0, err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					ms[i].Result, ms[i].Detail = analysis.Inconclusive, fmt.Sprintf("query panicked: %v", r)
				}
			}()
			val, err := q.Query(ctx, text, at)
			if err == nil {
				ms[i].Value = analysis.Value(val)
			}
			ms[i].Result, ms[i].Detail = c.Judge(val, err)
		}()
	}
	wg.Wait()
	return ms
}

// countLocked records interval k of step in the store by compare-and-swap:
// when another replica recorded it first, it is not counted again. Failure
// over a limit aborts the rollout, inconclusive over a limit pauses it, and
// a step whose checks all passed may end. Callers hold s.mu.
func (s *Switch) countLocked(step int, k int64, eff time.Time, ms []analysis.Measurement) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for attempt := 0; attempt < 3; attempt++ {
		now := s.clock.Now().UTC()
		if p, cur := s.analysedLocked(now); p == nil || cur != step {
			return // the step ended, or the rollout paused or ended, meanwhile
		}
		from, _ := s.configuredLocked(now)
		rec := s.rec.Clone()
		p := rec.Rollout
		run := p.Analysis
		run.Enter(step, eff)
		out, ok := run.Record(k, ms)
		if !ok {
			return // counted already
		}
		var change *store.Change
		switch {
		case out.Abort != "":
			s.abortRecord(rec, out.Abort, now)
			change = &store.Change{Reason: "rollout aborted: " + out.Abort}
		case out.Pause != "":
			_ = p.Pause(now) // not paused: analysedLocked checked
			rec.Weights = maps.Clone(p.At(now).Weights)
			change = &store.Change{Reason: "rollout paused: " + out.Pause}
		case out.StepPassed && run.Open <= step:
			run.Open = step + 1
			// Waiting past the hold: the next step starts now.
			if end := p.StepStart(step + 1); now.After(end) {
				p.Start = p.Start.Add(now.Sub(end))
			}
		}
		if change != nil {
			change.Time, change.Source = now, SourceAnalysis
			change.From, change.To = weightsMap(s.pools, from), maps.Clone(rec.Weights)
		}
		err := s.commitChangeLocked(ctx, rec, change)
		if errors.Is(err, ErrVersion) {
			if r, lerr := s.st.Load(ctx, s.Name); lerr == nil && r != nil {
				s.rec = settle(r)
				continue
			}
			return
		}
		if err != nil {
			log.Errorf("Switch %s: recording an analysis measurement failed: %v", s.Name, err)
			return
		}
		for _, m := range ms {
			measurementsTotal.WithLabelValues(s.Name, m.Check, m.Result).Inc()
		}
		if change != nil {
			log.Warningf("Switch %s: %s", s.Name, change.Reason)
		}
		return
	}
}

// Measurements returns the last measurements of the current or last
// rollout's analysis, oldest first, and whether it has one.
func (s *Switch) Measurements() ([]analysis.Measurement, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil || s.rec.Rollout == nil || s.rec.Rollout.Analysis == nil {
		return nil, false
	}
	return s.rec.Rollout.Analysis.Clone().Measurements, true
}
