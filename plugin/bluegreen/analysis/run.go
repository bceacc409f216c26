package analysis

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Run is an analysis in progress: the spec and everything measured so far.
// It is part of the stored rollout plan, changed only by compare-and-swap.
type Run struct {
	Spec
	// Open is the number of steps whose analysis passed: step i may end
	// once its hold has elapsed only when i < Open.
	Open int `json:"open"`
	// Step is the step the per-step fields below refer to; Index the last
	// interval measured in it (-1: none yet) and EffectiveAt the moment
	// measurements of the step count from.
	Step        int       `json:"step"`
	Index       int64     `json:"index"`
	EffectiveAt time.Time `json:"effective_at"`
	// Checks holds each check's counts, in the spec's order.
	Checks []CheckState `json:"states"`
	// Measurements are the last MaxMeasurements, oldest first.
	Measurements []Measurement `json:"measurements,omitempty"`
}

// CheckState is one check's counts.
type CheckState struct {
	Name          string `json:"name"`
	Passes        int    `json:"passes"`
	Failures      int    `json:"failures"`
	Inconclusives int    `json:"inconclusives"`
	// Consecutive counts inconclusive measurements since the last
	// conclusive one or the last resume.
	Consecutive int `json:"consecutive_inconclusives"`
	// StepPassed is true once the check passed in the current step.
	StepPassed bool         `json:"step_passed"`
	Last       *Measurement `json:"last,omitempty"`
}

// Measurement is one check measured once.
type Measurement struct {
	Check  string    `json:"check"`
	Step   int       `json:"step"`
	Index  int64     `json:"index"`
	Time   time.Time `json:"time"`
	Query  string    `json:"query"`
	Value  *float64  `json:"value"` // nil when there was no finite value
	Result string    `json:"result"`
	Detail string    `json:"detail,omitempty"`
}

// NewRun starts a run of spec with the defaults filled in.
func NewRun(spec Spec) *Run {
	r := &Run{Spec: spec, Index: -1}
	r.Checks = make([]CheckState, len(spec.Checks))
	for i, c := range spec.Checks {
		r.Checks[i].Name = c.Name
	}
	return r
}

// Clone returns a deep copy.
func (r *Run) Clone() *Run {
	if r == nil {
		return nil
	}
	c := *r
	c.Spec.Checks = make([]Check, len(r.Spec.Checks))
	for i, ch := range r.Spec.Checks {
		ch.Min, ch.Max = clonef(ch.Min), clonef(ch.Max)
		c.Spec.Checks[i] = ch
	}
	c.Checks = make([]CheckState, len(r.Checks))
	for i, s := range r.Checks {
		if s.Last != nil {
			m := s.Last.clone()
			s.Last = &m
		}
		c.Checks[i] = s
	}
	c.Measurements = make([]Measurement, len(r.Measurements))
	for i, m := range r.Measurements {
		c.Measurements[i] = m.clone()
	}
	return &c
}

func (m Measurement) clone() Measurement { m.Value = clonef(m.Value); return m }

func clonef(f *float64) *float64 {
	if f == nil {
		return nil
	}
	v := *f
	return &v
}

// Check verifies a stored run: what no rollout body could have written is
// an error (a zero interval would divide by zero in every replica).
func (r *Run) Check(steps int) error {
	if iv := r.Interval.D(); iv < MinInterval || iv > MaxInterval {
		return fmt.Errorf("analysis: interval %s out of range", iv)
	}
	if len(r.Spec.Checks) == 0 || len(r.Spec.Checks) > MaxChecks || len(r.Checks) != len(r.Spec.Checks) {
		return errors.New("analysis: checks do not match their states")
	}
	if r.Open < 0 || r.Open > steps || r.Step < 0 || r.Step >= steps || r.Index < -1 {
		return errors.New("analysis: step out of range")
	}
	if len(r.Measurements) > MaxMeasurements {
		return errors.New("analysis: too many measurements")
	}
	return nil
}

// Limit returns c's inconclusive limit (InconclusiveLimit, which a body
// sets explicitly or leaves at DefaultInconclusiveLimit).
func (c *Check) limits() (int, int) { return c.FailureLimit, c.InconclusiveLimit }

// Outcome is what recording one interval's measurements decided.
type Outcome struct {
	// Abort or Pause, with the reason; else StepPassed when every check
	// has now passed in the step.
	Abort, Pause string
	StepPassed   bool
}

// Enter moves the run to step, whose measurements count from eff: the
// per-step fields reset. It does nothing when the run is already there.
func (r *Run) Enter(step int, eff time.Time) {
	if r.Step == step && !r.EffectiveAt.IsZero() {
		return
	}
	r.Step, r.Index, r.EffectiveAt = step, -1, eff.UTC()
	for i := range r.Checks {
		r.Checks[i].StepPassed = false
	}
}

// Due returns the index and time of the next interval to measure in the
// current step at now: the first not yet measured, skipping those whose
// time passed while nobody measured (paused, or down).
func (r *Run) Due(now time.Time) (int64, time.Time) {
	iv := r.Interval.D()
	k := r.Index + 1
	if d := now.Sub(r.EffectiveAt); d > 0 {
		if late := int64(d / iv); late > k {
			k = late
		}
	}
	return k, r.EffectiveAt.Add(time.Duration(k) * iv)
}

// Record counts one interval's measurements (one per check, in order) as
// interval index of the current step. It returns false, changing nothing,
// when that interval is already counted (another replica measured it).
func (r *Run) Record(index int64, ms []Measurement) (Outcome, bool) {
	var out Outcome
	if index <= r.Index || len(ms) != len(r.Checks) {
		return out, false
	}
	r.Index = index
	allPassed := true
	for i := range r.Checks {
		c, st, m := &r.Spec.Checks[i], &r.Checks[i], ms[i]
		m.Step, m.Index, m.Check = r.Step, index, c.Name
		if m.Value != nil && !finite(*m.Value) {
			m.Value = nil
		}
		failLimit, inconLimit := c.limits()
		switch m.Result {
		case Pass:
			st.Passes++
			st.Consecutive = 0
			st.StepPassed = true
		case Fail:
			st.Failures++
			st.Consecutive = 0
			if st.Failures > failLimit && out.Abort == "" {
				out.Abort = fmt.Sprintf("analysis: check %s failed %d times (failure_limit %d): %s", c.Name, st.Failures, failLimit, m.Detail)
			}
		default:
			m.Result = Inconclusive
			st.Inconclusives++
			st.Consecutive++
			if st.Consecutive > inconLimit && out.Pause == "" {
				out.Pause = fmt.Sprintf("analysis: check %s inconclusive %d times in a row (inconclusive_limit %d): %s", c.Name, st.Consecutive, inconLimit, m.Detail)
			}
		}
		last := m.clone()
		st.Last = &last
		allPassed = allPassed && st.StepPassed
		r.Measurements = append(r.Measurements, m)
	}
	if n := len(r.Measurements); n > MaxMeasurements {
		r.Measurements = append([]Measurement(nil), r.Measurements[n-MaxMeasurements:]...)
	}
	out.StepPassed = allPassed && out.Abort == "" && out.Pause == ""
	return out, true
}

// Resumed clears the consecutive inconclusive counts (on resume).
func (r *Run) Resumed() {
	for i := range r.Checks {
		r.Checks[i].Consecutive = 0
	}
}

// Value returns a pointer to v when it is finite, for a Measurement.
func Value(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}
