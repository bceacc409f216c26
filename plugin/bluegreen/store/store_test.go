package store_test

import (
	"testing"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func() store.Store { return store.NewMemory() })
}

func TestMemoryKind(t *testing.T) {
	if k := store.NewMemory().Kind(); k != "memory" {
		t.Errorf("expected kind memory, got %q", k)
	}
}
