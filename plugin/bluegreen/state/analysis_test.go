package state

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/internal/clock/clocktest"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/rollout"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

// fakeQuerier answers every query with value (or err) and records the
// queries and the times they were asked at.
type fakeQuerier struct {
	mu    sync.Mutex
	value float64
	err   error
	asked []string
	at    []time.Time
}

func (f *fakeQuerier) set(v float64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value, f.err = v, err
}

func (f *fakeQuerier) Query(_ context.Context, q string, at time.Time) (float64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, q)
	f.at = append(f.at, at)
	return f.value, f.err
}

func (f *fakeQuerier) Timeout() time.Duration { return time.Second }

func (f *fakeQuerier) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.asked)
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func ptr(f float64) *float64 { return &f }

// analysedSwitch makes a blue/green switch (TTL 30 1) on a fake clock at
// t0 with q as its querier. Just started, its first change is effective
// at t0 + 30 s (an earlier process may have served MAX).
func analysedSwitch(t *testing.T, st store.Store, q analysis.Querier) (*Switch, *clocktest.Clock) {
	t.Helper()
	clk := clocktest.New(t0)
	cfg := blueGreen(st, 100, 0)
	cfg.Clock, cfg.Analysis = clk, q
	return mustGet(t, newName(t), cfg), clk
}

func spec(failLimit, inconLimit int) *analysis.Spec {
	return &analysis.Spec{Interval: analysis.Duration(5 * time.Second), Checks: []analysis.Check{{
		Name: "errors", Query: `rate(errors{pool="{{pool}}",step="{{step}}"}[1m])`, Pool: "green",
		Max: ptr(0.05), FailureLimit: failLimit, InconclusiveLimit: inconLimit,
	}}}
}

func canarySteps() []rollout.Step {
	return []rollout.Step{
		{Weights: w(90, 10), Hold: rollout.Duration(10 * time.Second)},
		{Weights: w(50, 50), Hold: rollout.Duration(10 * time.Second)},
		{Weights: w(0, 100)},
	}
}

func startAnalysed(t *testing.T, s *Switch, sp *analysis.Spec) {
	t.Helper()
	_, err := s.StartRollout(ctx, RolloutRequest{Steps: canarySteps(), Analysis: sp}, Update{Source: SourceAPI})
	require.NoError(t, err)
}

// A step advances only once its hold has elapsed and a measurement taken
// from its effective_at on has passed.
func TestAnalysisAdvancesAfterEffectiveAtAndPass(t *testing.T) {
	q := &fakeQuerier{value: 0.01}
	s, clk := analysedSwitch(t, nil, q)
	startAnalysed(t, s, spec(0, 3))
	require.Equal(t, t0.Add(30*time.Second), s.View().EffectiveAt)

	clk.Advance(10 * time.Second)
	assert.Equal(t, w(90, 10), weightsNow(s), "hold elapsed, no measurement yet: step 0 holds")
	v := s.View()
	assert.True(t, v.Rollout.Analysis.Waiting, "waiting for the analysis")
	assert.True(t, s.Load().NextChange.IsZero(), "nothing scheduled while waiting")
	clk.Advance(20*time.Second - time.Millisecond)
	assert.Zero(t, q.calls(), "nothing measured before effective_at")
	assert.Equal(t, w(90, 10), weightsNow(s))

	clk.Advance(time.Millisecond) // t0+30s: effective_at
	require.Equal(t, 1, q.calls())
	assert.Equal(t, `rate(errors{pool="green",step="0"}[1m])`, q.asked[0], "templated")
	assert.Equal(t, t0.Add(30*time.Second), q.at[0])
	assert.Equal(t, w(50, 50), weightsNow(s), "passed after the hold: step 1 starts at once")
	v = s.View()
	assert.Equal(t, 1, v.Rollout.Step)
	assert.Equal(t, t0.Add(40*time.Second), *v.Rollout.NextChangeAt, "step 1 holds 10 s from now")
	c := v.Rollout.Analysis.Checks[0]
	assert.Equal(t, 1, c.Passes)
	assert.Equal(t, 0.01, *c.LastValue)
	assert.Equal(t, SourceRollout, s.History()[0].Source)

	// Step 1 was scheduled by nobody (the analysis released it), so its
	// answers count from the step's start + MIN at the earliest.
	clk.Advance(time.Second - time.Millisecond)
	assert.Equal(t, 1, q.calls(), "step 1 not measured before its effective_at")
	clk.Advance(time.Millisecond)
	require.Equal(t, 2, q.calls())
	assert.Equal(t, `rate(errors{pool="green",step="1"}[1m])`, q.asked[1])
	assert.True(t, s.View().Rollout.Analysis.Checks[0].StepPassed)
	assert.Equal(t, w(50, 50), weightsNow(s), "passed before the hold ended: the step keeps its schedule")

	clk.Advance(9 * time.Second) // t0+40s: the hold ends, the step passed
	assert.Equal(t, w(0, 100), weightsNow(s))
	v = s.View()
	assert.Equal(t, rollout.Completed, v.Rollout.State, "the last step has no hold and is not analysed")
	calls := q.calls()
	clk.Advance(time.Minute)
	assert.Equal(t, calls, q.calls(), "nothing measured after the rollout")
	assert.Equal(t, 3, v.Rollout.Analysis.Checks[0].Passes, "measured at 30, 31 and 36 s")
}

