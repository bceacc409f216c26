package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bluegreen-dns/bluegreen/internal/clock/clocktest"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

func init() { clog.Discard() }

var ctx = context.Background()

// newName returns a switch name unique to the test and removes the switch
// from the registry when the test ends.
func newName(t *testing.T) string {
	name := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name()) + ".example"
	Forget(name)
	t.Cleanup(func() { Forget(name) })
	return name
}

func blueGreen(st store.Store, blue, green uint64) Config {
	return Config{
		Pools: []string{"blue", "green"},
		Seed:  []uint64{blue, green},
		Info:  Info{TTLMax: 30, TTLMin: 1, Sticky: "subnet"},
		Store: st,
	}
}

func mustGet(t *testing.T, name string, cfg Config) *Switch {
	t.Helper()
	s, err := Configure(ctx, name, cfg)
	if err != nil {
		t.Fatalf("Configure(%q): expected no error, got %v", name, err)
	}
	return s
}

func w(blue, green uint64) map[string]uint64 { return map[string]uint64{"blue": blue, "green": green} }

func mustApply(t *testing.T, s *Switch, weights map[string]uint64) *View {
	t.Helper()
	v, err := s.Apply(ctx, Update{Weights: weights, Source: SourceAPI, Reason: "test", Remote: "127.0.0.1:1"})
	if err != nil {
		t.Fatalf("Apply(%v): expected no error, got %v", weights, err)
	}
	return v
}

// checkWeights fails unless the published snapshot has version and weights
// (by pool, in declared order).
func checkSnap(t *testing.T, s *Switch, version uint64, pools []string, weights []uint64) {
	t.Helper()
	snap := s.Load()
	if snap.Version != version || !slices.Equal(snap.Pools, pools) || !slices.Equal(snap.Weights, weights) {
		t.Fatalf("expected version %d, pools %v, weights %v; got version %d, pools %v, weights %v",
			version, pools, weights, snap.Version, snap.Pools, snap.Weights)
	}
	var cum []uint64
	var sum uint64
	for _, x := range snap.Effective {
		sum += x
		cum = append(cum, sum)
	}
	if !slices.Equal(snap.Cum, cum) {
		t.Fatalf("expected cumulative weights %v for effective %v, got %v", cum, snap.Effective, snap.Cum)
	}
}

func TestGetSeed(t *testing.T) {
	name := newName(t)
	s := mustGet(t, name, blueGreen(nil, 90, 10))
	checkSnap(t, s, 0, []string{"blue", "green"}, []uint64{90, 10})
	if Lookup(name) != s {
		t.Errorf("Lookup(%q): expected the switch Configure made", name)
	}
	v := s.View()
	if v.Version != 0 || !maps.Equal(v.Weights, w(90, 10)) || v.Shares["blue"] != 0.9 || v.Shares["green"] != 0.1 {
		t.Errorf("View: expected version 0, weights 90/10, shares 0.9/0.1; got %+v", v)
	}
	if v.Store != "memory" || v.TTL.Max != 30 || v.TTL.Min != 1 || v.Sticky != "subnet" {
		t.Errorf("View: expected store memory, ttl 30/1, sticky subnet; got %q, %+v, %q", v.Store, v.TTL, v.Sticky)
	}
	if h := s.History(); h == nil || len(h) != 0 {
		t.Errorf("History: expected an empty, non-nil list before any change, got %#v", h)
	}
}

