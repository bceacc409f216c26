package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/bluegreen-dns/bluegreen/internal/freeport"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/rollout"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func init() { clog.Discard() }

const (
	testAddr  = "127.0.0.1:8053"
	testToken = "s3cret-token"
)

// newSwitch registers a fresh switch with pools blue and green (weights 1
// and 0) and an explain function; it is forgotten when the test ends.
func newSwitch(t testing.TB, name string, st store.Store) *state.Switch {
	t.Helper()
	state.Forget(name)
	sw, err := state.Configure(context.Background(), name, state.Config{
		Pools: []string{"blue", "green"},
		Seed:  []uint64{1, 0},
		Info:  state.Info{TTLMax: 30, TTLMin: 1, Sticky: "subnet"},
		Store: st,
		Explain: func(a netip.Addr) state.Explanation {
			return state.Explanation{Client: a.String(), Pool: "blue", Reason: "test explanation"}
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { state.Forget(name) })
	return sw
}

// newServer returns a server on testAddr with token testToken serving a
// switch called "example.org".
func newServer(t testing.TB) (*Server, *state.Switch) {
	t.Helper()
	s := New(testAddr, testToken)
	sw := newSwitch(t, "example.org", nil)
	s.Add(sw)
	return s, sw
}

// req is one request; the zero values of its fields are the usual ones:
// Host testAddr, the right token and, with a body, JSON.
type req struct {
	method, path, body string
	host               string
	header             map[string]string // "" value: remove the header
}

func (q req) do(h http.Handler) *httptest.ResponseRecorder {
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	r := httptest.NewRequest(q.method, q.path, body)
	r.Host = testAddr
	if q.host != "" {
		r.Host = q.host
	}
	r.RemoteAddr = "192.0.2.7:40000"
	r.Header.Set("Authorization", "Bearer "+testToken)
	if q.method == http.MethodPut || q.method == http.MethodPost || q.method == http.MethodDelete {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range q.header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func decode[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v), "body %s", w.Body.String())
	return v
}

// errorOf returns the error message of an error response, failing when the
// body is not {"error": "..."}.
func errorOf(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var e map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e), "body %s", w.Body.String())
	require.Len(t, e, 1, "error body %s has other fields", w.Body.String())
	msg, ok := e["error"].(string)
	require.True(t, ok, "error body %s has no error string", w.Body.String())
	require.NotEmpty(t, msg)
	return msg
}

func TestHealthz(t *testing.T) {
	s, _ := newServer(t)
	w := req{method: "GET", path: "/healthz", header: map[string]string{"Authorization": ""}}.do(s)
	assert.Equal(t, http.StatusOK, w.Code, "healthz needs no token")
	assert.Equal(t, map[string]string{"status": "ok"}, decode[map[string]string](t, w))

	w = req{method: "POST", path: "/healthz", body: "{}"}.do(s)
	assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
}

func TestGetSwitch(t *testing.T) {
	s, _ := newServer(t)
	w := req{method: "GET", path: "/v1/switches/example.org"}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, `"0"`, w.Header().Get("ETag"))
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))

	var v map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v))
	for _, f := range []string{"name", "version", "weights", "shares", "pools", "ttl", "sticky", "updated_at", "effective_at", "rollout", "store"} {
		assert.Contains(t, v, f, "state object lacks %q", f)
	}
	assert.Equal(t, "example.org", v["name"])
	assert.Equal(t, 0.0, v["version"])
	assert.Equal(t, map[string]any{"blue": 1.0, "green": 0.0}, v["weights"])
	assert.Equal(t, map[string]any{"blue": 1.0, "green": 0.0}, v["shares"])
	assert.Equal(t, map[string]any{"max": 30.0, "min": 1.0}, v["ttl"])
	assert.Equal(t, "subnet", v["sticky"])
	assert.Nil(t, v["rollout"])
	assert.Equal(t, "memory", v["store"])
	pools := v["pools"].([]any)
	require.Len(t, pools, 2)
	assert.Equal(t, map[string]any{"name": "blue", "weight": 1.0, "effective_weight": 1.0, "healthy": true}, pools[0])

	w = req{method: "HEAD", path: "/v1/switches/example.org"}.do(s)
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, `"0"`, w.Header().Get("ETag"))
}

