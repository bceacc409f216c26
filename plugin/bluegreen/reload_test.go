package bluegreen

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/internal/logcapture"
)

// greenWWW is a green zone whose www holds addr (twice, so poolOf sees a
// whole RRset).
func greenWWW(a, b string) string {
	return "$ORIGIN example.org.\n$TTL 60\nwww IN A " + a + "\nwww IN A " + b + "\n"
}

func wwwAddrs(t *testing.T, b *Bluegreen) []string {
	t.Helper()
	m, _, err := serve(context.Background(), b, query("www.example.org.", dns.TypeA), "")
	require.NoError(t, err)
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func lastErr(l *loader) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

func reloads(b *Bluegreen, pool, result string) float64 {
	return testutil.ToFloat64(zoneReloads.WithLabelValues(b.cfg.name, pool, result))
}

// TestReloadInterval: with the goroutine running, a changed file is served
// within a few intervals.
func TestReloadInterval(t *testing.T) {
	dir := stdZones(t)
	b := newTestBluegreen(t, dir, pools3+"weights green 1\nreload 20ms")
	b.loader.start()
	t.Cleanup(b.loader.stop)
	require.ElementsMatch(t, greenAddrs, wwwAddrs(t, b))

	require.NoError(t, os.WriteFile(filepath.Join(dir, "green.db"), []byte(greenWWW("203.0.113.1", "203.0.113.2")), 0o644))
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := wwwAddrs(t, b)
		if assert.ObjectsAreEqualValues([]string{"203.0.113.1", "203.0.113.2"}, got) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expected the changed green.db to be served within 5s at reload 20ms, got %v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	assert.GreaterOrEqual(t, reloads(b, "green", "success"), 1.0)
	assert.Zero(t, reloads(b, "blue", "success"), "expected only the changed file counted")
}

// TestReloadBroken: a file that fails to parse leaves the old records
// serving; the error is counted and logged once; a fixed file is served.
func TestReloadBroken(t *testing.T) {
	logs := logcapture.Start(t)
	dir := stdZones(t)
	b := newTestBluegreen(t, dir, pools3+"weights green 1\nreload 0")
	green := filepath.Join(dir, "green.db")
	before := b.loader.data.Load()

	// Nothing changed: nothing swapped, nothing counted.
	b.loader.check()
	assert.Same(t, before, b.loader.data.Load())
	assert.Zero(t, reloads(b, "green", "success")+reloads(b, "green", "error"))

	tests := []struct {
		content string // "" removes the file
		want    []string
		failed  bool
	}{
		{"www IN A 300.0.0.1\n", greenAddrs, true},
		{"$ORIGIN example.org.\nwww.example.net. IN A 192.0.2.1\n", greenAddrs, true},
		{"", greenAddrs, true},
		{greenWWW("203.0.113.1", "203.0.113.2"), []string{"203.0.113.1", "203.0.113.2"}, false},
		{"www IN A 300.0.0.1\n", []string{"203.0.113.1", "203.0.113.2"}, true},
		{greenWWW("203.0.113.3", "203.0.113.4"), []string{"203.0.113.3", "203.0.113.4"}, false},
	}
	for i, tc := range tests {
		if tc.content == "" {
			require.NoError(t, os.Remove(green))
		} else {
			require.NoError(t, os.WriteFile(green, []byte(tc.content), 0o644))
		}
		errsBefore, okBefore := reloads(b, "green", "error"), reloads(b, "green", "success")
		logBefore := strings.Count(logs.String(), "[ERROR]")
		for range 3 {
			b.loader.check()
		}
		got := wwwAddrs(t, b)
		if !assert.ElementsMatch(t, tc.want, got) {
			t.Errorf("Test %d: expected %v served, got %v", i, tc.want, got)
		}
		errs, oks := reloads(b, "green", "error")-errsBefore, reloads(b, "green", "success")-okBefore
		logged := strings.Count(logs.String(), "[ERROR]") - logBefore
		if tc.failed {
			if errs < 1 || oks != 0 {
				t.Errorf("Test %d: expected zone_reloads_total{result=\"error\"} to grow and no success, got +%v errors, +%v successes", i, errs, oks)
			}
			if logged != 1 {
				t.Errorf("Test %d: expected the error logged once over 3 checks, got %d times: %s", i, logged, logs.String())
			}
			if lastErr(b.loader) == "" {
				t.Errorf("Test %d: expected the loader to remember the error", i)
			}
		} else {
			if oks != 1 || errs != 0 || logged != 0 {
				t.Errorf("Test %d: expected one success and no error, got +%v successes, +%v errors, %d error lines", i, oks, errs, logged)
			}
			if e := lastErr(b.loader); e != "" {
				t.Errorf("Test %d: expected the error cleared, got %q", i, e)
			}
		}
	}
	// The error names the switch and the file, and says old records serve.
	assert.Contains(t, logs.String(), "Reload of switch "+b.cfg.name+" failed, old records keep serving")
	assert.Contains(t, logs.String(), green)
	assert.Zero(t, reloads(b, "blue", "error"), "expected no error counted for the untouched pool")
}

// TestReloadBase: base reloads too, and its label is _base.
func TestReloadBase(t *testing.T) {
	dir := stdZones(t)
	b := newTestBluegreen(t, dir, pools3+"reload 0")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "base.db"), []byte(strings.Replace(baseDB, "192.0.2.99", "203.0.113.99", 1)), 0o644))
	b.loader.check()
	m, _, err := serve(context.Background(), b, query("shared.example.org.", dns.TypeA), "")
	require.NoError(t, err)
	require.Len(t, m.Answer, 1)
	assert.Equal(t, "203.0.113.99", m.Answer[0].(*dns.A).A.String())
	assert.Equal(t, 1.0, reloads(b, baseLabel, "success"))
}

