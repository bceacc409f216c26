package bluegreen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/fall"
	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/admin"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/health"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store/etcd"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/zones"
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
	swCfg := state.Config{
		Pools:   cfg.poolNames(),
		Seed:    cfg.seed,
		Info:    state.Info{TTLMax: cfg.ttlMax, TTLMin: cfg.ttlMin, Sticky: cfg.sticky},
		Store:   st,
		Explain: bg.explain,
	}
	sw, err := state.Get(context.Background(), cfg.name, swCfg)
	if err != nil {
		return plugin.Error("bluegreen", err)
	}
	if bg.seedSnap, err = state.NewSnapshot(0, swCfg.Pools, cfg.seed, time.Time{}); err != nil {
		return plugin.Error("bluegreen", err)
	}
	bg.seedSnap.PoolsID = state.PoolsID(swCfg.Pools)
	// A reload that fails after this Corefile's successor reconfigured the
	// switch: set it back to this instance's configuration.
	c.OnRestartFailed(func() error {
		_, err := state.Get(context.Background(), cfg.name, swCfg)
		return err
	})
	bg.sw = sw
	wk, probed := &workers{ld: ld, prober: newProber(cfg, sw)}, cfg.probedPools()
	// A failed reload may have dropped pools, and their health, from the
	// switch: declare this instance's probed pools again (its prober then
	// re-asserts what its probes say), and take the workers back over.
	c.OnRestartFailed(func() error {
		sw.ProbedPools(probed)
		takeOver(cfg.name, wk)
		return nil
	})
	if admins != nil {
		if err := admins.Add(cfg.admin, cfg.adminOptions(), sw); err != nil {
			return plugin.Error("bluegreen", err)
		}
	}

	c.OnStartup(func() error {
		sw.ProbedPools(probed)
		takeOver(cfg.name, wk)
		return nil
	})
	c.OnFinalShutdown(func() error {
		sw.StopWatch()
		closeStores()
		return nil
	})
	c.OnShutdown(func() error {
		release(cfg.name, wk)
		return nil
	})

	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		bg.Next = next
		return bg
	})
	return nil
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

// Sticky modes.
const (
	stickySubnet = "subnet"
	stickyIP     = "ip"
	stickyOff    = "off"
)

type poolConf struct {
	name string
	path string
}

type pin struct {
	pool   int
	prefix netip.Prefix
}

// config is the parsed bluegreen block.
type config struct {
	pos     string // FILE:LINE of the bluegreen directive, for messages
	origins []string
	pools   []poolConf
	base    string
	seed    []uint64
	ttlMax  uint32
	ttlMin  uint32
	sticky  string
	v4len   int
	v6len   int
	pins    []pin
	reload  time.Duration
	name    string
	fall    fall.F
	store   string       // bbolt database path; "" keeps state in memory
	etcd    *etcd.Config // store etcd; nil when not used
	health  []health.Check
	admin   string        // admin API address; "" when off
	listen  adminSettings // the admin block: hosts, tls
	token   string        // admin API bearer token; "" for none
}

func (c *config) poolNames() []string {
	names := make([]string, len(c.pools))
	for i, p := range c.pools {
		names[i] = p.name
	}
	return names
}

func (c *config) poolIndex(name string) int {
	for i, p := range c.pools {
		if p.name == name {
			return i
		}
	}
	return -1
}

