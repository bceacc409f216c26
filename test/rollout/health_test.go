package rollout

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/test/harness"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bgServer is the built CoreDNS with one bluegreen switch (example.org),
// its admin API and a prometheus endpoint, all on loopback.
type bgServer struct {
	p       *harness.Proc
	dir     string
	dns     string
	admin   string
	metrics string
}

// startBG runs the binary in dir (zone files written there unless present)
// with lines added to the bluegreen block.
func startBG(t *testing.T, dir string, lines ...string) *bgServer {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "base.db")); err != nil {
		harness.WriteZones(t, dir)
	}
	port, aport, mport := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	s := &bgServer{
		dir:     dir,
		dns:     fmt.Sprintf("127.0.0.1:%d", port),
		admin:   fmt.Sprintf("127.0.0.1:%d", aport),
		metrics: fmt.Sprintf("127.0.0.1:%d", mport),
	}
	s.p = harness.Start(t, dir, fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    prometheus %s
    bluegreen {
        base base.db
        pool blue blue.db
        pool green green.db
        ttl 1 1
        admin %s
        %s
    }
}
`, port, s.metrics, s.admin, strings.Join(lines, "\n        ")))
	s.wait()
	return s
}

// wait waits for the DNS and admin listeners.
func (s *bgServer) wait() {
	s.p.WaitDNS(s.dns, "www.example.org", 20*time.Second)
	s.p.WaitHTTP(s.url("/healthz"), 10*time.Second)
}

func (s *bgServer) url(path string) string { return "http://" + s.admin + path }

// switchView is the part of the admin API's state object these tests read.
type switchView struct {
	Version   uint64            `json:"version"`
	UpdatedAt time.Time         `json:"updated_at"`
	Weights   map[string]uint64 `json:"weights"`
	FailOpen  bool              `json:"fail_open"`
	Pools     []struct {
		Name            string `json:"name"`
		Weight          uint64 `json:"weight"`
		EffectiveWeight uint64 `json:"effective_weight"`
		Healthy         bool   `json:"healthy"`
		Health          *struct {
			Healthy bool   `json:"healthy"`
			Detail  string `json:"detail"`
		} `json:"health"`
	} `json:"pools"`
	Rollout *struct {
		Step         int               `json:"step"`
		State        string            `json:"state"`
		Paused       bool              `json:"paused"`
		Reason       string            `json:"reason"`
		StartedAt    time.Time         `json:"started_at"`
		PausedAt     *time.Time        `json:"paused_at"`
		NextChangeAt *time.Time        `json:"next_change_at"`
		Before       map[string]uint64 `json:"before"`
	} `json:"rollout"`
}

// pool returns the named pool's entry.
func (v switchView) pool(name string) (healthy bool, effective uint64) {
	for _, p := range v.Pools {
		if p.Name == name {
			return p.Healthy, p.EffectiveWeight
		}
	}
	return false, 0
}

func (s *bgServer) state(t *testing.T) switchView {
	t.Helper()
	code, body := harness.HTTP(t, http.MethodGet, s.url("/v1/switches/example.org"), "")
	require.Equal(t, http.StatusOK, code, body)
	var v switchView
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

// change is one history entry.
type change struct {
	Time   time.Time         `json:"time"`
	Source string            `json:"source"`
	From   map[string]uint64 `json:"from"`
	To     map[string]uint64 `json:"to"`
	Reason string            `json:"reason"`
}

// history returns the audit log, newest first.
func (s *bgServer) history(t *testing.T) []change {
	t.Helper()
	code, body := harness.HTTP(t, http.MethodGet, s.url("/v1/switches/example.org/history"), "")
	require.Equal(t, http.StatusOK, code, body)
	var h []change
	require.NoError(t, json.Unmarshal([]byte(body), &h), body)
	return h
}

// post sends a write to the admin API and requires a 200.
func (s *bgServer) post(t *testing.T, method, path, body string) switchView {
	t.Helper()
	code, resp := harness.HTTP(t, method, s.url(path), body)
	require.Equal(t, http.StatusOK, code, "%s %s %s: %s", method, path, body, resp)
	var v switchView
	require.NoError(t, json.Unmarshal([]byte(resp), &v), resp)
	return v
}

// gauge returns the value of the sample of metric whose labels include
// every label given (as `name="value"`), and whether there is one.
func (s *bgServer) gauge(t *testing.T, metric string, labels ...string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + s.metrics + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		require.NoError(t, err, line)
		return v, true
	}
	require.NoError(t, sc.Err())
	return 0, false
}

func (s *bgServer) poolHealthy(t *testing.T, pool string) float64 {
	t.Helper()
	v, ok := s.gauge(t, "coredns_bluegreen_pool_healthy", `switch="example.org"`, `pool="`+pool+`"`)
	require.True(t, ok, "no coredns_bluegreen_pool_healthy sample for %s", pool)
	return v
}

// samples is how many client subnets a share measurement asks as.
const samples = 2000

// requireShares asks as samples distinct client subnets (ECS; the same
// subnets every time) and requires each to get exactly the pool the spec's
// formula gives it under the effective weights blue and green; it returns
// the counts per pool.
func (s *bgServer) requireShares(t *testing.T, blue, green uint64) map[string]int {
	t.Helper()
	return harness.RequireShares(t, s.dns, "example.org", harness.Weights{"blue": blue, "green": green}, samples)
}

// healthEndpoint is an HTTP health check target the test turns on and off.
type healthEndpoint struct {
	srv     *httptest.Server
	failing atomic.Bool
	hits    atomic.Int64
}

func newHealthEndpoint(t *testing.T) *healthEndpoint {
	t.Helper()
	h := &healthEndpoint{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if h.failing.Load() {
			http.Error(w, "failing on purpose", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// check returns the health line probing h for pool.
func (h *healthEndpoint) check(pool string) string {
	return fmt.Sprintf("health %s %s/healthz interval 200ms timeout 200ms fails 2 passes 2", pool, h.srv.URL)
}

// waitHealthy waits until the API shows pool's health as want.
func (s *bgServer) waitHealthy(t *testing.T, pool string, want bool) switchView {
	t.Helper()
	var v switchView
	require.Eventually(t, func() bool {
		v = s.state(t)
		h, _ := v.pool(pool)
		return h == want
	}, 10*time.Second, 50*time.Millisecond, "pool %s did not turn healthy=%t", pool, want)
	return v
}

// requireProbed waits until h has been probed a few times.
func requireProbed(t *testing.T, h *healthEndpoint) {
	t.Helper()
	require.Eventually(t, func() bool { return h.hits.Load() >= 3 }, 10*time.Second, 20*time.Millisecond,
		"the health endpoint was not probed")
}

// A failing green check moves green's share to blue; the state, the history
// (source health) and the pool_healthy metric say so; recovery brings the
// share back.
func TestHealthMovesShare(t *testing.T) {
	green := newHealthEndpoint(t)
	s := startBG(t, t.TempDir(), "weights blue 50 green 50", green.check("green"))
	requireProbed(t, green)

	before := s.requireShares(t, 50, 50)
	t.Logf("healthy: %v", before)
	assert.Equal(t, 1.0, s.poolHealthy(t, "green"))
	assert.Equal(t, 1.0, s.poolHealthy(t, "blue"))

	green.failing.Store(true)
	failedAt := time.Now()
	v := s.waitHealthy(t, "green", false)
	t.Logf("green unhealthy after %s (interval 200ms, fails 2)", time.Since(failedAt))
	_, eff := v.pool("green")
	assert.Zero(t, eff, "an unhealthy pool's effective weight is 0")
	assert.Equal(t, map[string]uint64{"blue": 50, "green": 50}, v.Weights, "the configured weights are unchanged")
	assert.False(t, v.FailOpen, "blue is healthy: no fail open")
	for _, p := range v.Pools {
		if p.Name == "green" {
			require.NotNil(t, p.Health, "a probed pool shows its probe state")
			assert.Contains(t, p.Health.Detail, "503", "the detail names the failure")
		}
	}

	during := s.requireShares(t, 50, 0)
	assert.Equal(t, map[string]int{"blue": samples}, during, "green's share moves to blue")
	assert.Equal(t, 0.0, s.poolHealthy(t, "green"), "pool_healthy goes 0")
	assert.Equal(t, 1.0, s.poolHealthy(t, "blue"))

	h := s.history(t)
	require.NotEmpty(t, h)
	assert.Equal(t, "health", h[0].Source, "the newest history entry is the health transition: %+v", h[0])
	assert.Contains(t, h[0].Reason, "green")
	assert.Contains(t, h[0].Reason, "unhealthy")

	green.failing.Store(false)
	s.waitHealthy(t, "green", true)
	after := s.requireShares(t, 50, 50)
	assert.Equal(t, before, after, "recovery brings the same clients back to green")
	assert.Equal(t, 1.0, s.poolHealthy(t, "green"), "pool_healthy goes back to 1")
	h = s.history(t)
	assert.Equal(t, "health", h[0].Source)
	assert.Contains(t, h[0].Reason, "green healthy")
}

// With every weighted pool unhealthy the configured weights apply (fail
// open), shown in the state and the metric.
func TestHealthFailOpen(t *testing.T) {
	blue, green := newHealthEndpoint(t), newHealthEndpoint(t)
	s := startBG(t, t.TempDir(), "weights blue 50 green 50", blue.check("blue"), green.check("green"))
	requireProbed(t, blue)
	requireProbed(t, green)
	before := s.requireShares(t, 50, 50)

	// Blue alone unhealthy: everything on green, not failing open.
	blue.failing.Store(true)
	v := s.waitHealthy(t, "blue", false)
	assert.False(t, v.FailOpen)
	assert.Equal(t, map[string]int{"green": samples}, s.requireShares(t, 0, 50))

	// Both unhealthy: the configured 50/50 apply again.
	green.failing.Store(true)
	v = s.waitHealthy(t, "green", false)
	assert.True(t, v.FailOpen, "every weighted pool unhealthy: fail_open")
	for _, p := range v.Pools {
		assert.False(t, p.Healthy, "pool %s", p.Name)
		assert.Equal(t, p.Weight, p.EffectiveWeight, "failing open, pool %s gets its configured weight", p.Name)
	}
	assert.Equal(t, before, s.requireShares(t, 50, 50), "failing open serves the configured weights")
	fo, ok := s.gauge(t, "coredns_bluegreen_fail_open", `switch="example.org"`)
	assert.True(t, ok && fo == 1, "coredns_bluegreen_fail_open is 1 (got %v, %t)", fo, ok)
	assert.Equal(t, 0.0, s.poolHealthy(t, "blue"))
	assert.Equal(t, 0.0, s.poolHealthy(t, "green"))
	assert.Contains(t, s.p.Output(), "failing open", "failing open is logged")

	// Green back: no longer failing open, everything on green.
	green.failing.Store(false)
	v = s.waitHealthy(t, "green", true)
	assert.False(t, v.FailOpen)
	assert.Equal(t, map[string]int{"green": samples}, s.requireShares(t, 0, 50))
	fo, _ = s.gauge(t, "coredns_bluegreen_fail_open", `switch="example.org"`)
	assert.Equal(t, 0.0, fo)
}

// A rollout started with abort_on_unhealthy is aborted when green's check
// fails: the state says aborted and why, the weights from before the
// rollout are back, and DNS answers from blue.
func TestHealthAbortsRollout(t *testing.T) {
	green := newHealthEndpoint(t)
	s := startBG(t, t.TempDir(), "weights blue 100 green 0", green.check("green"))
	requireProbed(t, green)

	// Weights other than the seed, so restoring them is visible.
	s.post(t, http.MethodPut, "/v1/switches/example.org/weights", `{"weights":{"blue":90,"green":10}}`)
	pre := s.requireShares(t, 90, 10)

	v := s.post(t, http.MethodPost, "/v1/switches/example.org/rollout",
		`{"steps":[{"weights":{"blue":50,"green":50},"hold":"30s"},{"weights":{"blue":0,"green":100},"hold":"30s"}],"abort_on_unhealthy":true}`)
	require.NotNil(t, v.Rollout)
	require.Equal(t, "running", v.Rollout.State)
	s.requireShares(t, 50, 50) // the rollout's first step

	green.failing.Store(true)
	require.Eventually(t, func() bool {
		v = s.state(t)
		return v.Rollout != nil && v.Rollout.State != "running"
	}, 10*time.Second, 50*time.Millisecond, "the rollout was not aborted")
	assert.Equal(t, "aborted", v.Rollout.State)
	assert.Contains(t, v.Rollout.Reason, "green", "the reason names the unhealthy pool")
	assert.Equal(t, map[string]uint64{"blue": 90, "green": 10}, v.Weights, "the weights from before the rollout are restored")
	assert.Equal(t, map[string]uint64{"blue": 90, "green": 10}, v.Rollout.Before)
	assert.Equal(t, map[string]int{"blue": samples}, s.requireShares(t, 90, 0), "DNS answers from blue")

	h := s.history(t)
	require.NotEmpty(t, h)
	assert.Equal(t, "health", h[0].Source, "%+v", h[0])
	assert.Contains(t, h[0].Reason, "rollout aborted")
	assert.Contains(t, h[0].Reason, "green")
	assert.Equal(t, map[string]uint64{"blue": 90, "green": 10}, h[0].To)

	// While green is unhealthy, a rollout with abort_on_unhealthy that
	// gives it a weight is refused rather than started (it would not be
	// aborted: health aborts on a transition).
	code, body := harness.HTTP(t, http.MethodPost, s.url("/v1/switches/example.org/rollout"),
		`{"steps":[{"weights":{"blue":0,"green":100},"hold":"0s"}],"abort_on_unhealthy":true}`)
	assert.Equal(t, http.StatusConflict, code, body)
	assert.Contains(t, body, "pool green is unhealthy")
	assert.Equal(t, "aborted", s.state(t).Rollout.State, "nothing started")

	// The aborted rollout stays aborted when green recovers; the restored
	// 90/10 then serves the same clients as before the rollout.
	green.failing.Store(false)
	s.waitHealthy(t, "green", true)
	v = s.state(t)
	assert.Equal(t, "aborted", v.Rollout.State)
	assert.Equal(t, pre, s.requireShares(t, 90, 10))
}

// A tcp:// check whose listener closes marks the pool unhealthy; listening
// again makes it healthy. The port is reserved for this test binary
// (harness.FreePort, below the ephemeral range), so listening on it again
// cannot lose a race to another process: if it fails, the test does.
func TestHealthTCP(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	var accepted atomic.Int64
	serve := func(l net.Listener) {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}
	go serve(l)
	t.Cleanup(func() { l.Close() })

	s := startBG(t, t.TempDir(), "weights blue 50 green 50",
		fmt.Sprintf("health green tcp://%s interval 200ms timeout 200ms fails 2 passes 2", addr))
	require.Eventually(t, func() bool { return accepted.Load() >= 2 }, 10*time.Second, 20*time.Millisecond,
		"the tcp check did not connect")
	v := s.state(t)
	healthy, _ := v.pool("green")
	require.True(t, healthy)
	before := s.requireShares(t, 50, 50)

	require.NoError(t, l.Close())
	v = s.waitHealthy(t, "green", false)
	_, eff := v.pool("green")
	assert.Zero(t, eff)
	assert.Equal(t, map[string]int{"blue": samples}, s.requireShares(t, 50, 0))
	assert.Equal(t, 0.0, s.poolHealthy(t, "green"))

	l2, err := net.Listen("tcp", addr)
	require.NoError(t, err, "listening on the reserved port %s again", addr)
	t.Cleanup(func() { l2.Close() })
	go serve(l2)
	s.waitHealthy(t, "green", true)
	assert.Equal(t, before, s.requireShares(t, 50, 50))
}
