// Package storetest is the conformance suite every store.Store passes: the
// memory store, bbolt, and any later one (etcd) run the same cases through
// Run, so they all keep the promises the state package relies on.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/rollout"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

// Options tune the suite to a store's documented differences.
type Options struct {
	// VersionsMayJump: a commit's version is greater than the previous
	// one but not necessarily by one (etcd's mod revision). Memory and
	// bbolt count by one.
	VersionsMayJump bool
}

// Run runs the suite with a fresh store from open for every case; the suite
// closes the store when the case ends.
func Run(t *testing.T, open func() store.Store) { RunWith(t, open, Options{}) }

// RunWith is Run with options.
func RunWith(t *testing.T, open func() store.Store, opt Options) {
	cases := []struct {
		name string
		f    func(*testing.T, store.Store, Options)
	}{
		{"LoadMissing", testLoadMissing},
		{"CompareAndSwapFromZero", testCASFromZero},
		{"VersionGrows", testVersionGrows},
		{"StalePrevConflicts", testStalePrev},
		{"SwitchesAreIndependent", testIndependent},
		{"HistoryRoundTrips", testHistoryRoundTrips},
		{"FullHistoryRoundTrips", testFullHistory},
		{"RolloutRoundTrips", testRolloutRoundTrips},
		{"DeepCopies", testDeepCopies},
		{"ConcurrentCompareAndSwap", testConcurrentCAS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := open()
			t.Cleanup(func() {
				if err := st.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.f(t, st, opt)
		})
	}
}

var ctx = context.Background()

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)

// record returns a record with weights blue/green and n history entries.
func record(blue, green uint64, n int) *store.Record {
	r := &store.Record{
		Weights:   map[string]uint64{"blue": blue, "green": green},
		UpdatedAt: t0,
	}
	for i := 0; i < n; i++ {
		r.History = append(r.History, store.Change{
			Version: uint64(i + 1),
			Time:    t0.Add(time.Duration(i) * time.Second),
			Source:  []string{"api", "rollout", "health"}[i%3],
			From:    map[string]uint64{"blue": uint64(i), "green": 1000 - uint64(i)},
			To:      map[string]uint64{"blue": uint64(i + 1), "green": 999 - uint64(i)},
			Reason:  fmt.Sprintf("step %d: ünïcode \"quoted\"", i),
			Remote:  "127.0.0.1:5353",
		})
	}
	return r
}

func mustCAS(t *testing.T, st store.Store, name string, prev uint64, rec *store.Record) *store.Record {
	t.Helper()
	got, err := st.CompareAndSwap(ctx, name, prev, rec)
	if err != nil {
		t.Fatalf("CompareAndSwap(%q, %d): expected no error, got %v", name, prev, err)
	}
	if got == nil {
		t.Fatalf("CompareAndSwap(%q, %d): expected the committed record, got nil", name, prev)
	}
	return got
}

func mustLoad(t *testing.T, st store.Store, name string) *store.Record {
	t.Helper()
	got, err := st.Load(ctx, name)
	if err != nil {
		t.Fatalf("Load(%q): expected no error, got %v", name, err)
	}
	return got
}

