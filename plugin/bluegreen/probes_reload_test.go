package bluegreen_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coretest "github.com/coredns/coredns/test"

	_ "github.com/bluegreen-dns/bluegreen/internal/build" // Standard plugins plus bluegreen.
	"github.com/bluegreen-dns/bluegreen/internal/logcapture"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/health"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// probeSOA starts the pool files of probeZones.
const probeSOA = "@ 3600 IN SOA ns1 hostmaster 2026010101 7200 3600 1209600 120\n"

// probeZones writes blue.db and green.db (www at 10.1.0.1 and 10.2.0.1)
// into a new directory and returns it.
func probeZones(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{
		"blue.db":  probeSOA + "www 60 IN A 10.1.0.1\n",
		"green.db": probeSOA + "www 60 IN A 10.2.0.1\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600))
	}
	return dir
}

// probeTarget is an HTTP health endpoint that counts the probes it gets.
func probeTarget(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// probeTicker paces one check for the test: each step runs one probe
// round, so the tests count probes per round instead of per second.
type probeTicker struct {
	interval time.Duration
	c        chan time.Time
	rounds   atomic.Int64 // rounds finished: the check called C to wait
	changed  chan struct{}
	stopped  atomic.Bool
}

func (k *probeTicker) C() <-chan time.Time {
	k.rounds.Add(1)
	select {
	case k.changed <- struct{}{}:
	default:
	}
	return k.c
}

func (k *probeTicker) Stop() { k.stopped.Store(true) }

// waitRounds waits until the check has finished n probe rounds, reports
// included, and waits for its next tick.
func (k *probeTicker) waitRounds(t *testing.T, n int64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for k.rounds.Load() < n {
		select {
		case <-k.changed:
		case <-deadline:
			t.Fatalf("the check (interval %s) finished %d probe rounds, expected %d", k.interval, k.rounds.Load(), n)
		}
	}
}

// step runs one more probe round (after the first, at start) and waits
// until it is done.
func (k *probeTicker) step(t *testing.T) {
	t.Helper()
	k.waitRounds(t, 1)
	n := k.rounds.Load()
	select {
	case k.c <- time.Now():
	case <-time.After(10 * time.Second):
		t.Fatalf("the check (interval %s) does not wait for a tick", k.interval)
	}
	k.waitRounds(t, n+1)
}

// probeTickers are every ticker the probers made since manualProbes.
type probeTickers struct {
	mu  sync.Mutex
	all []*probeTicker
}

// manualProbes makes the probers of servers started from now on probe once
// at start and then once per step of their tickers.
func manualProbes(t *testing.T) *probeTickers {
	ts := &probeTickers{}
	bluegreen.SetProbeTicker(t, func(d time.Duration) health.Ticker {
		k := &probeTicker{interval: d, c: make(chan time.Time), changed: make(chan struct{}, 1)}
		ts.mu.Lock()
		ts.all = append(ts.all, k)
		ts.mu.Unlock()
		return k
	})
	return ts
}

// made returns how many tickers the probers made.
func (ts *probeTickers) made() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.all)
}

// running returns the tickers of the checks that run (a check stops its
// ticker when it ends), requiring exactly one per interval given, in that
// order.
func (ts *probeTickers) running(t *testing.T, intervals ...time.Duration) []*probeTicker {
	t.Helper()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var live []*probeTicker
	var got []time.Duration
	for _, k := range ts.all {
		if !k.stopped.Load() {
			live = append(live, k)
			got = append(got, k.interval)
		}
	}
	out := make([]*probeTicker, len(intervals))
	for i, d := range intervals {
		for _, k := range live {
			if k.interval == d {
				out[i] = k
			}
		}
		require.NotNil(t, out[i], "expected a running check with interval %s; running: %v", d, got)
	}
	require.Len(t, live, len(intervals), "expected running checks with intervals %v, got %v", intervals, got)
	return out
}

// requireOneProbe steps k once and requires exactly one more probe at
// want's target and none at the others'.
func requireOneProbe(t *testing.T, k *probeTicker, want *atomic.Int64, others ...*atomic.Int64) {
	t.Helper()
	n := want.Load()
	was := make([]int64, len(others))
	for i, o := range others {
		was[i] = o.Load()
	}
	k.step(t)
	assert.Equal(t, n+1, want.Load(), "expected one probe per round")
	for i, o := range others {
		assert.Equal(t, was[i], o.Load(), "expected no probe of another target in the round")
	}
}

