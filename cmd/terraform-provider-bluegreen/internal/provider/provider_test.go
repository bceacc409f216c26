package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeAPI is a loopback stand-in for the admin API with one switch: it
// keeps the weights and version, honours If-Match, and answers writes with
// a chosen error when fail is set. The end-to-end test runs the real one.
type fakeAPI struct {
	mu      sync.Mutex
	name    string
	pools   []string
	weights map[string]uint64
	version uint64
	fail    int    // status to answer writes with; 0 for none
	failMsg string // its message
	writes  []string

	rollout     map[string]any // the rollout in the state; nil for none
	rolloutBody string         // the body of the last POST .../rollout
	// abortAfter > 0: the rollout is aborted with abortReason (as the
	// analysis does) at the abortAfter-th read after its start.
	abortAfter  int
	abortReason string
}

func newFakeAPI(t *testing.T) (*fakeAPI, string) {
	f := &fakeAPI{name: "example.org", pools: []string{"blue", "green"}, weights: map[string]uint64{"blue": 90, "green": 10}, version: 3}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeAPI) view() map[string]any {
	var pools []map[string]any
	for _, p := range f.pools {
		pools = append(pools, map[string]any{"name": p, "weight": f.weights[p], "effective_weight": f.weights[p], "healthy": true})
	}
	return map[string]any{"name": f.name, "version": f.version, "weights": f.weights, "pools": pools, "rollout": f.rollout,
		"updated_at": "2026-11-22T10:00:00Z", "effective_at": "2026-11-22T10:00:30Z"}
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	answer := func(code int, v any) {
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	if r.URL.Path != "/v1/switches/"+f.name && !strings.HasPrefix(r.URL.Path, "/v1/switches/"+f.name+"/") {
		answer(404, map[string]string{"error": "no switch " + strconv.Quote(strings.TrimPrefix(r.URL.Path, "/v1/switches/"))})
		return
	}
	if r.Method == http.MethodGet {
		if f.rollout != nil && f.abortAfter > 0 {
			if f.abortAfter--; f.abortAfter == 0 {
				f.rollout["state"], f.rollout["reason"] = "aborted", f.abortReason
				f.weights = f.rollout["before"].(map[string]uint64)
				f.version++
			}
		}
		answer(200, f.view())
		return
	}
	f.writes = append(f.writes, r.Method+" "+r.URL.Path+" If-Match "+r.Header.Get("If-Match"))
	if f.fail != 0 {
		answer(f.fail, map[string]string{"error": f.failMsg})
		return
	}
	if im := r.Header.Get("If-Match"); im != "" && im != strconv.Quote(strconv.FormatUint(f.version, 10)) {
		answer(412, map[string]string{"error": "If-Match: version does not match the current version: nothing changed"})
		return
	}
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/rollout") {
		f.startRollout(r)
		answer(200, f.view())
		return
	}
	var body struct {
		Weights map[string]uint64 `json:"weights"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	f.weights = body.Weights
	f.version++
	answer(200, f.view())
}

// startRollout keeps the body and shows the rollout running at its first
// step, its analysis (if any) as the server shows it: the spec plus counts.
func (f *fakeAPI) startRollout(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.rolloutBody = string(b)
	var body struct {
		Steps []struct {
			Weights map[string]uint64 `json:"weights"`
			Hold    string            `json:"hold,omitempty"`
		} `json:"steps"`
		AbortOnUnhealthy bool           `json:"abort_on_unhealthy"`
		Analysis         map[string]any `json:"analysis"`
	}
	json.Unmarshal(b, &body)
	f.rollout = map[string]any{"steps": body.Steps, "step": 0, "started_at": "2026-11-30T12:00:00.123456789Z",
		"abort_on_unhealthy": body.AbortOnUnhealthy, "before": f.weights, "state": "running"}
	if a := body.Analysis; a != nil {
		a["waiting"] = false
		for _, c := range a["checks"].([]any) {
			c.(map[string]any)["passes"] = 0
		}
		f.rollout["analysis"] = a
	}
	f.weights = body.Steps[0].Weights
	f.version++
}

// server is the provider behind the protocol 6 server Terraform talks to,
// with its schemas.
type server struct {
	t      *testing.T
	p      tfprotov6.ProviderServer
	schema *tfprotov6.GetProviderSchemaResponse
}

func newServer(t *testing.T) *server {
	t.Helper()
	p, err := providerserver.NewProtocol6WithError(New("test")())()
	require.NoError(t, err)
	s, err := p.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
	require.NoError(t, err)
	require.Empty(t, s.Diagnostics)
	return &server{t: t, p: p, schema: s}
}

func dv(t *testing.T, typ tftypes.Type, v tftypes.Value) *tfprotov6.DynamicValue {
	t.Helper()
	d, err := tfprotov6.NewDynamicValue(typ, v)
	require.NoError(t, err)
	return &d
}

// object builds a value of typ from vals; attributes not given are null.
func object(typ tftypes.Type, vals map[string]tftypes.Value) tftypes.Value {
	ot := typ.(tftypes.Object)
	all := map[string]tftypes.Value{}
	for name, at := range ot.AttributeTypes {
		if v, ok := vals[name]; ok {
			all[name] = v
		} else {
			all[name] = tftypes.NewValue(at, nil)
		}
	}
	return tftypes.NewValue(typ, all)
}

func (s *server) configure(attrs map[string]tftypes.Value) []*tfprotov6.Diagnostic {
	s.t.Helper()
	typ := s.schema.Provider.ValueType()
	resp, err := s.p.ConfigureProvider(context.Background(), &tfprotov6.ConfigureProviderRequest{Config: dv(s.t, typ, object(typ, attrs))})
	require.NoError(s.t, err)
	return resp.Diagnostics
}

func str(s string) tftypes.Value { return tftypes.NewValue(tftypes.String, s) }

func weightsVal(w map[string]int64) tftypes.Value {
	m := map[string]tftypes.Value{}
	for k, v := range w {
		m[k] = tftypes.NewValue(tftypes.Number, v)
	}
	return tftypes.NewValue(tftypes.Map{ElementType: tftypes.Number}, m)
}

// planWeights plans creating bluegreen_weights with w on example.org.
func (s *server) planWeights(w map[string]int64) *tfprotov6.PlanResourceChangeResponse {
	s.t.Helper()
	typ := s.schema.ResourceSchemas["bluegreen_weights"].ValueType()
	cfg := dv(s.t, typ, object(typ, map[string]tftypes.Value{"switch": str("example.org"), "weights": weightsVal(w)}))
	resp, err := s.p.PlanResourceChange(context.Background(), &tfprotov6.PlanResourceChangeRequest{
		TypeName: "bluegreen_weights", PriorState: dv(s.t, typ, tftypes.NewValue(typ, nil)), ProposedNewState: cfg, Config: cfg,
	})
	require.NoError(s.t, err)
	return resp
}

// applyWeights applies a planned create.
func (s *server) applyWeights(w map[string]int64, plan *tfprotov6.PlanResourceChangeResponse) *tfprotov6.ApplyResourceChangeResponse {
	s.t.Helper()
	typ := s.schema.ResourceSchemas["bluegreen_weights"].ValueType()
	cfg := dv(s.t, typ, object(typ, map[string]tftypes.Value{"switch": str("example.org"), "weights": weightsVal(w)}))
	resp, err := s.p.ApplyResourceChange(context.Background(), &tfprotov6.ApplyResourceChangeRequest{
		TypeName: "bluegreen_weights", PriorState: dv(s.t, typ, tftypes.NewValue(typ, nil)),
		PlannedState: plan.PlannedState, Config: cfg, PlannedPrivate: plan.PlannedPrivate,
	})
	require.NoError(s.t, err)
	return resp
}

func diagText(ds []*tfprotov6.Diagnostic) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "[%v] %s: %s\n", d.Severity, d.Summary, d.Detail)
	}
	return b.String()
}

func TestSchema(t *testing.T) {
	s := newServer(t)
	require.Contains(t, s.schema.ResourceSchemas, "bluegreen_weights")
	require.Contains(t, s.schema.ResourceSchemas, "bluegreen_rollout")
	require.Contains(t, s.schema.DataSourceSchemas, "bluegreen_switch")

	attrs := func(sc *tfprotov6.Schema) map[string]*tfprotov6.SchemaAttribute {
		m := map[string]*tfprotov6.SchemaAttribute{}
		for _, a := range sc.Block.Attributes {
			m[a.Name] = a
		}
		return m
	}
	p := attrs(s.schema.Provider)
	for _, name := range []string{"admin_url", "token", "token_file", "ca_file", "cert_file", "key_file", "timeout"} {
		require.Contains(t, p, name)
		assert.True(t, p[name].Optional, "provider %s should be optional (it has an environment variable)", name)
	}
	assert.True(t, p["token"].Sensitive, "token must be sensitive")

	w := attrs(s.schema.ResourceSchemas["bluegreen_weights"])
	assert.True(t, w["switch"].Required)
	assert.True(t, w["weights"].Required)
	assert.Equal(t, tftypes.Map{ElementType: tftypes.Number}, w["weights"].Type)
	assert.True(t, w["reason"].Optional)
	assert.True(t, w["version"].Computed)

	r := attrs(s.schema.ResourceSchemas["bluegreen_rollout"])
	assert.True(t, r["steps"].Required)
	require.NotNil(t, r["steps"].NestedType, "steps is a list of nested objects")
	assert.Equal(t, tfprotov6.SchemaObjectNestingModeList, r["steps"].NestedType.Nesting)
	for _, name := range []string{"wait", "abort_on_unhealthy"} {
		assert.True(t, r[name].Optional && r[name].Computed, "%s should be optional with a default", name)
	}
	for _, name := range []string{"status", "status_reason", "started_at"} {
		assert.True(t, r[name].Computed, name)
	}
	assert.True(t, r["analysis"].Optional)
	require.NotNil(t, r["analysis"].NestedType, "analysis is a nested object")
	assert.Equal(t, tfprotov6.SchemaObjectNestingModeSingle, r["analysis"].NestedType.Nesting)

	d := attrs(s.schema.DataSourceSchemas["bluegreen_switch"])
	for _, name := range []string{"version", "weights", "shares", "effective_at", "rollout_state"} {
		assert.True(t, d[name].Computed, name)
	}
}

func TestConfigure(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret\nignored\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))

	tests := []struct {
		attrs map[string]tftypes.Value
		env   map[string]string
		want  string // "" for no error
	}{
		{attrs: map[string]tftypes.Value{"admin_url": str("http://127.0.0.1:8053")}},
		{attrs: map[string]tftypes.Value{"admin_url": str("ftp://127.0.0.1:8053")}, want: "want http://HOST:PORT"},
		{env: map[string]string{EnvURL: "127.0.0.1:8053"}, want: "want http://HOST:PORT"},
		{attrs: map[string]tftypes.Value{"token": str("a"), "token_file": str(tokenFile)}, want: "not both"},
		{attrs: map[string]tftypes.Value{"token_file": str(filepath.Join(dir, "missing"))}, want: "Cannot read the token file"},
		{env: map[string]string{EnvTokenFile: empty}, want: "Empty token file"},
		{env: map[string]string{EnvTokenFile: tokenFile}},
		{attrs: map[string]tftypes.Value{"timeout": str("soon")}, want: "not a positive Go duration"},
		{env: map[string]string{EnvTimeout: "-1s"}, want: "not a positive Go duration"},
		{attrs: map[string]tftypes.Value{"cert_file": str(tokenFile), "admin_url": str("https://127.0.0.1:8053")}, want: "give both or neither"},
		{attrs: map[string]tftypes.Value{"ca_file": str(tokenFile), "admin_url": str("http://127.0.0.1:8053")}, want: "need an https:// admin_url"},
		{attrs: map[string]tftypes.Value{"ca_file": str(tokenFile), "admin_url": str("https://127.0.0.1:8053")}, want: "no PEM certificate"},
		{attrs: map[string]tftypes.Value{"admin_url": tftypes.NewValue(tftypes.String, tftypes.UnknownValue)}, want: "Unknown provider setting"},
	}
	for i, tc := range tests {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			for _, e := range []string{EnvURL, EnvToken, EnvTokenFile, EnvCAFile, EnvCertFile, EnvKeyFile, EnvTimeout} {
				t.Setenv(e, tc.env[e])
			}
			ds := newServer(t).configure(tc.attrs)
			if tc.want == "" {
				assert.Empty(t, ds, "expected no diagnostics, got %s", diagText(ds))
				return
			}
			require.NotEmpty(t, ds, "expected an error containing %q", tc.want)
			assert.Contains(t, diagText(ds), tc.want)
		})
	}
}

// TestPlanChecksPools plans weights against a switch with pools blue and
// green: a pool it lacks and a missing pool are refused while planning.
func TestPlanChecksPools(t *testing.T) {
	_, url := newFakeAPI(t)
	tests := []struct {
		weights map[string]int64
		want    []string
	}{
		{weights: map[string]int64{"blue": 50, "green": 50}},
		{weights: map[string]int64{"blue": 50, "green": 50, "red": 1}, want: []string{"Unknown pool", `no pool "red"`, "blue, green"}},
		{weights: map[string]int64{"blue": 100}, want: []string{"Missing pool weights", "missing green"}},
		{weights: map[string]int64{"blue": 0, "green": 0}, want: []string{"Weights sum to zero"}},
		{weights: map[string]int64{"blue": 1, "green": MaxWeight + 1}, want: []string{"Weight out of range", "1000001"}},
	}
	for i, tc := range tests {
		s := newServer(t)
		require.Empty(t, s.configure(map[string]tftypes.Value{"admin_url": str(url)}))
		// Terraform validates the configuration before planning.
		typ := s.schema.ResourceSchemas["bluegreen_weights"].ValueType()
		vr, err := s.p.ValidateResourceConfig(context.Background(), &tfprotov6.ValidateResourceConfigRequest{
			TypeName: "bluegreen_weights",
			Config:   dv(t, typ, object(typ, map[string]tftypes.Value{"switch": str("example.org"), "weights": weightsVal(tc.weights)})),
		})
		require.NoError(t, err)
		ds := vr.Diagnostics
		var plan *tfprotov6.PlanResourceChangeResponse
		if len(ds) == 0 {
			plan = s.planWeights(tc.weights)
			ds = plan.Diagnostics
		}
		text := diagText(ds)
		if tc.want == nil {
			assert.Empty(t, ds, "Test %d: expected no diagnostics, got %s", i, text)
			assertIfMatch(t, plan, 3)
			continue
		}
		for _, w := range tc.want {
			assert.Contains(t, text, w, "Test %d", i)
		}
	}
}

func TestPlanUnknownSwitch(t *testing.T) {
	_, url := newFakeAPI(t)
	s := newServer(t)
	require.Empty(t, s.configure(map[string]tftypes.Value{"admin_url": str(url)}))
	typ := s.schema.ResourceSchemas["bluegreen_weights"].ValueType()
	cfg := dv(t, typ, object(typ, map[string]tftypes.Value{"switch": str("example.net"), "weights": weightsVal(map[string]int64{"blue": 1})}))
	resp, err := s.p.PlanResourceChange(context.Background(), &tfprotov6.PlanResourceChangeRequest{
		TypeName: "bluegreen_weights", PriorState: dv(t, typ, tftypes.NewValue(typ, nil)), ProposedNewState: cfg, Config: cfg,
	})
	require.NoError(t, err)
	text := diagText(resp.Diagnostics)
	assert.Contains(t, text, "No such switch")
	assert.Contains(t, text, `it answered 404: "no switch \"example.net\""`)
}

// TestApplyUsesPlanVersion: the create is conditional on the version read
// while planning, so a change in between is a 412 that overwrites nothing.
func TestApplyUsesPlanVersion(t *testing.T) {
	f, url := newFakeAPI(t)
	s := newServer(t)
	require.Empty(t, s.configure(map[string]tftypes.Value{"admin_url": str(url)}))
	w := map[string]int64{"blue": 50, "green": 50}
	plan := s.planWeights(w)
	require.Empty(t, plan.Diagnostics, diagText(plan.Diagnostics))

	f.mu.Lock()
	f.version++ // a change between plan and apply
	f.weights = map[string]uint64{"blue": 70, "green": 30}
	f.mu.Unlock()

	resp := s.applyWeights(w, plan)
	text := diagText(resp.Diagnostics)
	assert.Contains(t, text, "The switch changed since it was read")
	assert.Contains(t, text, `If-Match: version does not match the current version: nothing changed`)
	assert.Contains(t, text, "412 Precondition Failed")
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, map[string]uint64{"blue": 70, "green": 30}, f.weights, "the concurrent change must stay")
	assert.Equal(t, []string{`PUT /v1/switches/example.org/weights If-Match "3"`}, f.writes)
}

// TestAPIErrorDiagnostics: each error status becomes a diagnostic that
// quotes the server's message.
func TestAPIErrorDiagnostics(t *testing.T) {
	tests := []struct {
		status  int
		msg     string
		summary string
	}{
		{400, `unknown pool "red" (pools: blue, green)`, "Invalid request for the bluegreen admin API"},
		{409, "a rollout is in progress: abort it (DELETE .../rollout) or wait for it to end", "Conflict with a rollout on the switch"},
		{412, "If-Match: version does not match the current version: nothing changed", "The switch changed since it was read"},
		{503, "the bbolt store does not answer: nothing changed", "The bluegreen store cannot commit"},
		{401, "missing or wrong bearer token", "Not authorized by the bluegreen admin API"},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			f, url := newFakeAPI(t)
			f.fail, f.failMsg = tc.status, tc.msg
			s := newServer(t)
			require.Empty(t, s.configure(map[string]tftypes.Value{"admin_url": str(url)}))
			w := map[string]int64{"blue": 50, "green": 50}
			plan := s.planWeights(w)
			require.Empty(t, plan.Diagnostics, diagText(plan.Diagnostics))
			resp := s.applyWeights(w, plan)
			require.Len(t, resp.Diagnostics, 1, diagText(resp.Diagnostics))
			d := resp.Diagnostics[0]
			assert.Equal(t, tfprotov6.DiagnosticSeverityError, d.Severity)
			assert.Equal(t, tc.summary, d.Summary)
			assert.Contains(t, d.Detail, strconv.Quote(tc.msg), "the server's message is quoted")
			assert.Contains(t, d.Detail, fmt.Sprintf("answered %d %s", tc.status, http.StatusText(tc.status)))
			assert.Contains(t, d.Detail, "setting the weights of switch example.org")
		})
	}
}

// assertIfMatch checks that plan is a write conditional on version.
func assertIfMatch(t *testing.T, plan *tfprotov6.PlanResourceChangeResponse, version int64) {
	t.Helper()
	typ := tftypes.Object{AttributeTypes: map[string]tftypes.Type{
		"id": tftypes.String, "switch": tftypes.String, "weights": tftypes.Map{ElementType: tftypes.Number},
		"reason": tftypes.String, "version": tftypes.Number, "if_match": tftypes.Number,
	}}
	v, err := plan.PlannedState.Unmarshal(typ)
	require.NoError(t, err)
	var attrs map[string]tftypes.Value
	require.NoError(t, v.As(&attrs))
	var got big.Float
	require.NoError(t, attrs["if_match"].As(&got))
	n, _ := got.Int64()
	assert.Equal(t, version, n, "if_match: the version read while planning")
}
