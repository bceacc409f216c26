package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/internal/clock/clocktest"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

// constQuerier answers every query with one value.
type constQuerier float64

func (c constQuerier) Query(context.Context, string, time.Time) (float64, error) {
	return float64(c), nil
}
func (constQuerier) Timeout() time.Duration { return time.Second }

// newAnalysedServer serves switch "example.org" (blue, green) with analysis
// on a fake clock.
func newAnalysedServer(t testing.TB) (*Server, *state.Switch, *clocktest.Clock) {
	t.Helper()
	const name = "example.org"
	state.Forget(name)
	clk := clocktest.New(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	sw, err := state.Configure(context.Background(), name, state.Config{
		Pools: []string{"blue", "green"}, Seed: []uint64{1, 0},
		Info:     state.Info{TTLMax: 30, TTLMin: 1, Sticky: "subnet"},
		Analysis: constQuerier(0.01), Clock: clk,
	})
	require.NoError(t, err)
	t.Cleanup(func() { state.Forget(name) })
	s := New(testAddr, testToken)
	s.Add(sw)
	return s, sw, clk
}

const goodSteps = `"steps":[{"weights":{"blue":90,"green":10},"hold":"10s"},{"weights":{"blue":0,"green":100}}]`

func withAnalysis(a string) string { return `{` + goodSteps + `,"analysis":` + a + `}` }

const goodCheck = `{"name":"errors","query":"rate(e{pool=\"{{pool}}\"}[1m])","pool":"green","max":0.05}`

// Every malformed analysis field is a 400 that names it, and changes
// nothing.
func TestAnalysisBodyErrors(t *testing.T) {
	s, sw, _ := newAnalysedServer(t)
	check := func(fields string) string { return withAnalysis(`{"interval":"30s","checks":[{` + fields + `}]}`) }
	tests := []struct{ body, want string }{
		{withAnalysis(`[]`), `"analysis": want a JSON object`},
		{withAnalysis(`{"interval":"30s","checks":[],"extra":1}`), `"analysis": unknown field "extra"`},
		{withAnalysis(`{"checks":[` + goodCheck + `]}`), `analysis: missing "interval"`},
		{withAnalysis(`{"interval":30,"checks":[` + goodCheck + `]}`), `analysis: "interval" must be a duration string`},
		{withAnalysis(`{"interval":"500ms","checks":[` + goodCheck + `]}`), `"interval" must be between 1s`},
		{withAnalysis(`{"interval":"30s"}`), `analysis: missing "checks"`},
		{withAnalysis(`{"interval":"30s","checks":{}}`), `"checks" must be an array`},
		{withAnalysis(`{"interval":"30s","checks":[]}`), `"checks" is empty`},
		{withAnalysis(`{"interval":"30s","checks":[` + strings.Repeat(goodCheck+",", 20) + goodCheck + `]}`), `"checks" has 21 checks, at most 20`},
		{check(`"name":"e","query":"x","pool":"green","max":1,"bogus":1`), `check 0: unknown field "bogus"`},
		{check(`"query":"x","pool":"green","max":1`), `check 0: missing "name"`},
		{check(`"name":1,"query":"x","pool":"green","max":1`), `check 0: "name" must be a string`},
		{check(`"name":"e","pool":"green","max":1`), `check 0: missing "query"`},
		{check(`"name":"e","query":"` + strings.Repeat("x", 4097) + `","pool":"green","max":1`), `"query" is longer than 4096 bytes`},
		{check(`"name":"e","query":"x{a=\"{{pod}}\"}","pool":"green","max":1`), `check "e": "query": unknown placeholder {{pod}}`},
		{check(`"name":"e","query":"x","max":1`), `check 0: missing "pool"`},
		{check(`"name":"e","query":"x","pool":"red","max":1`), `check "e": "pool" "red" is not a pool of this switch`},
		{check(`"name":"e","query":"x","pool":"green"`), `check "e": give "min", "max" or both`},
		{check(`"name":"e","query":"x","pool":"green","max":"1"`), `check 0: "max" must be a number`},
		{check(`"name":"e","query":"x","pool":"green","min":2,"max":1`), `"min" 2 is above "max" 1`},
		{check(`"name":"e","query":"x","pool":"green","max":1,"failure_limit":-1`), `"failure_limit" must be an integer from 0 to 1000`},
		{check(`"name":"e","query":"x","pool":"green","max":1,"failure_limit":1.5`), `"failure_limit" must be an integer`},
		{check(`"name":"e","query":"x","pool":"green","max":1,"inconclusive_limit":1001`), `"inconclusive_limit" must be an integer from 0 to 1000`},
	}
	for i, tc := range tests {
		w := req{method: http.MethodPost, path: "/v1/switches/example.org/rollout", body: tc.body}.do(s)
		if w.Code != http.StatusBadRequest {
			t.Errorf("Test %d: expected 400, got %d: %s", i, w.Code, w.Body.String())
			continue
		}
		if msg := errorOf(t, w); !strings.Contains(msg, tc.want) {
			t.Errorf("Test %d: expected an error containing %q, got %q", i, tc.want, msg)
		}
	}
	assert.Nil(t, sw.View().Rollout, "nothing started")
	assert.Equal(t, uint64(0), sw.View().Version)
}

func TestAnalysisNotConfigured(t *testing.T) {
	s, sw := newServer(t)
	w := req{method: http.MethodPost, path: "/v1/switches/example.org/rollout", body: withAnalysis(`{"interval":"30s","checks":[` + goodCheck + `]}`)}.do(s)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	assert.Contains(t, errorOf(t, w), "no analysis is configured for this switch")
	assert.Nil(t, sw.View().Rollout)
}

// The switch's rollout shows each check's counts; .../rollout/analysis
// lists the measurements, newest first.
func TestAnalysisEndpoint(t *testing.T) {
	s, _, clk := newAnalysedServer(t)
	path := "/v1/switches/example.org/rollout/analysis"
	w := req{method: http.MethodGet, path: path}.do(s)
	require.Equal(t, http.StatusNotFound, w.Code)
	assert.Contains(t, errorOf(t, w), "has no analysis")
	w = req{method: http.MethodPost, path: path}.do(s)
	require.Equal(t, http.StatusMethodNotAllowed, w.Code, "a read only")

	body := `{"steps":[{"weights":{"blue":90,"green":10},"hold":"1m"},{"weights":{"blue":0,"green":100}}],"analysis":{"interval":"5s","checks":[` + goodCheck + `]}}`
	w = req{method: http.MethodPost, path: "/v1/switches/example.org/rollout", body: body}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	v := decode[state.View](t, w)
	require.NotNil(t, v.Rollout.Analysis)
	assert.Equal(t, 3, v.Rollout.Analysis.Checks[0].InconclusiveLimit, "the default")
	assert.Nil(t, v.Rollout.Analysis.Checks[0].LastValue)

	clk.Advance(35 * time.Second) // effective at +30 s; measured at 30 and 35
	w = req{method: http.MethodGet, path: path}.do(s)
	require.Equal(t, http.StatusOK, w.Code)
	var list struct {
		Measurements []map[string]any `json:"measurements"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	require.Len(t, list.Measurements, 2)
	m := list.Measurements[0]
	assert.Equal(t, "errors", m["check"])
	assert.Equal(t, float64(1), m["index"], "newest first")
	assert.Equal(t, 0.01, m["value"])
	assert.Equal(t, "pass", m["result"])
	assert.Equal(t, `rate(e{pool="green"}[1m])`, m["query"])

	w = req{method: http.MethodGet, path: "/v1/switches/example.org"}.do(s)
	v = decode[state.View](t, w)
	c := v.Rollout.Analysis.Checks[0]
	assert.Equal(t, 2, c.Passes)
	assert.Equal(t, 0.01, *c.LastValue)
	assert.Equal(t, "pass", c.LastResult)
	assert.True(t, c.StepPassed)
	assert.Equal(t, 0, v.Rollout.Step, "passed, but the hold has not elapsed")
}

// FuzzAnalysisBody feeds arbitrary analysis members to POST .../rollout on
// a switch with analysis: never a panic, never a 5xx, and a 4xx changes
// nothing.
func FuzzAnalysisBody(f *testing.F) {
	for _, a := range []string{
		`{"interval":"30s","checks":[` + goodCheck + `]}`,
		`{"interval":"1s","checks":[{"name":"p99","query":"histogram_quantile(0.99, x{switch=\"{{switch}}\",step=\"{{step}}\"})","pool":"green","min":0,"max":0.3,"failure_limit":1,"inconclusive_limit":0}]}`,
		`{"interval":"0s","checks":[]}`, `{"interval":"30s","checks":[{"name":"a","query":"{{","pool":"blue","min":1e308,"max":-1e308}]}`,
		`{"interval":"30s","checks":[{"name":"a","query":"}}","pool":"blue","max":1,"failure_limit":99999999999999999999}]}`,
		`null`, `[]`, `{}`, `{"interval":null}`, `"x"`,
	} {
		f.Add(a)
	}
	s, sw, _ := newAnalysedServer(f)
	f.Fuzz(func(t *testing.T, a string) {
		if len(a) > 8192 {
			t.Skip()
		}
		before := sw.View()
		w := req{method: http.MethodPost, path: "/v1/switches/example.org/rollout", body: withAnalysis(a)}.do(s)
		after := sw.View()
		switch {
		case w.Code == http.StatusOK:
			var x any
			if json.Unmarshal([]byte(a), &x) == nil && x == nil {
				// "analysis": null is no analysis.
			} else if after.Rollout == nil || after.Rollout.Analysis == nil {
				t.Fatalf("200 without an analysis: %s", w.Body.String())
			}
			if _, err := sw.AbortRollout(context.Background(), state.Update{Source: state.SourceAPI}); err != nil && !errors.Is(err, state.ErrNoRollout) {
				t.Fatalf("aborting the fuzzed rollout: %v", err)
			}
		case w.Code == http.StatusBadRequest:
			var e errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("400 with a body that is no error: %s", w.Body.String())
			}
			if after.Version != before.Version || !reflect.DeepEqual(after.Weights, before.Weights) {
				t.Fatalf("400 changed the switch: version %d -> %d", before.Version, after.Version)
			}
		default:
			t.Fatalf("expected 200 or 400, got %d: %s", w.Code, w.Body.String())
		}
	})
}