func TestListSwitches(t *testing.T) {
	s, _ := newServer(t)
	s.Add(newSwitch(t, "a.example", nil))
	w := req{method: "GET", path: "/v1/switches"}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	views := decode[[]state.View](t, w)
	require.Len(t, views, 2)
	assert.Equal(t, "a.example", views[0].Name, "sorted by name")
	assert.Equal(t, "example.org", views[1].Name)
}

func TestPutWeights(t *testing.T) {
	s, sw := newServer(t)
	w := req{method: "PUT", path: "/v1/switches/example.org/weights", body: `{"weights":{"blue":90,"green":10},"reason":"canary"}`}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	v := decode[state.View](t, w)
	assert.Equal(t, uint64(1), v.Version)
	assert.Equal(t, map[string]uint64{"blue": 90, "green": 10}, v.Weights)
	assert.InDelta(t, 0.1, v.Shares["green"], 1e-9)
	assert.Equal(t, `"1"`, w.Header().Get("ETag"))

	snap := sw.Load()
	assert.Equal(t, []uint64{90, 10}, snap.Weights, "the next query sees the new weights")

	h := sw.History()
	require.Len(t, h, 1)
	assert.Equal(t, "api", h[0].Source)
	assert.Equal(t, "canary", h[0].Reason)
	assert.Equal(t, "192.0.2.7:40000", h[0].Remote)
	assert.Equal(t, map[string]uint64{"blue": 1, "green": 0}, h[0].From)
	assert.Equal(t, map[string]uint64{"blue": 90, "green": 10}, h[0].To)

	// With the current version in If-Match, quoted as in the ETag.
	w = req{method: "PUT", path: "/v1/switches/example.org/weights", body: `{"weights":{"blue":50,"green":50}}`,
		header: map[string]string{"If-Match": `"1"`, "Content-Type": "application/json; charset=utf-8"}}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, `"2"`, w.Header().Get("ETag"))

	// If-Match: * is no condition.
	w = req{method: "PUT", path: "/v1/switches/example.org/weights", body: `{"weights":{"blue":0,"green":1}}`,
		header: map[string]string{"If-Match": `*`}}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
}

func TestPromote(t *testing.T) {
	s, sw := newServer(t)
	w := req{method: "POST", path: "/v1/switches/example.org/promote", body: `{"pool":"green"}`}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	v := decode[state.View](t, w)
	assert.Equal(t, map[string]uint64{"blue": 0, "green": 100}, v.Weights)
	assert.Equal(t, `"1"`, w.Header().Get("ETag"))
	h := sw.History()
	require.Len(t, h, 1)
	assert.Equal(t, "api", h[0].Source)
	assert.Equal(t, "192.0.2.7:40000", h[0].Remote)
}

func TestRollback(t *testing.T) {
	s, _ := newServer(t)
	w := req{method: "POST", path: "/v1/switches/example.org/rollback"}.do(s)
	assert.Equal(t, http.StatusConflict, w.Code, "nothing to roll back: %s", w.Body.String())
	errorOf(t, w)

	w = req{method: "PUT", path: "/v1/switches/example.org/weights", body: `{"weights":{"blue":90,"green":10}}`}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	w = req{method: "POST", path: "/v1/switches/example.org/rollback", body: `{"reason":"bad canary"}`}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	v := decode[state.View](t, w)
	assert.Equal(t, map[string]uint64{"blue": 1, "green": 0}, v.Weights)
	assert.Equal(t, uint64(2), v.Version)

	// An empty body is fine too (with the JSON content type).
	w = req{method: "POST", path: "/v1/switches/example.org/rollback"}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, map[string]uint64{"blue": 90, "green": 10}, decode[state.View](t, w).Weights)
}

