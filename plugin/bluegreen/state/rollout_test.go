package state

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/internal/clock/clocktest"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/rollout"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store/bolt"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func bw(blue, green uint64) map[string]uint64 { return map[string]uint64{"blue": blue, "green": green} }

func steps(holds ...time.Duration) []rollout.Step {
	ws := []map[string]uint64{bw(95, 5), bw(75, 25), bw(50, 50), bw(0, 100)}
	var out []rollout.Step
	for i, h := range holds {
		out = append(out, rollout.Step{Weights: ws[i], Hold: rollout.Duration(h)})
	}
	return out
}

// newRolloutSwitch makes a blue/green switch on a fake clock (started at
// the wall time, so stored times look real); the test advances it.
func newRolloutSwitch(t *testing.T, name string, st store.Store) (*Switch, *clocktest.Clock) {
	t.Helper()
	clk := clocktest.New(time.Now().UTC().Truncate(time.Second))
	return newRolloutSwitchClock(t, name, st, clk), clk
}

func newRolloutSwitchClock(t *testing.T, name string, st store.Store, clk *clocktest.Clock) *Switch {
	t.Helper()
	Forget(name)
	t.Cleanup(func() { Forget(name) })
	s, err := Configure(context.Background(), name, Config{Pools: []string{"blue", "green"}, Seed: []uint64{100, 0}, Store: st, Clock: clk})
	require.NoError(t, err)
	return s
}

func weightsNow(s *Switch) map[string]uint64 {
	snap := s.Load()
	return weightsMap(snap.Pools, snap.Weights)
}

