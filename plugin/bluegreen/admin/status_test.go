package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/internal/freeport"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

func TestStatusPageFiles(t *testing.T) {
	s, _ := newServer(t)
	noToken := map[string]string{"Authorization": ""}
	for _, tc := range []struct {
		path, ctype, has string
	}{
		{"/", "text/html; charset=utf-8", `<meta name="bluegreen-auth" content="token">`},
		{"/status/app.js", "text/javascript; charset=utf-8", `fetch("/v1/status"`},
		{"/status/style.css", "text/css; charset=utf-8", ".split"},
		{"/status/icon.svg", "image/svg+xml", "<svg"},
	} {
		w := req{method: "GET", path: tc.path, header: noToken}.do(s)
		require.Equal(t, http.StatusOK, w.Code, "GET %s without a token: the page's files hold no state", tc.path)
		assert.Equal(t, tc.ctype, w.Header().Get("Content-Type"), tc.path)
		assert.Equal(t, pageCSP, w.Header().Get("Content-Security-Policy"), tc.path)
		assert.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"), tc.path)
		assert.Equal(t, "no-store", w.Header().Get("Cache-Control"), tc.path)
		assert.Contains(t, w.Body.String(), tc.has, tc.path)
	}

	// Without a token the page does not ask for one.
	open := New(testAddr, "")
	w := req{method: "GET", path: "/", header: noToken}.do(open)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), `<meta name="bluegreen-auth" content="none">`)

	// The page has no inline script or style for the CSP to refuse, and
	// loads nothing from elsewhere.
	html := w.Body.String()
	assert.NotRegexp(t, `<script>|<script [^>]*>[^<]`, html, "inline script")
	assert.NotRegexp(t, `<style|style="`, html, "inline style")
	assert.NotRegexp(t, `(src|href)="(https?:)?//`, html, "a file from another origin")
	assert.NotContains(t, html, authMarker)

	// Same rules as the API: Host allow-list and origin, GET only.
	for _, tc := range []struct {
		q    req
		code int
		msg  string
	}{
		{req{method: "GET", path: "/", host: "evil.example:8053", header: noToken}, 403, "host"},
		{req{method: "GET", path: "/status/app.js", host: "evil.example", header: noToken}, 403, "host"},
		{req{method: "GET", path: "/", header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403, "cross-origin"},
		{req{method: "POST", path: "/", body: "{}"}, 405, "use GET"},
		{req{method: "PUT", path: "/status/app.js", body: "{}"}, 405, "use GET"},
		{req{method: "GET", path: "/?x=1"}, 400, "unknown query parameter"},
		{req{method: "GET", path: "/status/"}, 404, "no endpoint"},
		{req{method: "GET", path: "/status/nosuch.js", header: noToken}, 401, "token"},
	} {
		w := tc.q.do(s)
		assert.Equal(t, tc.code, w.Code, "%s %s: %s", tc.q.method, tc.q.path, w.Body.String())
		assert.Contains(t, errorOf(t, w), tc.msg, "%s %s", tc.q.method, tc.q.path)
	}
}

// TestStatusPageReadOnly reads the page's script: the only request it
// makes is a GET of the status, and the token goes in a header only.
func TestStatusPageReadOnly(t *testing.T) {
	b, err := statusFiles.ReadFile("status/app.js")
	require.NoError(t, err)
	js := string(b)
	assert.Equal(t, 1, strings.Count(js, "fetch("), "one fetch in app.js")
	assert.Contains(t, js, `fetch("/v1/status", { method: "GET"`)
	assert.NotRegexp(t, `(?i)\b(POST|PUT|DELETE|PATCH)\b|XMLHttpRequest|sendBeacon|EventSource|WebSocket|\.submit\(`, js)
	assert.NotRegexp(t, `innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function`, js, "data is written as text only")
	assert.NotRegexp(t, `localStorage|document\.cookie|[?&]token=`, js, "the token stays in sessionStorage and a header")
}