var poolName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// parse reads the bluegreen block. It has no side effects beyond checking
// that the zone files it names exist and reading the token file.
func parse(c *caddy.Controller) (*config, error) {
	cfg := &config{
		ttlMax: defaultTTLMax,
		ttlMin: defaultTTLMin,
		sticky: stickySubnet,
		v4len:  defaultV4Len,
		v6len:  defaultV6Len,
		reload: defaultReload,
		admin:  defaultAdmin,
	}
	root := dnsserver.GetConfig(c).Root
	resolve := func(p string) string {
		if !filepath.IsAbs(p) && root != "" {
			return filepath.Join(root, p)
		}
		return p
	}
	type rawPin struct {
		pool  string
		cidrs []string
		pos   string
	}
	type rawWeight struct {
		pool, val string
		pos       string
	}
	var (
		rawWeights []rawWeight
		rawPins    []rawPin
		healthPos  []string              // the line of each cfg.health entry
		declared   = map[string]string{} // single-valued property -> its line
		seenBlock  bool
	)
	for c.Next() {
		if seenBlock {
			return nil, plugin.ErrOnce
		}
		seenBlock = true
		cfg.pos = position(c)
		args := c.RemainingArgs()
		cfg.origins = plugin.OriginsFromArgsOrServerBlock(args, c.ServerBlockKeys)
		if len(cfg.origins) == 0 {
			return nil, c.Errf("no valid zone in %q", args)
		}
		for c.NextBlock() {
			prop := c.Val()
			pos := position(c)
			if singleValued[prop] {
				if first, ok := declared[prop]; ok {
					return nil, c.Errf("%s: declared twice (first at %s)", prop, first)
				}
				declared[prop] = pos
			}
			args := c.RemainingArgs()
			switch prop {
			case "pool":
				if len(args) != 2 {
					return nil, c.Errf("pool: want 'pool NAME FILE', got %d arguments", len(args))
				}
				name := args[0]
				if !poolName.MatchString(name) {
					return nil, c.Errf("pool %q: name must match [a-z][a-z0-9-]{0,31}", name)
				}
				if cfg.poolIndex(name) >= 0 {
					return nil, c.Errf("pool %q: declared twice", name)
				}
				path := resolve(args[1])
				if _, err := os.Stat(path); err != nil {
					return nil, c.Errf("pool %q: %v", name, err)
				}
				cfg.pools = append(cfg.pools, poolConf{name: name, path: path})
			case "base":
				if len(args) != 1 {
					return nil, c.Errf("base: want 'base FILE'")
				}
				cfg.base = resolve(args[0])
				if _, err := os.Stat(cfg.base); err != nil {
					return nil, c.Errf("base: %v", err)
				}
			case "weights":
				if len(args) == 0 || len(args)%2 != 0 {
					return nil, c.Errf("weights: want 'weights NAME WEIGHT [NAME WEIGHT...]'")
				}
				for i := 0; i < len(args); i += 2 {
					rawWeights = append(rawWeights, rawWeight{pool: args[i], val: args[i+1], pos: pos})
				}
			case "ttl":
				if len(args) < 1 || len(args) > 2 {
					return nil, c.Errf("ttl: want 'ttl MAX [MIN]'")
				}
				max, err := parseTTL(args[0])
				if err != nil {
					return nil, c.Errf("ttl: MAX %v", err)
				}
				min := uint32(defaultTTLMin)
				if max < min {
					min = max
				}
				if len(args) == 2 {
					if min, err = parseTTL(args[1]); err != nil {
						return nil, c.Errf("ttl: MIN %v", err)
					}
				}
				if min > max {
					return nil, c.Errf("ttl: MIN %d is above MAX %d", min, max)
				}
				cfg.ttlMax, cfg.ttlMin = max, min
			case "sticky":
				if len(args) == 0 {
					return nil, c.Errf("sticky: want 'sticky subnet [V4LEN [V6LEN]]', 'sticky ip' or 'sticky off'")
				}
				switch args[0] {
				case stickySubnet:
					if len(args) > 3 {
						return nil, c.Errf("sticky subnet: too many arguments")
					}
					if len(args) > 1 {
						n, err := strconv.Atoi(args[1])
						if err != nil || n < 0 || n > 32 {
							return nil, c.Errf("sticky subnet: V4LEN %q is not an integer from 0 to 32", args[1])
						}
						cfg.v4len = n
					}
					if len(args) > 2 {
						n, err := strconv.Atoi(args[2])
						if err != nil || n < 0 || n > 128 {
							return nil, c.Errf("sticky subnet: V6LEN %q is not an integer from 0 to 128", args[2])
						}
						cfg.v6len = n
					}
				case stickyIP, stickyOff:
					if len(args) > 1 {
						return nil, c.Errf("sticky %s: takes no arguments", args[0])
					}
				default:
					return nil, c.Errf("sticky: unknown mode %q (want subnet, ip or off)", args[0])
				}
				cfg.sticky = args[0]
			case "pin":
				if len(args) < 2 {
					return nil, c.Errf("pin: want 'pin NAME CIDR [CIDR...]'")
				}
				rawPins = append(rawPins, rawPin{pool: args[0], cidrs: args[1:], pos: pos})
			case "reload":
				if len(args) != 1 {
					return nil, c.Errf("reload: want 'reload DURATION'")
				}
				d, err := time.ParseDuration(args[0])
				if err != nil || d < 0 {
					return nil, c.Errf("reload: invalid duration %q", args[0])
				}
				if d != 0 && d < minReload {
					return nil, c.Errf("reload: %s is below the minimum %s (0 disables reloading)", d, minReload)
				}
				cfg.reload = d
			case "name":
				if len(args) != 1 {
					return nil, c.Errf("name: want 'name SWITCH'")
				}
				if !switchName.MatchString(args[0]) {
					return nil, c.Errf("name: %q must be 1-253 characters of letters, digits, '.', '-' and '_'", args[0])
				}
				cfg.name = args[0]
			case "fallthrough":
				cfg.fall.SetZonesFromArgs(args)
			case "store":
				if len(args) == 0 {
					return nil, c.Errf("store: want 'store PATH' or 'store etcd ENDPOINT...'")
				}
				if args[0] == "etcd" {
					ec, err := parseEtcd(c, args[1:], resolve)
					if err != nil {
						return nil, err
					}
					cfg.etcd, cfg.store = ec, ""
					break
				}
				if len(args) != 1 {
					return nil, c.Errf("store: want 'store PATH' or 'store etcd ENDPOINT...'")
				}
				cfg.store, cfg.etcd = resolve(args[0]), nil
			case "admin":
				addr, as, err := parseAdmin(c, args, resolve)
				if err != nil {
					return nil, err
				}
				cfg.admin, cfg.listen = addr, as
			case "token":
				if len(args) != 1 {
					return nil, c.Errf("token: want 'token FILE'")
				}
				tok, err := readToken(resolve(args[0]))
				if err != nil {
					return nil, c.Errf("token: %v", err)
				}
				cfg.token = tok
			case "health":
				hc, err := parseHealth(c, args)
				if err != nil {
					return nil, err
				}
				cfg.health = append(cfg.health, hc)
				healthPos = append(healthPos, pos)
			default:
				return nil, c.Errf("unknown property '%s'", prop)
			}
		}
	}

	// Checks that need the whole block name the line at fault as c.Errf
	// does: the bluegreen directive's for the pool count, else the
	// property's.
	if len(cfg.pools) < 2 {
		return nil, errAt(cfg.pos, "at least two pools are required, got %d", len(cfg.pools))
	}
	if len(cfg.pools) > zones.MaxPools {
		return nil, errAt(cfg.pos, "at most %d pools are supported, got %d", zones.MaxPools, len(cfg.pools))
	}

	cfg.seed = make([]uint64, len(cfg.pools))
	if rawWeights == nil {
		cfg.seed[0] = 1
	}
	seen := map[string]bool{}
	for _, rw := range rawWeights {
		idx := cfg.poolIndex(rw.pool)
		if idx < 0 {
			return nil, errAt(rw.pos, "weights: unknown pool %q", rw.pool)
		}
		if seen[rw.pool] {
			return nil, errAt(rw.pos, "weights: pool %q named twice", rw.pool)
		}
		seen[rw.pool] = true
		w, err := ParseWeight(rw.val)
		if err != nil {
			return nil, errAt(rw.pos, "weights: pool %q: %v", rw.pool, err)
		}
		cfg.seed[idx] = w
	}
	var sum uint64
	for _, w := range cfg.seed {
		sum += w
	}
	if sum == 0 {
		return nil, errAt(rawWeights[0].pos, "weights: the weights sum to zero")
	}

	for i, hc := range cfg.health {
		if cfg.poolIndex(hc.Pool) < 0 {
			return nil, errAt(healthPos[i], "health: unknown pool %q", hc.Pool)
		}
	}

	type pinned struct {
		pool int
		pos  string
	}
	byPrefix := map[netip.Prefix]pinned{}
	for _, rp := range rawPins {
		idx := cfg.poolIndex(rp.pool)
		if idx < 0 {
			return nil, errAt(rp.pos, "pin: unknown pool %q", rp.pool)
		}
		for _, s := range rp.cidrs {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, errAt(rp.pos, "pin: pool %q: invalid CIDR %q", rp.pool, s)
			}
			a, bits := p.Addr(), p.Bits()
			if a.Is4In6() {
				// Client addresses are unmapped before they are matched.
				if bits < 96 {
					return nil, errAt(rp.pos, "pin: pool %q: IPv4-mapped CIDR %q must be /96 or longer", rp.pool, s)
				}
				a, bits = a.Unmap(), bits-96
			}
			p = netip.PrefixFrom(a, bits).Masked()
			if prev, ok := byPrefix[p]; ok {
				if prev.pool != idx {
					return nil, errAt(rp.pos, "pin: pool %q: %s is pinned to pool %q already (at %s)",
						rp.pool, p, cfg.pools[prev.pool].name, prev.pos)
				}
				continue // the same pin twice says nothing more
			}
			byPrefix[p] = pinned{pool: idx, pos: rp.pos}
			cfg.pins = append(cfg.pins, pin{pool: idx, prefix: p})
		}
	}
	// Pins nest like routes: a client inside several gets the pool of the
	// most specific (longest) prefix. The query path (pinned, explain)
	// takes the first pin that contains the address, so the list is kept
	// longest prefix first, which makes the first match the longest match.
	// Prefixes of one length are equal (refused above when their pools
	// differ) or disjoint, so their order does not matter; pinScope does not
	// depend on the order either.
	slices.SortStableFunc(cfg.pins, func(a, b pin) int { return b.prefix.Bits() - a.prefix.Bits() })

	if cfg.admin != "" && cfg.token == "" && !loopback(cfg.admin) && !cfg.listen.mtls() {
		return nil, errAt(declared["admin"], "admin %s: a token is required when the admin address is not a loopback address, unless tls has a CA", cfg.admin)
	}

	if cfg.name == "" {
		cfg.name = strings.TrimSuffix(cfg.origins[0], ".")
		if cfg.name == "" {
			cfg.name = "."
		}
	}
	return cfg, nil
}