func TestRolloutSteps(t *testing.T) {
	s, clk := newRolloutSwitch(t, "rollout-steps", nil)
	ctx := context.Background()
	start := clk.Now()
	v, err := s.StartRollout(ctx, RolloutRequest{Steps: steps(time.Second, time.Second, 0)}, Update{Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, "running", v.Rollout.State)
	assert.Equal(t, bw(95, 5), weightsNow(s), "step 0 applies at once")
	next := s.Load().NextChange
	require.False(t, next.IsZero(), "a running rollout has a next change")
	assert.Equal(t, start.Add(time.Second), next)

	// Second rollout and a manual change are conflicts while it runs.
	_, err = s.StartRollout(ctx, RolloutRequest{Steps: steps(time.Second)}, Update{Source: SourceAPI})
	assert.ErrorIs(t, err, ErrRolloutExists)
	_, err = s.Apply(ctx, Update{Weights: bw(1, 1), Source: SourceAPI})
	assert.ErrorIs(t, err, ErrRolloutActive)
	var ce *ConflictError
	assert.True(t, errors.As(err, &ce))

	clk.Advance(999 * time.Millisecond)
	assert.Equal(t, bw(95, 5), weightsNow(s), "1 ms before the boundary: still step 0")
	clk.Advance(time.Millisecond)
	assert.Equal(t, bw(75, 25), weightsNow(s), "step 1 at its boundary")
	assert.Equal(t, start.Add(2*time.Second), s.Load().NextChange)
	clk.Advance(time.Second)
	assert.Equal(t, bw(50, 50), weightsNow(s), "step 2")
	assert.Equal(t, rollout.Completed, s.View().Rollout.State, "the last step has no hold")
	assert.True(t, s.Load().NextChange.IsZero(), "nothing scheduled after the last step")

	h := s.History()
	require.GreaterOrEqual(t, len(h), 3)
	assert.Equal(t, SourceRollout, h[0].Source)
	assert.Equal(t, "rollout completed", h[0].Reason)
	assert.Equal(t, bw(50, 50), h[0].To)

	// Done: manual changes are allowed again.
	_, err = s.Apply(ctx, Update{Weights: bw(1, 1), Source: SourceAPI})
	require.NoError(t, err)
}

func TestRolloutPauseResumeAbort(t *testing.T) {
	s, clk := newRolloutSwitch(t, "rollout-pause", nil)
	ctx := context.Background()
	_, err := s.PauseRollout(ctx, Update{Source: SourceAPI})
	assert.ErrorIs(t, err, ErrNoRollout)

	_, err = s.StartRollout(ctx, RolloutRequest{Steps: steps(time.Second, time.Hour)}, Update{Source: SourceAPI})
	require.NoError(t, err)
	v, err := s.PauseRollout(ctx, Update{Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, "paused", v.Rollout.State)
	assert.True(t, s.Load().NextChange.IsZero(), "a paused rollout schedules nothing")
	clk.Advance(1200 * time.Millisecond)
	assert.Equal(t, bw(95, 5), weightsNow(s), "paused past the boundary: still step 0")

	// A manual change is allowed while paused.
	_, err = s.Apply(ctx, Update{Weights: bw(90, 10), Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, bw(90, 10), weightsNow(s))

	v, err = s.ResumeRollout(ctx, Update{Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, "running", v.Rollout.State)
	assert.Equal(t, bw(95, 5), weightsNow(s), "resume goes back to the step in effect")
	clk.Advance(time.Second - 1)
	assert.Equal(t, bw(95, 5), weightsNow(s), "the pause moved the boundary by 1.2 s")
	clk.Advance(1)
	assert.Equal(t, bw(75, 25), weightsNow(s), "step 1 at the moved boundary")

	v, err = s.AbortRollout(ctx, Update{Source: SourceAPI, Reason: "errors up"})
	require.NoError(t, err)
	assert.Equal(t, rollout.Aborted, v.Rollout.State)
	assert.Equal(t, "errors up", v.Rollout.Reason)
	assert.Equal(t, bw(100, 0), weightsNow(s), "abort restores the weights from before")
	_, err = s.AbortRollout(ctx, Update{Source: SourceAPI})
	assert.ErrorIs(t, err, ErrNoRollout)
}

func TestRolloutInvalid(t *testing.T) {
	s, _ := newRolloutSwitch(t, "rollout-invalid", nil)
	ctx := context.Background()
	for i, st := range [][]rollout.Step{
		nil,
		{{Weights: bw(0, 0)}},
		{{Weights: map[string]uint64{"blue": 1}}},
		{{Weights: bw(1, 1), Hold: rollout.Duration(time.Millisecond)}, {Weights: bw(0, 1)}},
	} {
		_, err := s.StartRollout(ctx, RolloutRequest{Steps: st}, Update{Source: SourceAPI})
		var ie *InvalidError
		if !errors.As(err, &ie) {
			t.Errorf("Test %d: expected an InvalidError, got %v", i, err)
		}
	}
	assert.Nil(t, s.View().Rollout)
	assert.Equal(t, uint64(0), s.Load().Version, "nothing was committed")
}

// A restart in the middle of a rollout resumes at the step the clock says.
func TestRolloutSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path)
	require.NoError(t, err)
	s, clk := newRolloutSwitch(t, "rollout-restart", db)
	_, err = s.StartRollout(context.Background(), RolloutRequest{Steps: steps(time.Second, time.Hour)}, Update{Source: SourceAPI})
	require.NoError(t, err)
	Forget("rollout-restart") // the process goes away
	require.NoError(t, db.Close())
	clk.Advance(1100 * time.Millisecond)
	require.Zero(t, clk.Pending(), "the forgotten switch left no timer")

	db, err = bolt.Open(path)
	require.NoError(t, err)
	defer db.Close()
	s = newRolloutSwitchClock(t, "rollout-restart", db, clk)
	assert.Equal(t, bw(75, 25), weightsNow(s), "restarted after the boundary: step 1")
	assert.Equal(t, 1, s.View().Rollout.Step)
	r, _ := db.Load(context.Background(), "rollout-restart")
	require.Equal(t, uint64(5), r.Weights["green"], "not recorded before the timer runs")
	clk.Advance(0)
	r, _ = db.Load(context.Background(), "rollout-restart")
	require.Equal(t, uint64(25), r.Weights["green"], "the step is recorded in the store")
	// Recorded late, it still goes from the weights before it.
	h := s.History()[0]
	assert.Equal(t, "rollout step 2/2", h.Reason)
	assert.Equal(t, bw(95, 5), h.From, "from the weights last recorded (step 1)")
	assert.Equal(t, bw(75, 25), h.To)
}

func TestHealthEffectiveWeights(t *testing.T) {
	s, _ := newRolloutSwitch(t, "health-eff", nil)
	ctx := context.Background()
	_, err := s.Apply(ctx, Update{Weights: bw(80, 20), Source: SourceAPI})
	require.NoError(t, err)
	s.ProbedPools([]string{"green"})

	s.SetHealth(ctx, "green", false, "connection refused")
	snap := s.Load()
	assert.Equal(t, []uint64{80, 20}, snap.Weights, "configured weights unchanged")
	assert.Equal(t, []uint64{80, 0}, snap.Effective, "unhealthy pool at 0")
	assert.False(t, s.View().Pools[1].Healthy)
	assert.Equal(t, SourceHealth, s.History()[0].Source)

	// Every weighted pool unhealthy: fail open to the configured weights.
	_, err = s.Apply(ctx, Update{Weights: bw(0, 20), Source: SourceAPI})
	require.NoError(t, err)
	snap = s.Load()
	assert.True(t, snap.FailOpen)
	assert.Equal(t, []uint64{0, 20}, snap.Effective)

	s.SetHealth(ctx, "green", true, "")
	snap = s.Load()
	assert.False(t, snap.FailOpen)
	assert.Equal(t, []uint64{0, 20}, snap.Effective)
}

func TestHealthAbortsRollout(t *testing.T) {
	s, _ := newRolloutSwitch(t, "health-abort", nil)
	ctx := context.Background()
	s.ProbedPools([]string{"blue", "green"})
	_, err := s.StartRollout(ctx, RolloutRequest{Steps: steps(time.Hour, 0), AbortOnUnhealthy: true}, Update{Source: SourceAPI})
	require.NoError(t, err)
	s.SetHealth(ctx, "green", false, "HTTP 503")
	v := s.View()
	require.NotNil(t, v.Rollout)
	assert.Equal(t, rollout.Aborted, v.Rollout.State)
	assert.Contains(t, v.Rollout.Reason, "green")
	assert.Equal(t, bw(100, 0), v.Weights, "abort restored the weights from before")
	assert.Contains(t, s.History()[0].Reason, "rollout aborted")
	assert.Equal(t, SourceHealth, s.History()[0].Source)
}

// A rollout with abort_on_unhealthy that gives an unhealthy pool a weight
// is refused: health aborts only on a transition, so it would otherwise
// run (and end failing open to the unhealthy pool). Without the option, or
// with the pool at 0 in every step, it starts.
func TestRolloutRefusedWhenUnhealthy(t *testing.T) {
	s, _ := newRolloutSwitch(t, "rollout-unhealthy", nil)
	ctx := context.Background()
	s.ProbedPools([]string{"green"})
	s.SetHealth(ctx, "green", false, "down")
	toGreen := []rollout.Step{{Weights: bw(50, 50), Hold: rollout.Duration(time.Minute)}, {Weights: bw(0, 100)}}

	_, err := s.StartRollout(ctx, RolloutRequest{Steps: toGreen, AbortOnUnhealthy: true}, Update{Source: SourceAPI})
	var ce *ConflictError
	require.True(t, errors.As(err, &ce), "expected a ConflictError, got %v", err)
	assert.Contains(t, err.Error(), "pool green is unhealthy")
	assert.Nil(t, s.View().Rollout, "nothing started")
	assert.Equal(t, bw(100, 0), weightsNow(s), "nothing changed")

	v, err := s.StartRollout(ctx, RolloutRequest{Steps: []rollout.Step{{Weights: bw(60, 0)}}, AbortOnUnhealthy: true}, Update{Source: SourceAPI})
	require.NoError(t, err, "green has no weight in the plan")
	assert.Equal(t, rollout.Completed, v.Rollout.State)

	v, err = s.StartRollout(ctx, RolloutRequest{Steps: toGreen}, Update{Source: SourceAPI})
	require.NoError(t, err, "without abort_on_unhealthy the rollout starts")
	assert.Equal(t, "running", v.Rollout.State)
}

// Rollback passes over history entries that changed no weight: after a
// probe flapped, it still undoes the operator's change.
func TestRollbackSkipsHealthEntries(t *testing.T) {
	s, _ := newRolloutSwitch(t, "rollback-health", nil)
	ctx := context.Background()
	before := s.Load().Weights
	_, err := s.Apply(ctx, Update{Weights: bw(70, 30), Source: SourceAPI})
	require.NoError(t, err)
	s.ProbedPools([]string{"green"})
	s.SetHealth(ctx, "green", false, "connection refused")
	s.SetHealth(ctx, "green", true, "")
	h := s.History()
	require.Len(t, h, 3)
	require.Equal(t, SourceHealth, h[0].Source)

	v, err := s.Rollback(ctx, Update{Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, map[string]uint64{"blue": before[0], "green": before[1]}, v.Weights)
	assert.Contains(t, s.History()[0].Reason, "rollback of version 1")
}

// TTLs reach the next step, but not the end of the last step's hold,
// which completes the rollout without changing a weight.
func TestRolloutNoChangeScheduledInLastStep(t *testing.T) {
	s, clk := newRolloutSwitch(t, "rollout-last-step", nil)
	_, err := s.StartRollout(context.Background(), RolloutRequest{Steps: steps(time.Second, time.Hour)}, Update{Source: SourceAPI})
	require.NoError(t, err)
	first := s.Load().NextChange
	assert.False(t, first.IsZero(), "step 1: the next step is scheduled")
	// The step is published when the timer records it.
	clk.Advance(time.Second)
	require.Equal(t, uint64(25), s.Load().Weights[1])
	assert.True(t, s.Load().NextChange.IsZero(), "last step: nothing scheduled, got %s", s.Load().NextChange)
	assert.Equal(t, "running", s.View().Rollout.State)
}