func TestHistory(t *testing.T) {
	s, _ := newServer(t)
	w := req{method: "GET", path: "/v1/switches/example.org/history"}.do(s)
	require.Equal(t, http.StatusOK, w.Code)
	assert.JSONEq(t, `[]`, w.Body.String(), "no change yet: an empty list")

	for _, b := range []string{`{"weights":{"blue":90,"green":10},"reason":"one"}`, `{"weights":{"blue":50,"green":50},"reason":"two"}`} {
		w = req{method: "PUT", path: "/v1/switches/example.org/weights", body: b}.do(s)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	}
	w = req{method: "GET", path: "/v1/switches/example.org/history"}.do(s)
	require.Equal(t, http.StatusOK, w.Code)
	var h []map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &h))
	require.Len(t, h, 2)
	assert.Equal(t, "two", h[0]["reason"], "newest first")
	assert.Equal(t, "one", h[1]["reason"])
	for _, f := range []string{"version", "time", "source", "from", "to", "reason", "remote"} {
		assert.Contains(t, h[0], f)
	}
	assert.Equal(t, 2.0, h[0]["version"])
}

func TestExplain(t *testing.T) {
	s, _ := newServer(t)
	w := req{method: "GET", path: "/v1/switches/example.org/explain?client=192.0.2.1"}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	e := decode[state.Explanation](t, w)
	assert.Equal(t, state.Explanation{Client: "192.0.2.1", Pool: "blue", Reason: "test explanation"}, e)

	w = req{method: "GET", path: "/v1/switches/example.org/explain?client=2001:db8::1"}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "2001:db8::1", decode[state.Explanation](t, w).Client)
}

// TestRolloutEndpoints: start, pause, resume and abort through the API,
// with 409 for a second rollout and for pause/resume/abort without one.
func TestRolloutEndpoints(t *testing.T) {
	s, sw := newServer(t)
	path := "/v1/switches/example.org/rollout"
	for _, q := range []req{
		{method: "DELETE", path: path},
		{method: "POST", path: path + "/pause"},
		{method: "POST", path: path + "/resume"},
	} {
		w := q.do(s)
		assert.Equal(t, http.StatusConflict, w.Code, "%s %s without a rollout", q.method, q.path)
		assert.Contains(t, errorOf(t, w), "no rollout")
	}

	start := req{method: "POST", path: path, body: `{"steps":[{"weights":{"blue":95,"green":5},"hold":"1h"},{"weights":{"blue":0,"green":100}}],"abort_on_unhealthy":true,"reason":"canary"}`}
	w := start.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var v state.View
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v))
	require.NotNil(t, v.Rollout)
	assert.Equal(t, "running", v.Rollout.State)
	assert.True(t, v.Rollout.AbortOnUnhealthy)
	require.NotNil(t, v.Rollout.NextChangeAt)
	assert.Equal(t, map[string]uint64{"blue": 95, "green": 5}, v.Weights)
	assert.Equal(t, fmt.Sprintf(`"%d"`, v.Version), w.Header().Get("ETag"))

	w = start.do(s)
	assert.Equal(t, http.StatusConflict, w.Code, "a second rollout")

	w = req{method: "POST", path: path + "/pause"}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.True(t, sw.View().Rollout.Paused)
	w = req{method: "POST", path: path + "/resume", body: `{"reason":"looks fine"}`}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.False(t, sw.View().Rollout.Paused)

	w = req{method: "DELETE", path: path, body: `{"reason":"errors up"}`}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	v = *sw.View()
	assert.Equal(t, "aborted", v.Rollout.State)
	assert.Equal(t, "errors up", v.Rollout.Reason)
	assert.Equal(t, map[string]uint64{"blue": 1, "green": 0}, v.Weights, "abort restores the weights from before")
	assert.Equal(t, "api", sw.History()[0].Source)
}