// TestReloadNoSOA: a change that leaves no SOA anywhere is an error too.
func TestReloadNoSOA(t *testing.T) {
	dir := stdZones(t)
	b := newTestBluegreen(t, dir, pools3+"reload 0")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "base.db"), []byte("$ORIGIN example.org.\nshared IN A 192.0.2.99\n"), 0o644))
	b.loader.check()
	assert.Equal(t, 1.0, reloads(b, baseLabel, "error"))
	assert.Contains(t, lastErr(b.loader), "no SOA record")
	m, _, err := serve(context.Background(), b, query("nowhere.example.org.", dns.TypeA), "")
	require.NoError(t, err)
	assert.Equal(t, dns.RcodeNameError, m.Rcode)
	require.Len(t, m.Ns, 1, "expected the old SOA still served")
}

// TestReloadStop: stop ends the goroutine; no reload happens after it.
func TestReloadStop(t *testing.T) {
	dir := stdZones(t)
	b := newTestBluegreen(t, dir, pools3+"weights green 1\nreload 10ms")
	b.loader.start()
	time.Sleep(30 * time.Millisecond)

	stopped := make(chan struct{})
	go func() { b.loader.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("expected stop to return once the reload goroutine exits")
	}
	assert.Nil(t, b.loader.done)
	b.loader.stop() // a second stop is harmless

	before := b.loader.data.Load()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "green.db"), []byte(greenWWW("203.0.113.1", "203.0.113.2")), 0o644))
	time.Sleep(100 * time.Millisecond)
	assert.Same(t, before, b.loader.data.Load(), "expected no reload after stop")
	assert.ElementsMatch(t, greenAddrs, wwwAddrs(t, b))

	// Started again (a failed Corefile reload restarts it), it reloads.
	b.loader.start()
	t.Cleanup(b.loader.stop)
	deadline := time.Now().Add(5 * time.Second)
	for b.loader.data.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("expected a restarted loader to reload the changed file")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReloadDisabled: reload 0 starts no goroutine.
func TestReloadDisabled(t *testing.T) {
	b := newTestBluegreen(t, stdZones(t), pools3+"reload 0")
	b.loader.start()
	assert.Nil(t, b.loader.done)
	b.loader.stop()
}
