package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// TestStoreE2EWeightsAndRestart: weights changed with curl move the share
// of many client subnets (ECS /24s) at once, clients only move towards the
// pool that grew, and a restart (graceful or kill -9) serves the same
// weights to the same clients.
func TestStoreE2EWeightsAndRestart(t *testing.T) {
	harness.NeedTool(t, "curl")
	s := storeNewServer(t, storeConf{})
	s.Start()

	st := s.Get()
	if st.Version != 0 || st.Weights["blue"] != 90 || st.Weights["green"] != 10 || st.Store != "bbolt" {
		t.Fatalf("fresh server: expected version 0, the seed 90/10 and store bbolt, got %+v", st)
	}
	// 10,000 subnets, each compared with the pool the spec's formula gives it.
	clients := storeClients(10000)
	checkShare := func(what string, green []bool, blue, greenW uint64) {
		t.Helper()
		for i, c := range clients {
			if want := refPool(storeZone, c.Addr(), []uint64{blue, greenW}) == 1; green[i] != want {
				t.Fatalf("%s: client %s expected green=%v, got green=%v", what, c, want, green[i])
			}
		}
		t.Logf("%s: green share %.4f, every client as the formula says", what, storeShare(green))
	}
	seed := s.Sample(clients)
	checkShare("seed weights 90/10", seed, 90, 10)

	put := s.Put(30, 70, 0)
	if put.Version != 1 {
		t.Fatalf("PUT 30/70 with If-Match 0: expected version 1, got %d", put.Version)
	}
	moved := s.Sample(clients)
	checkShare("right after PUT 30/70", moved, 30, 70)
	for i := range clients {
		if seed[i] && !moved[i] {
			t.Fatalf("client %s was green at 10 %% and is blue at 70 %%: the canary share grew but a client left it", clients[i])
		}
	}

	// Every client gets exactly the pool the SPEC's arithmetic says, from
	// the hash point the API explains.
	points, err := s.Points(clients[:2000])
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range points {
		if want := !storeBlueFor(p, 30, 70); moved[i] != want {
			t.Fatalf("client %s (point %d): expected green=%v under 30/70, got green=%v", clients[i], p, want, moved[i])
		}
	}

	// A stale If-Match is refused and changes nothing.
	code, body, err := storeCurl(context.Background(), s.PutArgs(1, 1, 0)...)
	if err != nil || code != http.StatusPreconditionFailed {
		t.Fatalf("PUT with a stale If-Match: expected 412, got %d %s (%v)", code, body, err)
	}

	restart := []struct {
		name string
		stop func()
	}{
		{"graceful restart", s.Stop},
		{"kill -9 and restart", s.Kill},
	}
	for _, r := range restart {
		r.stop()
		s.Start()
		st := s.Get()
		if st.Version != 1 || st.Weights["blue"] != 30 || st.Weights["green"] != 70 {
			t.Fatalf("after %s: expected version 1 with 30/70, got %+v", r.name, st)
		}
		again := s.Sample(clients)
		for i := range clients {
			if again[i] != moved[i] {
				t.Fatalf("after %s: client %s expected green=%v as before, got green=%v", r.name, clients[i], moved[i], again[i])
			}
		}
	}
}

// TestStoreE2ECorruptStoreFailsStartup: a damaged state.db stops the
// server from starting, with a message naming the file, and is left as it
// was: never replaced by the seed weights (SPEC §5).
func TestStoreE2ECorruptStoreFailsStartup(t *testing.T) {
	harness.NeedTool(t, "curl")
	s := storeNewServer(t, storeConf{})
	s.Start()
	s.Put(30, 70, 0)
	s.Put(20, 80, 1)
	s.Stop()
	path := filepath.Join(s.dir, "state.db")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, len(good))
	for i := range junk {
		junk[i] = byte(i*7919 + i>>8)
	}
	tests := []struct {
		name    string
		content []byte
	}{
		{"random bytes", junk},
		{"truncated to three pages", good[:3*4096]},
		{"a text file", []byte("weights blue 90 green 10\n")},
	}
	for _, tc := range tests {
		if err := os.WriteFile(path, tc.content, 0o600); err != nil {
			t.Fatal(err)
		}
		out := s.StartFails()
		if !strings.Contains(out, path) {
			t.Errorf("%s: expected the error to name %s, got:\n%s", tc.name, path, out)
		}
		if strings.Contains(out, "panic") || strings.Contains(out, "fatal error") || strings.Contains(out, "SIGBUS") {
			t.Errorf("%s: expected a clean setup error, got a crash:\n%s", tc.name, out)
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after, tc.content) {
			t.Errorf("%s: expected the damaged file left as it was, it changed (%d bytes, now %d)", tc.name, len(tc.content), len(after))
		}
	}

	// The intact file brings back the weights.
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Start()
	if st := s.Get(); st.Version != 2 || st.Weights["blue"] != 20 || st.Weights["green"] != 80 {
		t.Errorf("with the intact file back: expected version 2 with 20/80, got %+v", st)
	}
}

