// Package cluster tests several CoreDNS replicas sharing one switch through
// a real etcd: a change through any replica's API reaches all of them, two
// writers cannot both win, an etcd outage costs no DNS answer, and a
// rollout steps on every replica at the same times.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/internal/etcdtest"
	"github.com/bluegreen-dns/bluegreen/test/harness"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type replica struct {
	p     *harness.Proc
	dns   string
	admin string
}

func (r *replica) url(path string) string { return "http://" + r.admin + path }

type stateObj struct {
	Version    uint64            `json:"version"`
	Weights    map[string]uint64 `json:"weights"`
	StoreStale bool              `json:"store_stale"`
	Store      string            `json:"store"`
	Rollout    *struct {
		Step         int        `json:"step"`
		State        string     `json:"state"`
		StartedAt    time.Time  `json:"started_at"`
		NextChangeAt *time.Time `json:"next_change_at"`
	} `json:"rollout"`
}

func getState(t *testing.T, r *replica) stateObj {
	t.Helper()
	code, body := harness.HTTP(t, http.MethodGet, r.url("/v1/switches/example.org"), "")
	require.Equal(t, 200, code, body)
	var s stateObj
	require.NoError(t, json.Unmarshal([]byte(body), &s), body)
	return s
}

// startReplicas starts n replicas on one etcd, all serving one switch.
func startReplicas(t *testing.T, etcd string, n int) []*replica {
	return startReplicasWith(t, etcd, n, "")
}