// TestRolloutBadBodies: each bad rollout body is a 400 that changes nothing.
func TestRolloutBadBodies(t *testing.T) {
	s, sw := newServer(t)
	before := sw.View().Version
	for i, body := range []string{
		`{}`,
		`{"steps":[]}`,
		`{"steps":{}}`,
		`{"steps":[{"weights":{"blue":1,"green":1}},{"weights":{"blue":0,"green":1}}]}`,
		`{"steps":[{"weights":{"blue":1},"hold":"1m"}]}`,
		`{"steps":[{"weights":{"blue":1,"green":1,"red":1},"hold":"1m"}]}`,
		`{"steps":[{"weights":{"blue":0,"green":0},"hold":"1m"}]}`,
		`{"steps":[{"weights":{"blue":1,"green":-1},"hold":"1m"}]}`,
		`{"steps":[{"weights":{"blue":1,"green":1},"hold":"soon"}]}`,
		`{"steps":[{"weights":{"blue":1,"green":1},"hold":"100ms"},{"weights":{"blue":1,"green":1}}]}`,
		`{"steps":[{"weights":{"blue":1,"green":1},"hold":"1m","extra":1}]}`,
		`{"steps":[{"weights":{"blue":1,"green":1}}],"abort_on_unhealthy":"yes"}`,
		`{"steps":[{"weights":{"blue":1,"green":1}}],"other":1}`,
	} {
		w := req{method: "POST", path: "/v1/switches/example.org/rollout", body: body}.do(s)
		if w.Code != http.StatusBadRequest {
			t.Errorf("Test %d: expected 400 for %s, got %d %s", i, body, w.Code, w.Body.String())
		}
	}
	assert.Equal(t, before, sw.View().Version, "nothing changed")
	assert.Nil(t, sw.View().Rollout)
}

// TestRolloutConflict: a manual change while a rollout runs is a 409.
func TestRolloutConflict(t *testing.T) {
	s, sw := newServer(t)
	_, err := sw.StartRollout(context.Background(), state.RolloutRequest{Steps: []rollout.Step{
		{Weights: map[string]uint64{"blue": 9, "green": 1}, Hold: rollout.Duration(time.Hour)},
		{Weights: map[string]uint64{"blue": 0, "green": 1}},
	}}, state.Update{Source: state.SourceAPI})
	require.NoError(t, err)
	before := sw.View().Version
	for _, q := range []req{
		{method: "PUT", path: "/v1/switches/example.org/weights", body: `{"weights":{"blue":1,"green":1}}`},
		{method: "POST", path: "/v1/switches/example.org/promote", body: `{"pool":"green"}`},
	} {
		w := q.do(s)
		assert.Equal(t, http.StatusConflict, w.Code, "%s %s: %s", q.method, q.path, w.Body.String())
		assert.Contains(t, errorOf(t, w), "rollout")
	}
	assert.Equal(t, before, sw.View().Version)
}

