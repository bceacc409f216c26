package test

import (
	"bytes"
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// TestCrashKeepsAcknowledgedWeights: rounds of weight changes with kill -9
// at random moments, some in the middle of a PUT. After every restart the
// store opens, and the API and DNS serve the last acknowledged weights (a
// PUT that got 200) or the one in flight, never older (SPEC §4, §5).
func TestCrashKeepsAcknowledgedWeights(t *testing.T) {
	harness.NeedTool(t, "curl")
	rounds := 300
	if n, err := strconv.Atoi(os.Getenv("BLUEGREEN_CRASH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	s := storeNewServer(t, storeConf{})
	s.Start()

	// Weights are blue=v, green=1000-v with v growing by one per PUT: every
	// PUT is distinct, and the clients at positions v-1 and v of 1000 tell
	// by DNS alone whether v is what is served.
	clients := storeClients(8000)
	points, err := s.Points(clients)
	if err != nil {
		t.Fatal(err)
	}
	dnsChecks := 0
	// checkDNS asks as the clients right below and at the boundary between
	// the pools: for the total blue+green, a client at position
	// x = point*total/2^64 gets blue exactly when x < blue.
	checkDNS := func(round int, blue, green uint64) {
		t.Helper()
		checked := 0
		for _, want := range []uint64{blue - 1, blue} {
			if blue == 0 {
				continue
			}
			for i, p := range points {
				if x, _ := bits.Mul64(p, blue+green); x != want {
					continue
				}
				a, err := s.query(clients[i])
				if err != nil {
					t.Fatalf("round %d: query as %s: %v", round, clients[i], err)
				}
				if got := a.IP == storeBlueIP; got != (want < blue) {
					t.Fatalf("round %d: the API says %d/%d, but DNS gives the client at position %d/%d blue=%v, not %v: DNS serves other weights",
						round, blue, green, want, blue+green, got, want < blue)
				}
				checked++
				break
			}
		}
		dnsChecks += checked
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	seed := s.Get()
	acked := seed // the newest state a 200 (or a later GET) vouched for
	next := uint64(1)
	var (
		putTime          = []time.Duration{40 * time.Millisecond}
		inflightKills    int // kills while a PUT was in flight
		inflightLanded   int // ... whose PUT had committed anyway
		ackedThenKilled  int
		start            = time.Now()
		restartDurations []time.Duration
	)
	for round := 1; round <= rounds; round++ {
		var inflight *uint64
		switch mode := rng.IntN(10); {
		case mode < 3: // one or more acknowledged PUTs, then kill
			for k := rng.IntN(3); k >= 0; k-- {
				t0 := time.Now()
				acked = s.Put(next, 1000-next, int64(acked.Version))
				putTime = append(putTime, time.Since(t0))
				next++
			}
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
			s.Kill()
			ackedThenKilled++
		case mode < 9: // kill while a PUT is on its way
			v := next
			next++
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var status bytes.Buffer
			cmd := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}"}, s.PutArgs(v, 1000-v, int64(acked.Version))...)...)
			cmd.Stdout = &status
			t0 := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The PUT takes about the median of the acknowledged ones
			// (curl's start-up included); kill somewhere inside it.
			med := slices.Sorted(slices.Values(putTime))[len(putTime)/2]
			time.Sleep(time.Duration(rng.Int64N(int64(med) * 3 / 2)))
			s.Kill()
			cmd.Wait() // curl fails when the kill cut it off; the status says
			cancel()
			if strings.TrimSpace(status.String()) == "200" {
				// The answer came before the kill: acknowledged.
				acked.Version++
				acked.Weights = map[string]uint64{"blue": v, "green": 1000 - v}
				putTime = append(putTime, time.Since(t0))
			} else {
				inflight = &v
				inflightKills++
			}
		default: // kill with nothing in flight
			s.Kill()
		}

		t0 := time.Now()
		if err := s.start(); err != nil {
			s.DumpLog()
			t.Fatalf("round %d: the server did not come back after kill -9: %v", round, err)
		}
		restartDurations = append(restartDurations, time.Since(t0))
		st, err := s.get()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		switch {
		case st.Version == acked.Version && st.Weights["blue"] == acked.Weights["blue"] && st.Weights["green"] == acked.Weights["green"]:
		case inflight != nil && st.Version == acked.Version+1 && st.Weights["blue"] == *inflight && st.Weights["green"] == 1000-*inflight:
			inflightLanded++
		default:
			what := "none"
			if inflight != nil {
				what = fmt.Sprintf("blue=%d at version %d", *inflight, acked.Version+1)
			}
			t.Fatalf("round %d: after kill -9 the server has version %d with %v; expected the last acknowledged version %d with %v, or the one in flight (%s)",
				round, st.Version, st.Weights, acked.Version, acked.Weights, what)
		}
		acked = st
		checkDNS(round, st.Weights["blue"], st.Weights["green"])
	}
	if final := s.Get(); final.Version != acked.Version {
		t.Fatalf("at the end: expected version %d, got %d", acked.Version, final.Version)
	}
	slices.Sort(restartDurations)
	t.Logf("%d rounds in %v: %d PUTs, %d kills after an acknowledged PUT, %d kills with a PUT in flight (%d of them had committed), %d boundary DNS checks; restart median %v, max %v",
		rounds, time.Since(start).Round(time.Millisecond), next-1, ackedThenKilled, inflightKills, inflightLanded, dnsChecks,
		restartDurations[len(restartDurations)/2], restartDurations[len(restartDurations)-1])
	if inflightKills == 0 {
		t.Errorf("no kill landed while a PUT was in flight: the test did not test what it claims")
	}
	if dnsChecks < rounds {
		t.Errorf("expected at least %d boundary DNS checks, made %d", rounds, dnsChecks)
	}
	if acked.Version == seed.Version {
		t.Errorf("no PUT was ever committed")
	}
}