// replicaCorefile is a replica's Corefile: DNS on port, the API on aport,
// the switch example.org in etcd under /bluegreen-test, extra lines in the
// bluegreen block.
func replicaCorefile(port, aport int, etcd, extra string) string {
	return fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    bluegreen {
        base base.db
        pool blue blue.db
        pool green green.db
        weights blue 100 green 0
        ttl 5 1
        store etcd %s {
            prefix /bluegreen-test
        }
        admin 127.0.0.1:%d
        %s
    }
}
`, port, etcd, aport, extra)
}

// switchKey is the etcd key of the replicas' switch.
const switchKey = "/bluegreen-test/switches/example.org"

// startReplicasWith is startReplicas with extra lines in the bluegreen block.
func startReplicasWith(t *testing.T, etcd string, n int, extra string) []*replica {
	var rs []*replica
	for i := 0; i < n; i++ {
		port, aport := harness.FreePort(t), harness.FreePort(t)
		rdir := t.TempDir()
		harness.WriteZones(t, rdir)
		r := &replica{dns: fmt.Sprintf("127.0.0.1:%d", port), admin: fmt.Sprintf("127.0.0.1:%d", aport)}
		r.p = harness.Start(t, rdir, replicaCorefile(port, aport, etcd, extra))
		rs = append(rs, r)
	}
	for _, r := range rs {
		r.p.WaitDNS(r.dns, "www.example.org", 20*time.Second)
		r.p.WaitHTTP(r.url("/healthz"), 10*time.Second)
	}
	return rs
}

// poolFor returns the pool a fixed client gets from r.
func poolFor(t *testing.T, r *replica, subnet string) string {
	t.Helper()
	m, err := harness.QueryECS(r.dns, "www.example.org", subnet)
	require.NoError(t, err)
	return harness.PoolOf(m)
}

func put(t *testing.T, r *replica, body string, ifMatch string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, r.url("/v1/switches/example.org/weights"), strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

func TestReplicas(t *testing.T) {
	harness.NeedTool(t, "etcd")
	srv := etcdtest.Start(t)
	rs := startReplicas(t, srv.Endpoint, 3)
	for i, r := range rs {
		s := getState(t, r)
		assert.Equal(t, "etcd", s.Store, "replica %d", i)
		assert.Equal(t, "blue", poolFor(t, r, "10.0.0.0/24"), "replica %d starts on the seed weights", i)
	}

	t.Run("ChangeReachesEveryReplicaWithin1s", func(t *testing.T) {
		for round, to := range []string{"green", "blue", "green"} {
			body := `{"weights":{"blue":100,"green":0}}`
			if to == "green" {
				body = `{"weights":{"blue":0,"green":100}}`
			}
			writer := rs[round%len(rs)]
			code, resp := put(t, writer, body, "")
			require.Equal(t, 200, code, resp)
			acked := time.Now()
			var worst time.Duration
			for i, r := range rs {
				for poolFor(t, r, "10.0.0.0/24") != to {
					if time.Since(acked) > 3*time.Second {
						t.Fatalf("round %d: replica %d still not on %s 3s after the change", round, i, to)
					}
					time.Sleep(5 * time.Millisecond)
				}
				if d := time.Since(acked); d > worst {
					worst = d
				}
			}
			t.Logf("round %d: all replicas on %s %s after the writer's 200", round, to, worst)
			assert.Less(t, worst, time.Second, "SPEC §5: every replica serves a change within 1 s")
		}
	})

	t.Run("CompareAndSwapOneWinner", func(t *testing.T) {
		// Let every replica see the same version first.
		v := getState(t, rs[0]).Version
		require.Eventually(t, func() bool { return getState(t, rs[1]).Version == v }, 2*time.Second, 10*time.Millisecond)
		etag := fmt.Sprintf("%q", fmt.Sprint(v))
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				codes[i], _ = put(t, rs[i], fmt.Sprintf(`{"weights":{"blue":%d,"green":%d}}`, 10+i, 90-i), etag)
			}(i)
		}
		wg.Wait()
		ok, stale := 0, 0
		for _, c := range codes {
			switch c {
			case 200:
				ok++
			case 412:
				stale++
			}
		}
		assert.Equal(t, 1, ok, "exactly one writer wins, got %v", codes)
		assert.Equal(t, 1, stale, "the other gets 412, got %v", codes)
	})

	t.Run("EtcdOutage", func(t *testing.T) {
		// Green for everyone, seen by all replicas.
		code, resp := put(t, rs[0], `{"weights":{"blue":0,"green":100}}`, "")
		require.Equal(t, 200, code, resp)
		for _, r := range rs {
			require.Eventually(t, func() bool { return poolFor(t, r, "10.9.0.0/24") == "green" }, 2*time.Second, 10*time.Millisecond)
		}

		stop := make(chan struct{})
		var sent, failed, wrong atomic.Int64
		var wg sync.WaitGroup
		for i, r := range rs {
			wg.Add(1)
			go func(i int, r *replica) {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					m, err := harness.QueryECS(r.dns, "www.example.org", fmt.Sprintf("10.%d.%d.0/24", i, n%256))
					sent.Add(1)
					if err != nil || m.Rcode != 0 {
						failed.Add(1)
					} else if harness.PoolOf(m) != "green" {
						wrong.Add(1)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}(i, r)
		}

		srv.Stop()
		outage := time.Now()
		// The replicas notice, say so, and refuse writes.
		for i, r := range rs {
			require.Eventually(t, func() bool { return getState(t, r).StoreStale }, 10*time.Second, 100*time.Millisecond, "replica %d reports stale state", i)
		}
		code, resp = put(t, rs[1], `{"weights":{"blue":100,"green":0}}`, "")
		assert.Equal(t, 503, code, "a write while etcd is down: %s", resp)
		if d := 20*time.Second - time.Since(outage); d > 0 {
			time.Sleep(d)
		}
		srv.Restart()
		for i, r := range rs {
			require.Eventually(t, func() bool { return !getState(t, r).StoreStale }, 15*time.Second, 100*time.Millisecond, "replica %d recovers", i)
		}
		close(stop)
		wg.Wait()
		t.Logf("during the outage: %d queries, %d failed, %d from the wrong pool", sent.Load(), failed.Load(), wrong.Load())
		assert.Zero(t, failed.Load(), "no DNS query may fail while etcd is down")
		assert.Zero(t, wrong.Load(), "the last known weights keep serving")
		assert.Greater(t, sent.Load(), int64(1000))

		// Writes work again and converge without a restart.
		require.Eventually(t, func() bool {
			code, _ := put(t, rs[2], `{"weights":{"blue":100,"green":0}}`, "")
			return code == 200
		}, 10*time.Second, 200*time.Millisecond)
		for i, r := range rs {
			require.Eventually(t, func() bool { return poolFor(t, r, "10.9.0.0/24") == "blue" }, 2*time.Second, 10*time.Millisecond, "replica %d converges", i)
		}
	})

	t.Run("RolloutStepsEverywhereAtOnce", func(t *testing.T) {
		code, body := harness.HTTP(t, http.MethodPost, rs[0].url("/v1/switches/example.org/rollout"),
			`{"steps":[{"weights":{"blue":100,"green":0},"hold":"2s"},{"weights":{"blue":0,"green":100},"hold":"0s"}]}`)
		require.Equal(t, 200, code, body)
		var next time.Time
		for i, r := range rs {
			require.Eventually(t, func() bool {
				s := getState(t, r)
				return s.Rollout != nil && s.Rollout.NextChangeAt != nil
			}, 2*time.Second, 10*time.Millisecond, "replica %d sees the rollout", i)
			s := getState(t, r)
			if i == 0 {
				next = *s.Rollout.NextChangeAt
			} else {
				assert.True(t, next.Equal(*s.Rollout.NextChangeAt), "replica %d steps at %v, replica 0 at %v", i, *s.Rollout.NextChangeAt, next)
			}
		}
		// Each replica flips at the step time (the TTL cap ends at it too).
		for i, r := range rs {
			for poolFor(t, r, "10.7.0.0/24") != "green" {
				require.True(t, time.Now().Before(next.Add(2*time.Second)), "replica %d did not step by %v", i, next)
				time.Sleep(5 * time.Millisecond)
			}
			late := time.Since(next)
			t.Logf("replica %d on green %s after the step time", i, late)
			assert.Less(t, late, time.Second, "replica %d steps at the planned time", i)
		}
		// The completion is written once, whoever writes it.
		require.Eventually(t, func() bool {
			s := getState(t, rs[2])
			return s.Rollout != nil && s.Rollout.State == "completed"
		}, 5*time.Second, 50*time.Millisecond)
		code, body = harness.HTTP(t, http.MethodGet, rs[1].url("/v1/switches/example.org/history"), "")
		require.Equal(t, 200, code)
		assert.Equal(t, 1, strings.Count(body, `"rollout completed"`), "completion recorded once: %s", body)
	})
}

// A replica started while etcd is down waits (bounded), then serves the
// Corefile's seed weights, says its state is stale and refuses writes;
// once etcd is up it converges to the stored weights without a restart.
func TestStartWhileEtcdDown(t *testing.T) {
	harness.NeedTool(t, "etcd")
	srv := etcdtest.Start(t)
	// Store green 100 % first, through a replica.
	rs := startReplicas(t, srv.Endpoint, 1)
	code, resp := put(t, rs[0], `{"weights":{"blue":0,"green":100}}`, "")
	require.Equal(t, 200, code, resp)
	rs[0].p.Kill()
	srv.Stop()

	began := time.Now()
	r := startReplicas(t, srv.Endpoint, 1)[0]
	waited := time.Since(began)
	t.Logf("started without etcd after %s", waited)
	assert.GreaterOrEqual(t, waited, 4*time.Second, "setup waits for etcd before giving up")
	assert.Equal(t, "blue", poolFor(t, r, "10.0.0.0/24"), "seed weights while etcd is down")
	s := getState(t, r)
	assert.True(t, s.StoreStale, "the state says it is stale")
	code, resp = put(t, r, `{"weights":{"blue":50,"green":50}}`, "")
	assert.Equal(t, 503, code, resp)
	assert.Contains(t, r.p.Output(), "SEED WEIGHTS", "a loud warning")

	srv.Restart()
	require.Eventually(t, func() bool { return poolFor(t, r, "10.0.0.0/24") == "green" }, 15*time.Second, 50*time.Millisecond,
		"the stored weights apply once etcd answers")
	assert.False(t, getState(t, r).StoreStale)
}

// A health-triggered abort is written once, whichever replica sees the
// failure first: every replica probes the same failing check.
func TestHealthAbortWrittenOnce(t *testing.T) {
	harness.NeedTool(t, "etcd")
	srv := etcdtest.Start(t)
	var failing atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer hs.Close()
	rs := startReplicasWith(t, srv.Endpoint, 3, "health green "+hs.URL+" interval 100ms timeout 500ms fails 2 passes 2")

	code, body := harness.HTTP(t, http.MethodPost, rs[0].url("/v1/switches/example.org/rollout"),
		`{"steps":[{"weights":{"blue":50,"green":50},"hold":"1h"},{"weights":{"blue":0,"green":100}}],"abort_on_unhealthy":true}`)
	require.Equal(t, 200, code, body)
	for i, r := range rs {
		require.Eventually(t, func() bool {
			s := getState(t, r)
			return s.Rollout != nil && s.Rollout.State == "running"
		}, 2*time.Second, 10*time.Millisecond, "replica %d sees the rollout", i)
	}
	failing.Store(true)
	for i, r := range rs {
		require.Eventually(t, func() bool {
			s := getState(t, r)
			return s.Rollout != nil && s.Rollout.State == "aborted"
		}, 5*time.Second, 20*time.Millisecond, "replica %d sees the abort", i)
		assert.Equal(t, map[string]uint64{"blue": 100, "green": 0}, getState(t, r).Weights, "replica %d restored the weights from before", i)
	}
	time.Sleep(500 * time.Millisecond) // let any late writer try
	_, hist := harness.HTTP(t, http.MethodGet, rs[2].url("/v1/switches/example.org/history"), "")
	assert.Equal(t, 1, strings.Count(hist, "rollout aborted"), "the abort is recorded once: %s", hist)
}

// A record in etcd that does not decode fails startup with an error naming
// the key (waiting would not mend it, and seed weights would hide it). A
// record corrupted while replicas run leaves them on the last good weights,
// not stale, until it is repaired.
func TestCorruptRecord(t *testing.T) {
	harness.NeedTool(t, "etcd")
	srv := etcdtest.Start(t)
	cli := srv.Client()
	ctx := context.Background()

	_, err := cli.Put(ctx, switchKey, "not json{")
	require.NoError(t, err)
	dir := t.TempDir()
	harness.WriteZones(t, dir)
	p := harness.Start(t, dir, replicaCorefile(harness.FreePort(t), harness.FreePort(t), srv.Endpoint, ""))
	require.Eventually(t, p.Exited, 10*time.Second, 50*time.Millisecond, "startup fails:\n%s", p.Output())
	assert.Contains(t, p.Output(), "key \""+switchKey+"\"")
	assert.Contains(t, p.Output(), "corrupt record")
	assert.NotContains(t, p.Output(), "SEED WEIGHTS")

	_, err = cli.Delete(ctx, switchKey)
	require.NoError(t, err)
	r := startReplicas(t, srv.Endpoint, 1)[0]
	code, resp := put(t, r, `{"weights":{"blue":0,"green":100}}`, "")
	require.Equal(t, 200, code, resp)
	_, err = cli.Put(ctx, switchKey, "{broken")
	require.NoError(t, err)
	time.Sleep(2500 * time.Millisecond)
	assert.Equal(t, "green", poolFor(t, r, "10.0.0.0/24"), "the last good weights")
	assert.False(t, getState(t, r).StoreStale, "etcd answers: not stale")
	assert.Contains(t, r.p.Output(), "Keeping the last good weights")

	// Valid JSON that no API call could write (a rollout without steps)
	// crashed every replica that read it.
	_, err = cli.Put(ctx, switchKey, `{"weights":{"blue":1,"green":1},"rollout":{"steps":[],"start":"2026-11-22T06:00:00Z"}}`)
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond)
	require.False(t, r.p.Exited(), "the replica survives:\n%s", r.p.Output())
	assert.Equal(t, "green", poolFor(t, r, "10.0.0.0/24"), "the last good weights")
	assert.Contains(t, r.p.Output(), "0 steps")

	_, err = cli.Put(ctx, switchKey, `{"weights":{"blue":100,"green":0}}`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return poolFor(t, r, "10.0.0.0/24") == "blue" }, 5*time.Second, 20*time.Millisecond,
		"the repaired record applies")
}

// A write whose request etcd took but never answered (etcd frozen) gets a
// 503 that says the change may have been applied, not "nothing changed";
// once etcd goes on, every replica agrees on what was stored.
func TestWriteOutcomeUnknown(t *testing.T) {
	harness.NeedTool(t, "etcd")
	srv := etcdtest.Start(t)
	rs := startReplicas(t, srv.Endpoint, 2)
	srv.Pause()
	code, resp := put(t, rs[0], `{"weights":{"blue":50,"green":50}}`, "")
	srv.Resume()
	require.Equal(t, 503, code, resp)
	assert.Contains(t, resp, "may have been applied")
	assert.NotContains(t, resp, "nothing changed")

	require.Eventually(t, func() bool {
		a, b := getState(t, rs[0]), getState(t, rs[1])
		return !a.StoreStale && !b.StoreStale && a.Version == b.Version && a.Weights["green"] == b.Weights["green"]
	}, 15*time.Second, 50*time.Millisecond, "the replicas agree once etcd goes on")
}
