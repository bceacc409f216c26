package state

import (
	"context"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/internal/clock/clocktest"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/rollout"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A rollout whose holds have all passed when it starts (one step without a
// hold) is recorded as completed, with its final weights, by the start's
// own commit: no timer is left to write a new version after the answer.
func TestRolloutCompleteAtStartRecordedAtOnce(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	s, clk := newRolloutSwitch(t, "rollout-complete-at-start", st)

	v, err := s.StartRollout(ctx, RolloutRequest{Steps: []rollout.Step{{Weights: bw(0, 100)}}}, Update{Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), v.Version, "one commit")
	require.NotNil(t, v.Rollout)
	assert.Equal(t, rollout.Completed, v.Rollout.State)
	assert.Equal(t, bw(0, 100), v.Weights)

	r, err := st.Load(ctx, s.Name)
	require.NoError(t, err)
	require.NotNil(t, r)
	assert.Equal(t, uint64(1), r.Version)
	assert.Equal(t, bw(0, 100), r.Weights, "the stored weights are the final step's")
	require.NotNil(t, r.Rollout)
	assert.Equal(t, rollout.Completed, r.Rollout.Outcome, "the completion is stored")
	require.Len(t, r.History, 1)
	assert.Contains(t, r.History[0].Reason, "rollout completed")
	assert.Equal(t, bw(100, 0), r.History[0].From)
	assert.Equal(t, bw(0, 100), r.History[0].To)
	assert.Zero(t, clk.Pending(), "no timer left to record anything")

	// DELETE: no rollout is in progress (409), and nothing is written.
	_, err = s.AbortRollout(ctx, Update{Source: SourceAPI})
	assert.ErrorIs(t, err, ErrNoRollout)
	clk.Advance(time.Minute)
	assert.Equal(t, uint64(1), s.View().Version, "nothing written later")
	r, err = st.Load(ctx, s.Name)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), r.Version)
}

// storeWithOldRollout returns a store holding a running rollout that
// started an hour before clk's time: by the clock it completed long ago.
func storeWithOldRollout(t *testing.T, name string, clk *clocktest.Clock) *store.Memory {
	t.Helper()
	st := store.NewMemory()
	p := &rollout.Plan{Steps: steps(time.Second, 0), Start: clk.Now().Add(-time.Hour).UTC(), Before: bw(100, 0)}
	_, err := st.CompareAndSwap(context.Background(), name, 0, &store.Record{
		Weights: bw(95, 5), Rollout: p, UpdatedAt: p.Start,
		History: []store.Change{{Version: 1, Time: p.Start, Source: SourceRollout, From: bw(100, 0), To: bw(95, 5), Reason: "rollout started: step 1/2"}},
	})
	require.NoError(t, err)
	return st
}

// A switch that finds a rollout completed by the clock (a restart after its
// end) has its timer record the completion. Until then reads do not say
// completed; an abort, or a health change, records the completion in its
// own commit (the abort answering that no rollout is in progress), so what
// it answered and what is stored agree.
func TestRolloutCompletedByClockUnrecorded(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		write  string
		reason string // of the history entry that records the completion
	}{
		{"timer", "rollout completed"},
		{"abort", "rollout completed"},
		{"health", "pool green unhealthy: down; rollout completed"},
	}
	for i, tc := range tests {
		name := "rollout-completed-by-clock"
		clk := clocktest.New(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
		st := storeWithOldRollout(t, name, clk)
		s := newRolloutSwitchClock(t, name, st, clk)
		require.Equal(t, 1, clk.Pending(), "Test %d: expected the timer armed to record the completion", i)

		v := s.View()
		require.NotNil(t, v.Rollout)
		assert.Equal(t, "running", v.Rollout.State, "Test %d: expected running until the completion is stored (version %d)", i, v.Version)
		assert.Equal(t, uint64(1), v.Version)

		switch tc.write {
		case "timer":
			clk.Advance(0)
		case "abort":
			_, err := s.AbortRollout(ctx, Update{Source: SourceAPI})
			assert.ErrorIs(t, err, ErrNoRollout, "Test %d", i)
		case "health":
			s.ProbedPools([]string{"green"})
			s.SetHealth(ctx, "green", false, "down")
		}
		r, err := st.Load(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, uint64(2), r.Version, "Test %d: expected the completion in one commit", i)
		assert.Equal(t, rollout.Completed, r.Rollout.Outcome, "Test %d", i)
		assert.Equal(t, bw(75, 25), r.Weights, "Test %d: expected the final weights stored", i)
		assert.Equal(t, tc.reason, r.History[len(r.History)-1].Reason, "Test %d", i)
		v = s.View()
		assert.Equal(t, rollout.Completed, v.Rollout.State, "Test %d", i)
		assert.Equal(t, uint64(2), v.Version, "Test %d", i)
		assert.Equal(t, bw(75, 25), v.Weights, "Test %d", i)
		clk.Advance(time.Minute)
		assert.Equal(t, uint64(2), s.View().Version, "Test %d: expected nothing written after", i)
	}
}
