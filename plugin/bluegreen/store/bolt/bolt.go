// Package bolt is a store.Store in an embedded bbolt database: one bucket,
// one JSON record per switch. bbolt fsyncs every committed transaction, so a
// record is durable once CompareAndSwap returns.
package bolt

import (
	"context"
	"encoding/json"
	"fmt"
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
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	// bbolt can panic on some corrupt files; never let that take the server.
	defer func() {
		if r := recover(); r != nil {
			db.Close()
			err = fmt.Errorf("store %s: corrupt database: %v", path, r)
		}
	}()
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err == nil {
		// Read every record once, so a corrupt one fails now, not later.
		err = db.View(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
				var r store.Record
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("record %q: %v", k, err)
				}
				return nil
			})
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return &DB{db: db, path: path}, nil
}

// Load implements store.Store.
func (d *DB) Load(_ context.Context, name string) (*store.Record, error) {
	var rec *store.Record
	err := d.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(name))
		if v == nil {
			return nil
		}
		rec = new(store.Record)
		if err := json.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("store %s: record %q: %v", d.path, name, err)
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
			var old store.Record
			if err := json.Unmarshal(v, &old); err != nil {
				return fmt.Errorf("store %s: record %q: %v", d.path, name, err)
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