func TestGetStoredWins(t *testing.T) {
	name := newName(t)
	st := store.NewMemory()
	var prev uint64
	for _, blue := range []uint64{70, 40, 20} {
		c, err := st.CompareAndSwap(ctx, name, prev, &store.Record{Weights: w(blue, 100-blue), UpdatedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		prev = c.Version
	}
	s := mustGet(t, name, blueGreen(st, 90, 10))
	checkSnap(t, s, 3, []string{"blue", "green"}, []uint64{20, 80})
	if v := s.View(); !maps.Equal(v.Weights, w(20, 80)) || v.Version != 3 {
		t.Errorf("View: expected the stored weights 20/80 at version 3, got %v at %d", v.Weights, v.Version)
	}
	// The next change continues from the stored version.
	if v := mustApply(t, s, w(10, 90)); v.Version != 4 {
		t.Errorf("Apply after loading version 3: expected version 4, got %d", v.Version)
	}
}

func TestGetUnreadableStore(t *testing.T) {
	name := newName(t)
	s := mustGet(t, name, blueGreen(nil, 90, 10))
	mustApply(t, s, w(50, 50))
	broken := &stubStore{Store: store.NewMemory()}
	broken.failLoad.Store(true)
	if _, err := Configure(ctx, name, blueGreen(broken, 90, 10)); err == nil {
		t.Fatal("Configure with a store that cannot load: expected an error, got none")
	}
	// The switch keeps serving what it had.
	checkSnap(t, s, 1, []string{"blue", "green"}, []uint64{50, 50})
}

// TestReload: a Corefile reload calls Configure again; weights, version and
// history are kept, with the memory store and with an explicit store.
func TestReload(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   func() store.Store
	}{
		{"memory", func() store.Store { return nil }},
		{"explicit", func() store.Store { return store.NewMemory() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := newName(t)
			st := tc.st()
			s := mustGet(t, name, blueGreen(st, 90, 10))
			mustApply(t, s, w(60, 40))
			mustApply(t, s, w(30, 70))
			before := s.History()

			// The reload's Corefile has other seed weights and TTLs.
			cfg := blueGreen(st, 1, 0)
			cfg.Info.TTLMax = 300
			s2 := mustGet(t, name, cfg)
			if s2 != s {
				t.Errorf("reload: expected the same switch, got a new one")
			}
			checkSnap(t, s2, 2, []string{"blue", "green"}, []uint64{30, 70})
			after := s2.History()
			if len(after) != 2 || fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("reload: expected the history kept, before %v, after %v", before, after)
			}
			if v := s2.View(); v.TTL.Max != 300 {
				t.Errorf("reload: expected the new ttl 300 in the view, got %d", v.TTL.Max)
			}
			if v := mustApply(t, s2, w(0, 1)); v.Version != 3 {
				t.Errorf("Apply after reload: expected version 3, got %d", v.Version)
			}
		})
	}
}

func TestReloadPools(t *testing.T) {
	name := newName(t)
	st := store.NewMemory()
	three := Config{Pools: []string{"blue", "green", "red"}, Seed: []uint64{1, 0, 0}, Store: st}
	s := mustGet(t, name, three)
	mustApply(t, s, map[string]uint64{"blue": 10, "green": 20, "red": 30})

	// red removed: it drops out, the others keep their weights and version.
	mustGet(t, name, blueGreen(st, 1, 0))
	checkSnap(t, s, 1, []string{"blue", "green"}, []uint64{10, 20})
	if v := s.View(); len(v.Weights) != 2 || v.Shares["blue"] != 1.0/3 {
		t.Errorf("after removing red: expected weights of blue and green only with blue's share 1/3, got %v %v", v.Weights, v.Shares)
	}
	var inv *InvalidError
	if _, err := s.Apply(ctx, Update{Weights: map[string]uint64{"blue": 1, "green": 1, "red": 1}}); !errors.As(err, &inv) {
		t.Errorf("Apply naming the removed pool red: expected an InvalidError, got %v", err)
	}

	// yellow added: it joins with weight 0.
	four := Config{Pools: []string{"blue", "green", "yellow"}, Seed: []uint64{1, 0, 0}, Store: st}
	mustGet(t, name, four)
	checkSnap(t, s, 1, []string{"blue", "green", "yellow"}, []uint64{10, 20, 0})
	mustApply(t, s, map[string]uint64{"blue": 1, "green": 2, "yellow": 3})
	checkSnap(t, s, 2, []string{"blue", "green", "yellow"}, []uint64{1, 2, 3})
}

// TestReloadPoolsAllZero: when the pools left all have weight 0, the seed
// applies (a switch always has somewhere to send traffic).
func TestReloadPoolsAllZero(t *testing.T) {
	name := newName(t)
	st := store.NewMemory()
	s := mustGet(t, name, Config{Pools: []string{"blue", "green", "red"}, Seed: []uint64{1, 0, 0}, Store: st})
	mustApply(t, s, map[string]uint64{"blue": 0, "green": 0, "red": 5})
	mustGet(t, name, blueGreen(st, 3, 1))
	checkSnap(t, s, 1, []string{"blue", "green"}, []uint64{3, 1})
}

// unchanged captures what must not move when a change fails.
type unchanged struct {
	snap    *Snapshot
	history string
	rec     *store.Record
	changes float64
}

