// Package rollout is the arithmetic of a stepwise rollout plan: which step
// is in effect at a given time, when the next one begins, and how pause and
// resume shift the schedule. Plans hold absolute times, so the current
// weights are a pure function of (plan, clock): a restarted server or
// another replica derives the same step without a leader.
package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis"
)

// Outcomes of a plan that has ended.
const (
	Completed = "completed"
	Aborted   = "aborted"
)

// MaxSteps is the largest number of steps a plan may have.
const MaxSteps = 100

// Step is one step: its weights hold from the step's start for Hold.
type Step struct {
	Weights map[string]uint64 `json:"weights"`
	Hold    Duration          `json:"hold"`
}

// Plan is a rollout with absolute times.
type Plan struct {
	Steps []Step `json:"steps"`
	// Start is when step 0 took effect, shifted forward by the time spent
	// paused (so step i starts at Start + the holds of steps 0..i-1).
	Start time.Time `json:"start"`
	// Before are the weights from before the rollout, restored on abort.
	Before           map[string]uint64 `json:"before"`
	AbortOnUnhealthy bool              `json:"abort_on_unhealthy"`
	// PausedAt is set while the plan is paused.
	PausedAt *time.Time `json:"paused_at,omitempty"`
	// Outcome is set once the plan ended (Completed or Aborted), with
	// Reason for an abort and EndedAt the time.
	Outcome string     `json:"outcome,omitempty"`
	Reason  string     `json:"reason,omitempty"`
	EndedAt *time.Time `json:"ended_at,omitempty"`
	// Analysis, when set, gates each step: it ends only once its hold has
	// elapsed and its analysis passed (Gated).
	Analysis *analysis.Run `json:"analysis,omitempty"`
}

// Status is where a plan stands at one moment.
type Status struct {
	// Step is the index of the step in effect.
	Step int
	// Weights are the step's weights.
	Weights map[string]uint64
	// Next is when the next step begins; zero when paused, ended or on the
	// last step.
	Next time.Time
	// Done is true once the last step's hold has passed (or the plan ended).
	Done bool
	// Waiting is true when the step's hold has passed but its analysis has
	// not: the step holds until the analysis passes, aborts or pauses.
	Waiting bool
}

// Gated reports whether step i must pass its analysis before it ends. A
// last step without a hold ends the rollout at once and is not analysed.
func (p *Plan) Gated(i int) bool {
	if p.Analysis == nil || i < p.Analysis.Open {
		return false
	}
	return i < len(p.Steps)-1 || p.Steps[i].Hold > 0
}

// Analysed reports whether step i is measured at all.
func (p *Plan) Analysed(i int) bool {
	return p.Analysis != nil && (i < len(p.Steps)-1 || p.Steps[i].Hold > 0)
}

// StepStart returns when step i begins (ignoring pauses still in progress).
func (p *Plan) StepStart(i int) time.Time {
	t := p.Start
	for j := 0; j < i && j < len(p.Steps); j++ {
		t = t.Add(p.Steps[j].Hold.D())
	}
	return t
}

// End returns when the last step's hold ends.
func (p *Plan) End() time.Time { return p.StepStart(len(p.Steps)) }

// Active reports whether the plan still runs (not ended) at now.
func (p *Plan) Active(now time.Time) bool {
	return p.Outcome == "" && !p.At(now).Done
}

// At returns the plan's status at now. A paused plan is frozen at the
// moment it was paused.
func (p *Plan) At(now time.Time) Status {
	if p.Outcome != "" && p.EndedAt != nil {
		now = *p.EndedAt
	}
	paused := p.PausedAt != nil
	if paused {
		now = *p.PausedAt
	}
	t := p.Start
	for i, s := range p.Steps {
		end := t.Add(s.Hold.D())
		if now.Before(end) {
			st := Status{Step: i, Weights: s.Weights}
			if !paused && p.Outcome == "" && i+1 < len(p.Steps) {
				st.Next = end
			}
			if p.Outcome != "" {
				st.Done = true
			}
			return st
		}
		if p.Gated(i) {
			return Status{Step: i, Weights: s.Weights, Waiting: p.Outcome == "", Done: p.Outcome != ""}
		}
		t = end
	}
	last := len(p.Steps) - 1
	if last < 0 {
		return Status{Done: true} // no steps: stores refuse such plans (store.Decode)
	}
	return Status{Step: last, Weights: p.Steps[last].Weights, Done: true}
}

// Pause freezes the plan at now. Pausing a paused plan is an error.
func (p *Plan) Pause(now time.Time) error {
	if p.PausedAt != nil {
		return errors.New("rollout is already paused")
	}
	now = now.UTC()
	p.PausedAt = &now
	return nil
}

// Resume continues a paused plan: every later step moves by the time spent
// paused.
func (p *Plan) Resume(now time.Time) error {
	if p.PausedAt == nil {
		return errors.New("rollout is not paused")
	}
	if d := now.Sub(*p.PausedAt); d > 0 {
		p.Start = p.Start.Add(d)
	}
	p.PausedAt = nil
	return nil
}

// Finish marks the plan ended with outcome and reason at now.
func (p *Plan) Finish(outcome, reason string, now time.Time) {
	now = now.UTC()
	if p.PausedAt != nil {
		// Keep the step it was frozen at.
		now = *p.PausedAt
	}
	p.Outcome, p.Reason, p.EndedAt = outcome, reason, &now
}

// Validate checks the steps' shape: at least one step, at most MaxSteps,
// each hold at least one second (the last may be 0) and each step's weights
// checked by check.
func (p *Plan) Validate(check func(map[string]uint64) error) error {
	if len(p.Steps) == 0 {
		return errors.New("a rollout needs at least one step")
	}
	if len(p.Steps) > MaxSteps {
		return fmt.Errorf("a rollout has at most %d steps, got %d", MaxSteps, len(p.Steps))
	}
	for i, s := range p.Steps {
		if s.Hold.D() < time.Second && i < len(p.Steps)-1 {
			return fmt.Errorf("step %d: hold must be at least 1s, got %s", i, s.Hold.D())
		}
		if s.Hold.D() > 366*24*time.Hour {
			return fmt.Errorf("step %d: hold must be at most 366 days", i)
		}
		if err := check(s.Weights); err != nil {
			return fmt.Errorf("step %d: %v", i, err)
		}
	}
	return nil
}

// Duration is a time.Duration written as a Go duration string ("10m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "90s" or "10m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("hold must be a duration string such as \"10m\"")
	}
	if len(s) > 64 {
		// Echo no more of it than of any other name.
		return fmt.Errorf("hold %q...: not a duration", s[:64])
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("hold %q: %v", s, err)
	}
	if v < 0 {
		return fmt.Errorf("hold %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// Clone returns a deep copy of p.
func (p *Plan) Clone() *Plan {
	c := *p
	c.Steps = make([]Step, len(p.Steps))
	for i, s := range p.Steps {
		s.Weights = maps.Clone(s.Weights)
		c.Steps[i] = s
	}
	c.Before = maps.Clone(p.Before)
	c.Analysis = p.Analysis.Clone()
	if p.PausedAt != nil {
		t := *p.PausedAt
		c.PausedAt = &t
	}
	if p.EndedAt != nil {
		t := *p.EndedAt
		c.EndedAt = &t
	}
	return &c
}
