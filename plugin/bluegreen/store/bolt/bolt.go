// Package bolt is a store.Store in an embedded bbolt database: one bucket,
// one JSON record per switch. bbolt fsyncs every committed transaction, so a
// record is durable once CompareAndSwap returns.
package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"

	bbolt "go.etcd.io/bbolt"
)

var bucket = []byte("switches")

// DB is a bbolt-backed store.
type DB struct {
	db   *bbolt.DB
	path string
}

// Open opens (creating if needed) the database at path. An unreadable or
// corrupt file is an error; it is never replaced.
func Open(path string) (_ *DB, err error) {
	// bbolt can panic on some corrupt files, in its Open too (a garbage
	// freelist), and reading a damaged memory-mapped file can fault; make
	// a fault a panic, and a panic an error: never let that take the
	// server.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db *bbolt.DB
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			}
			err = fmt.Errorf("store %s: corrupt database: %v", path, r)
		}
	}()
	// Check an existing file read-only first: bbolt's read-write Open
	// reads the freelist page before anything can check that the file
	// holds it, and nothing may be written to a corrupt file (it is left
	// as it was, for the operator to inspect).
	if fi, statErr := os.Stat(path); statErr == nil && fi.Size() > 0 {
		if err := verify(path); err != nil {
			return nil, fmt.Errorf("store %s: %w", path, explain(err))
		}
	}
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, explain(err))
	}
	var exists bool
	db.View(func(tx *bbolt.Tx) error {
		exists = tx.Bucket(bucket) != nil
		return nil
	})
	if !exists {
		err = db.Update(func(tx *bbolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bucket)
			return err
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return &DB{db: db, path: path}, nil
}

// explain makes bbolt's lock timeout say what it means.
func explain(err error) error {
	if errors.Is(err, bbolt.ErrTimeout) {
		return fmt.Errorf("the database is locked by another process (another CoreDNS using the same file?), waited %s: %w", openTimeout, err)
	}
	return err
}

// openTimeout is how long Open waits for a database another process holds.
const openTimeout = 2 * time.Second

// verify opens path read-only and checks it whole.
func verify(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: openTimeout})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(check)
}

// check fails on a database that cannot be read whole: a file shorter than
// its pages (truncated: reading it would fault with SIGBUS, which no recover
// catches), pages bbolt's consistency check rejects, or a record that is not
// JSON.
func check(tx *bbolt.Tx) error {
	fi, err := os.Stat(tx.DB().Path())
	if err != nil {
		return err
	}
	if fi.Size() < tx.Size() {
		return fmt.Errorf("truncated database: the file holds %d bytes but its pages reach %d", fi.Size(), tx.Size())
	}
	var bad error
	for err := range tx.Check() { // drain: the checker reads the tx until it closes
		if bad == nil {
			bad = fmt.Errorf("corrupt database: %w", err)
		}
	}
	if bad != nil {
		return bad
	}
	b := tx.Bucket(bucket)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		if _, err := store.Decode(v); err != nil {
			return fmt.Errorf("record %q: %v", k, err)
		}
		return nil
	})
}

// Load implements store.Store.
func (d *DB) Load(_ context.Context, name string) (*store.Record, error) {
	var rec *store.Record
	err := d.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(name))
		if v == nil {
			return nil
		}
		var err error
		if rec, err = store.Decode(v); err != nil {
			return fmt.Errorf("store %s: record %q: %w", d.path, name, err)
		}
		return nil
	})
	return rec, err
}

// CompareAndSwap implements store.Store.
func (d *DB) CompareAndSwap(_ context.Context, name string, prev uint64, rec *store.Record) (*store.Record, error) {
	c := rec.Clone()
	c.Version = prev + 1
	err := d.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		var cur uint64
		if v := b.Get([]byte(name)); v != nil {
			old, err := store.Decode(v)
			if err != nil {
				return fmt.Errorf("store %s: record %q: %w", d.path, name, err)
			}
			cur = old.Version
		}
		if cur != prev {
			return store.ErrConflict
		}
		v, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), v)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Kind implements store.Store.
func (d *DB) Kind() string { return "bbolt" }

// Close implements store.Store.
func (d *DB) Close() error { return d.db.Close() }