// TestErrors covers every error status; each request must leave the
// switch unchanged.
func TestErrors(t *testing.T) {
	const (
		sw      = "/v1/switches/example.org"
		weights = sw + "/weights"
		promote = sw + "/promote"
		good    = `{"weights":{"blue":90,"green":10}}`
	)
	big := `{"weights":{"blue":1,"green":1},"reason":"` + strings.Repeat("x", MaxBody) + `"}`
	tests := []struct {
		req
		code int
		want string // in the error message
	}{
		// 400: bodies.
		{req{method: "PUT", path: weights, body: `{"weights":`}, 400, "invalid JSON"},
		{req{method: "PUT", path: weights, body: `not json`}, 400, "invalid JSON"},
		{req{method: "PUT", path: weights}, 400, "empty"},
		{req{method: "PUT", path: weights, body: `[1,2]`}, 400, "want a JSON object"},
		{req{method: "PUT", path: weights, body: `null`}, 400, "want a JSON object"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":90,"green":10},"extra":1}`}, 400, `unknown field "extra"`},
		{req{method: "PUT", path: weights, body: `{"Weights":{"blue":90,"green":10}}`}, 400, `unknown field "Weights"`},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":90,"green":10}} {}`}, 400, "after the JSON object"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":90,"green":10},"weights":{"blue":1,"green":1}}`}, 400, "named twice"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":90,"blue":10,"green":0}}`}, 400, "named twice"},
		{req{method: "PUT", path: weights, body: `{}`}, 400, `missing "weights"`},
		{req{method: "PUT", path: weights, body: `{"weights":null}`}, 400, `missing "weights"`},
		{req{method: "PUT", path: weights, body: `{"weights":[90,10]}`}, 400, "want a JSON object"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":90}}`}, 400, `missing weight for pool "green"`},
		{req{method: "PUT", path: weights, body: `{"weights":{}}`}, 400, "missing weight for pool"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":90,"green":10,"red":5}}`}, 400, `unknown pool "red"`},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":-1,"green":10}}`}, 400, "non-negative integer"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":1.5,"green":10}}`}, 400, "non-negative integer"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":1.0,"green":10}}`}, 400, "non-negative integer"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":1e2,"green":10}}`}, 400, "non-negative integer"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":"90","green":10}}`}, 400, "non-negative integer"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":null,"green":10}}`}, 400, "non-negative integer"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":true,"green":10}}`}, 400, "non-negative integer"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":1000001,"green":10}}`}, 400, "above the maximum"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":18446744073709551616,"green":10}}`}, 400, "above the maximum"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":99999999999999999999999999999,"green":10}}`}, 400, "above the maximum"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":0,"green":0}}`}, 400, "sum to zero"},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":1,"green":1},"reason":5}`}, 400, `"reason" must be a string`},
		{req{method: "PUT", path: weights, body: `{"weights":{"blue":1,"green":1},"reason":"` + strings.Repeat("x", MaxReason+1) + `"}`}, 400, "longer than"},
		{req{method: "POST", path: promote, body: `{}`}, 400, `missing "pool"`},
		{req{method: "POST", path: promote, body: `{"pool":""}`}, 400, `"pool" is empty`},
		{req{method: "POST", path: promote, body: `{"pool":7}`}, 400, `"pool" must be a string`},
		{req{method: "POST", path: promote, body: `{"pool":"red"}`}, 400, `unknown pool "red"`},
		{req{method: "POST", path: promote, body: `{"pool":"green","weights":{}}`}, 400, `unknown field "weights"`},
		{req{method: "POST", path: sw + "/rollback", body: `{"to":3}`}, 400, `unknown field "to"`},
		// 400: If-Match and query parameters.
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"If-Match": `"abc"`}}, 400, "If-Match"},
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"If-Match": `"0", "1"`}}, 400, "If-Match"},
		{req{method: "PUT", path: weights + "?force=1", body: good}, 400, "no query parameters"},
		{req{method: "POST", path: promote + "?pool=green", body: `{"pool":"green"}`}, 400, "no query parameters"},
		{req{method: "GET", path: sw + "?x=1"}, 400, `unknown query parameter "x"`},
		{req{method: "GET", path: "/v1/switches?x=1"}, 400, `unknown query parameter "x"`},
		{req{method: "GET", path: sw + "/explain"}, 400, "client=IP"},
		{req{method: "GET", path: sw + "/explain?client=1.2.3.4&client=5.6.7.8"}, 400, "client=IP"},
		{req{method: "GET", path: sw + "/explain?client=nonsense"}, 400, "not an IP address"},
		{req{method: "GET", path: sw + "/explain?client=1.2.3.4&foo=bar"}, 400, `unknown query parameter "foo"`},
		// 401.
		{req{method: "GET", path: sw, header: map[string]string{"Authorization": ""}}, 401, "token"},
		{req{method: "GET", path: sw, header: map[string]string{"Authorization": "Bearer wrong"}}, 401, "token"},
		{req{method: "GET", path: sw, header: map[string]string{"Authorization": "Basic " + testToken}}, 401, "token"},
		{req{method: "GET", path: sw, header: map[string]string{"Authorization": "Bearer"}}, 401, "token"},
		{req{method: "GET", path: "/v1/switches", header: map[string]string{"Authorization": ""}}, 401, "token"},
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"Authorization": ""}}, 401, "token"},
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"Authorization": "Bearer " + testToken + "x"}}, 401, "token"},
		{req{method: "GET", path: "/v1/switches/nosuch", header: map[string]string{"Authorization": ""}}, 401, "token"},
		// 403: DNS rebinding.
		{req{method: "GET", path: sw, host: "evil.example"}, 403, "host"},
		{req{method: "GET", path: sw, host: "evil.example:8053"}, 403, "host"},
		{req{method: "PUT", path: weights, body: good, host: "evil.example:8053"}, 403, "host"},
		{req{method: "GET", path: "/healthz", host: "evil.example:8053"}, 403, "host"},
		{req{method: "GET", path: sw, host: "192.0.2.1:8053"}, 403, "host"},
		// 403: cross-origin.
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"Origin": "null"}}, 403, "cross-origin"},
		{req{method: "GET", path: sw, header: map[string]string{"Origin": "null"}}, 403, "cross-origin"},
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"Origin": "http://evil.example"}}, 403, "cross-origin"},
		{req{method: "POST", path: promote, body: `{"pool":"green"}`, header: map[string]string{"Origin": "http://localhost:8053"}}, 403, "cross-origin"},
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403, "cross-origin"},
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"Sec-Fetch-Site": "same-site"}}, 403, "cross-origin"},
		{req{method: "GET", path: sw, header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403, "cross-origin"},
		// 404.
		{req{method: "GET", path: "/v1/switches/nosuch"}, 404, `no switch "nosuch"`},
		{req{method: "PUT", path: "/v1/switches/nosuch/weights", body: good}, 404, `no switch "nosuch"`},
		{req{method: "GET", path: sw + "/nosuch"}, 404, "no endpoint"},
		{req{method: "GET", path: sw + "/"}, 404, "no endpoint"},
		{req{method: "GET", path: sw + "/history/"}, 404, "no endpoint"},
		{req{method: "GET", path: "/v1/switches/"}, 404, `no switch ""`},
		{req{method: "GET", path: "/index.html"}, 404, "no endpoint"},
		{req{method: "GET", path: "/v2/switches"}, 404, "no endpoint"},
		// 405: a GET never changes state, with or without parameters.
		{req{method: "GET", path: weights}, 405, "never changes state"},
		{req{method: "GET", path: weights + "?weights=%7B%22blue%22%3A0%2C%22green%22%3A1%7D"}, 405, "never changes state"},
		{req{method: "GET", path: promote + "?pool=green"}, 405, "never changes state"},
		{req{method: "GET", path: sw + "/rollback"}, 405, "never changes state"},
		{req{method: "HEAD", path: sw + "/rollback"}, 405, ""},
		{req{method: "GET", path: sw + "/rollout/pause"}, 405, "never changes state"},
		{req{method: "POST", path: weights, body: good}, 405, "use PUT"},
		{req{method: "DELETE", path: sw}, 405, "use GET"},
		{req{method: "PUT", path: sw, body: good}, 405, "use GET"},
		{req{method: "POST", path: "/v1/switches", body: `{}`}, 405, "use GET"},
		{req{method: "OPTIONS", path: weights}, 405, "use PUT"},
		// 412.
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"If-Match": `"7"`}}, 412, "nothing changed"},
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"If-Match": `W/"0"`}}, 412, "weak"},
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"If-Match": `"00"`}}, 412, "nothing changed"},
		{req{method: "POST", path: promote, body: `{"pool":"green"}`, header: map[string]string{"If-Match": `"5"`}}, 412, "nothing changed"},
		// 413.
		{req{method: "PUT", path: weights, body: big}, 413, "over the limit"},
		{req{method: "POST", path: promote, body: big}, 413, "over the limit"},
		// 415.
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"Content-Type": "text/plain"}}, 415, "application/json"},
		{req{method: "PUT", path: weights, body: good, header: map[string]string{"Content-Type": ""}}, 415, "application/json"},
		{req{method: "PUT", path: weights, body: "weights=1", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, "application/json"},
		{req{method: "POST", path: promote, body: `{"pool":"green"}`, header: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}}, 415, "application/json"},
		{req{method: "POST", path: promote, body: `{"pool":"green"}`, header: map[string]string{"Content-Type": "text/plain"}}, 415, "application/json"},
		{req{method: "POST", path: sw + "/rollback", header: map[string]string{"Content-Type": "text/plain"}}, 415, "application/json"},
		{req{method: "DELETE", path: sw + "/rollout", header: map[string]string{"Content-Type": ""}}, 415, "application/json"},
	}
	for i, tc := range tests {
		s, swi := newServer(t)
		// Give the switch one change, so that a rollback would succeed.
		_, err := swi.Apply(context.Background(), state.Update{Weights: map[string]uint64{"blue": 3, "green": 1}, Source: "api"})
		require.NoError(t, err)
		before := swi.View()

		w := tc.do(s)
		if w.Code != tc.code {
			t.Errorf("Test %d: %s %s: expected %d, got %d: %s", i, tc.method, tc.path, tc.code, w.Code, w.Body.String())
			continue
		}
		if tc.method != http.MethodHead {
			if msg := errorOf(t, w); !strings.Contains(strings.ToLower(msg), strings.ToLower(tc.want)) {
				t.Errorf("Test %d: %s %s: expected an error containing %q, got %q", i, tc.method, tc.path, tc.want, msg)
			}
		}
		if tc.code == 405 && w.Header().Get("Allow") == "" {
			t.Errorf("Test %d: expected an Allow header with 405", i)
		}
		if tc.code == 401 && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("Test %d: expected a WWW-Authenticate header with 401", i)
		}
		after := swi.View()
		if after.Version != before.Version || len(swi.History()) != 1 {
			t.Errorf("Test %d: %s %s: expected no change, version went from %d to %d", i, tc.method, tc.path, before.Version, after.Version)
		}
		assert.NotContains(t, w.Body.String(), testToken, "Test %d: the token leaked into a response", i)
	}
}

