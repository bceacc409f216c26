// Package analysis tests analysed rollouts end to end: the built CoreDNS
// judges a canary by metrics that a real Prometheus server (Debian's
// prometheus, started by the test) scrapes from a small service with
// per-pool request and error counters.
package analysis

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/internal/etcdtest"
	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// Timing of every test here: Prometheus scrapes each second, checks are
// measured each second, and the switch's TTL cap is 1 s.
const (
	scrape   = time.Second
	interval = time.Second
	// slack covers what the bound of the issue leaves out: a scrape's own
	// duration and ingestion, the query and the commit (all on loopback).
	slack = 500 * time.Millisecond
)

// service counts requests and errors per pool, as an application behind
// each pool would, and serves them on /metrics. green fails errShare of
// its requests.
type service struct {
	addr     string
	errShare atomic.Uint64 // math.Float64bits
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

func startService(t *testing.T) *service {
	reg := prometheus.NewRegistry()
	s := &service{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "demo_requests_total", Help: "Requests."}, []string{"pool"}),
		errors:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "demo_errors_total", Help: "Failed requests."}, []string{"pool"}),
	}
	reg.MustRegister(s.requests, s.errors)
	for _, p := range []string{"blue", "green"} {
		s.requests.WithLabelValues(p)
		s.errors.WithLabelValues(p)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	// Traffic: 100 requests per pool every 100 ms.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			share := math.Float64frombits(s.errShare.Load())
			for _, p := range []string{"blue", "green"} {
				s.requests.WithLabelValues(p).Add(100)
			}
			s.errors.WithLabelValues("green").Add(math.Round(100 * share))
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
	return s
}

func (s *service) failGreen(share float64) { s.errShare.Store(math.Float64bits(share)) }

// promServer is a running Prometheus.
type promServer struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startPrometheus runs Prometheus from a temporary directory, scraping
// target every second, and waits until it has scraped it.
func startPrometheus(t *testing.T, target string) *promServer {
	bin := harness.NeedTool(t, "prometheus")
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: %s
  evaluation_interval: %s
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ["%s"]
`, scrape, scrape, target)), 0o644))
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	cmd := exec.Command(bin, "--config.file", conf, "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr, "--log.level", "warn")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	p := &promServer{url: "http://" + addr, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("Prometheus log:\n%s", b)
		}
	})
	// Scraped, and twice, so rate() over the checks' window has two
	// samples.
	p.waitQuery(t, "count(demo_requests_total) > 0", 30*time.Second)
	p.waitQuery(t, "min(count_over_time(demo_requests_total[5m])) >= 2", 10*scrape)
	return p
}

// waitQuery waits until the instant query q has a result.
func (p *promServer) waitQuery(t *testing.T, q string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q)); err == nil {
			var r struct {
				Data struct {
					Result []any `json:"result"`
				} `json:"data"`
			}
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if len(r.Data.Result) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus at %s: no result for %s within %s", p.url, q, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *promServer) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// node is one running CoreDNS with its admin and metrics addresses.
type node struct {
	p              *harness.Proc
	dns, admin, mx string
}

func (n *node) url(path string) string { return "http://" + n.admin + path }

// startNode runs CoreDNS serving example.org with analysis through prom;
// store is a Corefile store line ("" for memory).
func startNode(t *testing.T, prom, store string) *node {
	dir := t.TempDir()
	harness.WriteZones(t, dir)
	port, aport, mport := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	n := &node{dns: fmt.Sprintf("127.0.0.1:%d", port), admin: fmt.Sprintf("127.0.0.1:%d", aport), mx: fmt.Sprintf("127.0.0.1:%d", mport)}
	n.p = harness.Start(t, dir, fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    prometheus %s
    bluegreen {
        base base.db
        pool blue blue.db
        pool green green.db
        weights blue 100 green 0
        ttl 1 1
        admin %s
        %s
        analysis prometheus %s {
            timeout 2s
        }
    }
}
`, port, n.mx, n.admin, store, prom))
	n.p.WaitDNS(n.dns, "www.example.org", 20*time.Second)
	n.p.WaitHTTP(n.url("/healthz"), 10*time.Second)
	return n
}

type view struct {
	Version uint64            `json:"version"`
	Weights map[string]uint64 `json:"weights"`
	Rollout *struct {
		Step     int    `json:"step"`
		State    string `json:"state"`
		Reason   string `json:"reason"`
		Analysis struct {
			Checks []struct {
				Name          string   `json:"name"`
				Passes        int      `json:"passes"`
				Failures      int      `json:"failures"`
				Inconclusives int      `json:"inconclusives"`
				LastValue     *float64 `json:"last_value"`
			} `json:"checks"`
		} `json:"analysis"`
	} `json:"rollout"`
}

