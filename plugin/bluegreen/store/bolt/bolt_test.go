package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store/storetest"

	bbolt "go.etcd.io/bbolt"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func() store.Store {
		db, err := Open(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return db
	})
}

var ctx = context.Background()

func rec(blue, green uint64) *store.Record {
	return &store.Record{
		Weights:   map[string]uint64{"blue": blue, "green": green},
		UpdatedAt: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		History: []store.Change{{
			Version: 1, Time: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Source: "api",
			From: map[string]uint64{"blue": 1, "green": 0}, To: map[string]uint64{"blue": blue, "green": green},
			Reason: "test", Remote: "127.0.0.1:1234",
		}},
	}
}

func TestKind(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if k := db.Kind(); k != "bbolt" {
		t.Errorf("expected kind bbolt, got %q", k)
	}
}

// TestReopen: what a closed database held is there after Open again, and
// versions continue from it.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var prev uint64
	for i := uint64(0); i < 3; i++ {
		c, err := db.CompareAndSwap(ctx, "example.org", prev, rec(i, 100-i))
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		prev = c.Version
	}
	if _, err := db.CompareAndSwap(ctx, "other.example", 0, rec(5, 5)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path)
	if err != nil {
		t.Fatalf("reopening: expected no error, got %v", err)
	}
	defer db.Close()
	got, err := db.Load(ctx, "example.org")
	if err != nil || got == nil {
		t.Fatalf("Load after reopen: expected the record, got %v, %v", got, err)
	}
	if got.Version != 3 || got.Weights["blue"] != 2 || got.Weights["green"] != 98 || len(got.History) != 1 || got.History[0].Reason != "test" {
		t.Fatalf("Load after reopen: expected version 3 with blue 2 green 98 and its history, got %+v", got)
	}
	if o, _ := db.Load(ctx, "other.example"); o == nil || o.Version != 1 {
		t.Fatalf("Load of a second switch after reopen: expected version 1, got %+v", o)
	}
	if c, err := db.CompareAndSwap(ctx, "example.org", 3, rec(1, 1)); err != nil || c.Version != 4 {
		t.Fatalf("commit after reopen: expected version 4, got %+v, %v", c, err)
	}
}

// validDB returns the bytes of a database holding a record with a full
// history, and how far its pages reach (bbolt's high-water mark; the file
// is larger: bbolt grows it in steps).
func validDB(t *testing.T) ([]byte, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "valid.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rec(1, 1)
	for len(r.History) < store.MaxHistory {
		r.History = append(r.History, r.History[0])
	}
	var prev uint64
	for i := uint64(0); i < 5; i++ {
		r.Weights["blue"] = i
		c, err := db.CompareAndSwap(ctx, "example.org", prev, r)
		if err != nil {
			t.Fatal(err)
		}
		prev = c.Version
	}
	var hw int64
	db.db.View(func(tx *bbolt.Tx) error { hw = tx.Size(); return nil })
	db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) < hw {
		t.Fatalf("valid database: %d bytes, shorter than its high-water mark %d", len(b), hw)
	}
	return b, int(hw)
}

// garbageRecordDB returns the bytes of a valid bbolt file whose switches
// bucket holds a record that is not JSON.
func garbageRecordDB(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "garbage.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		if err := b.Put([]byte("good.example"), []byte(`{"version":1,"weights":{"blue":1,"green":0}}`)); err != nil {
			return err
		}
		return b.Put([]byte("example.org"), []byte("\x00\x01 not json {"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scramble returns a copy of b with random bytes from offset from on: the
// meta pages stay valid, the pages they point to are garbage.
func scramble(b []byte, from int) []byte {
	c := bytes.Clone(b)
	rand.Read(c[from:])
	return c
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestSlackCut: bytes past the high-water mark are free space; a file cut
// there holds every page and opens with its data.
func TestSlackCut(t *testing.T) {
	valid, hw := validDB(t)
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, valid[:hw], 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open of a file cut at its high-water mark: expected no error, got %v", err)
	}
	defer db.Close()
	got, err := db.Load(ctx, "example.org")
	if err != nil || got == nil || got.Version != 5 || got.Weights["blue"] != 4 || len(got.History) != store.MaxHistory {
		t.Fatalf("Load: expected version 5, blue 4 and %d history entries, got %+v, %v", store.MaxHistory, got, err)
	}
}

// TestCorrupt: a corrupt file fails Open with an error naming the file,
// and the file is left exactly as it was (never replaced by a fresh one).
func TestCorrupt(t *testing.T) {
	valid, hw := validDB(t)
	tests := []struct {
		name    string
		content []byte
	}{
		{"random bytes", random(t, 64<<10)},
		{"random page", random(t, 4096)},
		{"a few random bytes", random(t, 17)},
		{"text file", []byte("blue 90\ngreen 10\n")},
		{"truncated to one page", valid[:4096]},
		{"truncated to two pages and a bit", valid[:2*os.Getpagesize()+100]},
		{"truncated to three pages", valid[:3*os.Getpagesize()]},
		{"truncated to half", valid[:hw/2]},
		{"truncated mid-page", valid[:hw-1000]},
		{"truncated by one byte", valid[:hw-1]},
		{"random data pages", scramble(valid[:hw], 2*os.Getpagesize())},
		{"garbage JSON record", garbageRecordDB(t)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path)
			if err == nil {
				db.Close()
				t.Fatalf("Test %d (%s): expected Open to fail, got no error", i, tc.name)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("Test %d (%s): expected the error to name %s, got %q", i, tc.name, path, err)
			}
			after, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatalf("Test %d (%s): reading the file after Open: %v", i, tc.name, rerr)
			}
			if !bytes.Equal(after, tc.content) {
				t.Errorf("Test %d (%s): expected the corrupt file to be left as it was, it changed (%d bytes before, %d after)", i, tc.name, len(tc.content), len(after))
			}
		})
	}
}

// TestLocked: a database another process (here: another handle) holds is
// an error after the timeout, not a hang and not a second writer.
func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	db2, err := Open(path)
	if err == nil {
		db2.Close()
		t.Fatal("second Open of a locked database: expected an error, got none")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second Open: expected to give up after about 2s, took %v", d)
	}
	if !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("second Open: expected an error saying the database is locked, got %v", err)
	}
}
