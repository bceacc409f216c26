// Package etcd is a store.Store in an etcd v3 cluster, for several CoreDNS
// replicas sharing one switch. Each switch is one key, PREFIX/switches/NAME,
// holding the JSON record (weights, rollout plan, bounded history); the
// record's version is the key's mod revision, and writes are a transaction
// that compares it, so two writers on two replicas cannot both win.
// Replicas watch the keys and apply changes made elsewhere.
package etcd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

var log = clog.NewWithPlugin("bluegreen")

// DefaultPrefix is the key prefix when none is configured.
const DefaultPrefix = "/bluegreen"

// Config says how to reach etcd.
type Config struct {
	Endpoints []string
	Prefix    string
	// TLS files; all empty for plain connections.
	Cert, Key, CA string
	// Timeout bounds each request (default 5s).
	Timeout time.Duration
}

// Store is an etcd-backed store.
type Store struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
}

// Open connects to etcd. The client connects lazily: Open does not fail
// when etcd is down, the first request does.
func Open(cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("store etcd: at least one endpoint is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cc := clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.Timeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		AutoSyncInterval:     0,
		// The client logs every retry; the store reports errors itself.
		Logger: zap.NewNop(),
	}
	if cfg.Cert != "" || cfg.Key != "" || cfg.CA != "" {
		t, err := tlsConfig(cfg.Cert, cfg.Key, cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("store etcd: %v", err)
		}
		cc.TLS = t
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("store etcd: %v", err)
	}
	return &Store{cli: cli, prefix: strings.TrimSuffix(cfg.Prefix, "/"), timeout: cfg.Timeout}, nil
}

func tlsConfig(cert, key, ca string) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cert != "" || key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("tls: %v", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("tls: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: no certificate in %s", ca)
		}
		t.RootCAs = pool
	}
	return t, nil
}

// MaxValue is the largest record this store writes, below etcd's default
// request limit (1.5 MiB) with room for the request around it.
const MaxValue = 1 << 20

// Key returns the etcd key of switch name.
func (s *Store) Key(name string) string { return s.prefix + "/switches/" + name }

func (s *Store) decode(name string, v []byte, rev int64) (*store.Record, error) {
	rec, err := store.Decode(v)
	if err != nil {
		return nil, fmt.Errorf("store etcd: key %q, revision %d: %w (repair or delete it with etcdctl)", s.Key(name), rev, err)
	}
	rec.Version = uint64(rev)
	return rec, nil
}

