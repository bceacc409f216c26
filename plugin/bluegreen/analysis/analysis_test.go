package analysis

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func f(v float64) *float64 { return &v }

func TestTemplate(t *testing.T) {
	vars := Vars{Pool: "green", Switch: "example.org", Step: 2}
	tests := []struct {
		in, want, err string
	}{
		{in: `up`, want: `up`},
		{in: `rate(x{pool="{{pool}}"}[1m])`, want: `rate(x{pool="green"}[1m])`},
		{in: `x{switch="{{switch}}",step="{{ step }}"}`, want: `x{switch="example.org",step="2"}`},
		{in: `{{pool}}{{pool}}`, want: `greengreen`},
		{in: `x{a="{{pod}}"}`, err: "unknown placeholder {{pod}}"},
		{in: `x{{pool}`, err: `"{{" without "}}"`},
		{in: `x}}`, err: `"}}" without "{{"`},
		{in: `}}{{pool}}`, err: `"}}" without "{{"`},
		{in: `{{}}`, err: "unknown placeholder {{}}"},
	}
	for i, tc := range tests {
		got, err := Template(tc.in, vars)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Test %d: %q: expected error containing %q, got %q, %v", i, tc.in, tc.err, got, err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("Test %d: %q: expected %q, got %q, %v", i, tc.in, tc.want, got, err)
		}
	}
}

func TestJudge(t *testing.T) {
	tests := []struct {
		min, max *float64
		v        float64
		err      error
		want     string
		detail   string
	}{
		{max: f(0.05), v: 0.05, want: Pass},
		{max: f(0.05), v: 0.0500001, want: Fail, detail: "e = 0.0500001 is above max 0.05"},
		{min: f(10), v: 9, want: Fail, detail: "e = 9 is below min 10"},
		{min: f(10), max: f(20), v: 10, want: Pass},
		{min: f(10), max: f(20), v: 20.5, want: Fail},
		{max: f(1), v: math.NaN(), want: Inconclusive, detail: "NaN"},
		{max: f(1), v: math.Inf(1), want: Inconclusive, detail: "+Inf"},
		{max: f(1), err: errors.New("no series"), want: Inconclusive, detail: "no series"},
	}
	for i, tc := range tests {
		c := Check{Name: "e", Min: tc.min, Max: tc.max}
		got, detail := c.Judge(tc.v, tc.err)
		if got != tc.want || !strings.Contains(detail, tc.detail) {
			t.Errorf("Test %d: expected %s (%q), got %s (%q)", i, tc.want, tc.detail, got, detail)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := func() Spec {
		return Spec{Interval: Duration(30 * time.Second), Checks: []Check{{Name: "err", Query: `x{p="{{pool}}"}`, Pool: "green", Max: f(1)}}}
	}
	tests := []struct {
		change func(*Spec)
		err    string // "" for valid
	}{
		{change: func(*Spec) {}},
		{change: func(s *Spec) { s.Interval = Duration(999 * time.Millisecond) }, err: `"interval" must be between 1s`},
		{change: func(s *Spec) { s.Checks = nil }, err: `"checks" is empty`},
		{change: func(s *Spec) {
			for len(s.Checks) <= MaxChecks {
				c := s.Checks[0]
				c.Name = strings.Repeat("x", len(s.Checks))
				s.Checks = append(s.Checks, c)
			}
		}, err: `"checks" has 21 checks, at most 20`},
		{change: func(s *Spec) { s.Checks[0].Name = "" }, err: `check 0: missing "name"`},
		{change: func(s *Spec) { s.Checks[0].Name = "a b" }, err: `check 0: "name" must be`},
		{change: func(s *Spec) { s.Checks = append(s.Checks, s.Checks[0]) }, err: `check 1: "name" "err" is used twice`},
		{change: func(s *Spec) { s.Checks[0].Query = "" }, err: `"err": missing "query"`},
		{change: func(s *Spec) { s.Checks[0].Query = strings.Repeat("x", MaxQuery+1) }, err: `"query" is longer than 4096 bytes`},
		{change: func(s *Spec) { s.Checks[0].Query = "{{foo}}" }, err: `"query": unknown placeholder {{foo}}`},
		{change: func(s *Spec) { s.Checks[0].Pool = "" }, err: `missing "pool"`},
		{change: func(s *Spec) { s.Checks[0].Pool = "red" }, err: `"pool" "red" is not a pool of this switch (pools: blue, green)`},
		{change: func(s *Spec) { s.Checks[0].Max = nil }, err: `give "min", "max" or both`},
		{change: func(s *Spec) { s.Checks[0].Min = f(2) }, err: `"min" 2 is above "max" 1`},
		{change: func(s *Spec) { s.Checks[0].Max = f(math.Inf(1)) }, err: `"max" must be a finite number`},
		{change: func(s *Spec) { s.Checks[0].FailureLimit = -1 }, err: `"failure_limit" must be between 0 and 1000`},
		{change: func(s *Spec) { s.Checks[0].InconclusiveLimit = 1001 }, err: `"inconclusive_limit" must be between 0 and 1000`},
	}
	for i, tc := range tests {
		s := ok()
		tc.change(&s)
		err := s.Validate([]string{"blue", "green"})
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Test %d: expected valid, got %v", i, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Test %d: expected an error containing %q, got %v", i, tc.err, err)
		}
	}
}

