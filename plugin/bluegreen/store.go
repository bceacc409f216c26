package bluegreen

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

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
