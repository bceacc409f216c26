package provider

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rolloutTypes are the value types of bluegreen_rollout and its nested
// objects.
type rolloutTypes struct {
	rollout, step, analysis, check tftypes.Object
}

func (s *server) rolloutTypes() rolloutTypes {
	rt := s.schema.ResourceSchemas["bluegreen_rollout"].ValueType().(tftypes.Object)
	at := rt.AttributeTypes["analysis"].(tftypes.Object)
	return rolloutTypes{
		rollout:  rt,
		step:     rt.AttributeTypes["steps"].(tftypes.List).ElementType.(tftypes.Object),
		analysis: at,
		check:    at.AttributeTypes["checks"].(tftypes.List).ElementType.(tftypes.Object),
	}
}

func num(v float64) tftypes.Value { return tftypes.NewValue(tftypes.Number, v) }

// analysisVal builds an analysis with interval and checks (each a map of
// the check's attributes; those not given are null).
func (rt rolloutTypes) analysisVal(interval string, checks ...map[string]tftypes.Value) tftypes.Value {
	cs := []tftypes.Value{}
	for _, c := range checks {
		cs = append(cs, object(rt.check, c))
	}
	return object(rt.analysis, map[string]tftypes.Value{
		"interval": str(interval),
		"checks":   tftypes.NewValue(tftypes.List{ElementType: rt.check}, cs),
	})
}

// config is a rollout on example.org to green in two steps, with the
// analysis an (nil for none) and wait.
func (rt rolloutTypes) config(an *tftypes.Value, wait bool) tftypes.Value {
	steps := tftypes.NewValue(tftypes.List{ElementType: rt.step}, []tftypes.Value{
		object(rt.step, map[string]tftypes.Value{"weights": weightsVal(map[string]int64{"blue": 90, "green": 10}), "hold": str("1m")}),
		object(rt.step, map[string]tftypes.Value{"weights": weightsVal(map[string]int64{"blue": 0, "green": 100})}),
	})
	vals := map[string]tftypes.Value{"switch": str("example.org"), "steps": steps, "wait": tftypes.NewValue(tftypes.Bool, wait)}
	if an != nil {
		vals["analysis"] = *an
	}
	return object(rt.rollout, vals)
}

// validateRollout is Terraform's validation of a rollout's configuration.
func (s *server) validateRollout(cfg tftypes.Value) []*tfprotov6.Diagnostic {
	s.t.Helper()
	resp, err := s.p.ValidateResourceConfig(context.Background(), &tfprotov6.ValidateResourceConfigRequest{
		TypeName: "bluegreen_rollout", Config: dv(s.t, cfg.Type(), cfg),
	})
	require.NoError(s.t, err)
	return resp.Diagnostics
}

// planApplyRollout validates, plans and applies creating the rollout cfg;
// it stops at the first step with diagnostics and returns them.
func (s *server) planApplyRollout(cfg tftypes.Value) (*tfprotov6.ApplyResourceChangeResponse, []*tfprotov6.Diagnostic) {
	s.t.Helper()
	if ds := s.validateRollout(cfg); len(ds) > 0 {
		return nil, ds
	}
	typ := cfg.Type()
	c := dv(s.t, typ, cfg)
	prior := dv(s.t, typ, tftypes.NewValue(typ, nil))
	plan, err := s.p.PlanResourceChange(context.Background(), &tfprotov6.PlanResourceChangeRequest{
		TypeName: "bluegreen_rollout", PriorState: prior, ProposedNewState: c, Config: c,
	})
	require.NoError(s.t, err)
	if len(plan.Diagnostics) > 0 {
		return nil, plan.Diagnostics
	}
	resp, err := s.p.ApplyResourceChange(context.Background(), &tfprotov6.ApplyResourceChangeRequest{
		TypeName: "bluegreen_rollout", PriorState: prior, PlannedState: plan.PlannedState, Config: c, PlannedPrivate: plan.PlannedPrivate,
	})
	require.NoError(s.t, err)
	return resp, resp.Diagnostics
}

// stateAttrs returns the attributes of a rollout's state.
func stateAttrs(t *testing.T, typ tftypes.Type, st *tfprotov6.DynamicValue) map[string]tftypes.Value {
	t.Helper()
	v, err := st.Unmarshal(typ)
	require.NoError(t, err)
	var attrs map[string]tftypes.Value
	require.NoError(t, v.As(&attrs))
	return attrs
}