// TestOversizedBodyUnknownLength: a body over the limit without a
// Content-Length (chunked) is cut off at the limit and gets 413.
func TestOversizedBodyUnknownLength(t *testing.T) {
	s, sw := newServer(t)
	body := io.MultiReader(strings.NewReader(`{"weights":{"blue":1,"green":1},"reason":"`), strings.NewReader(strings.Repeat("x", 2*MaxBody)), strings.NewReader(`"}`))
	r := httptest.NewRequest("PUT", "/v1/switches/example.org/weights", body)
	require.Equal(t, int64(-1), r.ContentLength)
	r.Host = testAddr
	r.Header.Set("Authorization", "Bearer "+testToken)
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	assert.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	assert.Equal(t, uint64(0), sw.View().Version)
}

// TestAllowedHosts: the Host header may name the listener or a loopback
// address, with or without a port.
func TestAllowedHosts(t *testing.T) {
	s, _ := newServer(t)
	for _, h := range []string{"127.0.0.1:8053", "127.0.0.1", "localhost", "localhost:8053", "LocalHost:9999", "[::1]:8053", "[::1]", "127.0.0.2:8053", "localhost."} {
		w := req{method: "GET", path: "/v1/switches/example.org", host: h}.do(s)
		assert.Equal(t, http.StatusOK, w.Code, "Host %q: %s", h, w.Body.String())
	}

	// A listener on a name accepts that name; one on all interfaces the
	// address the client connected to.
	named := New("admin.internal:8053", testToken)
	named.Add(newSwitch(t, "named.example", nil))
	w := req{method: "GET", path: "/v1/switches/named.example", host: "admin.internal:8053"}.do(named)
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
	w = req{method: "GET", path: "/v1/switches/named.example", host: "other.internal:8053"}.do(named)
	assert.Equal(t, http.StatusForbidden, w.Code, w.Body.String())

	any := New(":8053", testToken)
	any.Add(newSwitch(t, "any.example", nil))
	r := httptest.NewRequest("GET", "/v1/switches/any.example", nil)
	r.Host = "192.0.2.10:8053"
	r.Header.Set("Authorization", "Bearer "+testToken)
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &fakeAddr{"192.0.2.10:8053"}))
	rw := httptest.NewRecorder()
	any.ServeHTTP(rw, r)
	assert.Equal(t, http.StatusOK, rw.Code, rw.Body.String())
	r.Host = "192.0.2.11:8053"
	rw = httptest.NewRecorder()
	any.ServeHTTP(rw, r)
	assert.Equal(t, http.StatusForbidden, rw.Code, "an address other than the connection's: %s", rw.Body.String())
}

