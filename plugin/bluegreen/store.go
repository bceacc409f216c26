package bluegreen

import (
	"sync"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store/bolt"
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
	storesMu.Lock()
	defer storesMu.Unlock()
	if st, ok := stores[path]; ok {
		return st, nil
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