func strAttr(t *testing.T, v tftypes.Value) string {
	t.Helper()
	var s string
	require.NoError(t, v.As(&s))
	return s
}

func errorRate(rt rolloutTypes) tftypes.Value {
	return rt.analysisVal("30s",
		map[string]tftypes.Value{
			"name": str("error-rate"), "pool": str("green"), "max": num(0.05),
			"failure_limit": num(1), "inconclusive_limit": num(3),
			"query": str(`sum(rate(http_errors_total{pool="{{pool}}"}[1m])) / sum(rate(http_requests_total{pool="{{pool}}"}[1m]))`),
		},
		map[string]tftypes.Value{"name": str("rps"), "pool": str("green"), "min": num(10), "query": str(`sum(rate(http_requests_total{pool="{{pool}}"}[1m]))`)},
	)
}

// TestRolloutAnalysisBody: the analysis reaches the POST body exactly as
// configured (limits and bounds left out stay out), the state keeps it,
// and a refresh recognises the rollout by its analysis.
func TestRolloutAnalysisBody(t *testing.T) {
	f, url := newFakeAPI(t)
	s := newServer(t)
	require.Empty(t, s.configure(map[string]tftypes.Value{"admin_url": str(url)}))
	rt := s.rolloutTypes()
	an := errorRate(rt)
	resp, ds := s.planApplyRollout(rt.config(&an, false))
	require.Empty(t, ds, diagText(ds))

	f.mu.Lock()
	body := f.rolloutBody
	f.mu.Unlock()
	assert.JSONEq(t, `{"steps":[{"weights":{"blue":90,"green":10},"hold":"1m"},{"weights":{"blue":0,"green":100}}],
		"abort_on_unhealthy":false,
		"analysis":{"interval":"30s","checks":[
			{"name":"error-rate","pool":"green","max":0.05,"failure_limit":1,"inconclusive_limit":3,
			 "query":"sum(rate(http_errors_total{pool=\"{{pool}}\"}[1m])) / sum(rate(http_requests_total{pool=\"{{pool}}\"}[1m]))"},
			{"name":"rps","pool":"green","min":10,"query":"sum(rate(http_requests_total{pool=\"{{pool}}\"}[1m]))"}]}}`, body)

	attrs := stateAttrs(t, rt.rollout, resp.NewState)
	assert.True(t, attrs["analysis"].Equal(an), "the state keeps the analysis as configured: %v", attrs["analysis"])
	assert.Equal(t, "running", strAttr(t, attrs["status"]))

	read, err := s.p.ReadResource(context.Background(), &tfprotov6.ReadResourceRequest{TypeName: "bluegreen_rollout", CurrentState: resp.NewState})
	require.NoError(t, err)
	require.Empty(t, read.Diagnostics, diagText(read.Diagnostics))
	assert.Equal(t, "running", strAttr(t, stateAttrs(t, rt.rollout, read.NewState)["status"]), "the rollout with this analysis is this resource's")

	// A rollout with other checks is not this resource's.
	f.mu.Lock()
	f.rollout["analysis"].(map[string]any)["checks"].([]any)[1].(map[string]any)["name"] = "p99"
	f.mu.Unlock()
	read, err = s.p.ReadResource(context.Background(), &tfprotov6.ReadResourceRequest{TypeName: "bluegreen_rollout", CurrentState: resp.NewState})
	require.NoError(t, err)
	assert.Equal(t, "superseded", strAttr(t, stateAttrs(t, rt.rollout, read.NewState)["status"]))
}

