package etcd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/internal/etcdtest"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store/storetest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var _ store.Watcher = (*Store)(nil)

// watchLog records what a Watch reports: the green weight of every record
// delivered and every reachability report.
type watchLog struct {
	mu   sync.Mutex
	seen []uint64
	oks  []bool
}

func (w *watchLog) record(r *store.Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, r.Weights["green"])
}

func (w *watchLog) status(ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.oks = append(w.oks, ok)
}

// get returns copies of what was reported so far.
func (w *watchLog) get() ([]uint64, []bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen), slices.Clone(w.oks)
}

// last returns the green weight of the newest record, or 0.
func (w *watchLog) last() uint64 {
	seen, _ := w.get()
	if len(seen) == 0 {
		return 0
	}
	return seen[len(seen)-1]
}

// lastOK returns the newest reachability report, and whether there was one.
func (w *watchLog) lastOK() (bool, bool) {
	_, oks := w.get()
	if len(oks) == 0 {
		return false, false
	}
	return oks[len(oks)-1], true
}

func TestStore(t *testing.T) {
	srv := etcdtest.Start(t)
	n := 0
	storetest.RunWith(t, func() store.Store {
		n++
		// A fresh prefix per case keeps the cases independent.
		s, err := Open(Config{Endpoints: []string{srv.Endpoint}, Prefix: "/test" + string(rune('a'+n%26)) + time.Now().Format("150405.000000")})
		require.NoError(t, err)
		return s
	}, storetest.Options{VersionsMayJump: true})
}

func TestWatchSeesOtherWriters(t *testing.T) {
	srv := etcdtest.Start(t)
	a, err := Open(Config{Endpoints: []string{srv.Endpoint}})
	require.NoError(t, err)
	defer a.Close()
	b, err := Open(Config{Endpoints: []string{srv.Endpoint}})
	require.NoError(t, err)
	defer b.Close()

	var w watchLog
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Watch(ctx, "sw", w.record, w.status)
	}()

	var prev uint64
	for i := uint64(1); i <= 3; i++ {
		r, err := a.CompareAndSwap(context.Background(), "sw", prev, &store.Record{Weights: map[string]uint64{"blue": 10, "green": i}})
		require.NoError(t, err)
		prev = r.Version
	}
	require.Eventually(t, func() bool { return w.last() == 3 }, 5*time.Second, 10*time.Millisecond, "the watcher sees the other writer's last change")

	// etcd goes away: status false; comes back: status true and a re-read.
	srv.Stop()
	require.Eventually(t, func() bool { ok, any := w.lastOK(); return any && !ok }, 15*time.Second, 50*time.Millisecond, "the watcher reports etcd unreachable")
	srv.Restart()
	require.Eventually(t, func() bool { ok, _ := w.lastOK(); return ok }, 15*time.Second, 50*time.Millisecond, "the watcher reports etcd back")
	_, err = a.CompareAndSwap(context.Background(), "sw", prev, &store.Record{Weights: map[string]uint64{"blue": 10, "green": 4}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return w.last() == 4 }, 5*time.Second, 10*time.Millisecond, "changes after the outage are seen")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}

func TestLoadWhileDownFails(t *testing.T) {
	srv := etcdtest.Start(t)
	s, err := Open(Config{Endpoints: []string{srv.Endpoint}, Timeout: time.Second})
	require.NoError(t, err)
	defer s.Close()
	srv.Stop()
	_, err = s.Load(context.Background(), "sw")
	assert.Error(t, err)
	_, err = s.CompareAndSwap(context.Background(), "sw", 0, &store.Record{Weights: map[string]uint64{"blue": 1}})
	assert.Error(t, err)
	assert.NotErrorIs(t, err, store.ErrConflict, "an unreachable store is not a conflict")
}

// A watch whose start revision was compacted away is cancelled by etcd;
// Watch re-reads the record and watches again, missing nothing after.
func TestWatchRecoversFromCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	s, err := Open(Config{Endpoints: []string{srv.Endpoint}})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	var prev uint64
	for i := uint64(1); i <= 5; i++ {
		r, err := s.CompareAndSwap(ctx, "sw", prev, &store.Record{Weights: map[string]uint64{"blue": 1, "green": i}})
		require.NoError(t, err)
		prev = r.Version
	}
	_, err = srv.Client().Compact(ctx, int64(prev))
	require.NoError(t, err)

	// The first watch starts at revision 2, long compacted.
	var first atomic.Bool
	first.Store(true)
	watchFrom = func(rev int64) int64 {
		if first.Swap(false) {
			return 2
		}
		return rev
	}
	// (Left set: after its first call it changes nothing, and resetting it
	// here would race with the watch goroutine.)

	var w watchLog
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Watch(wctx, "sw", w.record, w.status)
	require.Eventually(t, func() bool { return !first.Load() }, 5*time.Second, 10*time.Millisecond, "the compacted watch was tried")
	_, err = s.CompareAndSwap(ctx, "sw", prev, &store.Record{Weights: map[string]uint64{"blue": 1, "green": 6}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return w.last() == 6 }, 10*time.Second, 20*time.Millisecond,
		"after the compaction the watch re-reads and follows again")
}