type change struct {
	Time   time.Time         `json:"time"`
	Source string            `json:"source"`
	From   map[string]uint64 `json:"from"`
	To     map[string]uint64 `json:"to"`
	Reason string            `json:"reason"`
}

type measurement struct {
	Check  string    `json:"check"`
	Step   int       `json:"step"`
	Index  int64     `json:"index"`
	Time   time.Time `json:"time"`
	Value  *float64  `json:"value"`
	Result string    `json:"result"`
	Detail string    `json:"detail"`
}

func getJSON[T any](t *testing.T, url string) T {
	t.Helper()
	code, body := harness.HTTP(t, http.MethodGet, url, "")
	require.Equal(t, http.StatusOK, code, "GET %s: %s", url, body)
	var v T
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

// waitState polls the switch until its rollout is in state, at most d.
func waitState(t *testing.T, n *node, state string, d time.Duration) view {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v := getJSON[view](t, n.url("/v1/switches/example.org"))
		if v.Rollout != nil && v.Rollout.State == state {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout not %s within %s: %+v", state, d, v.Rollout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const errorRate = `sum(rate(demo_errors_total{pool=\"{{pool}}\"}[3s])) / sum(rate(demo_requests_total{pool=\"{{pool}}\"}[3s]))`

// rolloutBody: 90/10 for hold0, 50/50 for hold1, then 0/100; one check of
// green's error rate (max 5 %) every second.
func rolloutBody(hold0, hold1 string, failureLimit, inconclusiveLimit int) string {
	return fmt.Sprintf(`{"steps":[{"weights":{"blue":90,"green":10},"hold":%q},{"weights":{"blue":50,"green":50},"hold":%q},{"weights":{"blue":0,"green":100}}],
 "analysis":{"interval":%q,"checks":[{"name":"error-rate","query":"%s","pool":"green","max":0.05,"failure_limit":%d,"inconclusive_limit":%d}]}}`,
		hold0, hold1, interval.String(), errorRate, failureLimit, inconclusiveLimit)
}

func startRollout(t *testing.T, n *node, body string) {
	t.Helper()
	code, out := harness.HTTP(t, http.MethodPost, n.url("/v1/switches/example.org/rollout"), body)
	require.Equal(t, http.StatusOK, code, out)
}

func measurements(t *testing.T, n *node) []measurement {
	return getJSON[struct {
		Measurements []measurement `json:"measurements"`
	}](t, n.url("/v1/switches/example.org/rollout/analysis")).Measurements
}

// metric sums the samples of a counter family whose labels include every
// one of match, from n's /metrics.
func metric(t *testing.T, n *node, name string, match ...string) float64 {
	t.Helper()
	code, body := harness.HTTP(t, http.MethodGet, "http://"+n.mx+"/metrics", "")
	require.Equal(t, http.StatusOK, code)
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(line, m)
		}
		if !ok {
			continue
		}
		var v float64
		fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
		sum += v
	}
	return sum
}

// (a) A healthy canary is measured at every step and the rollout completes.
func TestHealthyCanaryCompletes(t *testing.T) {
	svc := startService(t)
	prom := startPrometheus(t, svc.addr)
	n := startNode(t, prom.url, "")
	startRollout(t, n, rolloutBody("3s", "3s", 0, 3))

	// Step 0 holds 3 s; step 1 3 s from when it starts, measured from its
	// start + 1 s; so about 6 s in all. Twice that is a generous bound for
	// a rollout that must complete, not a timing assertion.
	v := waitState(t, n, "completed", 12*time.Second)
	assert.Equal(t, map[string]uint64{"blue": 0, "green": 100}, v.Weights)
	c := v.Rollout.Analysis.Checks[0]
	assert.GreaterOrEqual(t, c.Passes, 2, "at least one pass in each analysed step")
	assert.Zero(t, c.Failures)
	require.NotNil(t, c.LastValue)
	assert.Zero(t, *c.LastValue, "green answered no errors")

	ms := measurements(t, n)
	steps := map[int]bool{}
	for _, m := range ms {
		assert.Equal(t, "pass", m.Result, "%+v", m)
		steps[m.Step] = true
	}
	assert.Equal(t, map[int]bool{0: true, 1: true}, steps, "both held steps measured")
	assert.Equal(t, float64(len(ms)), metric(t, n, "coredns_bluegreen_analysis_measurements_total", `result="pass"`, `check="error-rate"`))
}

// (b) A canary answering 30 % errors is aborted within interval ×
// (failure_limit + 1) plus one scrape interval of the errors starting; the
// weights are those from before the rollout and the history says why.
func TestFailingCanaryAborted(t *testing.T) {
	svc := startService(t)
	prom := startPrometheus(t, svc.addr)
	n := startNode(t, prom.url, "")
	const failureLimit = 1
	startRollout(t, n, rolloutBody("1m", "1m", failureLimit, 3))
	// Let the analysis pass once first, so the errors start mid-step.
	deadline := time.Now().Add(10 * time.Second)
	for len(measurements(t, n)) == 0 {
		require.True(t, time.Now().Before(deadline), "no measurement within 10s")
		time.Sleep(50 * time.Millisecond)
	}
	started := time.Now()
	svc.failGreen(0.3)

	bound := interval*(failureLimit+1) + scrape
	v := waitState(t, n, "aborted", bound+slack+2*time.Second)
	assert.Equal(t, map[string]uint64{"blue": 100, "green": 0}, v.Weights, "the weights from before the rollout")
	h := getJSON[[]change](t, n.url("/v1/switches/example.org/history"))
	require.NotEmpty(t, h)
	assert.Equal(t, "analysis", h[0].Source)
	assert.Equal(t, map[string]uint64{"blue": 100, "green": 0}, h[0].To)
	for _, want := range []string{"rollout aborted", "error-rate", "above max 0.05", "failure_limit 1"} {
		assert.Contains(t, h[0].Reason, want)
	}
	took := h[0].Time.Sub(started)
	assert.LessOrEqual(t, took, bound+slack, "aborted %s after the errors started; bound interval×(failure_limit+1)+scrape = %s (+%s for scrape, query and commit)", took, bound, slack)
	assert.Equal(t, float64(failureLimit+1), metric(t, n, "coredns_bluegreen_analysis_measurements_total", `result="fail"`))
}

// (c) Prometheus stopped mid-step: the measurements turn inconclusive, the
// rollout pauses and never promotes.
func TestPrometheusDownPauses(t *testing.T) {
	svc := startService(t)
	prom := startPrometheus(t, svc.addr)
	n := startNode(t, prom.url, "")
	startRollout(t, n, rolloutBody("2s", "2s", 0, 1))
	deadline := time.Now().Add(10 * time.Second)
	for len(measurements(t, n)) == 0 {
		require.True(t, time.Now().Before(deadline), "no measurement within 10s")
		time.Sleep(50 * time.Millisecond)
	}
	prom.stop()
	stopped := time.Now()

	// inconclusive_limit 1: the second inconclusive measurement pauses.
	v := waitState(t, n, "paused", 2*interval+4*time.Second)
	assert.NotEqual(t, map[string]uint64{"blue": 0, "green": 100}, v.Weights)
	h := getJSON[[]change](t, n.url("/v1/switches/example.org/history"))
	assert.Equal(t, "analysis", h[0].Source)
	assert.Contains(t, h[0].Reason, "rollout paused")
	assert.Contains(t, h[0].Reason, "inconclusive 2 times in a row")
	paused := v

	// Well past every hold: still paused on the same step, never promoted.
	time.Sleep(time.Until(stopped.Add(6 * time.Second)))
	v = getJSON[view](t, n.url("/v1/switches/example.org"))
	assert.Equal(t, "paused", v.Rollout.State)
	assert.Equal(t, paused.Weights, v.Weights)
	assert.Equal(t, paused.Rollout.Step, v.Rollout.Step)
	assert.Equal(t, float64(2), metric(t, n, "coredns_bluegreen_analysis_measurements_total", `result="inconclusive"`))
}

// Two replicas on one etcd: both measure, the record counts each interval
// once, and both show the same measurements and outcome.
func TestReplicasAgree(t *testing.T) {
	svc := startService(t)
	prom := startPrometheus(t, svc.addr)
	etcd := etcdtest.Start(t)
	store := "store etcd " + etcd.Endpoint
	a, b := startNode(t, prom.url, store), startNode(t, prom.url, store)
	startRollout(t, a, rolloutBody("3s", "3s", 0, 3))

	// With a shared store a step counts from its start + MAX (1 s).
	waitState(t, a, "completed", 15*time.Second)
	vb := waitState(t, b, "completed", 2*time.Second)
	assert.Equal(t, map[string]uint64{"blue": 0, "green": 100}, vb.Weights)

	ma, mb := measurements(t, a), measurements(t, b)
	require.NotEmpty(t, ma)
	assert.Equal(t, ma, mb, "both replicas show the same measurements")
	seen := map[string]bool{}
	for _, m := range ma {
		k := fmt.Sprintf("%d/%d", m.Step, m.Index)
		assert.False(t, seen[k], "interval %s counted twice", k)
		seen[k] = true
	}
	counted := metric(t, a, "coredns_bluegreen_analysis_measurements_total", `check="error-rate"`) +
		metric(t, b, "coredns_bluegreen_analysis_measurements_total", `check="error-rate"`)
	assert.Equal(t, float64(len(ma)), counted, "each measurement counted by one replica only")
	assert.Equal(t, vb.Rollout.Analysis.Checks[0].Passes, len(ma))
}
