package health

import (
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) report(pool string, healthy bool, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := pool + " unhealthy"
	if healthy {
		s = pool + " healthy"
	}
	r.events = append(r.events, s)
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func check(t *testing.T, pool, raw string) Check {
	u, err := ParseURL(raw)
	require.NoError(t, err)
	return Check{Pool: pool, URL: u, Interval: 20 * time.Millisecond, Timeout: 2 * time.Second, Fails: 3, Passes: 2}
}

// manualTicker is a check's ticker driven by the test: each tick starts one
// probe round, and rounds counts the rounds finished (the check waiting on C
// again), so a test steps through probes without sleeping.
type manualTicker struct {
	interval time.Duration
	c        chan time.Time
	rounds   chan struct{}
	stopped  atomic.Bool
}

func (m *manualTicker) C() <-chan time.Time {
	m.rounds <- struct{}{}
	return m.c
}

func (m *manualTicker) Stop() { m.stopped.Store(true) }

// wait waits for the round in progress (the first probe, or the one the
// last tick started) to finish, reports included.
func (m *manualTicker) wait(t *testing.T) {
	t.Helper()
	select {
	case <-m.rounds:
	case <-time.After(10 * time.Second):
		t.Fatal("the probe round did not finish")
	}
}

// step runs one more probe round and waits until it is done.
func (m *manualTicker) step(t *testing.T) {
	t.Helper()
	m.c <- time.Now()
	m.wait(t)
}

// manual starts p with manual tickers, one per check in order, and waits
// for each check's first probe round.
func manual(t *testing.T, p *Prober) []*manualTicker {
	t.Helper()
	var ts []*manualTicker
	p.NewTicker = func(d time.Duration) Ticker {
		m := &manualTicker{interval: d, c: make(chan time.Time), rounds: make(chan struct{}, 1)}
		ts = append(ts, m)
		return m
	}
	p.Start()
	t.Cleanup(p.Stop)
	require.Len(t, ts, len(p.checks), "one ticker per check")
	for _, m := range ts {
		m.wait(t)
	}
	return ts
}

// Each check's ticker runs at the check's interval and stops with the
// prober.
func TestTickerInterval(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	a, b := check(t, "blue", srv.URL), check(t, "green", srv.URL)
	a.Interval, b.Interval = 7*time.Second, 250*time.Millisecond
	p := New([]Check{a, b}, func(string, bool, string) {})
	ts := manual(t, p)
	assert.Equal(t, 7*time.Second, ts[0].interval)
	assert.Equal(t, 250*time.Millisecond, ts[1].interval)
	p.Stop()
	for i, m := range ts {
		assert.True(t, m.stopped.Load(), "ticker %d stopped", i)
	}
}

// One probe per tick: the first at Start, then one each tick, none without.
func TestOneProbePerTick(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	p := New([]Check{check(t, "green", srv.URL)}, func(string, bool, string) {})
	ts := manual(t, p)
	assert.Equal(t, int32(1), hits.Load(), "a check probes at once")
	for i := 2; i <= 5; i++ {
		ts[0].step(t)
		assert.Equal(t, int32(i), hits.Load(), "probes after %d ticks", i-1)
	}
}

// Fails failures in a row turn a pool unhealthy at the Fails-th probe, and
// Passes passes in a row turn it healthy at the Passes-th; 3xx passes.
func TestHTTPFailAndRecover(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()

	rec := &recorder{}
	p := New([]Check{check(t, "green", srv.URL+"/healthz")}, rec.report)
	tk := manual(t, p)[0]
	tk.step(t)
	assert.Empty(t, rec.get(), "a passing pool reports nothing")

	status.Store(302) // 3xx passes
	for range 4 {
		tk.step(t)
	}
	assert.Empty(t, rec.get(), "3xx passes")

	status.Store(503)
	for i := 1; i < 3; i++ {
		tk.step(t)
		assert.Empty(t, rec.get(), "%d failures of 3", i)
	}
	tk.step(t)
	assert.Equal(t, []string{"green unhealthy"}, rec.get(), "unhealthy at the third failure")
	tk.step(t)
	assert.Equal(t, []string{"green unhealthy"}, rec.get(), "reported once")

	status.Store(200)
	tk.step(t)
	assert.Equal(t, []string{"green unhealthy"}, rec.get(), "one pass of 2")
	tk.step(t)
	assert.Equal(t, []string{"green unhealthy", "green healthy"}, rec.get(), "healthy at the second pass")
}

// Hysteresis: fewer than Fails failures in a row, or fewer than Passes
// passes, change nothing.
func TestHysteresis(t *testing.T) {
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	rec := &recorder{}
	p := New([]Check{check(t, "blue", srv.URL)}, rec.report)
	tk := manual(t, p)
	// fail, fail, pass, ... four times: never 3 failures in a row.
	for range 4 {
		for _, f := range []bool{true, true, false} {
			fail.Store(f)
			tk[0].step(t)
		}
	}
	assert.Empty(t, rec.get(), "two failures in a row must not turn the pool unhealthy")

	// Unhealthy, then pass, fail, ...: never 2 passes in a row.
	fail.Store(true)
	for range 3 {
		tk[0].step(t)
	}
	require.Equal(t, []string{"blue unhealthy"}, rec.get())
	for range 4 {
		for _, f := range []bool{false, true} {
			fail.Store(f)
			tk[0].step(t)
		}
	}
	assert.Equal(t, []string{"blue unhealthy"}, rec.get(), "one pass at a time must not turn the pool healthy")
}

// A tcp check passes while its port accepts connections and fails once the
// listener is gone.
func TestTCPPortCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	rec := &recorder{}
	p := New([]Check{check(t, "green", "tcp://"+ln.Addr().String())}, rec.report)
	tk := manual(t, p)[0]
	tk.step(t)
	assert.Empty(t, rec.get())
	// The kernel completes the connect before Accept returns: wait for the
	// accept, so closing the listener cannot race it.
	require.Eventually(t, func() bool { return accepted.Load() > 0 }, 10*time.Second, time.Millisecond,
		"the check connected while the port was open")
	require.NoError(t, ln.Close())
	for range 2 {
		tk.step(t)
	}
	assert.Empty(t, rec.get(), "two failures of 3")
	tk.step(t)
	assert.Equal(t, []string{"green unhealthy"}, rec.get())
}