// With `tls CERT KEY CA` the store talks to an etcd that requires client
// certificates; without them it cannot.
func TestTLS(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	s, err := Open(Config{Endpoints: []string{srv.Endpoint}, Cert: srv.Cert, Key: srv.Key, CA: srv.CA})
	require.NoError(t, err)
	defer s.Close()
	r, err := s.CompareAndSwap(context.Background(), "sw", 0, &store.Record{Weights: map[string]uint64{"blue": 1, "green": 2}})
	require.NoError(t, err)
	got, err := s.Load(context.Background(), "sw")
	require.NoError(t, err)
	assert.Equal(t, r.Version, got.Version)
	assert.Equal(t, uint64(2), got.Weights["green"])

	plain, err := Open(Config{Endpoints: []string{srv.Endpoint}, CA: srv.CA, Timeout: 2 * time.Second})
	require.NoError(t, err)
	defer plain.Close()
	_, err = plain.Load(context.Background(), "sw")
	assert.Error(t, err, "without a client certificate etcd refuses")

	_, err = Open(Config{Endpoints: []string{srv.Endpoint}, Cert: srv.Cert, Key: srv.Key, CA: "/nonexistent/ca.pem"})
	assert.Error(t, err, "a missing CA file is an error at open")
}

// A record that does not decode is ErrCorrupt from Load (not an outage);
// a watch keeps reporting etcd reachable, passes the corrupt record over,
// and delivers the repaired one.
func TestCorruptRecord(t *testing.T) {
	srv := etcdtest.Start(t)
	s, err := Open(Config{Endpoints: []string{srv.Endpoint}})
	require.NoError(t, err)
	defer s.Close()
	cli := srv.Client()
	ctx := context.Background()
	_, err = cli.Put(ctx, s.Key("sw"), "not json{")
	require.NoError(t, err)

	_, err = s.Load(ctx, "sw")
	require.ErrorIs(t, err, store.ErrCorrupt)
	assert.Contains(t, err.Error(), s.Key("sw"), "the error names the key")

	var w watchLog
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Watch(wctx, "sw", w.record, w.status)
	time.Sleep(2500 * time.Millisecond) // the watch's first read and two reachability probes
	seen, oks := w.get()
	assert.Empty(t, seen, "a corrupt record is not delivered")
	assert.Equal(t, []bool{true}, oks, "etcd answers: reachable, and no flapping")

	_, err = cli.Put(ctx, s.Key("sw"), "{broken again")
	require.NoError(t, err)
	_, err = cli.Put(ctx, s.Key("sw"), `{"weights":{"blue":1,"green":7}}`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		seen, _ := w.get()
		return len(seen) == 1 && seen[0] == 7
	}, 5*time.Second, 10*time.Millisecond, "the repaired record is delivered")
	_, oks = w.get()
	assert.Equal(t, []bool{true}, oks)
}

// confirm reads back a compare-and-swap that failed: the record written
// is success, another record is the failure it was, and no answer is
// ErrOutcomeUnknown.
func TestConfirm(t *testing.T) {
	srv := etcdtest.Start(t)
	s, err := Open(Config{Endpoints: []string{srv.Endpoint}, Timeout: time.Second})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	txnErr := context.DeadlineExceeded
	written := []byte(`{"weights":{"blue":1,"green":2}}`)

	resp, err := srv.Client().Put(ctx, s.Key("sw"), string(written))
	require.NoError(t, err)
	c, err := s.confirm("sw", written, &store.Record{}, txnErr)
	require.NoError(t, err, "the record is there: the write took effect")
	assert.Equal(t, uint64(resp.Header.Revision), c.Version)

	_, err = s.confirm("sw", []byte(`{"weights":{"blue":3,"green":4}}`), &store.Record{}, txnErr)
	require.Error(t, err)
	assert.NotErrorIs(t, err, store.ErrOutcomeUnknown, "another record is there: nothing changed")

	srv.Pause()
	defer srv.Resume()
	_, err = s.CompareAndSwap(ctx, "sw", c.Version, &store.Record{Weights: map[string]uint64{"blue": 5, "green": 6}})
	require.ErrorIs(t, err, store.ErrOutcomeUnknown, "etcd took the request and says nothing")
}

// A history that would take the record over etcd's request limit loses
// its oldest entries instead of failing every later write.
func TestHistoryFitsEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	s, err := Open(Config{Endpoints: []string{srv.Endpoint}})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	weights := map[string]uint64{}
	for i := range 8 {
		weights[fmt.Sprintf("pool-%02d-with-a-long-name-xxxxxxxxx", i)] = 1000
	}
	long := strings.Repeat("r", 1024)
	rec := &store.Record{Weights: weights}
	for i := range store.MaxHistory {
		rec.History = append(rec.History, store.Change{Version: uint64(i + 1), Source: "api", From: weights, To: weights, Reason: long})
	}
	got, err := s.CompareAndSwap(ctx, "sw", 0, rec)
	require.NoError(t, err, "the write fits once old history is dropped")
	assert.Less(t, len(got.History), store.MaxHistory)
	assert.Equal(t, uint64(store.MaxHistory), got.History[len(got.History)-1].Version, "the newest entries stay")
	loaded, err := s.Load(ctx, "sw")
	require.NoError(t, err)
	assert.Equal(t, len(got.History), len(loaded.History))
}