func capture(t *testing.T, s *Switch, st store.Store) unchanged {
	t.Helper()
	rec, err := st.Load(ctx, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	return unchanged{s.Load(), fmt.Sprint(s.History()), rec, testutil.ToFloat64(changesTotal.WithLabelValues(s.Name, SourceAPI))}
}

func (u unchanged) check(t *testing.T, what string, s *Switch, st store.Store) {
	t.Helper()
	if got := s.Load(); got != u.snap {
		t.Errorf("%s: expected the snapshot unchanged (version %d, %v), got version %d, %v", what, u.snap.Version, u.snap.Weights, got.Version, got.Weights)
	}
	if h := fmt.Sprint(s.History()); h != u.history {
		t.Errorf("%s: expected the history unchanged, got %s", what, h)
	}
	rec, err := st.Load(ctx, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rec) != fmt.Sprint(u.rec) {
		t.Errorf("%s: expected the stored record unchanged, was %+v, got %+v", what, u.rec, rec)
	}
	if c := testutil.ToFloat64(changesTotal.WithLabelValues(s.Name, SourceAPI)); c != u.changes {
		t.Errorf("%s: expected changes_total unchanged at %v, got %v", what, u.changes, c)
	}
}

func TestApplyInvalid(t *testing.T) {
	name := newName(t)
	st := store.NewMemory()
	s := mustGet(t, name, blueGreen(st, 90, 10))
	mustApply(t, s, w(80, 20))
	tests := []struct {
		weights map[string]uint64
		msg     string // the message names the problem
	}{
		{map[string]uint64{"blue": 100}, `missing weight for pool "green"`},
		{map[string]uint64{}, `missing weight for pool "blue"`},
		{nil, `missing weight`},
		{map[string]uint64{"blue": 1, "green": 1, "red": 1}, `unknown pool "red"`},
		{map[string]uint64{"blue": 1, "purple": 1}, `unknown pool "purple"`},
		{w(MaxWeight+1, 0), `above the maximum 1000000`},
		{w(1, 1<<63), `above the maximum`},
		{w(0, 0), `sum to zero`},
	}
	for i, tc := range tests {
		before := capture(t, s, st)
		_, err := s.Apply(ctx, Update{Weights: tc.weights, Source: SourceAPI})
		var inv *InvalidError
		if !errors.As(err, &inv) {
			t.Errorf("Test %d (%v): expected an InvalidError, got %v", i, tc.weights, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Test %d (%v): expected the message to contain %q, got %q", i, tc.weights, tc.msg, err)
		}
		if err := s.CheckWeights(tc.weights); !errors.As(err, &inv) {
			t.Errorf("Test %d (%v): CheckWeights: expected an InvalidError, got %v", i, tc.weights, err)
		}
		before.check(t, fmt.Sprintf("Test %d", i), s, st)
	}
	// The limits themselves are fine.
	mustApply(t, s, w(MaxWeight, 0))
	mustApply(t, s, w(0, 1))
	checkSnap(t, s, 3, []string{"blue", "green"}, []uint64{0, 1})
}

func TestIfMatch(t *testing.T) {
	name := newName(t)
	st := store.NewMemory()
	s := mustGet(t, name, blueGreen(st, 90, 10))
	at := func(v uint64) *uint64 { return &v }

	if _, err := s.Apply(ctx, Update{IfMatch: at(0), Weights: w(80, 20), Source: SourceAPI}); err != nil {
		t.Fatalf("If-Match 0 on version 0: expected no error, got %v", err)
	}
	for _, v := range []uint64{0, 2, 100} {
		before := capture(t, s, st)
		_, err := s.Apply(ctx, Update{IfMatch: at(v), Weights: w(1, 1), Source: SourceAPI})
		if !errors.Is(err, ErrVersion) {
			t.Errorf("If-Match %d on version 1: expected ErrVersion, got %v", v, err)
		}
		before.check(t, fmt.Sprintf("If-Match %d", v), s, st)
	}
	if v, err := s.Apply(ctx, Update{IfMatch: at(1), Weights: w(70, 30), Source: SourceAPI}); err != nil || v.Version != 2 {
		t.Fatalf("If-Match 1 on version 1: expected version 2, got %v, %v", v, err)
	}
}

// stubStore wraps a store and fails on demand.
type stubStore struct {
	store.Store
	failLoad, failCAS atomic.Bool
}

var errDisk = errors.New("disk on fire")

func (f *stubStore) Load(ctx context.Context, name string) (*store.Record, error) {
	if f.failLoad.Load() {
		return nil, errDisk
	}
	return f.Store.Load(ctx, name)
}

func (f *stubStore) CompareAndSwap(ctx context.Context, name string, prev uint64, rec *store.Record) (*store.Record, error) {
	if f.failCAS.Load() {
		return nil, errDisk
	}
	return f.Store.CompareAndSwap(ctx, name, prev, rec)
}

func TestStoreFailure(t *testing.T) {
	name := newName(t)
	st := &stubStore{Store: store.NewMemory()}
	s := mustGet(t, name, blueGreen(st, 90, 10))
	mustApply(t, s, w(80, 20))
	errorsBefore := testutil.ToFloat64(storeErrors.WithLabelValues(name))

	st.failCAS.Store(true)
	ops := []struct {
		name string
		do   func() (*View, error)
	}{
		{"Apply", func() (*View, error) { return s.Apply(ctx, Update{Weights: w(50, 50), Source: SourceAPI}) }},
		{"Promote", func() (*View, error) { return s.Promote(ctx, "green", Update{Source: SourceAPI}) }},
		{"Rollback", func() (*View, error) { return s.Rollback(ctx, Update{Source: SourceAPI}) }},
	}
	for i, op := range ops {
		before := capture(t, s, st)
		v, err := op.do()
		var se *StoreError
		if !errors.As(err, &se) || !errors.Is(err, errDisk) {
			t.Errorf("%s with a failing store: expected a StoreError wrapping the store's error, got %v", op.name, err)
		}
		if v != nil {
			t.Errorf("%s with a failing store: expected no view, got %+v", op.name, v)
		}
		before.check(t, op.name+" with a failing store", s, st)
		if got := testutil.ToFloat64(storeErrors.WithLabelValues(name)); got != errorsBefore+float64(i+1) {
			t.Errorf("%s: expected store_errors_total %v, got %v", op.name, errorsBefore+float64(i+1), got)
		}
	}
	checkSnap(t, s, 1, []string{"blue", "green"}, []uint64{80, 20})

	// Once the store works again, so do changes, from the same version.
	st.failCAS.Store(false)
	if v := mustApply(t, s, w(50, 50)); v.Version != 2 {
		t.Errorf("after the store recovered: expected version 2, got %d", v.Version)
	}
}

// TestStoreConflict: the store moved on behind the switch's back (another
// writer); the change is refused as a version mismatch, nothing published,
// and it is not counted as a store error.
func TestStoreConflict(t *testing.T) {
	name := newName(t)
	st := store.NewMemory()
	s := mustGet(t, name, blueGreen(st, 90, 10))
	if _, err := st.CompareAndSwap(ctx, name, 0, &store.Record{Weights: w(1, 1)}); err != nil {
		t.Fatal(err)
	}
	errorsBefore := testutil.ToFloat64(storeErrors.WithLabelValues(name))
	snap := s.Load()
	if _, err := s.Apply(ctx, Update{Weights: w(50, 50), Source: SourceAPI}); !errors.Is(err, ErrVersion) {
		t.Errorf("Apply when the store holds a newer version: expected ErrVersion, got %v", err)
	}
	if s.Load() != snap {
		t.Errorf("Apply that conflicted in the store: expected the snapshot unchanged")
	}
	if got := testutil.ToFloat64(storeErrors.WithLabelValues(name)); got != errorsBefore {
		t.Errorf("a conflict is not a store error: expected store_errors_total %v, got %v", errorsBefore, got)
	}
}

func TestHistory(t *testing.T) {
	name := newName(t)
	s := mustGet(t, name, blueGreen(nil, 100, 0))
	start := time.Now()
	for i := uint64(1); i <= 10; i++ {
		_, err := s.Apply(ctx, Update{Weights: w(100-i, i), Source: []string{SourceAPI, SourceRollout}[i%2], Reason: fmt.Sprint("step ", i), Remote: "192.0.2.1:53"})
		if err != nil {
			t.Fatal(err)
		}
	}
	h := s.History()
	if len(h) != 10 {
		t.Fatalf("expected 10 history entries, got %d", len(h))
	}
	for j, c := range h {
		i := uint64(10 - j) // newest first
		if c.Version != i || !maps.Equal(c.From, w(101-i, i-1)) || !maps.Equal(c.To, w(100-i, i)) ||
			c.Source != []string{SourceAPI, SourceRollout}[i%2] || c.Reason != fmt.Sprint("step ", i) || c.Remote != "192.0.2.1:53" {
			t.Errorf("History()[%d]: expected version %d from %v to %v, got %+v", j, i, w(101-i, i-1), w(100-i, i), c)
		}
		if c.Time.Before(start.Add(-time.Second)) || c.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("History()[%d]: time %v is not now", j, c.Time)
		}
		if j > 0 && c.Time.After(h[j-1].Time) {
			t.Errorf("History()[%d]: expected newest first, %v is after %v", j, c.Time, h[j-1].Time)
		}
	}
	// The caller's copy is its own.
	h[0].To["blue"] = 12345
	h[0].Reason = "scribbled"
	if again := s.History(); again[0].To["blue"] != 90 || again[0].Reason != "step 10" {
		t.Errorf("changing a returned history changed the switch's: got %+v", again[0])
	}
}

// TestHistoryBounded: the history keeps the newest MaxHistory changes.
func TestHistoryBounded(t *testing.T) {
	name := newName(t)
	st := store.NewMemory()
	// A store that already holds a full history (versions 1..1000).
	full := &store.Record{Weights: w(1, 0)}
	for i := uint64(1); i <= store.MaxHistory; i++ {
		full.History = append(full.History, store.Change{Version: i, Source: SourceAPI, From: w(1, 0), To: w(1, 0)})
	}
	var prev uint64
	for i := 1; i <= store.MaxHistory; i++ { // bring the stored version to 1000
		rec := &store.Record{Weights: w(1, 0)}
		if i == store.MaxHistory {
			rec = full
		}
		c, err := st.CompareAndSwap(ctx, name, prev, rec)
		if err != nil {
			t.Fatal(err)
		}
		prev = c.Version
	}
	s := mustGet(t, name, blueGreen(st, 1, 0))
	for i := uint64(1); i <= 5; i++ {
		mustApply(t, s, w(1, i))
	}
	h := s.History()
	if len(h) != store.MaxHistory {
		t.Fatalf("expected %d history entries, got %d", store.MaxHistory, len(h))
	}
	for j, c := range h {
		if want := uint64(store.MaxHistory + 5 - j); c.Version != want {
			t.Fatalf("History()[%d]: expected version %d (newest first, oldest dropped), got %d", j, want, c.Version)
		}
	}
	rec, err := st.Load(ctx, name)
	if err != nil || len(rec.History) != store.MaxHistory || rec.History[0].Version != 6 || rec.History[store.MaxHistory-1].Version != 1005 {
		t.Errorf("stored history: expected versions 6..1005, got %d entries, %v", len(rec.History), err)
	}
}

func TestPromote(t *testing.T) {
	name := newName(t)
	s := mustGet(t, name, Config{Pools: []string{"blue", "green", "red"}, Seed: []uint64{90, 10, 0}})
	v, err := s.Promote(ctx, "green", Update{Source: SourceAPI})
	if err != nil {
		t.Fatalf("Promote green: expected no error, got %v", err)
	}
	want := map[string]uint64{"blue": 0, "green": 100, "red": 0}
	if !maps.Equal(v.Weights, want) || v.Version != 1 || v.Shares["green"] != 1 {
		t.Errorf("Promote green: expected %v at version 1 with green's share 1, got %v at %d, %v", want, v.Weights, v.Version, v.Shares)
	}
	checkSnap(t, s, 1, []string{"blue", "green", "red"}, []uint64{0, 100, 0})
	if h := s.History(); len(h) != 1 || h[0].Reason != "promote green" || !maps.Equal(h[0].From, map[string]uint64{"blue": 90, "green": 10, "red": 0}) {
		t.Errorf("Promote green: expected a history entry from 90/10/0 with reason %q, got %+v", "promote green", h)
	}
	var inv *InvalidError
	if _, err := s.Promote(ctx, "purple", Update{Source: SourceAPI}); !errors.As(err, &inv) || !strings.Contains(err.Error(), `"purple"`) {
		t.Errorf("Promote purple: expected an InvalidError naming purple, got %v", err)
	}
	checkSnap(t, s, 1, []string{"blue", "green", "red"}, []uint64{0, 100, 0})
}

func TestRollback(t *testing.T) {
	name := newName(t)
	st := store.NewMemory()
	s := mustGet(t, name, blueGreen(st, 90, 10))
	if _, err := s.Rollback(ctx, Update{Source: SourceAPI}); !errors.Is(err, ErrNothingToRollBack) {
		t.Fatalf("Rollback with no change: expected ErrNothingToRollBack, got %v", err)
	}
	checkSnap(t, s, 0, []string{"blue", "green"}, []uint64{90, 10})

	mustApply(t, s, w(50, 50))
	v, err := s.Rollback(ctx, Update{Source: SourceAPI})
	if err != nil {
		t.Fatalf("Rollback: expected no error, got %v", err)
	}
	if !maps.Equal(v.Weights, w(90, 10)) || v.Version != 2 {
		t.Errorf("Rollback: expected the seed weights 90/10 at version 2, got %v at %d", v.Weights, v.Version)
	}
	h := s.History()
	if len(h) != 2 || !strings.Contains(h[0].Reason, "rollback of version 1") || !maps.Equal(h[0].To, w(90, 10)) {
		t.Errorf("Rollback: expected a history entry 'rollback of version 1' to 90/10, got %+v", h)
	}
	// A rollback is a change: rolling back again returns to 50/50.
	if v, err := s.Rollback(ctx, Update{Source: SourceAPI, Reason: "undo"}); err != nil || !maps.Equal(v.Weights, w(50, 50)) || v.Version != 3 {
		t.Errorf("second Rollback: expected 50/50 at version 3, got %+v, %v", v, err)
	}
	if h := s.History(); h[0].Reason != "undo" {
		t.Errorf("Rollback with a reason: expected reason undo, got %q", h[0].Reason)
	}
	// It survives a reload: the history it reads is the stored one.
	mustGet(t, name, blueGreen(st, 1, 0))
	if v, err := s.Rollback(ctx, Update{Source: SourceAPI}); err != nil || !maps.Equal(v.Weights, w(90, 10)) {
		t.Errorf("Rollback after a reload: expected 90/10, got %+v, %v", v, err)
	}
}

// TestSnapshotPublished: the query path sees a change as soon as Apply
// returns, and a snapshot it already holds never changes under it.
func TestSnapshotPublished(t *testing.T) {
	name := newName(t)
	s := mustGet(t, name, blueGreen(nil, 90, 10))
	old := s.Load()
	mustApply(t, s, w(0, 1))
	snap := s.Load()
	if snap.Version != 1 || !slices.Equal(snap.Weights, []uint64{0, 1}) {
		t.Fatalf("right after Apply: expected version 1 with 0/1, got %d with %v", snap.Version, snap.Weights)
	}
	for _, p := range []uint64{0, 1 << 32, 1<<64 - 1} {
		if i := snap.Pick(p); i != 1 {
			t.Errorf("right after Apply to 0/1: expected point %d to pick green, got pool %d", p, i)
		}
	}
	if old.Version != 0 || !slices.Equal(old.Weights, []uint64{90, 10}) || !slices.Equal(old.Cum, []uint64{90, 100}) {
		t.Errorf("the old snapshot changed: got version %d, %v, %v", old.Version, old.Weights, old.Cum)
	}
}

func TestMetrics(t *testing.T) {
	name := newName(t)
	s := mustGet(t, name, blueGreen(nil, 90, 10))
	gauge := func(pool string) (float64, float64) {
		return testutil.ToFloat64(weightGauge.WithLabelValues(name, pool)), testutil.ToFloat64(shareGauge.WithLabelValues(name, pool))
	}
	check := func(what string, blueW, blueS, greenW, greenS float64) {
		t.Helper()
		bw, bs := gauge("blue")
		gw, gs := gauge("green")
		if bw != blueW || bs != blueS || gw != greenW || gs != greenS {
			t.Errorf("%s: expected weight/share blue %v/%v green %v/%v, got blue %v/%v green %v/%v", what, blueW, blueS, greenW, greenS, bw, bs, gw, gs)
		}
	}
	// Counters outlive the switch (go test -count=N reuses the name).
	base := map[string]float64{}
	for _, src := range []string{SourceAPI, SourceRollout} {
		base[src] = testutil.ToFloat64(changesTotal.WithLabelValues(name, src))
	}
	changes := func(source string) float64 {
		return testutil.ToFloat64(changesTotal.WithLabelValues(name, source)) - base[source]
	}

	check("seed", 90, 0.9, 10, 0.1)
	mustApply(t, s, w(25, 75))
	check("after Apply", 25, 0.25, 75, 0.75)
	if c := changes(SourceAPI); c != 1 {
		t.Errorf("after one Apply: expected changes_total{source=api} 1, got %v", c)
	}
	if _, err := s.Apply(ctx, Update{Weights: w(0, 0), Source: SourceAPI}); err == nil {
		t.Fatal("Apply 0/0: expected an error")
	}
	check("after a refused Apply", 25, 0.25, 75, 0.75)
	if c := changes(SourceAPI); c != 1 {
		t.Errorf("after a refused Apply: expected changes_total{source=api} still 1, got %v", c)
	}
	if _, err := s.Promote(ctx, "blue", Update{Source: SourceRollout}); err != nil {
		t.Fatal(err)
	}
	check("after Promote", 100, 1, 0, 0)
	if _, err := s.Rollback(ctx, Update{Source: SourceAPI}); err != nil {
		t.Fatal(err)
	}
	check("after Rollback", 25, 0.25, 75, 0.75)
	if a, r := changes(SourceAPI), changes(SourceRollout); a != 2 || r != 1 {
		t.Errorf("expected changes_total api 2 and rollout 1, got %v and %v", a, r)
	}
}

// TestRaceSameIfMatch: writers racing with the same If-Match: exactly one
// wins each round, the others get ErrVersion. Readers run alongside.
func TestRaceSameIfMatch(t *testing.T) {
	name := newName(t)
	s := mustGet(t, name, blueGreen(nil, 90, 10))
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := 0; r < 2; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				snap := s.Load()
				if snap.Cum[len(snap.Cum)-1] == 0 {
					t.Error("a reader saw a snapshot with no weight")
				}
				_ = s.View()
			}
		}()
	}
	defer func() { close(stop); readers.Wait() }()

	const writers, rounds = 8, 30
	for round := uint64(0); round < rounds; round++ {
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			wins   atomic.Int32
			errs   = make(chan error, writers)
			winner atomic.Uint64
		)
		for i := uint64(0); i < writers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				v := round
				_, err := s.Apply(ctx, Update{IfMatch: &v, Weights: w(i+1, round), Source: SourceAPI})
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(i + 1)
				case !errors.Is(err, ErrVersion):
					errs <- err
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: expected only ErrVersion for the losers, got %v", round, err)
		}
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: expected exactly one winner, got %d", round, n)
		}
		checkSnap(t, s, round+1, []string{"blue", "green"}, []uint64{winner.Load(), round})
	}
}

