package state

import (
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/rollout"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

// View is a switch's state as the admin API shows it (SPEC §4).
type View struct {
	Name        string             `json:"name"`
	Version     uint64             `json:"version"`
	Weights     map[string]uint64  `json:"weights"`
	Shares      map[string]float64 `json:"shares"`
	Pools       []PoolView         `json:"pools"`
	TTL         TTLView            `json:"ttl"`
	Sticky      string             `json:"sticky"`
	UpdatedAt   time.Time          `json:"updated_at"`
	EffectiveAt time.Time          `json:"effective_at"`
	Rollout     *RolloutView       `json:"rollout"`
	Store       string             `json:"store"`
	// FailOpen is true while every weighted pool is unhealthy and the
	// configured weights apply.
	FailOpen bool `json:"fail_open"`
	// StoreStale is true while a shared store (etcd) does not answer.
	StoreStale bool `json:"store_stale"`
}

// RolloutView is the current or last rollout in a View.
type RolloutView struct {
	Steps            []rollout.Step    `json:"steps"`
	Step             int               `json:"step"` // index of the step in effect
	StartedAt        time.Time         `json:"started_at"`
	NextChangeAt     *time.Time        `json:"next_change_at"`
	EndsAt           *time.Time        `json:"ends_at,omitempty"`
	Paused           bool              `json:"paused"`
	PausedAt         *time.Time        `json:"paused_at,omitempty"`
	AbortOnUnhealthy bool              `json:"abort_on_unhealthy"`
	Before           map[string]uint64 `json:"before"`
	State            string            `json:"state"` // running, paused, completed, aborted
	Reason           string            `json:"reason,omitempty"`
	EndedAt          *time.Time        `json:"ended_at,omitempty"`
	// Analysis is the rollout's analysis, when it has one.
	Analysis *AnalysisView `json:"analysis,omitempty"`
}

// AnalysisView is a rollout's analysis in a View.
type AnalysisView struct {
	Interval analysis.Duration `json:"interval"`
	// Waiting is true while the step's hold has passed but not its checks.
	Waiting bool `json:"waiting"`
	// Step and EffectiveAt: the step last measured, and the moment its
	// measurements count from.
	Step        int         `json:"step"`
	EffectiveAt *time.Time  `json:"effective_at,omitempty"`
	PassedSteps int         `json:"passed_steps"`
	Checks      []CheckView `json:"checks"`
}

// CheckView is one check with its counts and last measurement.
type CheckView struct {
	analysis.Check
	Passes        int        `json:"passes"`
	Failures      int        `json:"failures"`
	Inconclusives int        `json:"inconclusives"`
	Consecutive   int        `json:"consecutive_inconclusives"`
	StepPassed    bool       `json:"step_passed"`
	LastValue     *float64   `json:"last_value"`
	LastResult    string     `json:"last_result,omitempty"`
	LastAt        *time.Time `json:"last_at,omitempty"`
	LastDetail    string     `json:"last_detail,omitempty"`
}

// PoolView is one pool in a View.
type PoolView struct {
	Name            string `json:"name"`
	Weight          uint64 `json:"weight"`
	EffectiveWeight uint64 `json:"effective_weight"`
	Healthy         bool   `json:"healthy"`
	// Health is the probe state of a pool with health checks.
	Health *Health `json:"health,omitempty"`
}

// TTLView is the ttl option in a View.
type TTLView struct {
	Max uint32 `json:"max"`
	Min uint32 `json:"min"`
}

// View returns the switch's current state.
func (s *Switch) View() *View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.viewLocked()
}

func (s *Switch) viewLocked() *View {
	snap := s.snap.Load()
	v := &View{
		Name:      s.Name,
		Version:   snap.Version,
		Weights:   weightsMap(snap.Pools, snap.Weights),
		Shares:    map[string]float64{},
		TTL:       TTLView{Max: s.info.TTLMax, Min: s.info.TTLMin},
		Sticky:    s.info.Sticky,
		UpdatedAt: snap.UpdatedAt,
		Store:     s.st.Kind(),
	}
	for i, p := range snap.Pools {
		v.Shares[p] = snap.Share(i)
		pv := PoolView{Name: p, Weight: snap.Weights[i], EffectiveWeight: snap.Effective[i], Healthy: s.healthyLocked(p)}
		if h, ok := s.health[p]; ok {
			pv.Health = &h
		}
		v.Pools = append(v.Pools, pv)
	}
	v.FailOpen = snap.FailOpen
	v.StoreStale = s.stale
	if s.rec != nil && s.rec.Rollout != nil {
		// At the moment the weights were published, so the step agrees
		// with them until the timer publishes the next.
		v.Rollout = rolloutView(s.rec.Rollout, s.pubAt)
	}
	v.EffectiveAt = s.effectiveAt
	if v.EffectiveAt.Before(v.UpdatedAt) {
		v.EffectiveAt = v.UpdatedAt
	}
	return v
}

// History returns the audit log, newest first.
func (s *Switch) History() []store.Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil {
		return []store.Change{}
	}
	h := s.rec.Clone().History
	for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
		h[i], h[j] = h[j], h[i]
	}
	return h
}

func rolloutView(p *rollout.Plan, now time.Time) *RolloutView {
	st := p.At(now)
	v := &RolloutView{
		Steps:            p.Steps,
		Step:             st.Step,
		StartedAt:        p.Start,
		Paused:           p.PausedAt != nil && p.Outcome == "",
		PausedAt:         p.PausedAt,
		AbortOnUnhealthy: p.AbortOnUnhealthy,
		Before:           p.Before,
		Reason:           p.Reason,
		EndedAt:          p.EndedAt,
	}
	if a := p.Analysis; a != nil {
		av := &AnalysisView{Interval: a.Interval, Waiting: st.Waiting && p.PausedAt == nil && p.Outcome == "", Step: a.Step, PassedSteps: a.Open}
		if !a.EffectiveAt.IsZero() {
			t := a.EffectiveAt
			av.EffectiveAt = &t
		}
		for i, c := range a.Spec.Checks {
			cs := a.Checks[i]
			cv := CheckView{Check: c, Passes: cs.Passes, Failures: cs.Failures, Inconclusives: cs.Inconclusives, Consecutive: cs.Consecutive, StepPassed: cs.StepPassed && a.Step == st.Step}
			if m := cs.Last; m != nil {
				t := m.Time
				cv.LastValue, cv.LastResult, cv.LastAt, cv.LastDetail = m.Value, m.Result, &t, m.Detail
			}
			av.Checks = append(av.Checks, cv)
		}
		v.Analysis = av
	}
	switch {
	case p.Outcome != "":
		// Completed only once recorded: until then the stored weights and
		// version may not be final.
		v.State = p.Outcome
	case v.Paused:
		v.State = "paused"
	default:
		v.State = "running"
		if !st.Next.IsZero() {
			v.NextChangeAt = &st.Next
		}
		end := p.End()
		v.EndsAt = &end
	}
	return v
}
