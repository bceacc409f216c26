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
	"sync/atomic"
	"testing"
	"time"

	coretest "github.com/coredns/coredns/test"

	_ "github.com/bluegreen-dns/bluegreen/internal/build" // Standard plugins plus bluegreen.
	"github.com/bluegreen-dns/bluegreen/internal/logcapture"
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

// probeRate returns the probes per second target gets over d.
func probeRate(hits *atomic.Int64, d time.Duration) float64 {
	before := hits.Load()
	time.Sleep(d)
	return float64(hits.Load()-before) / d.Seconds()
}

// TestProbesReload: 50 Corefile reloads of a server with health probes
// leave no probe goroutine behind (the goroutine count returns to its
// level after the first start, and the probe rate stays that of one
// prober), and the final shutdown stops the probes.
func TestProbesReload(t *testing.T) {
	const reloads = 50
	dir := probeZones(t)
	blueSrv, blueHits := probeTarget(t)
	greenSrv, greenHits := probeTarget(t)
	const name = "probes-reload"
	t.Cleanup(func() { state.Forget(name) })
	// Two checks on two pools, fast, so a leaked prober shows in the rate
	// as well as in the goroutine count.
	corefile := fmt.Sprintf(`example.org:0 {
	bluegreen {
		pool blue %s/blue.db
		pool green %s/green.db
		weights blue 50 green 50
		name %s
		reload 0
		admin off
		health blue %s/healthz interval 20ms timeout 1s
		health green %s/healthz interval 20ms timeout 1s
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
	require.Eventually(t, func() bool { return blueHits.Load() > 2 && greenHits.Load() > 2 },
		5*time.Second, 10*time.Millisecond, "the probes run after startup")
	// One probe every 20ms per check: about 50/s each.
	rate1 := probeRate(greenHits, 500*time.Millisecond)
	require.Greater(t, rate1, 10.0, "one prober probes about 50 times a second")

	// The baseline: settle after the first start (HTTP keep-alives are off
	// in the prober; the test server's idle connections close with it).
	settle()
	base := runtime.NumGoroutine()

	for i := range reloads {
		next, err := inst.Restart(coretest.NewInput(corefile))
		require.NoError(t, err, "reload %d", i)
		inst = next
	}
	// Probes still run after the reloads...
	before := greenHits.Load()
	require.Eventually(t, func() bool { return greenHits.Load() > before+2 }, 5*time.Second, 10*time.Millisecond,
		"the probes run after %d reloads", reloads)
	// ... at the rate of one prober, not of 51.
	rate := probeRate(greenHits, 500*time.Millisecond)
	assert.Less(t, rate, 3*rate1, "after %d reloads the green check is probed %.0f times a second, one prober did %.0f", reloads, rate, rate1)

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

	// The final shutdown stops every probe.
	inst.Stop()
	inst.ShutdownCallbacks()
	stopped = true
	time.Sleep(100 * time.Millisecond) // a probe in flight may still land
	b, g := blueHits.Load(), greenHits.Load()
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, b, blueHits.Load(), "no blue probe after the final shutdown")
	assert.Equal(t, g, greenHits.Load(), "no green probe after the final shutdown")
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
	var sw *state.Switch
	require.Eventually(t, func() bool {
		sw = state.Lookup(name)
		return sw != nil && !sw.Healthy("green")
	}, 5*time.Second, 10*time.Millisecond, "green turns unhealthy")

	// The reload's bluegreen block has no health check; cache's fails.
	_, err = inst.Restart(coretest.NewInput(corefile("", "cache {\n\t\tnonsense\n\t}")))
	require.Error(t, err, "the reload must fail")

	time.Sleep(200 * time.Millisecond)
	assert.False(t, sw.Healthy("green"), "after the failed reload green is still unhealthy")
	v := sw.View()
	require.Len(t, v.Pools, 2)
	assert.Zero(t, v.Pools[1].EffectiveWeight, "green's effective weight stays 0")

	failing.Store(false)
	assert.Eventually(t, func() bool { return sw.Healthy("green") }, 5*time.Second, 10*time.Millisecond,
		"the running prober's recovery counts after the failed reload")
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
	const name = "probes-late-failed-reload"
	t.Cleanup(func() { state.Forget(name) })
	corefile := func(target, extra string) string {
		return fmt.Sprintf(`example.org:0 {
	bluegreen {
		pool blue %s/blue.db
		pool green %s/green.db
		name %s
		reload 100ms
		admin off
		health green %s interval 20ms timeout 1s
	}
}
%s`, dir, dir, name, target, extra)
	}

	logs := logcapture.Start(t)
	inst, err := coretest.CoreDNSServer(corefile(oldSrv.URL, ""))
	require.NoError(t, err)
	t.Cleanup(func() {
		inst.Stop()
		inst.ShutdownCallbacks()
	})
	require.Eventually(t, func() bool { return oldHits.Load() > 2 }, 5*time.Second, 10*time.Millisecond)

	port := busy.Addr().(*net.TCPAddr).Port
	_, err = inst.Restart(coretest.NewInput(corefile(newSrv.URL, fmt.Sprintf("example.net:%d {\n\tbind 127.0.0.1\n\twhoami\n}\n", port))))
	// Binding fails after the startup hooks ran: the case under test.
	require.ErrorContains(t, err, "address already in use", "the reload must fail: port %d is taken", port)

	time.Sleep(100 * time.Millisecond) // a probe in flight may still land
	n := newHits.Load()
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, n, newHits.Load(), "the failed Corefile's check goes on probing")
	before := oldHits.Load()
	assert.Eventually(t, func() bool { return oldHits.Load() > before+2 }, 5*time.Second, 10*time.Millisecond,
		"the running Corefile's check probes again")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "blue.db"), []byte(probeSOA+"www 60 IN A 10.1.0.2\n"), 0o600))
	reloaded := "Reloaded zone files of switch " + name
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), reloaded) }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, 1, strings.Count(logs.String(), reloaded), "one loader checks the files:\n%s", logs.String())
}