// Remap matches pools by name, keeps effective weights, fails open when no
// shared pool has an effective weight, and gives nil when none has a weight.
func TestSnapshotRemap(t *testing.T) {
	s, err := NewSnapshot(7, []string{"canary", "blue", "green"}, []uint64{5, 0, 95}, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pools     []string
		effective []uint64 // before Remap, for canary, blue, green
		weights   []uint64
		want      []uint64 // effective after Remap; nil for a nil result
		failOpen  bool
	}{
		{[]string{"blue", "green"}, []uint64{5, 0, 95}, []uint64{0, 95}, []uint64{0, 95}, false},
		{[]string{"green", "blue", "red"}, []uint64{5, 0, 95}, []uint64{95, 0, 0}, []uint64{95, 0, 0}, false},
		{[]string{"canary", "green"}, []uint64{5, 0, 0}, []uint64{5, 95}, []uint64{5, 0}, false}, // green unhealthy
		{[]string{"blue", "green"}, []uint64{5, 0, 0}, []uint64{0, 95}, []uint64{0, 95}, true},   // fail open
		{[]string{"blue", "red"}, []uint64{5, 0, 95}, nil, nil, false},
	}
	for i, tc := range tests {
		s.Effective = tc.effective
		r := s.Remap(tc.pools)
		if tc.want == nil {
			if r != nil {
				t.Errorf("Test %d: expected nil, got %+v", i, r)
			}
			continue
		}
		if r == nil {
			t.Fatalf("Test %d: expected a snapshot, got nil", i)
		}
		var cum []uint64
		var sum uint64
		for _, x := range tc.want {
			sum += x
			cum = append(cum, sum)
		}
		if !slices.Equal(r.Pools, tc.pools) || !slices.Equal(r.Weights, tc.weights) || !slices.Equal(r.Effective, tc.want) ||
			!slices.Equal(r.Cum, cum) || r.FailOpen != tc.failOpen || r.Version != 7 || r.PoolsID != PoolsID(tc.pools) {
			t.Errorf("Test %d: expected pools %v weights %v effective %v cum %v failOpen %v version 7, got %+v",
				i, tc.pools, tc.weights, tc.want, cum, tc.failOpen, r)
		}
	}
}