// failure_limit failures are tolerated, one more aborts as DELETE does.
func TestAnalysisAbortsAtFailureLimit(t *testing.T) {
	q := &fakeQuerier{value: 0.2}
	s, clk := analysedSwitch(t, nil, q)
	before := testutil.ToFloat64(measurementsTotal.WithLabelValues(s.Name, "errors", analysis.Fail))
	startAnalysed(t, s, spec(2, 3))

	clk.Advance(40*time.Second - time.Millisecond) // measured at 30 and 35 s
	assert.Equal(t, 2, q.calls())
	v := s.View()
	require.Equal(t, "running", v.Rollout.State, "two failures are tolerated")
	assert.Equal(t, 2, v.Rollout.Analysis.Checks[0].Failures)

	clk.Advance(time.Millisecond) // the third at 40 s
	v = s.View()
	assert.Equal(t, rollout.Aborted, v.Rollout.State)
	assert.Equal(t, w(100, 0), v.Weights, "the weights from before the rollout")
	h := s.History()[0]
	assert.Equal(t, SourceAnalysis, h.Source)
	assert.Equal(t, w(90, 10), h.From)
	assert.Equal(t, w(100, 0), h.To)
	for _, want := range []string{"rollout aborted", "errors", "0.2", "above max 0.05", "failure_limit 2"} {
		assert.Contains(t, h.Reason, want)
	}
	assert.Equal(t, before+3, testutil.ToFloat64(measurementsTotal.WithLabelValues(s.Name, "errors", analysis.Fail)))
	ms, ok := s.Measurements()
	require.True(t, ok)
	require.Len(t, ms, 3)
	assert.Equal(t, int64(2), ms[2].Index)
	clk.Advance(time.Minute)
	assert.Equal(t, 3, q.calls(), "nothing measured after the abort")
}