// TestStoreE2EReloadUnderLoad: Corefile reloads (SIGUSR1, then the reload
// plugin) while queries and API reads run: no query fails, the API keeps
// answering, and weights, version and history are what they were.
func TestStoreE2EReloadUnderLoad(t *testing.T) {
	harness.NeedTool(t, "curl")
	const reload = "reload 2s 0s" // the reload plugin's shortest interval, no jitter
	s := storeNewServer(t, storeConf{Extra: reload})
	s.Start()
	s.Put(30, 70, 0)
	want := s.Put(25, 75, 1)
	history := storeHistoryLen(t, s)
	if history != 2 {
		t.Fatalf("after two PUTs: expected 2 history entries, got %d", history)
	}

	clients := storeClients(2000)
	points, err := s.Points(clients)
	if err != nil {
		t.Fatal(err)
	}

	// Load: queries from many subnets, and API reads, until stop.
	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		queries  atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
		lastTTL  atomic.Uint32
		apiOK    atomic.Int64
		apiErrs  atomic.Int64
		apiGap   atomic.Int64 // longest time without a good API answer, ns
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				c := i % len(clients)
				a, err := s.query(clients[c])
				queries.Add(1)
				if err == nil && (a.IP == storeGreenIP) == storeBlueFor(points[c], want.Weights["blue"], want.Weights["green"]) {
					err = errStorePool
				}
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, clients[c].String()+": "+err.Error())
					continue
				}
				lastTTL.Store(a.TTL)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			st, err := s.GetHTTP()
			if err == nil && (st.Version != want.Version || st.Weights["green"] != 75) {
				t.Errorf("API during reloads: expected version %d with 25/75, got %+v", want.Version, st)
			}
			if err != nil {
				apiErrs.Add(1)
				continue
			}
			apiOK.Add(1)
			if gap := time.Since(last); int64(gap) > apiGap.Load() {
				apiGap.Store(int64(gap))
			}
			last = time.Now()
		}
	}()

	waitTTL := func(ttl uint32, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for lastTTL.Load() != ttl {
			if time.Now().After(deadline) {
				t.Fatalf("expected answers with TTL %d (the reloaded ttl) within %v, last TTL %d", ttl, within, lastTTL.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if lastTTL.Load() != 30 {
		t.Fatalf("before any reload: expected TTL 30, got %d", lastTTL.Load())
	}
	// 1. The reload plugin notices the changed file by itself.
	s.WriteCorefile(storeConf{TTLMax: 20, Extra: reload})
	waitTTL(20, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	// 2. SIGUSR1. (Second: in CoreDNS 1.15.0 the reload plugin stops
	// watching after a SIGUSR1 reload, with or without bluegreen.)
	s.WriteCorefile(storeConf{TTLMax: 15, Extra: reload})
	s.Signal(syscall.SIGUSR1)
	waitTTL(15, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	t.Logf("%d queries during two reloads, %d failed; %d API reads, %d failed, longest gap %v",
		queries.Load(), failures.Load(), apiOK.Load(), apiErrs.Load(), time.Duration(apiGap.Load()))
	if n := failures.Load(); n != 0 {
		t.Errorf("expected no failed query across reloads, got %d (first: %v)", n, firstErr.Load())
	}
	if queries.Load() < 500 {
		t.Errorf("expected the load to send at least 500 queries, it sent %d", queries.Load())
	}
	if gap := time.Duration(apiGap.Load()); gap > time.Second {
		t.Errorf("expected the API to keep answering across reloads, it was unavailable for %v", gap)
	}
	if !s.Alive() {
		t.Fatal("coredns exited during the reloads")
	}
	if s.LogContains("address already in use") {
		t.Error("a reload logged 'address already in use'")
	}
	st := s.Get()
	if st.Version != want.Version || st.Weights["blue"] != 25 || st.Weights["green"] != 75 {
		t.Errorf("after the reloads: expected version %d with 25/75, got %+v", want.Version, st)
	}
	if n := storeHistoryLen(t, s); n != history {
		t.Errorf("after the reloads: expected %d history entries, got %d", history, n)
	}
	// Writes still work and are served.
	s.Put(50, 50, int64(want.Version))
	green := s.Sample(clients)
	for i, p := range points {
		if g := !storeBlueFor(p, 50, 50); green[i] != g {
			t.Fatalf("after a PUT following the reloads: client %s expected green=%v, got %v", clients[i], g, green[i])
		}
	}
}

var errStorePool = errors.New("answer from the wrong pool for the weights")

// storeHistoryLen returns the number of entries GET .../history lists.
func storeHistoryLen(t *testing.T, s *storeServer) int {
	t.Helper()
	code, body, err := storeCurl(context.Background(), s.url("/v1/switches/"+storeZone+"/history"))
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET history: expected 200, got %d %s (%v)", code, body, err)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		// Also accept an object wrapping the list.
		var wrapped struct {
			History []json.RawMessage `json:"history"`
		}
		if err2 := json.Unmarshal(body, &wrapped); err2 != nil || wrapped.History == nil {
			t.Fatalf("GET history: expected a JSON list, got %s", body)
		}
		list = wrapped.History
	}
	return len(list)
}
