package bluegreen

import (
	"net/netip"
	"time"

	"github.com/coredns/coredns/plugin/pkg/fall"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis/prom"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/health"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store/etcd"
)

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

	analysis *prom.Config // rollout analysis; nil when not configured

	keys    []zoneKey              // dnssec key file KEY...
	signers map[string]*zoneSigner // by origin; nil when not signing
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

// newConfig returns a config holding the defaults.
func newConfig() *config {
	return &config{
		ttlMax: defaultTTLMax,
		ttlMin: defaultTTLMin,
		sticky: stickySubnet,
		v4len:  defaultV4Len,
		v6len:  defaultV6Len,
		reload: defaultReload,
		admin:  defaultAdmin,
	}
}

// probedPools returns the pools cfg has health checks for.
func (c *config) probedPools() []string {
	var pools []string
	for _, hc := range c.health {
		pools = append(pools, hc.Pool)
	}
	return pools
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