// A pool with two checks is unhealthy while either fails.
func TestTwoChecksOnePool(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	var down atomic.Bool
	down.Store(true)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(500)
		}
	}))
	defer flaky.Close()
	rec := &recorder{}
	p := New([]Check{check(t, "green", ok.URL), check(t, "green", flaky.URL)}, rec.report)
	ts := manual(t, p)
	ts[1].step(t)
	ts[1].step(t)
	assert.Equal(t, []string{"green unhealthy"}, rec.get(), "the flaky check's third failure")
	ts[0].step(t)
	assert.Equal(t, []string{"green unhealthy"}, rec.get(), "the other check passing changes nothing")
	down.Store(false)
	ts[1].step(t)
	ts[1].step(t)
	assert.Equal(t, []string{"green unhealthy", "green healthy"}, rec.get())
}

// The default ticker is real time: a check probes again after its interval.
func TestRealTicker(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	p := New([]Check{check(t, "green", srv.URL)}, func(string, bool, string) {})
	p.Start()
	defer p.Stop()
	require.Eventually(t, func() bool { return hits.Load() >= 3 }, 10*time.Second, 5*time.Millisecond)
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in  string
		err bool
	}{
		{"http://127.0.0.1:8080/healthz", false},
		{"https://green.example.org/", false},
		{"tcp://127.0.0.1:5432", false},
		{"tcp://127.0.0.1", true},
		{"tcp://127.0.0.1:80/path", true},
		{"ftp://x", true},
		{"http://", true},
		{"::bad", true},
		// Ports from 1 to 65535, checked here rather than failing every
		// probe at run time; a host always.
		{"tcp://127.0.0.1:1", false},
		{"tcp://[::1]:65535/", false},
		{"https://h:65535/ready", false},
		{"http://h:/", false}, // an empty port is the scheme's
		{"tcp://127.0.0.1:99999", true},
		{"tcp://127.0.0.1:65536", true},
		{"tcp://127.0.0.1:0", true},
		{"http://127.0.0.1:0/", true},
		{"https://h:70000/", true},
		{"http://:8080/", true},
		{"tcp://:80", true},
		{"tcp://[]:80", true},
		{"http:opaque", true},
		{"tcp:127.0.0.1:80", true},
		// A tcp probe is a host and a port, nothing more.
		{"tcp://u:p@127.0.0.1:80", true},
		{"tcp://127.0.0.1:80?x=1", true},
		{"tcp://127.0.0.1:80?", true},
		{"tcp://127.0.0.1:80#x", true},
	}
	for i, tc := range tests {
		_, err := ParseURL(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("Test %d: %q expected error %v, got %v", i, tc.in, tc.err, err)
		}
	}
}

// Start and Stop many times: no goroutine is left behind.
func TestNoGoroutineLeak(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	before := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		p := New([]Check{check(t, "blue", srv.URL), check(t, "green", "tcp://"+srv.Listener.Addr().String())}, func(string, bool, string) {})
		p.Start()
		time.Sleep(2 * time.Millisecond)
		p.Stop()
	}
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+2 }, 3*time.Second, 20*time.Millisecond,
		"goroutines: %d before, %d after", before, runtime.NumGoroutine())
}

// With Current set, a check whose streak confirms its state reports when
// the receiver holds the opposite (another prober reported in between);
// without it, or when the receiver agrees, only transitions are reported.
func TestCurrent(t *testing.T) {
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()

	var held atomic.Bool // what the receiver holds for green
	rec := &recorder{}
	report := func(pool string, healthy bool, detail string) {
		held.Store(healthy)
		rec.report(pool, healthy, detail)
	}
	p := New([]Check{check(t, "green", srv.URL)}, report)
	p.Current = func(string) bool { return held.Load() }
	held.Store(true)
	tk := manual(t, p)[0]
	for range 3 {
		tk.step(t)
	}
	assert.Empty(t, rec.get(), "the receiver agrees: nothing to report")

	// Another prober said unhealthy; ours passes: it says healthy.
	held.Store(false)
	tk.step(t)
	assert.Equal(t, []string{"green healthy"}, rec.get())

	// Failing: one transition at the third failure, reported once.
	failing.Store(true)
	for range 5 {
		tk.step(t)
	}
	assert.Equal(t, []string{"green healthy", "green unhealthy"}, rec.get())

	// Another prober said healthy; ours fails: it says unhealthy again.
	held.Store(true)
	tk.step(t)
	assert.Equal(t, []string{"green healthy", "green unhealthy", "green unhealthy"}, rec.get())
}