func TestStatusJSON(t *testing.T) {
	s, sw := newServer(t)
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		_, err := sw.Apply(ctx, state.Update{Weights: map[string]uint64{"blue": uint64(100 - i), "green": uint64(i)}, Source: state.SourceAPI, Remote: "192.0.2.99:1234", Reason: fmt.Sprintf("change %d", i)})
		require.NoError(t, err)
	}

	w := req{method: "GET", path: statusPath, header: map[string]string{"Authorization": ""}}.do(s)
	assert.Equal(t, http.StatusUnauthorized, w.Code, "the status needs the token")
	assert.NotContains(t, w.Body.String(), "example.org")

	w = req{method: "GET", path: statusPath}.do(s)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	assert.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	etag := w.Header().Get("ETag")
	assert.Regexp(t, `^"[0-9a-f]{24}"$`, etag)
	assert.NotContains(t, w.Body.String(), "192.0.2.99", "no client address on the page")

	body := decode[StatusBody](t, w)
	require.Len(t, body.Switches, 1)
	st := body.Switches[0]
	assert.Equal(t, "example.org", st.State.Name)
	assert.Equal(t, uint64(25), st.State.Version)
	assert.Equal(t, map[string]uint64{"blue": 76, "green": 24}, st.State.Weights)
	require.Len(t, st.History, statusHistory, "the last 20 changes")
	assert.Equal(t, "change 24", st.History[0].Reason, "newest first")
	assert.Equal(t, "change 5", st.History[19].Reason)
	assert.Equal(t, 5, body.SampleInterval)

	// Nothing changed: 304, no body, same ETag; also for a list and W/.
	for _, inm := range []string{etag, `"x", ` + etag, "W/" + etag, "*"} {
		w = req{method: "GET", path: statusPath, header: map[string]string{"If-None-Match": inm}}.do(s)
		assert.Equal(t, http.StatusNotModified, w.Code, "If-None-Match: %s", inm)
		assert.Empty(t, w.Body.String())
		assert.Equal(t, etag, w.Header().Get("ETag"))
	}
	// A change: 200 and a new ETag.
	_, err := sw.Apply(ctx, state.Update{Weights: map[string]uint64{"blue": 1, "green": 1}, Source: state.SourceAPI})
	require.NoError(t, err)
	w = req{method: "GET", path: statusPath, header: map[string]string{"If-None-Match": etag}}.do(s)
	require.Equal(t, http.StatusOK, w.Code)
	assert.NotEqual(t, etag, w.Header().Get("ETag"))
	assert.Equal(t, map[string]uint64{"blue": 1, "green": 1}, decode[StatusBody](t, w).Switches[0].State.Weights)

	for _, tc := range []struct {
		q    req
		code int
	}{
		{req{method: "POST", path: statusPath, body: "{}"}, 405},
		{req{method: "GET", path: statusPath + "?switch=x"}, 400},
		{req{method: "GET", path: statusPath, host: "evil.example"}, 403},
	} {
		w := tc.q.do(s)
		assert.Equal(t, tc.code, w.Code, "%s %s", tc.q.method, tc.q.path)
		errorOf(t, w)
	}
}

// TestStatusOverLoopback runs a real listener: the page, 304s on the wire,
// and the sampler started and stopped with the server.
func TestStatusOverLoopback(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	s := New(addr, "")
	s.Add(newSwitch(t, "loop.example", nil))
	require.NoError(t, s.Start())
	defer s.Stop()
	require.NotNil(t, s.stopSample, "the sampler runs with the listener")

	get := func(path, inm string) *http.Response {
		r, err := http.NewRequest("GET", "http://"+addr+path, nil)
		require.NoError(t, err)
		if inm != "" {
			r.Header.Set("If-None-Match", inm)
		}
		resp, err := http.DefaultClient.Do(r)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := get("/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, pageCSP, resp.Header.Get("Content-Security-Policy"))
	b, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(b), `<script src="/status/app.js" defer></script>`)

	resp = get(statusPath, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	etag := resp.Header.Get("ETag")
	var body StatusBody
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Len(t, body.Switches, 1)
	assert.Equal(t, "loop.example", body.Switches[0].State.Name)

	resp = get(statusPath, etag)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	b, _ = io.ReadAll(resp.Body)
	assert.Empty(t, b)

	require.NoError(t, s.Stop())
	assert.Nil(t, s.stopSample, "the sampler stops with the listener")
}

// fakeGather serves answers_total series from a map switch/pool/server →
// value.
type fakeGather map[[3]string]float64

func (f fakeGather) gather() ([]*dto.MetricFamily, error) {
	mf := &dto.MetricFamily{Name: new(answersMetric), Type: dto.MetricType_COUNTER.Enum()}
	for k, v := range f {
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label: []*dto.LabelPair{
				{Name: new("pool"), Value: new(k[1])},
				{Name: new("server"), Value: new(k[2])},
				{Name: new("switch"), Value: new(k[0])},
			},
			Counter: &dto.Counter{Value: new(v)},
		})
	}
	other := &dto.MetricFamily{Name: new("coredns_dns_requests_total"), Type: dto.MetricType_COUNTER.Enum(),
		Metric: []*dto.Metric{{Counter: &dto.Counter{Value: new(1e6)}}}}
	return []*dto.MetricFamily{other, mf}, nil
}