// TestRolloutAnalysisPlanChecks: what can be checked without the server
// fails the plan (a check without min and max above all), and a check on
// a pool the switch lacks fails it once the switch is read; nothing is
// written.
func TestRolloutAnalysisPlanChecks(t *testing.T) {
	f, url := newFakeAPI(t)
	tests := []struct {
		interval string
		checks   []map[string]tftypes.Value
		want     []string
	}{
		{interval: "30s", checks: []map[string]tftypes.Value{{"name": str("error-rate"), "pool": str("green"), "query": str("q")}},
			want: []string{"Check without bounds", "Check 0 (error-rate) has neither min nor max"}},
		{interval: "500ms", checks: []map[string]tftypes.Value{{"name": str("a"), "pool": str("green"), "query": str("q"), "max": num(1)}},
			want: []string{"Invalid interval", `"500ms" is not a Go duration from 1s to 24h0m0s`}},
		{interval: "soon", checks: []map[string]tftypes.Value{{"name": str("a"), "pool": str("green"), "query": str("q"), "max": num(1)}},
			want: []string{"Invalid interval", `"soon"`}},
		{interval: "30s", checks: []map[string]tftypes.Value{{"name": str("a"), "pool": str("green"), "query": str("q"), "min": num(2), "max": num(1)}},
			want: []string{"min above max"}},
		{interval: "30s", checks: []map[string]tftypes.Value{
			{"name": str("a"), "pool": str("green"), "query": str("q"), "max": num(1)},
			{"name": str("a"), "pool": str("blue"), "query": str("q"), "max": num(1)}},
			want: []string{"Duplicate check name", `Checks 0 and 1 are both named "a"`}},
		{interval: "30s", checks: []map[string]tftypes.Value{{"name": str("a b"), "pool": str("green"), "query": str("q"), "max": num(1)}},
			want: []string{"Invalid check name"}},
		{interval: "30s", checks: []map[string]tftypes.Value{{"name": str("a"), "pool": str("green"), "query": str("q"), "max": num(1), "failure_limit": num(1001)}},
			want: []string{"Limit out of range"}},
		{interval: "30s", want: []string{"Wrong number of checks", "got 0"}},
		{interval: "30s", checks: []map[string]tftypes.Value{{"name": str("a"), "pool": str("red"), "query": str("q"), "max": num(1)}},
			want: []string{"Unknown pool", `Switch example.org has no pool "red"`}},
	}
	for i, tc := range tests {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			s := newServer(t)
			require.Empty(t, s.configure(map[string]tftypes.Value{"admin_url": str(url)}))
			rt := s.rolloutTypes()
			an := rt.analysisVal(tc.interval, tc.checks...)
			resp, ds := s.planApplyRollout(rt.config(&an, false))
			require.Nil(t, resp, "the plan must fail")
			text := diagText(ds)
			for _, w := range tc.want {
				assert.Contains(t, text, w)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Empty(t, f.writes, "a refused plan writes nothing")
}

// TestRolloutAnalysisServerError: what only the server checks (here the
// query's template) fails the apply with its 400, quoted.
func TestRolloutAnalysisServerError(t *testing.T) {
	f, url := newFakeAPI(t)
	msg := `analysis: check "error-rate": "query": unknown placeholder {{pod}}: use {{pool}}, {{switch}} or {{step}}`
	f.fail, f.failMsg = 400, msg
	s := newServer(t)
	require.Empty(t, s.configure(map[string]tftypes.Value{"admin_url": str(url)}))
	rt := s.rolloutTypes()
	an := errorRate(rt)
	_, ds := s.planApplyRollout(rt.config(&an, false))
	require.Len(t, ds, 1, diagText(ds))
	assert.Equal(t, "Invalid request for the bluegreen admin API", ds[0].Summary)
	assert.Contains(t, ds[0].Detail, strconv.Quote(msg))
	assert.Contains(t, ds[0].Detail, "starting a rollout on switch example.org")
	assert.Contains(t, ds[0].Detail, "answered 400 Bad Request")
}

// TestRolloutAnalysisAbortWait: with wait = true, a rollout the analysis
// aborts fails the apply quoting the server's reason, like any abort, and
// the state records it.
func TestRolloutAnalysisAbortWait(t *testing.T) {
	defer func(d time.Duration) { pollInterval = d }(pollInterval)
	pollInterval = 5 * time.Millisecond
	f, url := newFakeAPI(t)
	reason := "analysis: check error-rate failed 2 times (failure_limit 1): error-rate = 0.3 is above max 0.05"
	f.abortAfter, f.abortReason = 3, reason
	s := newServer(t)
	require.Empty(t, s.configure(map[string]tftypes.Value{"admin_url": str(url)}))
	rt := s.rolloutTypes()
	an := errorRate(rt)
	resp, ds := s.planApplyRollout(rt.config(&an, true))
	require.NotNil(t, resp, diagText(ds))
	require.Len(t, ds, 1, diagText(ds))
	assert.Equal(t, "Rollout aborted", ds[0].Summary)
	assert.Contains(t, ds[0].Detail, strconv.Quote(reason), "the server's reason is quoted")
	assert.Contains(t, ds[0].Detail, "back on the weights from before it: blue=90, green=10")
	attrs := stateAttrs(t, rt.rollout, resp.NewState)
	assert.Equal(t, "aborted", strAttr(t, attrs["status"]))
	assert.Equal(t, reason, strAttr(t, attrs["status_reason"]))
}