// Inconclusive measurements over the limit pause the rollout: it never
// promotes. Resume clears the count and the analysis goes on.
func TestAnalysisPausesOnInconclusiveAndResumes(t *testing.T) {
	q := &fakeQuerier{err: errors.New("connection refused")}
	s, clk := analysedSwitch(t, nil, q)
	startAnalysed(t, s, spec(0, 2))

	clk.Advance(40*time.Second - time.Millisecond)
	require.Equal(t, "running", s.View().Rollout.State, "two inconclusive measurements are tolerated")
	clk.Advance(time.Millisecond)
	v := s.View()
	require.Equal(t, "paused", v.Rollout.State)
	assert.Equal(t, 3, v.Rollout.Analysis.Checks[0].Consecutive)
	h := s.History()[0]
	assert.Equal(t, SourceAnalysis, h.Source)
	assert.Contains(t, h.Reason, "rollout paused")
	assert.Contains(t, h.Reason, "connection refused")

	clk.Advance(time.Hour)
	assert.Equal(t, 3, q.calls(), "a paused rollout is not measured")
	assert.Equal(t, w(90, 10), weightsNow(s), "never promoted")

	q.set(0.01, nil)
	v, err := s.ResumeRollout(ctx, Update{Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, 0, v.Rollout.Analysis.Checks[0].Consecutive, "resume clears the inconclusive count")
	assert.Equal(t, 3, v.Rollout.Analysis.Checks[0].Inconclusives, "the total stays")
	clk.Advance(0)
	assert.Equal(t, 4, q.calls(), "measured at once: the interval is due")
	assert.Equal(t, w(50, 50), weightsNow(s), "passed, and the hold had elapsed")
}

// Two replicas on one store both measure each interval, but the record
// counts it once: the second compare-and-swap finds it counted.
func TestAnalysisReplicasCountOnce(t *testing.T) {
	st := sharedMemory{store.NewMemory()}
	q := &fakeQuerier{value: 0.01}
	a, clk := analysedSwitch(t, st, q)
	sp := spec(0, 3)
	sp.Checks[0].Min = ptr(0) // and a hold long enough to measure often
	_, err := a.StartRollout(ctx, RolloutRequest{Steps: []rollout.Step{
		{Weights: w(90, 10), Hold: rollout.Duration(time.Minute)}, {Weights: w(0, 100)},
	}, Analysis: sp}, Update{Source: SourceAPI})
	require.NoError(t, err)
	// A second replica of the same switch, on the same clock and store.
	registryMu.Lock()
	delete(registry, a.Name)
	registryMu.Unlock()
	t.Cleanup(func() {
		a.mu.Lock()
		a.anTimer.Stop()
		a.timer.Stop()
		a.mu.Unlock()
	})
	cfg := blueGreen(st, 100, 0)
	cfg.Clock, cfg.Analysis = clk, q
	b := mustGet(t, a.Name, cfg)
	require.NotSame(t, a, b)
	before := testutil.ToFloat64(measurementsTotal.WithLabelValues(a.Name, "errors", analysis.Pass))

	clk.Advance(50 * time.Second) // intervals at 30, 35, ..., 50 s: five
	rec, err := st.Load(ctx, a.Name)
	require.NoError(t, err)
	run := rec.Rollout.Analysis
	assert.Equal(t, 5, run.Checks[0].Passes, "each interval counted once")
	assert.Len(t, run.Measurements, 5)
	for i, m := range run.Measurements {
		assert.Equal(t, int64(i), m.Index)
	}
	assert.Equal(t, before+5, testutil.ToFloat64(measurementsTotal.WithLabelValues(a.Name, "errors", analysis.Pass)))
	assert.Equal(t, 10, q.calls(), "both replicas measured")
}

// A rollout that asks for analysis on a switch without it, or with a bad
// check, is refused and changes nothing.
func TestAnalysisRefused(t *testing.T) {
	s, _ := analysedSwitch(t, nil, nil)
	_, err := s.StartRollout(ctx, RolloutRequest{Steps: canarySteps(), Analysis: spec(0, 3)}, Update{Source: SourceAPI})
	require.ErrorIs(t, err, ErrNoAnalysis)

	s, _ = analysedSwitch(t, nil, &fakeQuerier{})
	sp := spec(0, 3)
	sp.Checks[0].Pool = "red"
	_, err = s.StartRollout(ctx, RolloutRequest{Steps: canarySteps(), Analysis: sp}, Update{Source: SourceAPI})
	var ie *InvalidError
	require.True(t, errors.As(err, &ie), "expected an InvalidError, got %v", err)
	assert.Contains(t, err.Error(), `"pool" "red" is not a pool of this switch`)
	assert.Nil(t, s.View().Rollout)
	assert.Equal(t, uint64(0), s.Load().Version)
}