func TestSampler(t *testing.T) {
	sw := newSwitch(t, "sample.example", nil)
	other := newSwitch(t, "other.example", nil)
	f := fakeGather{}
	sm := &sampler{gather: f.gather, series: map[string]*series{}}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * sampleInterval) }

	f[[3]string{"sample.example", "blue", "dns://:53"}] = 100
	f[[3]string{"sample.example", "green", "dns://:53"}] = 10
	f[[3]string{"sample.example", "_base", "dns://:53"}] = 5000
	sm.sample(at(0), []*state.Switch{sw})
	assert.Empty(t, sm.samples("sample.example"), "the first sample is the baseline")

	// Summed over servers; base answers are not a pool's.
	f[[3]string{"sample.example", "blue", "dns://:53"}] = 190
	f[[3]string{"sample.example", "blue", "dns://:1053"}] = 20
	f[[3]string{"sample.example", "green", "dns://:53"}] = 40
	f[[3]string{"sample.example", "_base", "dns://:53"}] = 9000
	sm.sample(at(1), []*state.Switch{sw})
	// A second server's sampler during a reload overlap: skipped.
	f[[3]string{"sample.example", "green", "dns://:53"}] = 45
	sm.sample(at(1).Add(time.Second), []*state.Switch{sw})
	got := sm.samples("sample.example")
	require.Len(t, got, 1)
	assert.Equal(t, Sample{At: at(1), Counts: map[string]uint64{"blue": 110, "green": 30}}, got[0])

	// A total that went down (a counter started again) counts from zero.
	f[[3]string{"sample.example", "green", "dns://:53"}] = 3
	sm.sample(at(2), []*state.Switch{sw})
	got = sm.samples("sample.example")
	require.Len(t, got, 2)
	assert.Equal(t, map[string]uint64{"blue": 0, "green": 3}, got[1].Counts)

	// Hours of samples keep at most a window's worth, the newest.
	for i := 3; i < 3+4*3600/5; i++ {
		f[[3]string{"sample.example", "blue", "dns://:53"}] += 7
		sm.sample(at(i), []*state.Switch{sw, other})
	}
	last := 3 + 4*3600/5 - 1
	got = sm.samples("sample.example")
	require.Len(t, got, maxSamples, "15 minutes of 5 s samples, both ends included")
	assert.Equal(t, at(last), got[len(got)-1].At)
	assert.Equal(t, at(last-maxSamples+1), got[0].At)
	assert.Equal(t, map[string]uint64{"blue": 7, "green": 0}, got[len(got)-1].Counts)
	assert.Len(t, sm.samples("other.example"), maxSamples)
	assert.LessOrEqual(t, cap(sm.series["sample.example"].samples), 2*maxSamples, "the buffer does not grow")

	// A switch no longer sampled is forgotten after a window.
	sm.sample(at(last).Add(sampleWindow+sampleInterval), []*state.Switch{sw})
	assert.Empty(t, sm.samples("other.example"))
	assert.NotContains(t, sm.series, "other.example")
	assert.Len(t, sm.samples("sample.example"), 1, "one sample after a long gap")
}

// TestSamplerReadsProcessCounters checks the sampler's metric name against
// the default registry, where the plugin registers answers_total.
func TestSamplerReadsProcessCounters(t *testing.T) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: answersMetric, Help: "test"}, []string{"server", "switch", "pool"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	sw := newSwitch(t, "reg.example", nil)
	sm := &sampler{gather: reg.Gather, series: map[string]*series{}}
	c.WithLabelValues("dns://:53", "reg.example", "blue").Add(3)
	t0 := time.Now()
	sm.sample(t0, []*state.Switch{sw})
	c.WithLabelValues("dns://:53", "reg.example", "blue").Add(4)
	c.WithLabelValues("dns://:53", "reg.example", "green").Add(2)
	sm.sample(t0.Add(sampleInterval), []*state.Switch{sw})
	got := sm.samples("reg.example")
	require.Len(t, got, 1)
	assert.Equal(t, map[string]uint64{"blue": 4, "green": 2}, got[0].Counts)
	assert.Regexp(t, regexp.MustCompile(`^coredns_bluegreen_`), answersMetric)
}
