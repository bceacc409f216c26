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
	return Check{Pool: pool, URL: u, Interval: 20 * time.Millisecond, Timeout: 200 * time.Millisecond, Fails: 3, Passes: 2}
}

func TestHTTPFailAndRecover(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()

	rec := &recorder{}
	p := New([]Check{check(t, "green", srv.URL+"/healthz")}, rec.report)
	p.Start()
	defer p.Stop()

	require.Eventually(t, func() bool { return hits.Load() >= 3 }, 2*time.Second, 5*time.Millisecond)
	assert.Empty(t, rec.get(), "a passing pool reports nothing")

	status.Store(302) // 3xx passes
	n := hits.Load()
	require.Eventually(t, func() bool { return hits.Load() >= n+4 }, 2*time.Second, 5*time.Millisecond)
	assert.Empty(t, rec.get(), "3xx passes")

	status.Store(503)
	require.Eventually(t, func() bool { return len(rec.get()) == 1 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"green unhealthy"}, rec.get())

	status.Store(200)
	require.Eventually(t, func() bool { return len(rec.get()) == 2 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"green unhealthy", "green healthy"}, rec.get())
}

// Hysteresis: fewer than Fails failures in a row change nothing.
func TestHysteresis(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// fail, fail, pass, fail, fail, pass, ... never 3 in a row.
		if n.Add(1)%3 == 0 {
			w.WriteHeader(200)
			return
		}
		w.WriteHeader(500)
	}))
	defer srv.Close()
	rec := &recorder{}
	p := New([]Check{check(t, "blue", srv.URL)}, rec.report)
	p.Start()
	require.Eventually(t, func() bool { return n.Load() >= 12 }, 3*time.Second, 5*time.Millisecond)
	p.Stop()
	assert.Empty(t, rec.get(), "two failures in a row must not turn the pool unhealthy")
}

func TestTCPPortCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	rec := &recorder{}
	p := New([]Check{check(t, "green", "tcp://"+ln.Addr().String())}, rec.report)
	p.Start()
	defer p.Stop()
	time.Sleep(100 * time.Millisecond)
	assert.Empty(t, rec.get())
	ln.Close()
	require.Eventually(t, func() bool { return len(rec.get()) == 1 }, 2*time.Second, 5*time.Millisecond)
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
	p.Start()
	defer p.Stop()
	require.Eventually(t, func() bool { return len(rec.get()) == 1 }, 2*time.Second, 5*time.Millisecond)
	down.Store(false)
	require.Eventually(t, func() bool { return len(rec.get()) == 2 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"green unhealthy", "green healthy"}, rec.get())
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
	p.Start()
	defer p.Stop()
	time.Sleep(100 * time.Millisecond)
	assert.Empty(t, rec.get(), "the receiver agrees: nothing to report")

	// Another prober said unhealthy; ours passes: it says healthy.
	held.Store(false)
	require.Eventually(t, func() bool { return len(rec.get()) == 1 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"green healthy"}, rec.get())

	// Failing: one transition, reported once.
	failing.Store(true)
	require.Eventually(t, func() bool { return len(rec.get()) == 2 }, 2*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, []string{"green healthy", "green unhealthy"}, rec.get())

	// Another prober said healthy; ours fails: it says unhealthy again.
	held.Store(true)
	require.Eventually(t, func() bool { return len(rec.get()) == 3 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"green healthy", "green unhealthy", "green unhealthy"}, rec.get())
}
