package rollout

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func w(blue, green uint64) map[string]uint64 { return map[string]uint64{"blue": blue, "green": green} }

func plan() *Plan {
	return &Plan{
		Start: t0,
		Steps: []Step{
			{Weights: w(95, 5), Hold: Duration(10 * time.Minute)},
			{Weights: w(75, 25), Hold: Duration(10 * time.Minute)},
			{Weights: w(50, 50), Hold: Duration(5 * time.Minute)},
			{Weights: w(0, 100)},
		},
		Before: w(100, 0),
	}
}

func TestAt(t *testing.T) {
	p := plan()
	tests := []struct {
		at   time.Duration
		step int
		next time.Duration // 0: none
		done bool
	}{
		{0, 0, 10 * time.Minute, false},
		{time.Second, 0, 10 * time.Minute, false},
		{10*time.Minute - time.Nanosecond, 0, 10 * time.Minute, false},
		{10 * time.Minute, 1, 20 * time.Minute, false},
		{19 * time.Minute, 1, 20 * time.Minute, false},
		{20 * time.Minute, 2, 25 * time.Minute, false},
		{25*time.Minute - time.Nanosecond, 2, 25 * time.Minute, false},
		{25 * time.Minute, 3, 0, true},
		{48 * time.Hour, 3, 0, true},
	}
	for i, tc := range tests {
		st := p.At(t0.Add(tc.at))
		if st.Step != tc.step {
			t.Errorf("Test %d: at %s expected step %d, got %d", i, tc.at, tc.step, st.Step)
		}
		var want time.Time
		if tc.next != 0 {
			want = t0.Add(tc.next)
		}
		if !st.Next.Equal(want) {
			t.Errorf("Test %d: at %s expected next %v, got %v", i, tc.at, want, st.Next)
		}
		if st.Done != tc.done {
			t.Errorf("Test %d: at %s expected done %v, got %v", i, tc.at, tc.done, st.Done)
		}
		assert.Equal(t, p.Steps[tc.step].Weights, st.Weights, "Test %d", i)
	}
}

func TestStepStartAndEnd(t *testing.T) {
	p := plan()
	assert.Equal(t, t0, p.StepStart(0))
	assert.Equal(t, t0.Add(10*time.Minute), p.StepStart(1))
	assert.Equal(t, t0.Add(25*time.Minute), p.StepStart(3))
	assert.Equal(t, t0.Add(25*time.Minute), p.End())
}

// A restart at each step boundary derives the same step from the stored
// plan: the plan round-trips through JSON and At gives the same answer.
func TestRestartAtEveryBoundary(t *testing.T) {
	p := plan()
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var q Plan
	require.NoError(t, json.Unmarshal(b, &q))
	for i := range p.Steps {
		at := p.StepStart(i)
		for _, d := range []time.Duration{-time.Millisecond, 0, time.Millisecond} {
			a, b := p.At(at.Add(d)), q.At(at.Add(d))
			if a.Step != b.Step || !a.Next.Equal(b.Next) || a.Done != b.Done {
				t.Errorf("boundary %d%+v: expected %+v after restart, got %+v", i, d, a, b)
			}
		}
		if got := q.At(at).Step; got != i {
			t.Errorf("boundary %d: expected step %d at its start, got %d", i, i, got)
		}
	}
}

func TestPauseResumeShiftsTimes(t *testing.T) {
	p := plan()
	require.NoError(t, p.Pause(t0.Add(5*time.Minute)))
	require.Error(t, p.Pause(t0.Add(6*time.Minute)), "pausing twice must fail")

	// Frozen: step 0, no next change, even long after.
	st := p.At(t0.Add(3 * time.Hour))
	assert.Equal(t, 0, st.Step)
	assert.True(t, st.Next.IsZero(), "a paused plan has no next change, got %v", st.Next)
	assert.False(t, st.Done)

	// Resume after 1h: step 1 now begins 1h later than planned.
	require.NoError(t, p.Resume(t0.Add(65*time.Minute)))
	require.Error(t, p.Resume(t0.Add(66*time.Minute)), "resuming a running plan must fail")
	st = p.At(t0.Add(65 * time.Minute))
	assert.Equal(t, 0, st.Step)
	assert.Equal(t, t0.Add(70*time.Minute), st.Next, "5 minutes of step 0 were left when paused")
	assert.Equal(t, 1, p.At(t0.Add(70*time.Minute)).Step)
	assert.Equal(t, t0.Add(85*time.Minute), p.End())
}

