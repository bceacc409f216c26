package bluegreen

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/coredns/caddy"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store/bolt"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store/etcd"
)

// Open bbolt databases by path. A database is opened once per process and
// shared by every server block and every Corefile reload that names it
// (bbolt locks the file, so a second open would block); it is closed on the
// final shutdown.
var (
	storesMu sync.Mutex
	stores   = map[string]store.Store{}
)

func openStore(path string) (store.Store, error) {
	// One file named two ways (relative and absolute, "./x.db" and "x.db")
	// is one database: a second open of it would wait for its own lock.
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	storesMu.Lock()
	defer storesMu.Unlock()
	if st, ok := stores[path]; ok {
		return st, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store %s: %v", path, err)
	}
	st, err := bolt.Open(path)
	if err != nil {
		return nil, err
	}
	stores[path] = st
	return st, nil
}

func closeStores() {
	storesMu.Lock()
	defer storesMu.Unlock()
	for path, st := range stores {
		st.Close()
		delete(stores, path)
	}
}

// openEtcd returns the etcd store for cfg, shared like the bbolt ones.
func openEtcd(cfg etcd.Config) (store.Store, error) {
	key := fmt.Sprintf("etcd %v %s %s %s %s", cfg.Endpoints, cfg.Prefix, cfg.Cert, cfg.Key, cfg.CA)
	storesMu.Lock()
	defer storesMu.Unlock()
	if st, ok := stores[key]; ok {
		return st, nil
	}
	st, err := etcd.Open(cfg)
	if err != nil {
		return nil, err
	}
	stores[key] = st
	return st, nil
}

// parseEtcd reads `store etcd ENDPOINT... { prefix PREFIX; tls CERT KEY CA }`;
// endpoints are the arguments after "etcd".
func parseEtcd(c *caddy.Controller, endpoints []string, resolve func(string) string) (*etcd.Config, error) {
	if len(endpoints) == 0 {
		return nil, c.Errf("store etcd: at least one ENDPOINT is required")
	}
	ec := &etcd.Config{Prefix: etcd.DefaultPrefix}
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, c.Errf("store etcd: endpoint %q must be an http:// or https:// URL", e)
		}
		ec.Endpoints = append(ec.Endpoints, e)
	}
	// The block is optional and opens on the endpoints' line. Inside the
	// bluegreen block c.NextBlock would not check that: without a block it
	// takes the next property of the bluegreen block as an etcd one.
	if !c.NextArg() {
		return ec, nil
	}
	if c.Val() != "{" {
		return nil, c.Errf("store etcd: want '{' after the endpoints, got %q", c.Val())
	}
	for c.Next() {
		switch c.Val() {
		case "}":
			return ec, nil
		case "prefix":
			args := c.RemainingArgs()
			if len(args) != 1 || !strings.HasPrefix(args[0], "/") {
				return nil, c.Errf("store etcd: want 'prefix /PREFIX'")
			}
			ec.Prefix = args[0]
		case "tls":
			args := c.RemainingArgs()
			if len(args) != 3 {
				return nil, c.Errf("store etcd: want 'tls CERT KEY CA'")
			}
			ec.Cert, ec.Key, ec.CA = resolve(args[0]), resolve(args[1]), resolve(args[2])
		default:
			return nil, c.Errf("store etcd: unknown property '%s'", c.Val())
		}
	}
	return nil, c.EOFErr()
}