// Load implements store.Store.
func (s *Store) Load(ctx context.Context, name string) (*store.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Get(clientv3.WithRequireLeader(ctx), s.Key(name))
	if err != nil {
		return nil, fmt.Errorf("store etcd: %v", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return s.decode(name, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// CompareAndSwap implements store.Store: a transaction that puts rec only
// if the key's mod revision is still prev (or the key is absent, prev 0).
func (s *Store) CompareAndSwap(ctx context.Context, name string, prev uint64, rec *store.Record) (*store.Record, error) {
	c := rec.Clone()
	c.Version = 0 // the key's mod revision is the version
	v, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	// etcd refuses requests over 1.5 MiB by default; long reasons and many
	// pools can take the history there before MaxHistory entries. Drop the
	// oldest entries until the record fits.
	for len(v) > MaxValue && len(c.History) > 1 {
		drop := max(1, len(c.History)/10)
		c.History = append([]store.Change(nil), c.History[drop:]...)
		if v, err = json.Marshal(c); err != nil {
			return nil, err
		}
	}
	if len(v) > MaxValue {
		return nil, fmt.Errorf("store etcd: the record is %d bytes, over the %d this store writes, even without its history", len(v), MaxValue)
	}
	key := s.Key(name)
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", int64(prev))
	if prev == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Txn(clientv3.WithRequireLeader(ctx)).If(cmp).Then(clientv3.OpPut(key, string(v))).Commit()
	if err != nil {
		return s.confirm(name, v, c, err)
	}
	if !resp.Succeeded {
		return nil, store.ErrConflict
	}
	c.Version = uint64(resp.Header.Revision)
	return c, nil
}

// confirm reads back the key of a compare-and-swap that failed with txnErr:
// the request may have reached etcd before it failed (a timeout, a lost
// connection), so the record may be stored all the same. It returns c with
// its version when the key holds exactly what was written (the record
// carries the change's time to the nanosecond, so no other write has the
// same bytes), txnErr when it holds something else (nothing changed), and
// ErrOutcomeUnknown when etcd does not answer the read either.
func (s *Store) confirm(name string, written []byte, c *store.Record, txnErr error) (*store.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	resp, err := s.cli.Get(clientv3.WithRequireLeader(ctx), s.Key(name))
	if err != nil {
		return nil, fmt.Errorf("store etcd: %w (%v; reading it back: %v)", store.ErrOutcomeUnknown, txnErr, err)
	}
	if len(resp.Kvs) == 1 && bytes.Equal(resp.Kvs[0].Value, written) {
		c.Version = uint64(resp.Kvs[0].ModRevision)
		return c, nil
	}
	return nil, fmt.Errorf("store etcd: %v", txnErr)
}

// Watch calls fn with the switch's record each time it changes, from any
// writer, until ctx ends. It re-reads and re-watches after a compaction or
// a lost watch, and calls status with false when etcd stops answering and
// true once it answers again. It returns when ctx is done.
func (s *Store) Watch(ctx context.Context, name string, fn func(*store.Record), status func(ok bool)) {
	key := s.Key(name)
	// A watch stream waits quietly through an outage; a probe every second
	// tells whether etcd answers.
	// Each observation is stamped when its request began; one that began
	// before the latest reported observation is stale and dropped (a probe
	// that timed out while etcd came back must not undo the recovery).
	// The first observation is always reported: the caller may believe
	// either (a switch that started while etcd was down starts stale).
	var mu sync.Mutex
	reachable, known := true, false
	var latest time.Time
	report := func(ok bool, began time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if began.Before(latest) {
			return
		}
		latest = began
		if !known || ok != reachable {
			reachable, known = ok, true
			status(ok)
		}
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			began := time.Now()
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := s.cli.Get(clientv3.WithRequireLeader(pctx), key, clientv3.WithCountOnly())
			cancel()
			if ctx.Err() == nil {
				report(err == nil, began)
			}
		}
	}()
	backoff := 100 * time.Millisecond
	var corruptAt int64 // the revision of a corrupt record already logged
	for ctx.Err() == nil {
		// Read the current record, then watch from the next revision.
		began := time.Now()
		rec, rev, err := s.get(ctx, name)
		if errors.Is(err, store.ErrCorrupt) {
			// etcd answers; the record does not decode. Keep the last good
			// weights and watch for the repair.
			if rev != corruptAt {
				log.Errorf("Keeping the last good weights: %v", err)
				corruptAt = rev
			}
			err, rec = nil, nil
		}
		if err != nil {
			report(false, began)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if backoff < 2*time.Second {
				backoff *= 2
			}
			continue
		}
		backoff = 100 * time.Millisecond
		report(true, began)
		if rec != nil {
			fn(rec)
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		from := rev + 1
		if watchFrom != nil {
			from = watchFrom(from)
		}
		wch := s.cli.Watch(wctx, key, clientv3.WithRev(from), clientv3.WithProgressNotify())
		for wr := range wch {
			if err := wr.Err(); err != nil {
				if wr.CompactRevision != 0 {
					log.Warningf("Watch of %s compacted at revision %d; re-reading", key, wr.CompactRevision)
				}
				break
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				r, err := s.decode(name, ev.Kv.Value, ev.Kv.ModRevision)
				if err != nil {
					log.Errorf("Keeping the last good weights: %v", err)
					corruptAt = ev.Kv.ModRevision
					continue
				}
				fn(r)
			}
		}
		cancel()
	}
}

// watchFrom, when set (by tests), changes the revision a watch starts at.
var watchFrom func(rev int64) int64

func (s *Store) get(ctx context.Context, name string) (*store.Record, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Get(clientv3.WithRequireLeader(ctx), s.Key(name))
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, resp.Header.Revision, nil
	}
	rec, err := s.decode(name, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	return rec, resp.Header.Revision, err
}

// Kind implements store.Store.
func (s *Store) Kind() string { return "etcd" }

// Close implements store.Store.
func (s *Store) Close() error { return s.cli.Close() }