func TestFinish(t *testing.T) {
	p := plan()
	p.Finish(Aborted, "green unhealthy", t0.Add(12*time.Minute))
	st := p.At(t0.Add(time.Hour))
	assert.Equal(t, 1, st.Step, "an aborted plan stays at the step it ended in")
	assert.True(t, st.Done)
	assert.True(t, st.Next.IsZero())
	assert.False(t, p.Active(t0.Add(13*time.Minute)))
	assert.True(t, plan().Active(t0.Add(13*time.Minute)))
	assert.False(t, plan().Active(t0.Add(26*time.Minute)))
}

func TestValidate(t *testing.T) {
	ok := func(map[string]uint64) error { return nil }
	tests := []struct {
		p   Plan
		err bool
	}{
		{Plan{}, true},
		{Plan{Steps: []Step{{Weights: w(1, 0)}}}, false},
		{Plan{Steps: []Step{{Weights: w(1, 0), Hold: Duration(time.Millisecond)}, {Weights: w(0, 1)}}}, true},
		{Plan{Steps: []Step{{Weights: w(1, 0), Hold: Duration(time.Second)}, {Weights: w(0, 1)}}}, false},
		{Plan{Steps: make([]Step, MaxSteps+1)}, true},
	}
	for i, tc := range tests {
		err := tc.p.Validate(ok)
		if (err != nil) != tc.err {
			t.Errorf("Test %d: expected error %v, got %v", i, tc.err, err)
		}
	}
	bad := Plan{Steps: []Step{{Weights: w(0, 0)}}}
	err := bad.Validate(func(map[string]uint64) error { return assert.AnError })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "step 0")
}

func TestDurationJSON(t *testing.T) {
	var s Step
	require.NoError(t, json.Unmarshal([]byte(`{"weights":{"blue":1},"hold":"90s"}`), &s))
	assert.Equal(t, 90*time.Second, s.Hold.D())
	b, err := json.Marshal(s)
	require.NoError(t, err)
	assert.JSONEq(t, `{"weights":{"blue":1},"hold":"1m30s"}`, string(b))
	for _, in := range []string{`{"hold":10}`, `{"hold":"ten"}`, `{"hold":"-1s"}`} {
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("expected an error for %s", in)
		}
	}
}

// With analysis, a step whose hold has passed waits until its analysis
// passed (Open), with nothing scheduled; a last step without hold is not
// gated.
func TestAnalysisGate(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &Plan{Start: start, Steps: []Step{
		{Weights: map[string]uint64{"a": 1}, Hold: Duration(time.Minute)},
		{Weights: map[string]uint64{"b": 1}},
	}, Analysis: analysis.NewRun(analysis.Spec{Interval: analysis.Duration(time.Second)})}
	if st := p.At(start.Add(30 * time.Second)); st.Step != 0 || st.Waiting || !st.Next.Equal(start.Add(time.Minute)) {
		t.Errorf("during the hold: expected step 0 with the hold's end next, got %+v", st)
	}
	if st := p.At(start.Add(2 * time.Minute)); st.Step != 0 || !st.Waiting || !st.Next.IsZero() || st.Done {
		t.Errorf("after the hold, not passed: expected step 0 waiting, got %+v", st)
	}
	p.Analysis.Open = 1
	if st := p.At(start.Add(2 * time.Minute)); st.Step != 1 || st.Waiting || !st.Done {
		t.Errorf("passed: expected the last step, done, got %+v", st)
	}
	if p.Analysed(1) || !p.Analysed(0) {
		t.Errorf("expected step 0 analysed and the last step without hold not")
	}
}