// checkEqual fails unless got holds what want does (nil and empty
// collections are alike: a store may encode either way).
func checkEqual(t *testing.T, what string, want, got *store.Record) {
	t.Helper()
	if err := diff(want, got); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func diff(want, got *store.Record) error {
	switch {
	case want == nil && got == nil:
		return nil
	case want == nil:
		return fmt.Errorf("expected no record, got version %d", got.Version)
	case got == nil:
		return fmt.Errorf("expected version %d, got no record", want.Version)
	}
	if want.Version != got.Version {
		return fmt.Errorf("expected version %d, got %d", want.Version, got.Version)
	}
	if !maps.Equal(want.Weights, got.Weights) {
		return fmt.Errorf("expected weights %v, got %v", want.Weights, got.Weights)
	}
	if !want.UpdatedAt.Equal(got.UpdatedAt) {
		return fmt.Errorf("expected updated_at %v, got %v", want.UpdatedAt, got.UpdatedAt)
	}
	wr, _ := json.Marshal(want.Rollout)
	gr, _ := json.Marshal(got.Rollout)
	if string(wr) != string(gr) {
		return fmt.Errorf("expected rollout %s, got %s", wr, gr)
	}
	if len(want.History) != len(got.History) {
		return fmt.Errorf("expected %d history entries, got %d", len(want.History), len(got.History))
	}
	for i, w := range want.History {
		g := got.History[i]
		if w.Version != g.Version || !w.Time.Equal(g.Time) || w.Source != g.Source ||
			w.Reason != g.Reason || w.Remote != g.Remote || !maps.Equal(w.From, g.From) || !maps.Equal(w.To, g.To) {
			return fmt.Errorf("history %d: expected %+v, got %+v", i, w, g)
		}
	}
	return nil
}

func testLoadMissing(t *testing.T, st store.Store, _ Options) {
	got := mustLoad(t, st, "example.org")
	if got != nil {
		t.Fatalf("Load of a missing switch: expected nil, got %+v", got)
	}
}

func testCASFromZero(t *testing.T, st store.Store, opt Options) {
	got := mustCAS(t, st, "example.org", 0, record(90, 10, 1))
	if got.Version == 0 || (!opt.VersionsMayJump && got.Version != 1) {
		t.Fatalf("first commit: expected version 1, got %d", got.Version)
	}
	want := record(90, 10, 1)
	want.Version = got.Version
	checkEqual(t, "returned record", want, got)
	checkEqual(t, "loaded record", want, mustLoad(t, st, "example.org"))
}

func testVersionGrows(t *testing.T, st store.Store, opt Options) {
	var prev uint64
	for i := uint64(0); i < 20; i++ {
		got := mustCAS(t, st, "example.org", prev, record(i, 20-i, int(i)))
		if got.Version <= prev || (!opt.VersionsMayJump && got.Version != prev+1) {
			t.Fatalf("commit %d on version %d: expected version %d, got %d", i, prev, prev+1, got.Version)
		}
		loaded := mustLoad(t, st, "example.org")
		if loaded == nil || loaded.Version != got.Version {
			t.Fatalf("commit %d: CompareAndSwap returned version %d but Load gives %+v", i, got.Version, loaded)
		}
		prev = got.Version
	}
}

func testStalePrev(t *testing.T, st store.Store, _ Options) {
	// Nothing stored: only prev 0 may commit.
	for _, prev := range []uint64{1, 7} {
		if _, err := st.CompareAndSwap(ctx, "example.org", prev, record(1, 1, 0)); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("CompareAndSwap on an empty store with prev %d: expected ErrConflict, got %v", prev, err)
		}
		if got := mustLoad(t, st, "example.org"); got != nil {
			t.Fatalf("a conflicting CompareAndSwap stored version %d", got.Version)
		}
	}

	v1 := mustCAS(t, st, "example.org", 0, record(90, 10, 1))
	v2 := mustCAS(t, st, "example.org", v1.Version, record(50, 50, 2))
	for _, prev := range []uint64{0, v1.Version, v2.Version + 1, v2.Version + 1000} {
		if _, err := st.CompareAndSwap(ctx, "example.org", prev, record(0, 100, 3)); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("CompareAndSwap with prev %d (stored %d): expected ErrConflict, got %v", prev, v2.Version, err)
		}
		want := record(50, 50, 2)
		want.Version = v2.Version
		checkEqual(t, fmt.Sprintf("after a conflict with prev %d", prev), want, mustLoad(t, st, "example.org"))
	}
}

func testIndependent(t *testing.T, st store.Store, _ Options) {
	a := mustCAS(t, st, "a.example", 0, record(1, 2, 0))
	if got := mustLoad(t, st, "b.example"); got != nil {
		t.Fatalf("a commit to a.example made b.example hold version %d", got.Version)
	}
	b := mustCAS(t, st, "b.example", 0, record(3, 4, 0))
	mustCAS(t, st, "b.example", b.Version, record(5, 6, 0))
	want := record(1, 2, 0)
	want.Version = a.Version
	checkEqual(t, "a.example after commits to b.example", want, mustLoad(t, st, "a.example"))
}

func testHistoryRoundTrips(t *testing.T, st store.Store, _ Options) {
	in := record(90, 10, 5)
	in.History[2].Reason = ""
	in.History[2].Remote = ""
	in.History[3].From = map[string]uint64{"blue": 0, "green": 0, "red": 1_000_000}
	got := mustCAS(t, st, "example.org", 0, in)
	want := in.Clone()
	want.Version = got.Version
	checkEqual(t, "returned record", want, got)
	checkEqual(t, "loaded record", want, mustLoad(t, st, "example.org"))
}

func testFullHistory(t *testing.T, st store.Store, _ Options) {
	in := record(1, 1, store.MaxHistory)
	got := mustCAS(t, st, "example.org", 0, in)
	want := in.Clone()
	want.Version = got.Version
	checkEqual(t, "loaded record", want, mustLoad(t, st, "example.org"))
}

// plan returns a paused rollout plan with every field set.
func plan() *rollout.Plan {
	paused := t0.Add(90 * time.Second)
	return &rollout.Plan{
		Steps: []rollout.Step{
			{Weights: map[string]uint64{"blue": 90, "green": 10}, Hold: rollout.Duration(time.Minute)},
			{Weights: map[string]uint64{"blue": 50, "green": 50}, Hold: rollout.Duration(10 * time.Minute)},
			{Weights: map[string]uint64{"blue": 0, "green": 100}},
		},
		Start:            t0,
		Before:           map[string]uint64{"blue": 100, "green": 0},
		AbortOnUnhealthy: true,
		PausedAt:         &paused,
	}
}