type fakeAddr struct{ s string }

func (a *fakeAddr) Network() string { return "tcp" }
func (a *fakeAddr) String() string  { return a.s }

// TestSameOrigin: a browser on the API's own origin may use it.
func TestSameOrigin(t *testing.T) {
	s, _ := newServer(t)
	w := req{method: "PUT", path: "/v1/switches/example.org/weights", body: `{"weights":{"blue":1,"green":1}}`,
		header: map[string]string{"Origin": "http://" + testAddr, "Sec-Fetch-Site": "same-origin"}}.do(s)
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
}

func TestNoToken(t *testing.T) {
	s := New(testAddr, "")
	s.Add(newSwitch(t, "example.org", nil))
	w := req{method: "GET", path: "/v1/switches/example.org", header: map[string]string{"Authorization": ""}}.do(s)
	assert.Equal(t, http.StatusOK, w.Code, "no token configured: none needed")
	w = req{method: "GET", path: "/v1/switches/example.org", header: map[string]string{"Authorization": "Bearer anything"}}.do(s)
	assert.Equal(t, http.StatusOK, w.Code)
}

func TestSameToken(t *testing.T) {
	s := New(testAddr, "a")
	assert.True(t, s.SameToken("a"))
	assert.False(t, s.SameToken("b"))
	assert.False(t, s.SameToken(""))
	n := New(testAddr, "")
	assert.True(t, n.SameToken(""))
	assert.False(t, n.SameToken("a"))
}