// TestProbesReload: 50 Corefile reloads of a server with health probes
// leave no probe goroutine behind (exactly one prober's checks run, and the
// goroutine count returns to its level after the first start), and the
// final shutdown stops the probes.
func TestProbesReload(t *testing.T) {
	const reloads = 50
	dir := probeZones(t)
	blueSrv, blueHits := probeTarget(t)
	greenSrv, greenHits := probeTarget(t)
	ticks := manualProbes(t)
	const name = "probes-reload"
	t.Cleanup(func() { state.Forget(name) })
	// The intervals tell the checks' tickers apart; the test steps them.
	const blueEvery, greenEvery = time.Second, 2 * time.Second
	corefile := fmt.Sprintf(`example.org:0 {
	bluegreen {
		pool blue %s/blue.db
		pool green %s/green.db
		weights blue 50 green 50
		name %s
		reload 0
		admin off
		health blue %s/healthz interval 1s timeout 1s
		health green %s/healthz interval 2s timeout 1s
	}
}
`, dir, dir, name, blueSrv.URL, greenSrv.URL)

	inst, err := coretest.CoreDNSServer(corefile)
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			inst.Stop()
			inst.ShutdownCallbacks()
		}
	})
	checks := ticks.running(t, blueEvery, greenEvery)
	for _, k := range checks {
		k.waitRounds(t, 1) // the probe at start
	}
	requireOneProbe(t, checks[0], blueHits, greenHits)
	requireOneProbe(t, checks[1], greenHits, blueHits)

	// The baseline: settle after the first start (HTTP keep-alives are off
	// in the prober; the test server's idle connections close with it).
	settle()
	base := runtime.NumGoroutine()

	for i := range reloads {
		next, err := inst.Restart(coretest.NewInput(corefile))
		require.NoError(t, err, "reload %d", i)
		inst = next
	}
	require.Equal(t, 2*(reloads+1), ticks.made(), "expected each instance's prober to start its two checks once")
	// One prober's checks still run after the reloads, each probing once
	// a round: a leaked prober would keep its checks running.
	checks = ticks.running(t, blueEvery, greenEvery)
	for _, k := range checks {
		k.waitRounds(t, 1)
	}
	requireOneProbe(t, checks[0], blueHits, greenHits)
	requireOneProbe(t, checks[1], greenHits, blueHits)

	// The goroutine count comes back to the baseline (small slack for the
	// runtime and for connections closing).
	var now int
	ok := assert.Eventually(t, func() bool {
		settle()
		now = runtime.NumGoroutine()
		return now <= base+5
	}, 10*time.Second, 100*time.Millisecond)
	if !ok {
		buf := make([]byte, 1<<20)
		t.Fatalf("expected at most %d goroutines after %d reloads (baseline %d), got %d:\n%s",
			base+5, reloads, base, now, buf[:runtime.Stack(buf, true)])
	}

	// The state outlived the reloads, with both pools healthy.
	sw := state.Lookup(name)
	require.NotNil(t, sw)
	assert.True(t, sw.Healthy("blue"))
	assert.True(t, sw.Healthy("green"))

	// The final shutdown stops every check (and waits for it), so no probe
	// follows it.
	inst.Stop()
	inst.ShutdownCallbacks()
	stopped = true
	ticks.running(t)
	assert.Eventually(t, func() bool {
		settle()
		now = runtime.NumGoroutine()
		return now < base
	}, 10*time.Second, 100*time.Millisecond, "expected fewer goroutines than the running server's %d after the final shutdown, got %d", base, now)
}

// settle lets finished goroutines exit and closes idle connections.
func settle() {
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
}

