package bluegreen

import (
	"context"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/health"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

// probeTicker, when set (by tests, before setup), paces the checks of
// every prober made from then on; nil is real time.
var probeTicker func(interval time.Duration) health.Ticker

// newProber returns a prober reporting to sw. A pool that was unhealthy
// before a Corefile reload starts unhealthy. It changes nothing in sw: the
// probed pools are declared when the instance starts (probedPools), so a
// reload that fails after this setup leaves the running checks in force.
func newProber(cfg *config, sw *state.Switch) *health.Prober {
	checks := make([]health.Check, len(cfg.health))
	for i, hc := range cfg.health {
		hc.Unhealthy = !sw.Healthy(hc.Pool)
		checks[i] = hc
	}
	p := health.New(checks, func(pool string, healthy bool, detail string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sw.SetHealth(ctx, pool, healthy, detail)
	})
	// Until the old instance's prober stops, its reports may overwrite
	// this prober's starting view: keep the switch in line with our probes.
	p.Current = sw.Healthy
	p.NewTicker = probeTicker
	return p
}