// failStore commits nothing.
type failStore struct{ store.Store }

func (failStore) Load(context.Context, string) (*store.Record, error) { return nil, nil }
func (failStore) CompareAndSwap(context.Context, string, uint64, *store.Record) (*store.Record, error) {
	return nil, errors.New("disk on fire")
}
func (failStore) Kind() string { return "fail" }
func (failStore) Close() error { return nil }

func TestStoreUnavailable(t *testing.T) {
	s := New(testAddr, testToken)
	sw := newSwitch(t, "example.org", failStore{})
	s.Add(sw)
	for _, q := range []req{
		{method: "PUT", path: "/v1/switches/example.org/weights", body: `{"weights":{"blue":1,"green":1}}`},
		{method: "POST", path: "/v1/switches/example.org/promote", body: `{"pool":"green"}`},
	} {
		w := q.do(s)
		assert.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
		assert.Contains(t, errorOf(t, w), "nothing changed")
		assert.Equal(t, uint64(0), sw.View().Version)
		assert.Equal(t, []uint64{1, 0}, sw.Load().Weights)
	}
}

// TestRacingWriters: writers with the same If-Match: exactly one wins, the
// others get 412.
func TestRacingWriters(t *testing.T) {
	s, sw := newServer(t)
	const n = 16
	var wg sync.WaitGroup
	codes := make([]int, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body := `{"weights":{"blue":1,"green":` + string(rune('1'+i%9)) + `}}`
			codes[i] = req{method: "PUT", path: "/v1/switches/example.org/weights", body: body, header: map[string]string{"If-Match": `"0"`}}.do(s).Code
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for i, c := range codes {
		switch c {
		case http.StatusOK:
			won++
		case http.StatusPreconditionFailed:
		default:
			t.Errorf("Writer %d: expected 200 or 412, got %d", i, c)
		}
	}
	assert.Equal(t, 1, won, "exactly one writer wins")
	assert.Equal(t, uint64(1), sw.View().Version)
	assert.Len(t, sw.History(), 1)
}

// A declared Content-Length over the limit gets its 413 at once, on a real
// connection, rather than after the server waited to read (and discard)
// a body the client may never send.
func TestOversizedBodyAnsweredAtOnce(t *testing.T) {
	addr := freeport.Addr(t)
	s := New(addr, testToken)
	s.Add(newSwitch(t, "example.org", nil))
	require.NoError(t, s.Start())
	defer s.Stop()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	fmt.Fprintf(c, "PUT /v1/switches/example.org/weights HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n", addr, testToken)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err, "no answer within 3s")
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}
