package rollout

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Three steps: 100/0 for 2 s, 50/50 for 4 s, then 0/100.
const threeSteps = `{"steps":[` +
	`{"weights":{"blue":100,"green":0},"hold":"2s"},` +
	`{"weights":{"blue":50,"green":50},"hold":"4s"},` +
	`{"weights":{"blue":0,"green":100},"hold":"0s"}]}`

// A kill -9 in the middle of step 0, then a restart after the step's
// boundary: the rollout resumes at the step the plan and the clock say,
// DNS serves that step's weights, the next step comes on time and the
// rollout completes, each step in the history.
func TestRolloutSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	s := startBG(t, dir, "store "+filepath.Join(dir, "state.db"), "weights blue 100 green 0")

	v := s.post(t, http.MethodPost, "/v1/switches/example.org/rollout", threeSteps)
	require.NotNil(t, v.Rollout)
	start := v.Rollout.StartedAt
	step1, step2 := start.Add(2*time.Second), start.Add(6*time.Second)
	require.Equal(t, 0, v.Rollout.Step)
	require.NotNil(t, v.Rollout.NextChangeAt)
	require.WithinDuration(t, step1, *v.Rollout.NextChangeAt, time.Millisecond)

	// Killed in the middle of step 0.
	time.Sleep(time.Until(start.Add(800 * time.Millisecond)))
	s.p.Kill()
	killedAt := time.Now()
	require.True(t, killedAt.Before(step1), "killed at %s, after step 0 ended at %s", killedAt, step1)

	// Down across the boundary; up again in step 1.
	time.Sleep(time.Until(step1.Add(300 * time.Millisecond)))
	s.p.Restart()
	s.wait()
	v = s.state(t)
	now := time.Now()
	require.True(t, now.Before(step2), "the restart took until %s, past step 1's end %s: the test is too slow here", now, step2)
	require.NotNil(t, v.Rollout, "the rollout survives kill -9")
	assert.Equal(t, "running", v.Rollout.State)
	assert.Equal(t, 1, v.Rollout.Step, "the step the plan and the clock give")
	assert.True(t, v.Rollout.StartedAt.Equal(start), "started_at kept: %s, was %s", v.Rollout.StartedAt, start)
	if assert.NotNil(t, v.Rollout.NextChangeAt) {
		assert.WithinDuration(t, step2, *v.Rollout.NextChangeAt, time.Millisecond, "the next change is where the plan puts it")
	}
	assert.Equal(t, map[string]uint64{"blue": 50, "green": 50}, v.Weights)

	c := s.requireShares(t, 50, 50) // DNS serves step 1's 50/50 after the restart
	t.Logf("after the restart, in step 1: %v", c)
	require.True(t, time.Now().Before(step2), "sampling ran past step 1's end")

	// Step 2 on time: green takes everything at step2, not before.
	var changed time.Time
	require.Eventually(t, func() bool {
		v = s.state(t)
		if v.Weights["green"] == 100 {
			changed = time.Now()
			return true
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "step 2 never came")
	t.Logf("step 2 seen %s after its planned start", changed.Sub(step2))
	assert.False(t, changed.Before(step2), "step 2 before its time (%s < %s)", changed, step2)
	assert.WithinDuration(t, step2, changed, time.Second, "step 2 on time")
	require.Eventually(t, func() bool {
		v = s.state(t)
		return v.Rollout != nil && v.Rollout.State == "completed"
	}, 5*time.Second, 20*time.Millisecond, "the rollout did not complete")
	assert.Equal(t, map[string]int{"green": samples}, s.requireShares(t, 0, 100), "after the rollout everything on green")

	// The history has each step, in order, from the rollout.
	var reasons []string
	var tos []map[string]uint64
	for _, h := range s.history(t) {
		if h.Source == "rollout" {
			reasons = append([]string{h.Reason}, reasons...)
			tos = append([]map[string]uint64{h.To}, tos...)
		}
	}
	assert.Equal(t, []string{"rollout started: step 1/3", "rollout step 2/3", "rollout completed"}, reasons)
	assert.Equal(t, []map[string]uint64{{"blue": 100, "green": 0}, {"blue": 50, "green": 50}, {"blue": 0, "green": 100}}, tos)
}

// A kill -9 while paused: after a restart (long after the paused step
// would have ended) the rollout is still paused at the same step, and DNS
// serves that step; resuming continues it.
func TestPausedRolloutSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	s := startBG(t, dir, "store "+filepath.Join(dir, "state.db"), "weights blue 100 green 0")

	v := s.post(t, http.MethodPost, "/v1/switches/example.org/rollout", threeSteps)
	start := v.Rollout.StartedAt.UTC()
	step2 := start.Add(6 * time.Second) // without the pause
	// Pause in step 1 (50/50), 1 s into it.
	time.Sleep(time.Until(start.Add(3 * time.Second)))
	v = s.post(t, http.MethodPost, "/v1/switches/example.org/rollout/pause", "")
	require.Equal(t, "paused", v.Rollout.State)
	require.Equal(t, 1, v.Rollout.Step)
	before := s.requireShares(t, 50, 50)

	s.p.Kill()
	// Down past where step 2 would have begun without the pause.
	time.Sleep(time.Until(start.Add(6*time.Second + 500*time.Millisecond)))
	s.p.Restart()
	s.wait()
	v = s.state(t)
	require.NotNil(t, v.Rollout)
	assert.Equal(t, "paused", v.Rollout.State, "still paused after kill -9")
	assert.True(t, v.Rollout.Paused)
	assert.Equal(t, 1, v.Rollout.Step, "at the same step")
	assert.Nil(t, v.Rollout.NextChangeAt, "nothing scheduled while paused")
	assert.Equal(t, map[string]uint64{"blue": 50, "green": 50}, v.Weights)
	assert.Equal(t, before, s.requireShares(t, 50, 50), "DNS serves the paused step")

	// Still paused a moment later (no timer moved it on).
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, "paused", s.state(t).Rollout.State)

	// Resume: what was left of step 1 when it was paused (about 3 s) runs
	// from the resume, whose time is the change's updated_at.
	require.NotNil(t, v.Rollout.PausedAt)
	pausedAt := *v.Rollout.PausedAt
	left := step2.Sub(pausedAt)
	v = s.post(t, http.MethodPost, "/v1/switches/example.org/rollout/resume", "")
	resumed := v.UpdatedAt
	require.Equal(t, "running", v.Rollout.State)
	require.Equal(t, 1, v.Rollout.Step)
	require.NotNil(t, v.Rollout.NextChangeAt)
	assert.Equal(t, resumed.Add(left), v.Rollout.NextChangeAt.UTC(),
		"the %s left of step 1 at the pause run after the resume", left)
	assert.Equal(t, start.Add(resumed.Sub(pausedAt)), v.Rollout.StartedAt.UTC(), "the plan moved by the time paused")
	require.Eventually(t, func() bool {
		v = s.state(t)
		return v.Rollout != nil && v.Rollout.State == "completed"
	}, 10*time.Second, 50*time.Millisecond, "the resumed rollout did not complete")
	assert.Equal(t, map[string]uint64{"blue": 0, "green": 100}, v.Weights)
}
