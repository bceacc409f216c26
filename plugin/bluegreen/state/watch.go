package state

import (
	"context"
	"errors"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

// DefaultStartupTimeout bounds how long setup waits for a shared store
// (etcd) that does not answer before serving the seed weights.
const DefaultStartupTimeout = 5 * time.Second

// loadShared loads the record from a shared store, retrying until timeout
// when it cannot be reached. It returns stale true when it gave up: the
// caller then serves the seed weights until the watch reaches the store. A
// record that does not decode is an error at once: waiting does not mend
// it, and serving seed weights in its place would hide it.
func loadShared(ctx context.Context, st store.Store, name string, timeout time.Duration) (*store.Record, bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		rec, err := st.Load(ctx, name)
		if err == nil {
			return rec, false, nil
		}
		if errors.Is(err, store.ErrCorrupt) {
			return nil, false, err
		}
		if time.Now().After(deadline) {
			log.Errorf("Switch %s: the %s store did not answer within %s (%v); SERVING THE COREFILE'S SEED WEIGHTS until it does, writes fail with 503 meanwhile", name, st.Kind(), timeout, err)
			return nil, true, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// watchLocked starts following the switch's record in a shared store, once
// per store. Callers hold s.mu.
func (s *Switch) watchLocked(st store.Store) {
	w, ok := st.(store.Watcher)
	if !ok {
		s.stopWatchLocked()
		return
	}
	if s.watching == st {
		return
	}
	s.stopWatchLocked()
	ctx, cancel := context.WithCancel(context.Background())
	s.watching, s.watchCancel = st, cancel
	// The callbacks take s.mu; once the watch is stopped they do nothing.
	// (Stopping does not wait for the goroutine, which may be blocked on
	// s.mu held by the caller.)
	external := func(rec *store.Record) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if ctx.Err() == nil {
			s.externalLocked(rec)
		}
	}
	reachable := func(ok bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if ctx.Err() == nil {
			s.setReachableLocked(ok)
		}
	}
	go w.Watch(ctx, s.Name, external, reachable)
}

func (s *Switch) stopWatchLocked() {
	if s.watchCancel != nil {
		s.watchCancel()
	}
	s.watching, s.watchCancel = nil, nil
}

// StopWatch stops following a shared store (on final shutdown).
func (s *Switch) StopWatch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopWatchLocked()
}

// externalLocked applies a record another writer (a replica) committed.
func (s *Switch) externalLocked(rec *store.Record) {
	if s.rec != nil && rec.Version <= s.rec.Version {
		return
	}
	s.rec = settle(rec)
	s.publishLocked(s.clock.Now())
}

// setReachableLocked records whether the shared store answers. While it does
// not, the last known weights keep serving and writes fail at once.
func (s *Switch) setReachableLocked(ok bool) {
	if s.stale == !ok {
		return
	}
	s.stale = !ok
	if ok {
		storeStale.WithLabelValues(s.Name).Set(0)
		log.Infof("Switch %s: the %s store answers again", s.Name, s.st.Kind())
	} else {
		storeStale.WithLabelValues(s.Name).Set(1)
		log.Warningf("Switch %s: the %s store does not answer; serving the last known weights, writes fail with 503", s.Name, s.st.Kind())
	}
}

// Stale reports whether the shared store is unreachable, so the weights
// served may be out of date.
func (s *Switch) Stale() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stale
}