func testRolloutRoundTrips(t *testing.T, st store.Store, _ Options) {
	in := record(90, 10, 1)
	in.Rollout = plan()
	got := mustCAS(t, st, "example.org", 0, in)
	want := in.Clone()
	want.Version = got.Version
	checkEqual(t, "returned record", want, got)
	checkEqual(t, "loaded record", want, mustLoad(t, st, "example.org"))

	// An ended plan, and then none.
	ended := record(0, 100, 1)
	ended.Rollout = plan()
	end := t0.Add(time.Hour)
	ended.Rollout.PausedAt, ended.Rollout.EndedAt = nil, &end
	ended.Rollout.Outcome, ended.Rollout.Reason = "aborted", "pool green unhealthy"
	got = mustCAS(t, st, "example.org", got.Version, ended)
	want = ended.Clone()
	want.Version = got.Version
	checkEqual(t, "loaded record with an ended plan", want, mustLoad(t, st, "example.org"))
	got = mustCAS(t, st, "example.org", got.Version, record(0, 100, 0))
	want = record(0, 100, 0)
	want.Version = got.Version
	checkEqual(t, "loaded record without a plan", want, mustLoad(t, st, "example.org"))
}

// testDeepCopies: no record the caller holds (passed in, returned by
// CompareAndSwap, returned by Load) shares memory with what the store keeps.
func testDeepCopies(t *testing.T, st store.Store, _ Options) {
	in := record(90, 10, 2)
	in.Rollout = plan()
	got := mustCAS(t, st, "example.org", 0, in)
	want := record(90, 10, 2)
	want.Rollout = plan()
	want.Version = got.Version

	scribble := func(r *store.Record) {
		r.Version = 999
		r.Weights["blue"] = 1
		r.Weights["red"] = 7
		r.UpdatedAt = time.Time{}
		r.History[0].From["blue"] = 12345
		r.History[0].To["green"] = 54321
		r.History[1].Reason = "scribbled"
		r.History = append(r.History[:1], store.Change{Source: "scribbled"})
		r.Rollout.Steps[1].Weights["green"] = 99
		r.Rollout.Steps[2].Hold = 1
		r.Rollout.Before["blue"] = 1
		*r.Rollout.PausedAt = time.Time{}
		r.Rollout.Outcome = "scribbled"
	}
	scribble(in)
	checkEqual(t, "after changing the record passed to CompareAndSwap", want, mustLoad(t, st, "example.org"))
	scribble(got)
	checkEqual(t, "after changing the record CompareAndSwap returned", want, mustLoad(t, st, "example.org"))
	loaded := mustLoad(t, st, "example.org")
	scribble(loaded)
	checkEqual(t, "after changing a loaded record", want, mustLoad(t, st, "example.org"))

	// Two loads are independent too.
	a, b := mustLoad(t, st, "example.org"), mustLoad(t, st, "example.org")
	a.Weights["green"] = 77
	if b.Weights["green"] != 10 {
		t.Fatalf("two loads share their weights: expected green 10 in the second, got %d", b.Weights["green"])
	}
}

// testConcurrentCAS: many writers race on each version; exactly one wins,
// every other gets ErrConflict, and the stored record is the winner's.
func testConcurrentCAS(t *testing.T, st store.Store, opt Options) {
	const writers, rounds = 16, 10
	var prev uint64
	for round := 0; round < rounds; round++ {
		var (
			wg        sync.WaitGroup
			start     = make(chan struct{})
			mu        sync.Mutex
			winners   []int
			committed *store.Record
			others    []error
		)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got, err := st.CompareAndSwap(ctx, "example.org", prev, record(uint64(w), uint64(round), 0))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, w)
					committed = got
				case !errors.Is(err, store.ErrConflict):
					others = append(others, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(others) > 0 {
			t.Fatalf("round %d: expected only ErrConflict for losers, got %v", round, others)
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: expected exactly one winner on version %d, got %d (%v)", round, prev, len(winners), winners)
		}
		if committed.Version <= prev || (!opt.VersionsMayJump && committed.Version != prev+1) {
			t.Fatalf("round %d: expected version %d, got %d", round, prev+1, committed.Version)
		}
		want := record(uint64(winners[0]), uint64(round), 0)
		want.Version = committed.Version
		checkEqual(t, fmt.Sprintf("round %d: stored record", round), want, mustLoad(t, st, "example.org"))
		prev = committed.Version
	}
}
