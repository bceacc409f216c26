package bluegreen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/health"
)

// TestParseHealth: the health option's valid forms, each field as parsed.
// setup_test.go checks the defaults once and a few errors; this is the
// option's own table.
func TestParseHealth(t *testing.T) {
	dir := minimalZones(t)
	const pools = "pool blue blue.db\npool green green.db\n"
	type check struct {
		pool, url         string
		interval, timeout time.Duration
		fails, passes     int
	}
	def := func(pool, url string) check {
		return check{pool, url, 5 * time.Second, 2 * time.Second, 3, 2}
	}
	tests := []struct {
		lines string
		want  []check
	}{
		// Defaults: interval 5s, timeout 2s, fails 3, passes 2.
		{"health green http://127.0.0.1:8080/healthz", []check{def("green", "http://127.0.0.1:8080/healthz")}},
		{"health green https://green.example.net/ready?full=1", []check{def("green", "https://green.example.net/ready?full=1")}},
		{"health blue tcp://127.0.0.1:443", []check{def("blue", "tcp://127.0.0.1:443")}},
		{"health blue tcp://[::1]:443/", []check{def("blue", "tcp://[::1]:443/")}},
		{"health blue tcp://db.example.net:5432", []check{def("blue", "tcp://db.example.net:5432")}},
		// Every option, in any order; each one alone keeps the other defaults.
		{"health green http://h/ interval 200ms timeout 100ms fails 1 passes 100", []check{
			{"green", "http://h/", 200 * time.Millisecond, 100 * time.Millisecond, 1, 100}}},
		{"health green http://h/ passes 5 fails 7 timeout 1m interval 1h", []check{
			{"green", "http://h/", time.Hour, time.Minute, 7, 5}}},
		{"health green http://h/ interval 1s", []check{{"green", "http://h/", time.Second, 2 * time.Second, 3, 2}}},
		{"health green http://h/ timeout 3s", []check{{"green", "http://h/", 5 * time.Second, 3 * time.Second, 3, 2}}},
		{"health green http://h/ fails 10", []check{{"green", "http://h/", 5 * time.Second, 2 * time.Second, 10, 2}}},
		{"health green http://h/ passes 1", []check{{"green", "http://h/", 5 * time.Second, 2 * time.Second, 3, 1}}},
		// A repeated option: the last one wins.
		// Several checks, for one pool or for each, kept in order.
		{"health green http://h/a\nhealth green tcp://h:1\nhealth blue http://b/", []check{
			def("green", "http://h/a"), def("green", "tcp://h:1"), def("blue", "http://b/")}},
		// The health line may come before the pools it names.
		{"health green http://h/\n", []check{def("green", "http://h/")}},
	}
	for i, tc := range tests {
		input := "bluegreen {\n" + pools + tc.lines + "\n}"
		if i == len(tests)-1 {
			input = "bluegreen {\n" + tc.lines + pools + "}"
		}
		cfg, err := parseIn(dir, input)
		if err != nil {
			t.Errorf("Test %d: expected no error, got %v", i, err)
			continue
		}
		var got []check
		for _, hc := range cfg.health {
			got = append(got, check{hc.Pool, hc.URL.String(), hc.Interval, hc.Timeout, hc.Fails, hc.Passes})
			if hc.Unhealthy {
				t.Errorf("Test %d: expected a parsed check to start healthy, got Unhealthy", i)
			}
		}
		if !assert.ObjectsAreEqual(tc.want, got) {
			t.Errorf("Test %d: expected %+v, got %+v", i, tc.want, got)
		}
	}
}

// TestParseHealthDefaults: the defaults are the documented ones (SPEC §2),
// not just whatever the constants hold.
func TestParseHealthDefaults(t *testing.T) {
	assert.Equal(t, 5*time.Second, health.DefaultInterval)
	assert.Equal(t, 2*time.Second, health.DefaultTimeout)
	assert.Equal(t, 3, health.DefaultFails)
	assert.Equal(t, 2, health.DefaultPasses)
}

