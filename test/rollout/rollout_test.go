// Package rollout tests TTL-aware rollouts end to end: the built CoreDNS
// behind a real caching resolver (unbound on loopback), checking that
// caches drop an old choice by the time the API's effective_at says, and
// at a rollout step's boundary rather than up to the TTL cap later.
package rollout

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/test/harness"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type server struct {
	p     *harness.Proc
	dns   string
	admin string
}

func (s *server) url(path string) string { return "http://" + s.admin + path }

func startServer(t *testing.T, ttl string) *server {
	dir := t.TempDir()
	harness.WriteZones(t, dir)
	port, aport := harness.FreePort(t), harness.FreePort(t)
	s := &server{dns: fmt.Sprintf("127.0.0.1:%d", port), admin: fmt.Sprintf("127.0.0.1:%d", aport)}
	s.p = harness.Start(t, dir, fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    bluegreen {
        base base.db
        pool blue blue.db
        pool green green.db
        weights blue 100 green 0
        ttl %s
        admin 127.0.0.1:%d
    }
}
`, port, ttl, aport))
	s.p.WaitDNS(s.dns, "www.example.org", 20*time.Second)
	s.p.WaitHTTP(s.url("/healthz"), 10*time.Second)
	return s
}

// startUnbound runs a caching unbound (no validation, no ECS cache) with
// example.org stubbed to the server; it is stopped at the end of the test.
func startUnbound(t *testing.T, upstream string) string {
	return harness.StartUnbound(t, upstream, `    module-config: "iterator"
    serve-expired: no
    cache-min-ttl: 0
    domain-insecure: "example.org"
`, func(addr string) bool {
		// A base name, so no answer for www is cached yet.
		m := new(dns.Msg)
		m.SetQuestion("mail.example.org.", dns.TypeA)
		m.RecursionDesired = true
		r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, addr)
		return err == nil && r.Rcode == dns.RcodeSuccess
	})
}

// ask queries addr for www.example.org/A and returns the pool it names.
func ask(addr string) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	m.RecursionDesired = true
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return "", err
	}
	if r.Rcode != dns.RcodeSuccess {
		return "", fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	return harness.PoolOf(r), nil
}

func ttlOf(t *testing.T, addr string) uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, addr)
	require.NoError(t, err)
	require.NotEmpty(t, r.Answer)
	return r.Answer[0].Header().Ttl
}

type stateObj struct {
	Version     uint64    `json:"version"`
	UpdatedAt   time.Time `json:"updated_at"`
	EffectiveAt time.Time `json:"effective_at"`
	Rollout     *struct {
		Step         int        `json:"step"`
		State        string     `json:"state"`
		StartedAt    time.Time  `json:"started_at"`
		NextChangeAt *time.Time `json:"next_change_at"`
	} `json:"rollout"`
}

func decode(t *testing.T, body string) stateObj {
	t.Helper()
	var s stateObj
	require.NoError(t, json.Unmarshal([]byte(body), &s), body)
	return s
}

// waitFor polls the resolver until it answers from pool, returning when.
func waitFor(t *testing.T, resolver, pool string, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		got, err := ask(resolver)
		require.NoError(t, err)
		if got == pool {
			return time.Now()
		}
		last = got
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the resolver did not answer from %s within %s (last answer from %q)", pool, limit, last)
	return time.Time{}
}

// After a manual change, the resolver's answers follow no later than the
// API's effective_at (+1 s).
func TestManualChangeThroughUnbound(t *testing.T) {
	s := startServer(t, "6 1")
	resolver := startUnbound(t, s.dns)

	got, err := ask(resolver)
	require.NoError(t, err)
	require.Equal(t, "blue", got)
	cachedAt := time.Now()

	code, body := harness.HTTP(t, http.MethodPut, s.url("/v1/switches/example.org/weights"), `{"weights":{"blue":0,"green":100}}`)
	require.Equal(t, 200, code, body)
	st := decode(t, body)
	t.Logf("changed at %s, effective_at %s", st.UpdatedAt.Format(time.RFC3339Nano), st.EffectiveAt.Format(time.RFC3339Nano))
	require.False(t, st.EffectiveAt.Before(st.UpdatedAt))
	// No answer served before the change had a TTL above MAX, and the
	// process started before it: effective_at is at most MAX after it.
	assert.LessOrEqual(t, st.EffectiveAt.Sub(st.UpdatedAt), 6*time.Second, "effective_at is at most MAX after the change")

	// The cache still holds blue right after the change (it has a TTL of up to 6 s) ...
	if time.Since(cachedAt) < 4*time.Second {
		got, err = ask(resolver)
		require.NoError(t, err)
		assert.Equal(t, "blue", got, "the resolver's cached answer outlives the change")
	}
	// ... and turns green no later than effective_at + 1 s: unbound keeps
	// expiry times in whole seconds, so an entry may live up to a second
	// past its TTL. The test sees it up to one 50 ms poll (and a query)
	// later still.
	greenAt := waitFor(t, resolver, "green", 10*time.Second)
	t.Logf("resolver on green %s after the change", greenAt.Sub(st.UpdatedAt))
	assert.False(t, greenAt.After(st.EffectiveAt.Add(time.Second+100*time.Millisecond)), "green at %s, effective_at %s", greenAt, st.EffectiveAt)
}

// During a rollout, TTLs shrink toward each step so the resolver changes at
// the step boundary, not up to MAX (here 60 s) later.
func TestRolloutStepThroughUnbound(t *testing.T) {
	s := startServer(t, "60 1")
	resolver := startUnbound(t, s.dns)

	code, body := harness.HTTP(t, http.MethodPost, s.url("/v1/switches/example.org/rollout"),
		`{"steps":[{"weights":{"blue":100,"green":0},"hold":"5s"},{"weights":{"blue":0,"green":100},"hold":"0s"}]}`)
	require.Equal(t, 200, code, body)
	st := decode(t, body)
	require.NotNil(t, st.Rollout)
	require.NotNil(t, st.Rollout.NextChangeAt)
	boundary := *st.Rollout.NextChangeAt
	require.Equal(t, st.Rollout.StartedAt.Add(5*time.Second).UTC(), boundary.UTC(), "the step begins when step 0's hold ends")

	// The server's own TTLs count down to the boundary.
	first := ttlOf(t, s.dns)
	assert.LessOrEqual(t, first, uint32(5), "TTL capped at the seconds left until the step")
	time.Sleep(2 * time.Second)
	later := ttlOf(t, s.dns)
	assert.Less(t, later, first, "TTLs shrink toward the step")

	got, err := ask(resolver)
	require.NoError(t, err)
	require.Equal(t, "blue", got)

	greenAt := waitFor(t, resolver, "green", 15*time.Second)
	t.Logf("resolver on green %s after the step boundary", greenAt.Sub(boundary))
	// An answer served in the last second before the step carries the
	// floor TTL MIN (1 s), and unbound keeps time in whole seconds: so the
	// step shows through the cache within MIN + 1 s (+ polling), where
	// without the cap it could take up to MAX (60 s).
	assert.False(t, greenAt.After(boundary.Add(2*time.Second+500*time.Millisecond)),
		"the resolver changed at %s, the step began at %s: the TTL cap must end cached answers at the step", greenAt, boundary)

	// Without the cap the blue answer would have been cached for 60 s: check
	// the server really hands out 60 s TTLs when nothing is scheduled.
	require.Eventually(t, func() bool {
		_, b := harness.HTTP(t, http.MethodGet, s.url("/v1/switches/example.org"), "")
		r := decode(t, b).Rollout
		return r != nil && r.State == "completed"
	}, 5*time.Second, 50*time.Millisecond)
	assert.Equal(t, uint32(60), ttlOf(t, s.dns), "after the rollout the TTL is MAX again")
}