// sharedMemory is a Memory store that poses as a shared one (a Watcher
// whose watch reports nothing).
type sharedMemory struct{ *store.Memory }

func (sharedMemory) Watch(ctx context.Context, _ string, _ func(*store.Record), _ func(bool)) {
	<-ctx.Done()
}

// effective_at: the largest TTL served since the previous change; MAX after
// the process start and with a shared store; the next scheduled change
// (floored at MIN) when there was one.
func TestEffectiveAt(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	longAgo := clk.Now().Add(-time.Hour)
	exact := func(t *testing.T, what string, got, want time.Time) {
		t.Helper()
		if !got.Equal(want) {
			t.Errorf("%s: expected effective_at %s, got %s (off by %s)", what, want.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano), got.Sub(want))
		}
	}
	cfg := func(st store.Store) Config {
		c := blueGreen(st, 90, 10)
		c.StartupTimeout = time.Second
		c.Clock = clk
		return c
	}

	s := mustGet(t, newName(t), cfg(store.NewMemory()))
	s.started = longAgo
	s.NoteTTL(12)
	s.NoteTTL(3)
	now := clk.Now()
	v := mustApply(t, s, w(50, 50))
	exact(t, "12 s served", v.EffectiveAt, now.Add(12*time.Second))
	clk.Advance(time.Second)
	v = mustApply(t, s, w(40, 60))
	exact(t, "nothing served since: the earlier answers still count", v.EffectiveAt, now.Add(12*time.Second))

	// Just started: the earlier process may have served MAX.
	s = mustGet(t, newName(t), cfg(store.NewMemory()))
	clk.Advance(2 * time.Second)
	s.NoteTTL(2)
	v = mustApply(t, s, w(50, 50))
	exact(t, "after start", v.EffectiveAt, s.started.Add(30*time.Second))

	// Shared: other replicas may have served MAX just now.
	s = mustGet(t, newName(t), cfg(sharedMemory{store.NewMemory()}))
	s.started = longAgo
	now = clk.Now()
	v = mustApply(t, s, w(50, 50))
	exact(t, "shared store", v.EffectiveAt, now.Add(30*time.Second))

	// A scheduled change capped every answer to reach it.
	s = mustGet(t, newName(t), cfg(store.NewMemory()))
	s.started = longAgo
	now = clk.Now()
	s.NoteTTL(30)
	exact(t, "step ahead", s.expiryLocked(&Snapshot{NextChange: now.Add(5 * time.Second)}, now), now.Add(5*time.Second))
	s.NoteTTL(30)
	exact(t, "step just passed", s.expiryLocked(&Snapshot{NextChange: now.Add(-500 * time.Millisecond)}, now), now.Add(time.Second))
	s.NoteTTL(2)
	exact(t, "step further than the TTLs", s.expiryLocked(&Snapshot{NextChange: now.Add(20 * time.Second)}, now), now.Add(2*time.Second))
}

// After a restart, effective_at does not go back: the last change's
// answers from the earlier process may be cached until MAX after it.
func TestEffectiveAtAfterRestart(t *testing.T) {
	name := newName(t)
	st := store.NewMemory()
	s := mustGet(t, name, blueGreen(st, 90, 10))
	v := mustApply(t, s, w(50, 50))
	Forget(name) // the process goes away; the store stays
	s = mustGet(t, name, blueGreen(st, 90, 10))
	got := s.View().EffectiveAt
	if want := v.UpdatedAt.Add(30 * time.Second); !got.Equal(want) {
		t.Errorf("after a restart: expected effective_at %s (the last change + MAX), got %s", want, got)
	}
}