var switchName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,253}$`)

// singleValued are the properties a block may hold once: a second one is
// an error, never a silent override of the first. pool, weights, pin and
// health may repeat (a pool, or a weight's pool, named twice is refused
// where it is parsed).
var singleValued = map[string]bool{
	"base": true, "ttl": true, "sticky": true, "reload": true, "name": true,
	"fallthrough": true, "store": true, "admin": true, "token": true,
}

// position is the FILE:LINE of c's current token.
func position(c *caddy.Controller) string {
	return fmt.Sprintf("%s:%d", c.File(), c.Line())
}

// errAt is c.Errf for a problem found once the whole block is read: it
// names the line at fault, pos (FILE:LINE), the way c.Errf does.
func errAt(pos, format string, args ...any) error {
	return fmt.Errorf("%s - Error during parsing: %s", pos, fmt.Sprintf(format, args...))
}

// ParseWeight parses one weight: a non-negative integer up to MaxWeight.
func ParseWeight(s string) (uint64, error) {
	w, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("weight %q is not a non-negative integer", s)
	}
	if w > MaxWeight {
		return 0, fmt.Errorf("weight %d is above the maximum %d", w, MaxWeight)
	}
	return w, nil
}

// adminAddr checks an admin listen address, HOST:PORT, and returns it in
// one spelling per socket (IP addresses in canonical form, localhost as
// 127.0.0.1), so server blocks that name one socket share one listener.
func adminAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("address %q: %v", s, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", fmt.Errorf("address %q: port must be from 1 to 65535", s)
	}
	host = strings.ToLower(host)
	if host == "localhost" {
		host = "127.0.0.1"
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("address %q: zoned addresses are not supported", s)
		}
		return netip.AddrPortFrom(a.Unmap(), uint16(p)).String(), nil
	}
	return net.JoinHostPort(host, port), nil
}

// loopback reports whether the admin address listens on loopback only.
func loopback(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().IsLoopback()
}

// readToken returns the first line of file, without surrounding spaces. A
// missing file or an empty first line is an error; the error never holds
// the token.
func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fmt.Errorf("%s: the first line, the token, is empty", file)
	}
	return line, nil
}

func parseTTL(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > ttlLimit {
		return 0, fmt.Errorf("%q is not an integer from 0 to %d", s, ttlLimit)
	}
	return uint32(n), nil
}

// MaxWeight is the largest weight a pool may have.
const MaxWeight = state.MaxWeight

const (
	defaultTTLMax = 30
	defaultTTLMin = 1
	defaultV4Len  = 24
	defaultV6Len  = 56
	defaultReload = 10 * time.Second
	defaultAdmin  = "127.0.0.1:8053"
	ttlLimit      = 1<<31 - 1

	// Minimums: shorter periods re-read the zone files or probe a pool
	// so often that they burn a CPU and achieve nothing.
	minReload         = 10 * time.Millisecond // reload 0 disables instead
	minHealthInterval = 10 * time.Millisecond
	minHealthTimeout  = 10 * time.Millisecond
)