// Counting: failures add up over the run and abort past failure_limit;
// inconclusives count in a row and pause past inconclusive_limit; a step
// passes once every check has passed in it; an interval counts once.
func TestRecord(t *testing.T) {
	r := NewRun(Spec{Interval: Duration(time.Second), Checks: []Check{
		{Name: "a", Max: f(1), FailureLimit: 1, InconclusiveLimit: 1},
		{Name: "b", Max: f(1), FailureLimit: 0, InconclusiveLimit: 0},
	}})
	eff := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.Enter(0, eff)
	m := func(a, b string) []Measurement { return []Measurement{{Result: a}, {Result: b}} }
	steps := []struct {
		index      int64
		a, b       string
		counted    bool
		abort      string
		pause      string
		stepPassed bool
	}{
		{index: 0, a: Pass, b: Fail, counted: true, abort: "check b failed 1 times (failure_limit 0)"},
		{index: 0, a: Pass, b: Pass, counted: false},
		{index: 1, a: Fail, b: Pass, counted: true, stepPassed: true},
		{index: 2, a: Fail, b: Pass, counted: true, abort: "check a failed 2 times (failure_limit 1)"},
		{index: 3, a: Inconclusive, b: Pass, counted: true, stepPassed: true},
		{index: 4, a: Inconclusive, b: Pass, counted: true, pause: "check a inconclusive 2 times in a row (inconclusive_limit 1)"},
		{index: 5, a: Pass, b: Inconclusive, counted: true, pause: "check b inconclusive 1 times in a row (inconclusive_limit 0)"},
	}
	for i, tc := range steps {
		out, counted := r.Record(tc.index, m(tc.a, tc.b))
		if counted != tc.counted || !strings.Contains(out.Abort, tc.abort) || (tc.abort == "") != (out.Abort == "") ||
			!strings.Contains(out.Pause, tc.pause) || (tc.pause == "") != (out.Pause == "") || out.StepPassed != tc.stepPassed {
			t.Errorf("Test %d: expected counted %v abort %q pause %q passed %v, got %v %+v", i, tc.counted, tc.abort, tc.pause, tc.stepPassed, counted, out)
		}
	}
	if a := r.Checks[0]; a.Passes != 2 || a.Failures != 2 || a.Inconclusives != 2 || a.Consecutive != 0 {
		t.Errorf("check a: expected 2 passes, 2 failures, 2 inconclusives, 0 in a row, got %+v", a)
	}
	r.Resumed()
	if r.Checks[1].Consecutive != 0 {
		t.Errorf("expected resume to clear the inconclusive count, got %d", r.Checks[1].Consecutive)
	}
	r.Enter(1, eff.Add(time.Minute))
	if r.Index != -1 || r.Checks[0].StepPassed || !r.EffectiveAt.Equal(eff.Add(time.Minute)) {
		t.Errorf("expected a new step to reset the per-step fields, got %+v", r)
	}
	if k, at := r.Due(eff.Add(time.Minute + 2500*time.Millisecond)); k != 2 || !at.Equal(eff.Add(time.Minute+2*time.Second)) {
		t.Errorf("expected interval 2 at +2s after missing two, got %d at %s", k, at)
	}
	for i := 0; i < MaxMeasurements; i++ {
		r.Record(int64(i), m(Pass, Pass))
	}
	if len(r.Measurements) != MaxMeasurements || r.Measurements[len(r.Measurements)-1].Index != MaxMeasurements-1 {
		t.Errorf("expected the last %d measurements kept, got %d", MaxMeasurements, len(r.Measurements))
	}
}