// TestProbesFailedReload: a reload that drops the health check but fails
// (in a plugin set up after bluegreen) leaves the running instance's
// checks in force: the unhealthy pool stays unhealthy, and its prober's
// reports still count when it recovers.
func TestProbesFailedReload(t *testing.T) {
	dir := probeZones(t)
	var failing atomic.Bool
	failing.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	ticks := manualProbes(t)
	const name = "probes-failed-reload"
	t.Cleanup(func() { state.Forget(name) })
	corefile := func(health, extra string) string {
		return fmt.Sprintf(`example.org:0 {
	bluegreen {
		pool blue %s/blue.db
		pool green %s/green.db
		weights blue 50 green 50
		name %s
		reload 0
		admin off
		%s
	}
	%s
}
`, dir, dir, name, health, extra)
	}
	good := corefile("health green "+srv.URL+" interval 20ms timeout 1s fails 2 passes 2", "")

	inst, err := coretest.CoreDNSServer(good)
	require.NoError(t, err)
	t.Cleanup(func() {
		inst.Stop()
		inst.ShutdownCallbacks()
	})
	sw := state.Lookup(name)
	require.NotNil(t, sw)
	check := ticks.running(t, 20*time.Millisecond)[0]
	check.waitRounds(t, 1)
	assert.True(t, sw.Healthy("green"), "one failure of two")
	check.step(t)
	require.False(t, sw.Healthy("green"), "green turns unhealthy after two failures")

	// The reload's bluegreen block has no health check; cache's fails.
	_, err = inst.Restart(coretest.NewInput(corefile("", "cache {\n\t\tnonsense\n\t}")))
	require.Error(t, err, "the reload must fail")

	// The running check goes on (failing): green stays unhealthy.
	check = ticks.running(t, 20*time.Millisecond)[0]
	check.step(t)
	assert.False(t, sw.Healthy("green"), "after the failed reload green is still unhealthy")
	v := sw.View()
	require.Len(t, v.Pools, 2)
	assert.Zero(t, v.Pools[1].EffectiveWeight, "green's effective weight stays 0")

	failing.Store(false)
	check.step(t)
	assert.False(t, sw.Healthy("green"), "one pass of two")
	check.step(t)
	assert.True(t, sw.Healthy("green"), "the running prober's recovery counts after the failed reload")
}

// TestProbesLateFailedReload: a reload that fails when binding its servers,
// after its startup hooks started its prober and zone loader, leaves no
// second prober or loader behind: the failed Corefile's check stops, the
// running one's goes on, and a changed zone file is reloaded once.
func TestProbesLateFailedReload(t *testing.T) {
	dir := probeZones(t)
	oldSrv, oldHits := probeTarget(t)
	newSrv, newHits := probeTarget(t)
	// A TCP port held without SO_REUSEPORT: the reload cannot bind it.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { busy.Close() })
	ticks := manualProbes(t)
	const name = "probes-late-failed-reload"
	t.Cleanup(func() { state.Forget(name) })
	// The old Corefile's check has interval 20ms, the failed one's 30ms.
	corefile := func(target, interval, extra string) string {
		return fmt.Sprintf(`example.org:0 {
	bluegreen {
		pool blue %s/blue.db
		pool green %s/green.db
		name %s
		reload 100ms
		admin off
		health green %s interval %s timeout 1s
	}
}
%s`, dir, dir, name, target, interval, extra)
	}

	logs := logcapture.Start(t)
	inst, err := coretest.CoreDNSServer(corefile(oldSrv.URL, "20ms", ""))
	require.NoError(t, err)
	t.Cleanup(func() {
		inst.Stop()
		inst.ShutdownCallbacks()
	})
	check := ticks.running(t, 20*time.Millisecond)[0]
	check.waitRounds(t, 1)
	requireOneProbe(t, check, oldHits, newHits)

	port := busy.Addr().(*net.TCPAddr).Port
	_, err = inst.Restart(coretest.NewInput(corefile(newSrv.URL, "30ms", fmt.Sprintf("example.net:%d {\n\tbind 127.0.0.1\n\twhoami\n}\n", port))))
	// Binding fails after the startup hooks ran: the case under test.
	require.ErrorContains(t, err, "address already in use", "the reload must fail: port %d is taken", port)
	require.Greater(t, ticks.made(), 2, "expected the failed Corefile's check to have started")

	// The failed Corefile's check (30ms) has stopped; the running one's
	// (20ms) goes on, probing the old target only.
	check = ticks.running(t, 20*time.Millisecond)[0]
	check.waitRounds(t, 1)
	requireOneProbe(t, check, oldHits, newHits)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "blue.db"), []byte(probeSOA+"www 60 IN A 10.1.0.2\n"), 0o600))
	reloaded := "Reloaded zone files of switch " + name
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), reloaded) }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, 1, strings.Count(logs.String(), reloaded), "one loader checks the files:\n%s", logs.String())
}
