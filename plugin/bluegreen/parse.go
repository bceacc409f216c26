package bluegreen

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
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

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/health"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store/etcd"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/zones"
)

// parse reads the bluegreen block: each property by its function in
// properties, then the checks that need the whole block (validate). It has
// no side effects beyond checking that the zone files it names exist and
// reading the token file.
func parse(c *caddy.Controller) (*config, error) {
	root := dnsserver.GetConfig(c).Root
	p := &parser{
		c:   c,
		cfg: newConfig(),
		resolve: func(f string) string {
			if !filepath.IsAbs(f) && root != "" {
				return filepath.Join(root, f)
			}
			return f
		},
		declared: map[string]string{},
	}
	seenBlock := false
	for c.Next() {
		if seenBlock {
			return nil, plugin.ErrOnce
		}
		seenBlock = true
		p.cfg.pos = position(c)
		args := c.RemainingArgs()
		p.cfg.origins = plugin.OriginsFromArgsOrServerBlock(args, c.ServerBlockKeys)
		if len(p.cfg.origins) == 0 {
			return nil, c.Errf("no valid zone in %q", args)
		}
		for c.NextBlock() {
			prop, pos := c.Val(), position(c)
			if singleValued[prop] {
				if first, ok := p.declared[prop]; ok {
					return nil, c.Errf("%s: declared twice (first at %s)", prop, first)
				}
				p.declared[prop] = pos
			}
			parseProp, ok := properties[prop]
			if !ok {
				return nil, c.Errf("unknown property '%s'", prop)
			}
			if err := parseProp(p, c.RemainingArgs(), pos); err != nil {
				return nil, err
			}
		}
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p.cfg, nil
}

// parser holds what parse has read so far: the config, and what can only
// be checked once the whole block is read.
type parser struct {
	c         *caddy.Controller
	cfg       *config
	resolve   func(string) string // a file name relative to the root plugin's directory
	weights   []rawWeight
	pins      []rawPin
	healthPos []string          // the line of each cfg.health entry
	declared  map[string]string // single-valued property -> its line
}

type rawWeight struct {
	pool, val string
	pos       string
}

type rawPin struct {
	pool  string
	cidrs []string
	pos   string
}

// properties maps each property of the block to its parser, called with
// the property's arguments and its FILE:LINE.
var properties = map[string]func(p *parser, args []string, pos string) error{
	"pool":        (*parser).pool,
	"base":        (*parser).base,
	"weights":     (*parser).weightsProp,
	"ttl":         (*parser).ttl,
	"sticky":      (*parser).sticky,
	"pin":         (*parser).pin,
	"reload":      (*parser).reload,
	"name":        (*parser).name,
	"fallthrough": (*parser).fallthroughProp,
	"store":       (*parser).store,
	"admin":       (*parser).admin,
	"token":       (*parser).token,
	"health":      (*parser).health,
	"analysis":    (*parser).analysis,
	"dnssec":      (*parser).dnssecProp,
}

// singleValued are the properties a block may hold once: a second one is
// an error, never a silent override of the first. pool, weights, pin and
// health may repeat (a pool, or a weight's pool, named twice is refused
// where it is parsed).
var singleValued = map[string]bool{
	"base": true, "ttl": true, "sticky": true, "reload": true, "name": true,
	"fallthrough": true, "store": true, "admin": true, "token": true,
	"analysis": true, "dnssec": true,
}

var (
	poolName   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	switchName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,253}$`)
)

// pool reads `pool NAME FILE`.
func (p *parser) pool(args []string, _ string) error {
	c, cfg := p.c, p.cfg
	if len(args) != 2 {
		return c.Errf("pool: want 'pool NAME FILE', got %d arguments", len(args))
	}
	name := args[0]
	if !poolName.MatchString(name) {
		return c.Errf("pool %q: name must match [a-z][a-z0-9-]{0,31}", name)
	}
	if cfg.poolIndex(name) >= 0 {
		return c.Errf("pool %q: declared twice", name)
	}
	path := p.resolve(args[1])
	if _, err := os.Stat(path); err != nil {
		return c.Errf("pool %q: %v", name, err)
	}
	cfg.pools = append(cfg.pools, poolConf{name: name, path: path})
	return nil
}

// base reads `base FILE`.
func (p *parser) base(args []string, _ string) error {
	if len(args) != 1 {
		return p.c.Errf("base: want 'base FILE'")
	}
	p.cfg.base = p.resolve(args[0])
	if _, err := os.Stat(p.cfg.base); err != nil {
		return p.c.Errf("base: %v", err)
	}
	return nil
}

// weightsProp reads `weights NAME WEIGHT [NAME WEIGHT...]`; the pools are
// checked by validate, once every pool is declared.
func (p *parser) weightsProp(args []string, pos string) error {
	if len(args) == 0 || len(args)%2 != 0 {
		return p.c.Errf("weights: want 'weights NAME WEIGHT [NAME WEIGHT...]'")
	}
	for i := 0; i < len(args); i += 2 {
		p.weights = append(p.weights, rawWeight{pool: args[i], val: args[i+1], pos: pos})
	}
	return nil
}

// ttl reads `ttl MAX [MIN]`.
func (p *parser) ttl(args []string, _ string) error {
	c := p.c
	if len(args) < 1 || len(args) > 2 {
		return c.Errf("ttl: want 'ttl MAX [MIN]'")
	}
	max, err := parseTTL(args[0])
	if err != nil {
		return c.Errf("ttl: MAX %v", err)
	}
	min := uint32(defaultTTLMin)
	if max < min {
		min = max
	}
	if len(args) == 2 {
		if min, err = parseTTL(args[1]); err != nil {
			return c.Errf("ttl: MIN %v", err)
		}
	}
	if min > max {
		return c.Errf("ttl: MIN %d is above MAX %d", min, max)
	}
	p.cfg.ttlMax, p.cfg.ttlMin = max, min
	return nil
}

// sticky reads `sticky subnet [V4LEN [V6LEN]] | sticky ip | sticky off`.
func (p *parser) sticky(args []string, _ string) error {
	c, cfg := p.c, p.cfg
	if len(args) == 0 {
		return c.Errf("sticky: want 'sticky subnet [V4LEN [V6LEN]]', 'sticky ip' or 'sticky off'")
	}
	switch args[0] {
	case stickySubnet:
		if len(args) > 3 {
			return c.Errf("sticky subnet: too many arguments")
		}
		if len(args) > 1 {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 || n > 32 {
				return c.Errf("sticky subnet: V4LEN %q is not an integer from 0 to 32", args[1])
			}
			cfg.v4len = n
		}
		if len(args) > 2 {
			n, err := strconv.Atoi(args[2])
			if err != nil || n < 0 || n > 128 {
				return c.Errf("sticky subnet: V6LEN %q is not an integer from 0 to 128", args[2])
			}
			cfg.v6len = n
		}
	case stickyIP, stickyOff:
		if len(args) > 1 {
			return c.Errf("sticky %s: takes no arguments", args[0])
		}
	default:
		return c.Errf("sticky: unknown mode %q (want subnet, ip or off)", args[0])
	}
	cfg.sticky = args[0]
	return nil
}

// pin reads `pin NAME CIDR [CIDR...]`; validate checks the pool and the
// prefixes.
func (p *parser) pin(args []string, pos string) error {
	if len(args) < 2 {
		return p.c.Errf("pin: want 'pin NAME CIDR [CIDR...]'")
	}
	p.pins = append(p.pins, rawPin{pool: args[0], cidrs: args[1:], pos: pos})
	return nil
}

// reload reads `reload DURATION`.
func (p *parser) reload(args []string, _ string) error {
	c := p.c
	if len(args) != 1 {
		return c.Errf("reload: want 'reload DURATION'")
	}
	d, err := time.ParseDuration(args[0])
	if err != nil || d < 0 {
		return c.Errf("reload: invalid duration %q", args[0])
	}
	if d != 0 && d < minReload {
		return c.Errf("reload: %s is below the minimum %s (0 disables reloading)", d, minReload)
	}
	p.cfg.reload = d
	return nil
}

// name reads `name SWITCH`.
func (p *parser) name(args []string, _ string) error {
	if len(args) != 1 {
		return p.c.Errf("name: want 'name SWITCH'")
	}
	if !switchName.MatchString(args[0]) {
		return p.c.Errf("name: %q must be 1-253 characters of letters, digits, '.', '-' and '_'", args[0])
	}
	p.cfg.name = args[0]
	return nil
}

// fallthroughProp reads `fallthrough [ZONES...]`.
func (p *parser) fallthroughProp(args []string, _ string) error {
	p.cfg.fall.SetZonesFromArgs(args)
	return nil
}

// store reads `store PATH` or `store etcd ENDPOINT... [{ ... }]`.
func (p *parser) store(args []string, _ string) error {
	c, cfg := p.c, p.cfg
	if len(args) == 0 {
		return c.Errf("store: want 'store PATH' or 'store etcd ENDPOINT...'")
	}
	if args[0] == "etcd" {
		ec, err := parseEtcd(c, args[1:], p.resolve)
		if err != nil {
			return err
		}
		cfg.etcd, cfg.store = ec, ""
		return nil
	}
	if len(args) != 1 {
		return c.Errf("store: want 'store PATH' or 'store etcd ENDPOINT...'")
	}
	cfg.store, cfg.etcd = p.resolve(args[0]), nil
	return nil
}

// admin reads `admin ADDRESS [{ hosts NAME...; tls CERT KEY [CA] }]` or
// `admin off` (parse_admin.go).
func (p *parser) admin(args []string, _ string) error {
	addr, as, err := parseAdmin(p.c, args, p.resolve)
	if err != nil {
		return err
	}
	p.cfg.admin, p.cfg.listen = addr, as
	return nil
}

// token reads `token FILE`.
func (p *parser) token(args []string, _ string) error {
	if len(args) != 1 {
		return p.c.Errf("token: want 'token FILE'")
	}
	tok, err := readToken(p.resolve(args[0]))
	if err != nil {
		return p.c.Errf("token: %v", err)
	}
	p.cfg.token = tok
	return nil
}

// health reads `health NAME URL [OPTION VALUE...]`; validate checks the pool.
func (p *parser) health(args []string, pos string) error {
	hc, err := parseHealth(p.c, args)
	if err != nil {
		return err
	}
	p.cfg.health = append(p.cfg.health, hc)
	p.healthPos = append(p.healthPos, pos)
	return nil
}

// analysis reads `analysis prometheus URL [{ ... }]` (parse_analysis.go).
func (p *parser) analysis(args []string, _ string) error {
	ac, err := parseAnalysis(p.c, args, p.resolve)
	if err != nil {
		return err
	}
	p.cfg.analysis = ac
	return nil
}

// validate runs the checks that need the whole block. Each error names the
// line at fault as c.Errf does: the bluegreen directive's for the pool
// count, else the property's.
func (p *parser) validate() error {
	cfg := p.cfg
	if len(cfg.pools) < 2 {
		return errAt(cfg.pos, "at least two pools are required, got %d", len(cfg.pools))
	}
	if len(cfg.pools) > zones.MaxPools {
		return errAt(cfg.pos, "at most %d pools are supported, got %d", zones.MaxPools, len(cfg.pools))
	}
	if err := p.validateWeights(); err != nil {
		return err
	}
	for i, hc := range cfg.health {
		if cfg.poolIndex(hc.Pool) < 0 {
			return errAt(p.healthPos[i], "health: unknown pool %q", hc.Pool)
		}
	}
	if err := p.validatePins(); err != nil {
		return err
	}
	if err := p.validateKeys(); err != nil {
		return err
	}
	if cfg.admin != "" && cfg.token == "" && !loopback(cfg.admin) && !cfg.listen.mtls() {
		return errAt(p.declared["admin"], "admin %s: a token is required when the admin address is not a loopback address, unless tls has a CA", cfg.admin)
	}
	if cfg.name == "" {
		cfg.name = strings.TrimSuffix(cfg.origins[0], ".")
		if cfg.name == "" {
			cfg.name = "."
		}
	}
	return nil
}

// validateWeights sets the seed weights: the first pool 1 without a
// weights property, else the weights given, each pool at most once.
func (p *parser) validateWeights() error {
	cfg := p.cfg
	cfg.seed = make([]uint64, len(cfg.pools))
	if p.weights == nil {
		cfg.seed[0] = 1
	}
	seen := map[string]bool{}
	for _, rw := range p.weights {
		idx := cfg.poolIndex(rw.pool)
		if idx < 0 {
			return errAt(rw.pos, "weights: unknown pool %q", rw.pool)
		}
		if seen[rw.pool] {
			return errAt(rw.pos, "weights: pool %q named twice", rw.pool)
		}
		seen[rw.pool] = true
		w, err := ParseWeight(rw.val)
		if err != nil {
			return errAt(rw.pos, "weights: pool %q: %v", rw.pool, err)
		}
		cfg.seed[idx] = w
	}
	var sum uint64
	for _, w := range cfg.seed {
		sum += w
	}
	if sum == 0 {
		return errAt(p.weights[0].pos, "weights: the weights sum to zero")
	}
	return nil
}

// validatePins turns the pins into prefixes, longest first.
func (p *parser) validatePins() error {
	cfg := p.cfg
	type pinned struct {
		pool int
		pos  string
	}
	byPrefix := map[netip.Prefix]pinned{}
	for _, rp := range p.pins {
		idx := cfg.poolIndex(rp.pool)
		if idx < 0 {
			return errAt(rp.pos, "pin: unknown pool %q", rp.pool)
		}
		for _, s := range rp.cidrs {
			pf, err := netip.ParsePrefix(s)
			if err != nil {
				return errAt(rp.pos, "pin: pool %q: invalid CIDR %q", rp.pool, s)
			}
			a, bits := pf.Addr(), pf.Bits()
			if a.Is4In6() {
				// Client addresses are unmapped before they are matched.
				if bits < 96 {
					return errAt(rp.pos, "pin: pool %q: IPv4-mapped CIDR %q must be /96 or longer", rp.pool, s)
				}
				a, bits = a.Unmap(), bits-96
			}
			pf = netip.PrefixFrom(a, bits).Masked()
			if prev, ok := byPrefix[pf]; ok {
				if prev.pool != idx {
					return errAt(rp.pos, "pin: pool %q: %s is pinned to pool %q already (at %s)",
						rp.pool, pf, cfg.pools[prev.pool].name, prev.pos)
				}
				continue // the same pin twice says nothing more
			}
			byPrefix[pf] = pinned{pool: idx, pos: rp.pos}
			cfg.pins = append(cfg.pins, pin{pool: idx, prefix: pf})
		}
	}
	// Pins nest like routes: a client inside several gets the pool of the
	// most specific (longest) prefix. The query path takes the first pin
	// that contains the address, so the list is kept longest prefix first.
	// Prefixes of one length are equal (refused above when their pools
	// differ) or disjoint, so their order does not matter.
	slices.SortStableFunc(cfg.pins, func(a, b pin) int { return b.prefix.Bits() - a.prefix.Bits() })
	return nil
}

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
