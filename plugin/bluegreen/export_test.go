package bluegreen

import (
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/health"
)

// SetProbeTicker makes the probers of instances set up from now on pace
// their checks with newTicker instead of real time, until t ends.
func SetProbeTicker(t testing.TB, newTicker func(interval time.Duration) health.Ticker) {
	probeTicker = newTicker
	t.Cleanup(func() { probeTicker = nil })
}
