// Package analysis judges a rollout's canary by its metrics: the checks a
// rollout body asks for, their templating and bounds, and the counting that
// decides when a step may advance, when the rollout aborts and when it
// pauses. It is pure: the measurements come from a Querier (package prom
// for Prometheus) and the state lives in the stored rollout record, so
// every replica and a restarted server read the same counts.
package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Limits on an analysis.
const (
	MaxChecks                = 20
	MaxQuery                 = 4096
	MinInterval              = time.Second
	MaxInterval              = 24 * time.Hour
	MaxMeasurements          = 100 // kept in the record, newest last
	MaxName                  = 64
	DefaultInconclusiveLimit = 3
	MaxLimit                 = 1000
)

// Results of a measurement.
const (
	Pass         = "pass"
	Fail         = "fail"
	Inconclusive = "inconclusive"
)

// Querier runs one instant query at a time and returns its single value.
// An error (unreachable, no series, several series) makes the measurement
// inconclusive.
type Querier interface {
	Query(ctx context.Context, query string, at time.Time) (float64, error)
	// Timeout bounds one measurement (all checks of one interval).
	Timeout() time.Duration
}

// Spec is the "analysis" member of a rollout body.
type Spec struct {
	Interval Duration `json:"interval"`
	Checks   []Check  `json:"checks"`
}

// Check is one metric check.
type Check struct {
	Name  string   `json:"name"`
	Query string   `json:"query"`
	Pool  string   `json:"pool"`
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
	// FailureLimit failed measurements are tolerated over the rollout; one
	// more aborts it.
	FailureLimit int `json:"failure_limit"`
	// InconclusiveLimit consecutive inconclusive measurements are
	// tolerated; one more pauses the rollout. A body that omits it gets
	// DefaultInconclusiveLimit.
	InconclusiveLimit int `json:"inconclusive_limit"`
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`must be a duration string such as "30s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	*d = Duration(v)
	return nil
}

// Validate checks a spec against the switch's pools; the error names the
// field at fault.
func (s *Spec) Validate(pools []string) error {
	if iv := s.Interval.D(); iv < MinInterval || iv > MaxInterval {
		return fmt.Errorf(`analysis: "interval" must be between %s and %s, got %s`, MinInterval, MaxInterval, iv)
	}
	if len(s.Checks) == 0 {
		return errors.New(`analysis: "checks" is empty`)
	}
	if len(s.Checks) > MaxChecks {
		return fmt.Errorf(`analysis: "checks" has %d checks, at most %d`, len(s.Checks), MaxChecks)
	}
	names := map[string]bool{}
	for i, c := range s.Checks {
		at := fmt.Sprintf("analysis: check %d", i)
		switch {
		case c.Name == "":
			return fmt.Errorf(`%s: missing "name"`, at)
		case len(c.Name) > MaxName || !validName(c.Name):
			return fmt.Errorf(`%s: "name" must be 1-%d letters, digits, '-', '_' or '.'`, at, MaxName)
		case names[c.Name]:
			return fmt.Errorf(`%s: "name" %q is used twice`, at, c.Name)
		}
		names[c.Name] = true
		at = fmt.Sprintf("analysis: check %q", c.Name)
		switch {
		case c.Query == "":
			return fmt.Errorf(`%s: missing "query"`, at)
		case len(c.Query) > MaxQuery:
			return fmt.Errorf(`%s: "query" is longer than %d bytes`, at, MaxQuery)
		case c.Pool == "":
			return fmt.Errorf(`%s: missing "pool"`, at)
		case !contains(pools, c.Pool):
			return fmt.Errorf(`%s: "pool" %q is not a pool of this switch (pools: %s)`, at, c.Pool, strings.Join(pools, ", "))
		case c.Min == nil && c.Max == nil:
			return fmt.Errorf(`%s: give "min", "max" or both`, at)
		case c.Min != nil && !finite(*c.Min):
			return fmt.Errorf(`%s: "min" must be a finite number`, at)
		case c.Max != nil && !finite(*c.Max):
			return fmt.Errorf(`%s: "max" must be a finite number`, at)
		case c.Min != nil && c.Max != nil && *c.Min > *c.Max:
			return fmt.Errorf(`%s: "min" %g is above "max" %g`, at, *c.Min, *c.Max)
		case c.FailureLimit < 0 || c.FailureLimit > MaxLimit:
			return fmt.Errorf(`%s: "failure_limit" must be between 0 and %d`, at, MaxLimit)
		case c.InconclusiveLimit < 0 || c.InconclusiveLimit > MaxLimit:
			return fmt.Errorf(`%s: "inconclusive_limit" must be between 0 and %d`, at, MaxLimit)
		}
		if _, err := Template(c.Query, Vars{}); err != nil {
			return fmt.Errorf(`%s: "query": %v`, at, err)
		}
	}
	return nil
}

func validName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return s != ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Vars are the values a query's placeholders take.
type Vars struct {
	Pool, Switch string
	Step         int // index of the step in effect, as the API's rollout.step
}

// Template substitutes {{pool}}, {{switch}} and {{step}} in q. Any other
// "{{" or "}}" is an error: nothing else is templated, and a typo must not
// reach Prometheus as a query that quietly matches nothing.
func Template(q string, v Vars) (string, error) {
	var b strings.Builder
	rest := q
	for {
		i := strings.Index(rest, "{{")
		j := strings.Index(rest, "}}")
		if i < 0 {
			if j >= 0 {
				return "", errors.New(`"}}" without "{{"`)
			}
			b.WriteString(rest)
			return b.String(), nil
		}
		if j >= 0 && j < i {
			return "", errors.New(`"}}" without "{{"`)
		}
		b.WriteString(rest[:i])
		rest = rest[i+2:]
		end := strings.Index(rest, "}}")
		if end < 0 {
			return "", errors.New(`"{{" without "}}"`)
		}
		switch name := strings.TrimSpace(rest[:end]); name {
		case "pool":
			b.WriteString(v.Pool)
		case "switch":
			b.WriteString(v.Switch)
		case "step":
			fmt.Fprint(&b, v.Step)
		default:
			return "", fmt.Errorf("unknown placeholder {{%s}} (only {{pool}}, {{switch}} and {{step}})", cut(name, 32))
		}
		rest = rest[end+2:]
	}
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Judge turns a query's outcome into a result and a detail that names the
// value and the bound.
func (c *Check) Judge(v float64, err error) (string, string) {
	switch {
	case err != nil:
		return Inconclusive, err.Error()
	case math.IsNaN(v) || math.IsInf(v, 0):
		return Inconclusive, fmt.Sprintf("value %v is not a number", v)
	case c.Min != nil && v < *c.Min:
		return Fail, fmt.Sprintf("%s = %g is below min %g", c.Name, v, *c.Min)
	case c.Max != nil && v > *c.Max:
		return Fail, fmt.Sprintf("%s = %g is above max %g", c.Name, v, *c.Max)
	}
	return Pass, fmt.Sprintf("%s = %g within bounds", c.Name, v)
}
