// Package store defines where a switch's durable state lives: the Record
// (weights, version, history) and the Store interface with its
// compare-and-swap. Implementations: Memory here, bolt (an embedded bbolt
// database) beneath.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/rollout"
)

// MaxHistory is how many changes a record keeps (the newest).
const MaxHistory = 1000

// MaxWeight is the largest weight a pool may have.
const MaxWeight = 1_000_000

// ErrConflict is returned by CompareAndSwap when the stored version is not
// the expected one.
var ErrConflict = errors.New("version conflict")

// ErrOutcomeUnknown is wrapped by the error of a CompareAndSwap that failed
// after its request may have reached the store (a timeout) and whose
// outcome could not be read back: the change may or may not be stored.
var ErrOutcomeUnknown = errors.New("the store did not confirm the change, and it may have been applied")

// ErrCorrupt is wrapped by the error of a store whose record does not
// decode. Unlike an unreachable store it does not go away by waiting: setup
// fails, and a running server keeps its last good weights.
var ErrCorrupt = errors.New("corrupt record")

// Record is the durable state of one switch.
type Record struct {
	// Version is set by the store on commit: it grows with every change.
	Version   uint64            `json:"version"`
	Weights   map[string]uint64 `json:"weights"`
	UpdatedAt time.Time         `json:"updated_at"`
	// Rollout is the current or last rollout plan, nil when there was none.
	Rollout *rollout.Plan `json:"rollout,omitempty"`
	// History holds the last MaxHistory changes, oldest first.
	History []Change `json:"history,omitempty"`
	// Quiet is true when the last commit added no history entry (an
	// analysis measurement), so the newest entry's version is final.
	Quiet bool `json:"quiet,omitempty"`
}

// Change is one entry of the audit log.
type Change struct {
	Version uint64            `json:"version"`
	Time    time.Time         `json:"time"`
	Source  string            `json:"source"` // api, rollout, health
	From    map[string]uint64 `json:"from"`
	To      map[string]uint64 `json:"to"`
	Reason  string            `json:"reason,omitempty"`
	Remote  string            `json:"remote,omitempty"`
}

// Store keeps switch records durably.
type Store interface {
	// Load returns the record of switch name, or nil when none is stored.
	Load(ctx context.Context, name string) (*Record, error)
	// CompareAndSwap stores rec as the record of switch name if the stored
	// version is prev (0: nothing stored yet), and returns the committed
	// record with its new Version. It returns ErrConflict, and changes
	// nothing, when the stored version differs; any other error also
	// leaves the stored record unchanged.
	CompareAndSwap(ctx context.Context, name string, prev uint64, rec *Record) (*Record, error)
	// Kind names the implementation in the API ("memory", "bbolt", ...).
	Kind() string
	// Close releases the store.
	Close() error
}

// Watcher is a Store shared with other writers (replicas): Watch calls fn
// with the switch's record each time it changes, whoever wrote it, and
// status with false while the store cannot be reached and true once it can
// again, until ctx ends.
type Watcher interface {
	Watch(ctx context.Context, name string, fn func(*Record), status func(ok bool))
}

// Memory is a Store that lives in the process only: lost on restart.
type Memory struct {
	mu   sync.Mutex
	recs map[string]*Record
}

// NewMemory returns an empty memory store.
func NewMemory() *Memory { return &Memory{recs: map[string]*Record{}} }

// Load implements Store.
func (m *Memory) Load(_ context.Context, name string) (*Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.recs[name]
	if r == nil {
		return nil, nil
	}
	return r.Clone(), nil
}

// CompareAndSwap implements Store.
func (m *Memory) CompareAndSwap(_ context.Context, name string, prev uint64, rec *Record) (*Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var cur uint64
	if r := m.recs[name]; r != nil {
		cur = r.Version
	}
	if cur != prev {
		return nil, ErrConflict
	}
	c := rec.Clone()
	c.Version = prev + 1
	m.recs[name] = c
	return c.Clone(), nil
}

// Kind implements Store.
func (m *Memory) Kind() string { return "memory" }

// Close implements Store.
func (m *Memory) Close() error { return nil }

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	c := *r
	c.Weights = maps.Clone(r.Weights)
	if r.Rollout != nil {
		c.Rollout = r.Rollout.Clone()
	}
	c.History = make([]Change, len(r.History))
	for i, h := range r.History {
		h.From = maps.Clone(h.From)
		h.To = maps.Clone(h.To)
		c.History[i] = h
	}
	return &c
}

// Decode parses a stored record and checks it: a record that does not
// parse, or that holds what no API call could have written (a weight above
// MaxWeight, a rollout without steps or with a step without weights), is
// ErrCorrupt. Serving it could divide by zero or index out of range, in
// every replica that reads it.
func Decode(data []byte) (*Record, error) {
	rec := new(Record)
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := rec.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return rec, nil
}

func (r *Record) check() error {
	if err := checkWeights("weights", r.Weights, false); err != nil {
		return err
	}
	p := r.Rollout
	if p == nil {
		return nil
	}
	if len(p.Steps) == 0 || len(p.Steps) > rollout.MaxSteps {
		return fmt.Errorf("rollout: %d steps (want 1 to %d)", len(p.Steps), rollout.MaxSteps)
	}
	if p.Start.IsZero() {
		return errors.New("rollout: no start time")
	}
	for i, st := range p.Steps {
		if err := checkWeights(fmt.Sprintf("rollout step %d", i), st.Weights, true); err != nil {
			return err
		}
		if st.Hold.D() < 0 {
			return fmt.Errorf("rollout step %d: negative hold %s", i, st.Hold.D())
		}
	}
	if p.Analysis != nil {
		if err := p.Analysis.Check(len(p.Steps)); err != nil {
			return fmt.Errorf("rollout: %v", err)
		}
	}
	return checkWeights("rollout before", p.Before, false)
}

// checkWeights checks that every weight is at most MaxWeight and, with
// needed, that there are weights and they sum above 0.
func checkWeights(what string, w map[string]uint64, needed bool) error {
	var sum uint64
	for p, x := range w {
		if x > MaxWeight {
			return fmt.Errorf("%s: weight %d of pool %q is above the maximum %d", what, x, p, MaxWeight)
		}
		sum += x
	}
	if needed && sum == 0 {
		return fmt.Errorf("%s: no pool has a weight above 0", what)
	}
	return nil
}
