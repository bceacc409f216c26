package bluegreen

import (
	"context"
	"strconv"
	"time"

	"github.com/coredns/caddy"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/health"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

// parseHealth reads `health NAME URL [interval D] [timeout D] [fails N]
// [passes N]`.
func parseHealth(c *caddy.Controller, args []string) (health.Check, error) {
	hc := health.Check{
		Interval: health.DefaultInterval,
		Timeout:  health.DefaultTimeout,
		Fails:    health.DefaultFails,
		Passes:   health.DefaultPasses,
	}
	if len(args) < 2 || len(args)%2 != 0 {
		return hc, c.Errf("health: want 'health NAME URL [interval D] [timeout D] [fails N] [passes N]'")
	}
	hc.Pool = args[0]
	u, err := health.ParseURL(args[1])
	if err != nil {
		return hc, c.Errf("health %q: %v", hc.Pool, err)
	}
	hc.URL = u
	seen := map[string]bool{}
	for i := 2; i < len(args); i += 2 {
		key, val := args[i], args[i+1]
		if seen[key] {
			return hc, c.Errf("health %q: %s given twice", hc.Pool, key)
		}
		seen[key] = true
		switch key {
		case "interval", "timeout":
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return hc, c.Errf("health %q: %s %q is not a positive duration", hc.Pool, key, val)
			}
			least := minHealthInterval
			if key == "timeout" {
				least = minHealthTimeout
			}
			if d < least {
				return hc, c.Errf("health %q: %s %s is below the minimum %s", hc.Pool, key, d, least)
			}
			if key == "interval" {
				hc.Interval = d
			} else {
				hc.Timeout = d
			}
		case "fails", "passes":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 100 {
				return hc, c.Errf("health %q: %s %q is not an integer from 1 to 100", hc.Pool, key, val)
			}
			if key == "fails" {
				hc.Fails = n
			} else {
				hc.Passes = n
			}
		default:
			return hc, c.Errf("health %q: unknown option %q (want interval, timeout, fails or passes)", hc.Pool, key)
		}
	}
	return hc, nil
}

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
	return p
}

// probedPools returns the pools cfg has health checks for.
func (c *config) probedPools() []string {
	var pools []string
	for _, hc := range c.health {
		pools = append(pools, hc.Pool)
	}
	return pools
}