// TestParseHealthErrors: every bad health line fails parse with a message
// naming the problem (and the Corefile line), never a default.
func TestParseHealthErrors(t *testing.T) {
	dir := minimalZones(t)
	const pools = "pool blue blue.db\npool green green.db\n"
	tests := []struct {
		line string
		want string
	}{
		// Unknown pool (also for a tcp check, and after valid checks).
		{"health red http://127.0.0.1/", `health: unknown pool "red"`},
		{"health Green tcp://127.0.0.1:80", `health: unknown pool "Green"`},
		{"health green http://127.0.0.1/\nhealth purple tcp://127.0.0.1:80", `health: unknown pool "purple"`},
		// Argument count: NAME and URL are required, options come in pairs.
		{"health", "health: want 'health NAME URL"},
		{"health green", "health: want 'health NAME URL"},
		{"health green http://127.0.0.1/ interval", "health: want 'health NAME URL"},
		{"health green http://127.0.0.1/ interval 1s fails", "health: want 'health NAME URL"},
		{"health green http://127.0.0.1/ interval 1s fails 2 passes", "health: want 'health NAME URL"},
		// Bad URLs and schemes.
		{"health green ftp://127.0.0.1/", `health "green": URL "ftp://127.0.0.1/": scheme must be http, https or tcp`},
		{"health green udp://127.0.0.1:53", "scheme must be http, https or tcp"},
		{"health green 127.0.0.1:8080", `health "green": invalid URL "127.0.0.1:8080"`},
		{"health green /healthz", "scheme must be http, https or tcp"},
		{"health green http://[::1/", `health "green": invalid URL`},
		{"health green http://127.0.0.1:port/", `health "green": invalid URL`},
		{"health green http:///healthz", `URL "http:///healthz" has no host`},
		{"health green https://", "has no host"},
		{"health green tcp://127.0.0.1", `URL "tcp://127.0.0.1": want tcp://host:port`},
		{"health green tcp://127.0.0.1:", "want tcp://host:port"},
		{"health green tcp://127.0.0.1:80/healthz", `URL "tcp://127.0.0.1:80/healthz": a tcp probe has no path`},
		// Durations: positive, with a unit.
		{"health green http://127.0.0.1/ interval 0s", `health "green": interval "0s" is not a positive duration`},
		{"health green http://127.0.0.1/ interval 0", `interval "0" is not a positive duration`},
		{"health green http://127.0.0.1/ interval -1s", `interval "-1s" is not a positive duration`},
		{"health green http://127.0.0.1/ interval 5", `interval "5" is not a positive duration`},
		{"health green http://127.0.0.1/ interval soon", `interval "soon" is not a positive duration`},
		{"health green http://127.0.0.1/ timeout 0ms", `health "green": timeout "0ms" is not a positive duration`},
		{"health green http://127.0.0.1/ timeout -2s", `timeout "-2s" is not a positive duration`},
		{"health green http://127.0.0.1/ timeout 2", `timeout "2" is not a positive duration`},
		// fails and passes: integers from 1 to 100.
		{"health green http://127.0.0.1/ fails 2 fails 4", `health "green": fails given twice`},
		{"health green http://127.0.0.1/ fails 0", `health "green": fails "0" is not an integer from 1 to 100`},
		{"health green http://127.0.0.1/ fails 101", `fails "101" is not an integer from 1 to 100`},
		{"health green http://127.0.0.1/ fails -1", `fails "-1" is not an integer from 1 to 100`},
		{"health green http://127.0.0.1/ fails three", `fails "three" is not an integer from 1 to 100`},
		{"health green http://127.0.0.1/ fails 2.5", `fails "2.5" is not an integer from 1 to 100`},
		{"health green http://127.0.0.1/ passes 0", `health "green": passes "0" is not an integer from 1 to 100`},
		{"health green http://127.0.0.1/ passes 101", `passes "101" is not an integer from 1 to 100`},
		{"health green http://127.0.0.1/ passes x", `passes "x" is not an integer from 1 to 100`},
		// Unknown options, including a misplaced value.
		{"health green http://127.0.0.1/ colour red", `health "green": unknown option "colour" (want interval, timeout, fails or passes)`},
		{"health green http://127.0.0.1/ Interval 1s", `unknown option "Interval"`},
		{"health green http://127.0.0.1/ 1s interval", `unknown option "1s"`},
		{"health green http://127.0.0.1/ interval 1s 2s fails", `unknown option "2s"`},
	}
	for i, tc := range tests {
		input := "bluegreen {\n" + pools + tc.line + "\n}"
		_, err := parseIn(dir, input)
		if err == nil {
			t.Errorf("Test %d: expected an error containing %q, got none for %q", i, tc.want, tc.line)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: expected an error containing %q, got %q", i, tc.want, err)
		}
	}

	// An error on the health line names that line.
	_, err := parseIn(dir, "bluegreen {\n"+pools+"health green http://127.0.0.1/ fails 0\n}")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Testfile:4")
}

// TestProberAgreesWithSwitch: on a Corefile reload the new prober starts
// from the switch's health, while the old prober still runs until the old
// instance shuts down (after the new one started) and may report a
// transition in between. The new prober must still bring the switch to
// what its own probes say, in both directions, instead of staying silent
// because its own view did not change.
func TestProberAgreesWithSwitch(t *testing.T) {
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	for i, startHealthy := range []bool{false, true} {
		b := newTestBluegreen(t, stdZones(t), pools3+"weights blue 1 green 1\nhealth green "+srv.URL+" interval 10ms timeout 1s fails 2 passes 2")
		sw := b.sw
		sw.ProbedPools([]string{"green"}) // as the running instance's startup does
		// Before the reload: green as startHealthy says.
		sw.SetHealth(ctx, "green", startHealthy, "before the reload")
		// The reload's setup: the new prober starts from that.
		p := newProber(b.cfg, sw)
		// The old prober, not stopped yet, reports the opposite.
		sw.SetHealth(ctx, "green", !startHealthy, "the old prober's last report")
		// The endpoint now says what the pool was before the reload.
		failing.Store(!startHealthy)
		p.Start()
		ok := assert.Eventually(t, func() bool { return sw.Healthy("green") == startHealthy }, 3*time.Second, 10*time.Millisecond,
			"Test %d: expected the new prober to set green healthy=%t as its probes say, the switch stays at %t", i, startHealthy, !startHealthy)
		p.Stop()
		if !ok {
			continue
		}
		v := sw.View()
		_, eff := v.Pools[1].Weight, v.Pools[1].EffectiveWeight
		if startHealthy != (eff > 0) {
			t.Errorf("Test %d: expected green's effective weight to follow its health %t, got %d", i, startHealthy, eff)
		}
	}
}
