package bluegreen

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/admin"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

var log = clog.NewWithPlugin("bluegreen")

func init() { plugin.Register("bluegreen", setup) }

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error("bluegreen", err)
	}
	if err := declare(c, cfg); err != nil {
		return plugin.Error("bluegreen", err)
	}
	ld := newLoader(cfg)
	if err := ld.load(); err != nil {
		return plugin.Error("bluegreen", err)
	}
	var st store.Store
	switch {
	case cfg.etcd != nil:
		if st, err = openEtcd(*cfg.etcd); err != nil {
			return plugin.Error("bluegreen", err)
		}
	case cfg.store != "":
		if st, err = openStore(cfg.store); err != nil {
			return plugin.Error("bluegreen", err)
		}
	}
	var admins *admin.Group
	if cfg.admin != "" {
		admins = adminGroup(c)
		if err := admins.Check(cfg.admin, cfg.adminOptions()); err != nil {
			return plugin.Error("bluegreen", err)
		}
	}
	bg := newBluegreen(cfg, ld)
	querier, err := analysisQuerier(cfg.analysis)
	if err != nil {
		return plugin.Error("bluegreen", err)
	}
	swCfg := state.Config{
		Pools:    cfg.poolNames(),
		Seed:     cfg.seed,
		Info:     state.Info{TTLMax: cfg.ttlMax, TTLMin: cfg.ttlMin, Sticky: cfg.sticky},
		Store:    st,
		Explain:  bg.explain,
		Analysis: querier,
	}
	sw, err := state.Configure(context.Background(), cfg.name, swCfg)
	if err != nil {
		return plugin.Error("bluegreen", err)
	}
	if bg.seedSnap, err = state.NewSnapshot(0, swCfg.Pools, cfg.seed, time.Time{}); err != nil {
		return plugin.Error("bluegreen", err)
	}
	bg.seedSnap.PoolsID = state.PoolsID(swCfg.Pools)
	bg.sw = sw
	if admins != nil {
		if err := admins.Add(cfg.admin, cfg.adminOptions(), sw); err != nil {
			return plugin.Error("bluegreen", err)
		}
	}
	hooks(c, cfg, swCfg, sw, &workers{ld: ld, prober: newProber(cfg, sw)})

	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		bg.Next = next
		return bg
	})
	return nil
}

// hooks registers what the instance does with switch sw and its workers
// at each event of its life; doc.go has the whole table, admin listeners
// (adminGroup) included.
func hooks(c *caddy.Controller, cfg *config, swCfg state.Config, sw *state.Switch, wk *workers) {
	probed := cfg.probedPools()
	c.OnStartup(func() error {
		sw.ProbedPools(probed)
		takeOver(cfg.name, wk)
		return nil
	})
	// A reload failed after this Corefile's successor reconfigured the
	// switch, perhaps dropping pools and their health: set it back to this
	// instance's configuration, declare the probed pools again (the prober
	// then re-asserts what its probes say), and take the workers back over.
	c.OnRestartFailed(func() error {
		_, err := state.Configure(context.Background(), cfg.name, swCfg)
		sw.ProbedPools(probed)
		takeOver(cfg.name, wk)
		return err
	})
	c.OnShutdown(func() error {
		release(cfg.name, wk)
		return nil
	})
	c.OnFinalShutdown(func() error {
		sw.StopWatch()
		closeStores()
		return nil
	})
}

// declaredKey keys, in the caddy instance storage, the switches that the
// instance's server blocks have declared so far (a map[string]declaration).
type declaredKey struct{}

// declaration is the server block that declared a switch.
type declaration struct {
	block int    // c.ServerBlockIndex
	where string // the block's keys and the position of its bluegreen directive
}

// declare records that c's server block declares the switch cfg.name, and
// fails when another server block of the same Corefile declared it
// already: the two would share one switch, the second reconfiguring it
// with its pools while the first went on serving its own seed weights. The
// record lives in the caddy instance (one Corefile load), so a reload,
// whose old instance still holds the switch in the registry, is no
// conflict. CoreDNS sets a server block up once, whatever its number of
// keys, and a block is compared by its index, so one block is one
// declaration.
func declare(c *caddy.Controller, cfg *config) error {
	where := strings.Join(c.ServerBlockKeys, " ")
	if cfg.pos != "" {
		where += " (" + cfg.pos + ")"
	}
	seen, _ := c.Get(declaredKey{}).(map[string]declaration)
	if seen == nil {
		seen = map[string]declaration{}
		c.Set(declaredKey{}, seen)
	}
	if d, ok := seen[cfg.name]; ok && d.block != c.ServerBlockIndex {
		return fmt.Errorf("switch %q of server block %s is already declared by another server block, %s; give one of them a different 'name'",
			cfg.name, where, d.where)
	}
	seen[cfg.name] = declaration{block: c.ServerBlockIndex, where: where}
	return nil
}

// adminKey keys the instance's admin.Group in the caddy instance storage.
type adminKey struct{}

// adminGroup returns the admin servers of c's instance (one Corefile),
// creating them with the first server block that has an admin address. The
// listeners start on startup, take over from the previous instance's on a
// reload, and start again when a reload fails.
func adminGroup(c *caddy.Controller) *admin.Group {
	if g, ok := c.Get(adminKey{}).(*admin.Group); ok {
		return g
	}
	g := admin.NewGroup()
	c.Set(adminKey{}, g)
	c.OnStartup(g.Start)
	// No stop on OnRestart: the new instance's servers take their addresses
	// over when they start, so the API never goes away during a reload.
	// OnShutdown (after a successful reload, and at the end) stops what the
	// new Corefile no longer names.
	c.OnShutdown(g.Stop)
	c.OnRestartFailed(g.Start)
	c.OnFinalShutdown(g.Stop)
	return g
}
