package store_test

import (
	"errors"
	"strings"
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

// Decode refuses what no API call could have written: such a record would
// crash or mislead every server that reads it.
func TestDecode(t *testing.T) {
	good := []string{
		`{"weights":{"blue":1,"green":0}}`,
		`{"weights":{"blue":1000000,"green":0},"rollout":{"steps":[{"weights":{"blue":0,"green":1},"hold":"0s"}],"start":"2026-11-22T06:00:00Z","before":{"blue":1,"green":0}}}`,
		`{"weights":{}}`, // no weights: the seed applies
	}
	for i, in := range good {
		if _, err := store.Decode([]byte(in)); err != nil {
			t.Errorf("Test %d: expected %s to decode, got %v", i, in, err)
		}
	}
	bad := []struct{ in, want string }{
		{`not json{`, "invalid character"},
		{`{"weights":{"blue":18446744073709551610,"green":20}}`, "above the maximum"},
		{`{"weights":{"blue":5000000,"green":1}}`, "above the maximum"},
		{`{"weights":{"blue":1},"rollout":{"steps":[],"start":"2026-11-22T06:00:00Z"}}`, "0 steps"},
		{`{"weights":{"blue":1},"rollout":{"steps":null,"start":"2026-11-22T06:00:00Z"}}`, "0 steps"},
		{`{"weights":{"blue":1},"rollout":{"steps":[{"weights":null,"hold":"1m"}],"start":"2026-11-22T06:00:00Z"}}`, "no pool has a weight"},
		{`{"weights":{"blue":1},"rollout":{"steps":[{"weights":{"blue":1},"hold":"1m"}]}}`, "no start time"},
		{`{"weights":{"blue":1},"rollout":{"steps":[{"weights":{"blue":1},"hold":"-1m"}],"start":"2026-11-22T06:00:00Z"}}`, "negative"},
	}
	for i, tc := range bad {
		_, err := store.Decode([]byte(tc.in))
		if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: expected ErrCorrupt with %q for %s, got %v", i, tc.want, tc.in, err)
		}
	}
}
