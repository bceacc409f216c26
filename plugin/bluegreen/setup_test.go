package bluegreen

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parseIn parses a Corefile snippet whose relative file names resolve in
// dir (set as the root plugin's directory).
func parseIn(dir, input string) (*config, error) {
	c := caddy.NewTestController("dns", input)
	c.ServerBlockKeys = []string{"dns://example.org.:53"}
	dnsserver.GetConfig(c).Root = dir
	return parse(c)
}

// minimalZones writes base, blue and green zone files that parse.
func minimalZones(t *testing.T) string {
	t.Helper()
	return writeZones(t, map[string]string{"base.db": baseDB, "blue.db": blueDB, "green.db": greenDB,
		"token": " s3cret \nsecond line\n", "empty-token": "\n"})
}

func TestParse(t *testing.T) {
	dir := minimalZones(t)
	abs := filepath.Join(dir, "blue.db")

	type want struct {
		origins []string
		pools   []string
		paths   []string
		base    string
		seed    []uint64
		ttlMax  uint32
		ttlMin  uint32
		sticky  string
		v4, v6  int
		pins    []string // "pool prefix"
		reload  time.Duration
		name    string
		fall    []string
	}
	def := func(mod func(w *want)) want {
		w := want{
			origins: []string{"example.org."},
			pools:   []string{"blue", "green"},
			paths:   []string{filepath.Join(dir, "blue.db"), filepath.Join(dir, "green.db")},
			seed:    []uint64{1, 0},
			ttlMax:  30, ttlMin: 1,
			sticky: "subnet", v4: 24, v6: 56,
			reload: 10 * time.Second,
			name:   "example.org",
		}
		if mod != nil {
			mod(&w)
		}
		return w
	}
	const pools = "pool blue blue.db\npool green green.db\n"

	tests := []struct {
		input string
		want  want
	}{
		// Defaults: server block zone, weights first pool 1, ttl 30 1,
		// sticky subnet 24 56, reload 10s, name the zone without the dot.
		{"bluegreen {\n" + pools + "}", def(nil)},
		{"bluegreen example.net {\n" + pools + "}", def(func(w *want) {
			w.origins, w.name = []string{"example.net."}, "example.net"
		})},
		{"bluegreen EXAMPLE.net example.com {\n" + pools + "}", def(func(w *want) {
			w.origins, w.name = []string{"example.net.", "example.com."}, "example.net"
		})},
		{"bluegreen . {\n" + pools + "}", def(func(w *want) { w.origins, w.name = []string{"."}, "." })},
		// Pools: absolute path, three pools, name syntax limits.
		{"bluegreen {\npool blue " + abs + "\npool green green.db\n}", def(nil)},
		{"bluegreen {\n" + pools + "pool c-1 blue.db\n}", def(func(w *want) {
			w.pools = append(w.pools, "c-1")
			w.paths = append(w.paths, filepath.Join(dir, "blue.db"))
			w.seed = []uint64{1, 0, 0}
		})},
		{"bluegreen {\npool b blue.db\npool " + strings.Repeat("g", 32) + " green.db\n}", def(func(w *want) {
			w.pools = []string{"b", strings.Repeat("g", 32)}
		})},
		{"bluegreen {\n" + pools + "base base.db\n}", def(func(w *want) { w.base = filepath.Join(dir, "base.db") })},
		// Weights.
		{"bluegreen {\n" + pools + "weights blue 90 green 10\n}", def(func(w *want) { w.seed = []uint64{90, 10} })},
		{"bluegreen {\n" + pools + "weights green 1\n}", def(func(w *want) { w.seed = []uint64{0, 1} })},
		{"bluegreen {\n" + pools + "weights blue 0 green 1000000\n}", def(func(w *want) { w.seed = []uint64{0, 1000000} })},
		{"bluegreen {\n" + pools + "weights blue 3\nweights green 7\n}", def(func(w *want) { w.seed = []uint64{3, 7} })},
		{"bluegreen {\n" + pools + "weights blue 007 green 0\n}", def(func(w *want) { w.seed = []uint64{7, 0} })},
		// TTL.
		{"bluegreen {\n" + pools + "ttl 60\n}", def(func(w *want) { w.ttlMax, w.ttlMin = 60, 1 })},
		{"bluegreen {\n" + pools + "ttl 60 5\n}", def(func(w *want) { w.ttlMax, w.ttlMin = 60, 5 })},
		{"bluegreen {\n" + pools + "ttl 10 10\n}", def(func(w *want) { w.ttlMax, w.ttlMin = 10, 10 })},
		{"bluegreen {\n" + pools + "ttl 0\n}", def(func(w *want) { w.ttlMax, w.ttlMin = 0, 0 })},
		{"bluegreen {\n" + pools + "ttl 2147483647 0\n}", def(func(w *want) { w.ttlMax, w.ttlMin = 2147483647, 0 })},
		// Sticky.
		{"bluegreen {\n" + pools + "sticky subnet\n}", def(nil)},
		{"bluegreen {\n" + pools + "sticky subnet 16\n}", def(func(w *want) { w.v4 = 16 })},
		{"bluegreen {\n" + pools + "sticky subnet 20 48\n}", def(func(w *want) { w.v4, w.v6 = 20, 48 })},
		{"bluegreen {\n" + pools + "sticky subnet 0 0\n}", def(func(w *want) { w.v4, w.v6 = 0, 0 })},
		{"bluegreen {\n" + pools + "sticky subnet 32 128\n}", def(func(w *want) { w.v4, w.v6 = 32, 128 })},
		{"bluegreen {\n" + pools + "sticky ip\n}", def(func(w *want) { w.sticky = "ip" })},
		{"bluegreen {\n" + pools + "sticky off\n}", def(func(w *want) { w.sticky = "off" })},
		// Pins: masked, IPv4 and IPv6, several CIDRs and lines, kept
		// longest prefix first (the first match is the longest match).
		{"bluegreen {\n" + pools + "pin green 192.0.2.7/24 2001:db8:1::/48\npin blue 10.0.0.1/32\n}", def(func(w *want) {
			w.pins = []string{"green 2001:db8:1::/48", "blue 10.0.0.1/32", "green 192.0.2.0/24"}
		})},
		// Nested pins to different pools; one prefix twice to one pool is one pin.
		{"bluegreen {\n" + pools + "pin blue 10.0.0.0/8 10.1.2.0/24\npin green 10.1.0.0/16\npin blue 10.0.0.0/8\n}", def(func(w *want) {
			w.pins = []string{"blue 10.1.2.0/24", "green 10.1.0.0/16", "blue 10.0.0.0/8"}
		})},
		// An IPv4-mapped CIDR is its IPv4 prefix (clients are unmapped).
		{"bluegreen {\n" + pools + "pin green ::ffff:10.1.0.0/112\n}", def(func(w *want) { w.pins = []string{"green 10.1.0.0/16"} })},
		// Reload.
		{"bluegreen {\n" + pools + "reload 0\n}", def(func(w *want) { w.reload = 0 })},
		{"bluegreen {\n" + pools + "reload 1m30s\n}", def(func(w *want) { w.reload = 90 * time.Second })},
		{"bluegreen {\n" + pools + "reload 50ms\n}", def(func(w *want) { w.reload = 50 * time.Millisecond })},
		{"bluegreen {\n" + pools + "reload 10ms\n}", def(func(w *want) { w.reload = minReload })},
		// Name.
		{"bluegreen {\n" + pools + "name prod_api.example-1\n}", def(func(w *want) { w.name = "prod_api.example-1" })},
		// Fallthrough.
		{"bluegreen {\n" + pools + "fallthrough\n}", def(func(w *want) { w.fall = []string{"."} })},
		{"bluegreen {\n" + pools + "fallthrough a.example.org b.example.org\n}", def(func(w *want) {
			w.fall = []string{"a.example.org.", "b.example.org."}
		})},
	}
	for i, tc := range tests {
		cfg, err := parseIn(dir, tc.input)
		if err != nil {
			t.Errorf("Test %d: expected no error, got %v", i, err)
			continue
		}
		var pools, paths, pins []string
		for _, p := range cfg.pools {
			pools, paths = append(pools, p.name), append(paths, p.path)
		}
		for _, p := range cfg.pins {
			pins = append(pins, cfg.pools[p.pool].name+" "+p.prefix.String())
		}
		got := want{
			origins: cfg.origins, pools: pools, paths: paths, base: cfg.base, seed: cfg.seed,
			ttlMax: cfg.ttlMax, ttlMin: cfg.ttlMin, sticky: cfg.sticky, v4: cfg.v4len, v6: cfg.v6len,
			pins: pins, reload: cfg.reload, name: cfg.name, fall: cfg.fall.Zones,
		}
		if !assert.Equal(t, tc.want, got) {
			t.Errorf("Test %d: expected %+v, got %+v", i, tc.want, got)
		}
	}
}

func TestParseErrors(t *testing.T) {
	dir := minimalZones(t)
	const pools = "pool blue blue.db\npool green green.db\n"
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "pool p%d blue.db\n", i)
		}
		return b.String()
	}

	tests := []struct {
		input string
		want  string // substring of the error
	}{
		{"bluegreen {\n" + pools + "frobnicate 1\n}", "unknown property 'frobnicate'"},
		{"bluegreen {\n" + pools + "pools blue blue.db\n}", "unknown property 'pools'"},
		// Pools.
		{"bluegreen {\npool Blue blue.db\npool green green.db\n}", `pool "Blue": name must match`},
		{"bluegreen {\npool 1blue blue.db\npool green green.db\n}", `pool "1blue": name must match`},
		{"bluegreen {\npool blue_1 blue.db\npool green green.db\n}", `pool "blue_1": name must match`},
		{"bluegreen {\npool _base blue.db\npool green green.db\n}", `pool "_base": name must match`},
		{"bluegreen {\npool " + strings.Repeat("g", 33) + " blue.db\npool green green.db\n}", "name must match"},
		{"bluegreen {\npool blue blue.db\npool blue green.db\n}", `pool "blue": declared twice`},
		{"bluegreen {\npool blue blue.db\n}", "at least two pools are required, got 1"},
		{"bluegreen {\n}", "at least two pools are required, got 0"},
		{"bluegreen {\nbase base.db\n}", "at least two pools are required, got 0"},
		{"bluegreen {\n" + many(65) + "}", "at most 64 pools are supported, got 65"},
		{"bluegreen {\npool blue missing.db\npool green green.db\n}", `pool "blue": stat ` + filepath.Join(dir, "missing.db")},
		{"bluegreen {\npool blue\npool green green.db\n}", "pool: want 'pool NAME FILE'"},
		{"bluegreen {\npool blue blue.db extra\npool green green.db\n}", "pool: want 'pool NAME FILE'"},
		// Base.
		{"bluegreen {\n" + pools + "base missing.db\n}", "base: stat"},
		{"bluegreen {\n" + pools + "base\n}", "base: want 'base FILE'"},
		{"bluegreen {\n" + pools + "base base.db\nbase base.db\n}", "base: declared twice"},
		// Weights.
		{"bluegreen {\n" + pools + "weights blue 1000001\n}", `weights: pool "blue": weight 1000001 is above the maximum 1000000`},
		{"bluegreen {\n" + pools + "weights blue 99999999999999999999\n}", `weights: pool "blue": weight "99999999999999999999" is not a non-negative integer`},
		{"bluegreen {\n" + pools + "weights blue 1.5\n}", `weight "1.5" is not a non-negative integer`},
		{"bluegreen {\n" + pools + "weights blue ten\n}", `weight "ten" is not a non-negative integer`},
		{"bluegreen {\n" + pools + "weights blue -1\n}", `weight "-1" is not a non-negative integer`},
		{"bluegreen {\n" + pools + "weights blue +1\n}", `weight "+1" is not a non-negative integer`},
		{"bluegreen {\n" + pools + "weights blue 0 green 0\n}", "weights: the weights sum to zero"},
		{"bluegreen {\n" + pools + "weights blue 0\n}", "weights: the weights sum to zero"},
		{"bluegreen {\n" + pools + "weights red 1\n}", `weights: unknown pool "red"`},
		{"bluegreen {\n" + pools + "weights blue 1 blue 2\n}", `weights: pool "blue" named twice`},
		{"bluegreen {\n" + pools + "weights blue 1\nweights blue 2\n}", `weights: pool "blue" named twice`},
		{"bluegreen {\n" + pools + "weights blue\n}", "weights: want 'weights NAME WEIGHT"},
		{"bluegreen {\n" + pools + "weights\n}", "weights: want 'weights NAME WEIGHT"},
		// TTL.
		{"bluegreen {\n" + pools + "ttl 10 20\n}", "ttl: MIN 20 is above MAX 10"},
		{"bluegreen {\n" + pools + "ttl abc\n}", `ttl: MAX "abc" is not an integer`},
		{"bluegreen {\n" + pools + "ttl -1\n}", `ttl: MAX "-1" is not an integer`},
		{"bluegreen {\n" + pools + "ttl 2147483648\n}", `ttl: MAX "2147483648" is not an integer from 0 to 2147483647`},
		{"bluegreen {\n" + pools + "ttl 30 x\n}", `ttl: MIN "x" is not an integer`},
		{"bluegreen {\n" + pools + "ttl\n}", "ttl: want 'ttl MAX [MIN]'"},
		{"bluegreen {\n" + pools + "ttl 1 2 3\n}", "ttl: want 'ttl MAX [MIN]'"},
		// Sticky.
		{"bluegreen {\n" + pools + "sticky\n}", "sticky: want"},
		{"bluegreen {\n" + pools + "sticky random\n}", `sticky: unknown mode "random"`},
		{"bluegreen {\n" + pools + "sticky subnet 33\n}", `sticky subnet: V4LEN "33" is not an integer from 0 to 32`},
		{"bluegreen {\n" + pools + "sticky subnet -1\n}", `V4LEN "-1"`},
		{"bluegreen {\n" + pools + "sticky subnet x\n}", `V4LEN "x"`},
		{"bluegreen {\n" + pools + "sticky subnet 24 129\n}", `sticky subnet: V6LEN "129" is not an integer from 0 to 128`},
		{"bluegreen {\n" + pools + "sticky subnet 24 /56\n}", `V6LEN "/56"`},
		{"bluegreen {\n" + pools + "sticky subnet 24 56 1\n}", "sticky subnet: too many arguments"},
		{"bluegreen {\n" + pools + "sticky ip 24\n}", "sticky ip: takes no arguments"},
		{"bluegreen {\n" + pools + "sticky off now\n}", "sticky off: takes no arguments"},
		// Pins.
		{"bluegreen {\n" + pools + "pin red 10.0.0.0/8\n}", `pin: unknown pool "red"`},
		{"bluegreen {\n" + pools + "pin green 10.0.0.0\n}", `pin: pool "green": invalid CIDR "10.0.0.0"`},
		{"bluegreen {\n" + pools + "pin green 10.0.0.0/33\n}", `invalid CIDR "10.0.0.0/33"`},
		{"bluegreen {\n" + pools + "pin green 2001:db8::/129\n}", `invalid CIDR "2001:db8::/129"`},
		{"bluegreen {\n" + pools + "pin green example.org/24\n}", `invalid CIDR "example.org/24"`},
		{"bluegreen {\n" + pools + "pin green 10.0.0.0/8 nonsense\n}", `invalid CIDR "nonsense"`},
		{"bluegreen {\n" + pools + "pin green\n}", "pin: want 'pin NAME CIDR [CIDR...]'"},
		{"bluegreen {\n" + pools + "pin green ::ffff:0.0.0.0/80\n}", `pin: pool "green": IPv4-mapped CIDR "::ffff:0.0.0.0/80" must be /96 or longer`},
		// Reload.
		{"bluegreen {\n" + pools + "reload soon\n}", `reload: invalid duration "soon"`},
		{"bluegreen {\n" + pools + "reload 10\n}", `reload: invalid duration "10"`},
		{"bluegreen {\n" + pools + "reload -1s\n}", `reload: invalid duration "-1s"`},
		{"bluegreen {\n" + pools + "reload\n}", "reload: want 'reload DURATION'"},
		// Name.
		{"bluegreen {\n" + pools + "name a/b\n}", `name: "a/b" must be 1-253 characters`},
		{"bluegreen {\n" + pools + "name " + strings.Repeat("a", 254) + "\n}", "must be 1-253 characters"},
		{"bluegreen {\n" + pools + "name\n}", "name: want 'name SWITCH'"},
		{"bluegreen {\n" + pools + "name a b\n}", "name: want 'name SWITCH'"},
		// Store.
		{"bluegreen {\n" + pools + "store\n}", "store: want 'store PATH' or 'store etcd ENDPOINT...'"},
		{"bluegreen {\n" + pools + "store a.db b.db\n}", "store: want 'store PATH'"},
		{"bluegreen {\n" + pools + "store etcd\n}", "store etcd: at least one ENDPOINT is required"},
		{"bluegreen {\n" + pools + "store etcd 127.0.0.1:2379\n}", `store etcd: endpoint "127.0.0.1:2379" must be an http:// or https:// URL`},
		{"bluegreen {\n" + pools + "store etcd ftp://127.0.0.1:2379\n}", "must be an http:// or https:// URL"},
		{"bluegreen {\n" + pools + "store etcd http://127.0.0.1:2379 {\nprefix bluegreen\n}\n}", "store etcd: want 'prefix /PREFIX'"},
		{"bluegreen {\n" + pools + "store etcd http://127.0.0.1:2379 {\nprefix\n}\n}", "store etcd: want 'prefix /PREFIX'"},
		{"bluegreen {\n" + pools + "store etcd http://127.0.0.1:2379 {\ntls cert key\n}\n}", "store etcd: want 'tls CERT KEY CA'"},
		{"bluegreen {\n" + pools + "store etcd http://127.0.0.1:2379 {\nuser root\n}\n}", "store etcd: unknown property 'user'"},
		{"bluegreen {\n" + pools + "store etcd http://127.0.0.1:2379 {\nprefix /x\n", "Unexpected EOF"},
		// Admin and token (the admin package's tests cover sharing a listener).
		{"bluegreen {\n" + pools + "admin\n}", "admin: want 'admin ADDRESS' or 'admin off'"},
		{"bluegreen {\n" + pools + "admin 127.0.0.1\n}", `admin: address "127.0.0.1"`},
		{"bluegreen {\n" + pools + "admin 127.0.0.1:0\n}", "port must be from 1 to 65535"},
		{"bluegreen {\n" + pools + "admin 192.0.2.1:8053\n}", "a token is required when the admin address is not a loopback address"},
		{"bluegreen {\n" + pools + "admin :8053\n}", "a token is required"},
		{"bluegreen {\n" + pools + "token\n}", "token: want 'token FILE'"},
		{"bluegreen {\n" + pools + "token missing-token\n}", "token: open " + filepath.Join(dir, "missing-token")},
		{"bluegreen {\n" + pools + "token empty-token\n}", "the first line, the token, is empty"},
		// Health.
		{"bluegreen {\n" + pools + "health green\n}", "health: want 'health NAME URL"},
		{"bluegreen {\n" + pools + "health green http://127.0.0.1/ interval\n}", "health: want 'health NAME URL"},
		{"bluegreen {\n" + pools + "health red http://127.0.0.1/\n}", `health: unknown pool "red"`},
		{"bluegreen {\n" + pools + "health green ftp://127.0.0.1/\n}", `health "green": URL "ftp://127.0.0.1/": scheme must be http, https or tcp`},
		{"bluegreen {\n" + pools + "health green http:///x\n}", "has no host"},
		{"bluegreen {\n" + pools + "health green tcp://127.0.0.1\n}", "want tcp://host:port"},
		{"bluegreen {\n" + pools + "health green http://127.0.0.1/ interval 0s\n}", `health "green": interval "0s" is not a positive duration`},
		{"bluegreen {\n" + pools + "health green http://127.0.0.1/ timeout soon\n}", `timeout "soon" is not a positive duration`},
		{"bluegreen {\n" + pools + "health green http://127.0.0.1/ fails 0\n}", `health "green": fails "0" is not an integer from 1 to 100`},
		{"bluegreen {\n" + pools + "health green http://127.0.0.1/ passes 101\n}", `passes "101" is not an integer from 1 to 100`},
		{"bluegreen {\n" + pools + "health green http://127.0.0.1/ colour red\n}", `health "green": unknown option "colour"`},
		// Zones that normalise to nothing.
		{"bluegreen bad..name {\n" + pools + "}", "no valid zone"},
		// One block per server block.
		{"bluegreen {\n" + pools + "}\nbluegreen {\n" + pools + "}", "this plugin"},
	}
	for i, tc := range tests {
		_, err := parseIn(dir, tc.input)
		if err == nil {
			t.Errorf("Test %d: expected an error containing %q, got none for %q", i, tc.want, tc.input)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: expected an error containing %q, got %q", i, tc.want, err)
		}
	}
}

// TestParseErrorsAt: a property given twice, a health URL that could never
// be probed, a period short enough to burn a CPU and one prefix pinned to
// two pools all fail parse, and every error, also those of the checks made
// once the whole block is read, names its line the way c.Errf does.
func TestParseErrorsAt(t *testing.T) {
	dir := minimalZones(t)
	const pools = "pool blue blue.db\npool green green.db\n"
	// block puts lines after the pools: the first is line 4.
	block := func(lines string) string { return "bluegreen {\n" + pools + lines + "\n}" }
	const at = " - Error during parsing: "
	tests := []struct {
		input string
		want  string
	}{
		// Single-valued properties, given twice, even with the same value.
		{block("base base.db\nbase base.db"), "Testfile:5" + at + "base: declared twice (first at Testfile:4)"},
		{block("ttl 60\nttl 30 5"), "Testfile:5" + at + "ttl: declared twice (first at Testfile:4)"},
		{block("sticky ip\nsticky off"), "Testfile:5" + at + "sticky: declared twice (first at Testfile:4)"},
		{block("sticky subnet 16\nweights blue 1\nsticky subnet 16"), "Testfile:6" + at + "sticky: declared twice (first at Testfile:4)"},
		{block("reload 1s\nreload 0"), "Testfile:5" + at + "reload: declared twice (first at Testfile:4)"},
		{block("name a\nname a"), "Testfile:5" + at + "name: declared twice (first at Testfile:4)"},
		{block("fallthrough\nfallthrough a.example.org"), "Testfile:5" + at + "fallthrough: declared twice (first at Testfile:4)"},
		{block("store a.db\nstore b.db"), "Testfile:5" + at + "store: declared twice (first at Testfile:4)"},
		{block("store a.db\nstore etcd http://127.0.0.1:2379"), "Testfile:5" + at + "store: declared twice (first at Testfile:4)"},
		{block("store etcd http://127.0.0.1:2379 {\nprefix /x\n}\nstore a.db"), "Testfile:7" + at + "store: declared twice (first at Testfile:4)"},
		{block("admin off\nadmin 127.0.0.1:9053"), "Testfile:5" + at + "admin: declared twice (first at Testfile:4)"},
		{block("admin 127.0.0.1:9053\nadmin off"), "Testfile:5" + at + "admin: declared twice (first at Testfile:4)"},
		{block("token token\ntoken token"), "Testfile:5" + at + "token: declared twice (first at Testfile:4)"},
		// Health URLs: a port from 1 to 65535, a host, nothing else for tcp.
		{block("health green tcp://127.0.0.1:99999"), "Testfile:4" + at + `health "green": URL "tcp://127.0.0.1:99999": port 99999 is not from 1 to 65535`},
		{block("health green tcp://127.0.0.1:0"), `URL "tcp://127.0.0.1:0": port 0 is not from 1 to 65535`},
		{block("health green http://127.0.0.1:65536/healthz"), `URL "http://127.0.0.1:65536/healthz": port 65536 is not from 1 to 65535`},
		{block("health green https://[::1]:0/"), "port 0 is not from 1 to 65535"},
		{block("health green https://:8443/"), "Testfile:4" + at + `health "green": URL "https://:8443/" has no host`},
		{block("health green tcp://:80"), `URL "tcp://:80" has no host`},
		{block("health green tcp:127.0.0.1:80"), `URL "tcp:127.0.0.1:80": want tcp://host:port`},
		{block("health green tcp://user@127.0.0.1:80"), "a tcp probe has no user, query or fragment"},
		{block("health green tcp://127.0.0.1:80?x=1"), "a tcp probe has no user, query or fragment"},
		// Minimums.
		{block("reload 1ns"), "Testfile:4" + at + "reload: 1ns is below the minimum 10ms (0 disables reloading)"},
		{block("reload 9ms"), "reload: 9ms is below the minimum 10ms"},
		{block("health green http://127.0.0.1/ interval 1ns"), "Testfile:4" + at + `health "green": interval 1ns is below the minimum 10ms`},
		{block("health green http://127.0.0.1/ interval 9.999ms"), `interval 9.999ms is below the minimum 10ms`},
		{block("health green http://127.0.0.1/ timeout 1ms"), `health "green": timeout 1ms is below the minimum 10ms`},
		// One prefix pinned to two pools, however it is spelled.
		{block("pin blue 10.0.0.0/8\npin green 10.0.0.0/8"), "Testfile:5" + at + `pin: pool "green": 10.0.0.0/8 is pinned to pool "blue" already (at Testfile:4)`},
		{block("pin blue 10.1.2.3/8\npin green 192.0.2.0/24 10.0.0.0/8"), `pin: pool "green": 10.0.0.0/8 is pinned to pool "blue" already (at Testfile:4)`},
		{block("pin blue 10.0.0.0/8\npin green ::ffff:10.0.0.0/104"), `10.0.0.0/8 is pinned to pool "blue" already`},
		{block("pin green 2001:db8::/32\npin blue 2001:db8:0:1::/64 2001:db8::/32"), "Testfile:5" + at + `pin: pool "blue": 2001:db8::/32 is pinned to pool "green" already (at Testfile:4)`},
		// Checks made after the block name the line at fault.
		{block("weights red 1"), "Testfile:4" + at + `weights: unknown pool "red"`},
		{block("weights blue 1\nweights green 2 blue 2"), "Testfile:5" + at + `weights: pool "blue" named twice`},
		{block("weights blue x"), "Testfile:4" + at + `weights: pool "blue": weight "x" is not a non-negative integer`},
		{block("ttl 60\nweights blue 0"), "Testfile:5" + at + "weights: the weights sum to zero"},
		{block("pin red 10.0.0.0/8"), "Testfile:4" + at + `pin: unknown pool "red"`},
		{block("pin green 10.0.0.0/8\npin green nonsense"), "Testfile:5" + at + `pin: pool "green": invalid CIDR "nonsense"`},
		{block("pin green ::ffff:0.0.0.0/80"), "Testfile:4" + at + `pin: pool "green": IPv4-mapped CIDR`},
		{"bluegreen {\nhealth red http://127.0.0.1/\n" + pools + "}", "Testfile:2" + at + `health: unknown pool "red"`},
		{block("admin 192.0.2.1:8053"), "Testfile:4" + at + "admin 192.0.2.1:8053: a token is required"},
		{"bluegreen {\npool blue blue.db\n}", "Testfile:1" + at + "at least two pools are required, got 1"},
		{"\n\nbluegreen example.org {\n}", "Testfile:3" + at + "at least two pools are required, got 0"},
	}
	for i, tc := range tests {
		_, err := parseIn(dir, tc.input)
		if err == nil {
			t.Errorf("Test %d: expected an error containing %q, got none for %q", i, tc.want, tc.input)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: expected an error containing %q, got %q", i, tc.want, err)
		}
	}
}

// TestParseNoZones: without server block keys or zone arguments parse
// fails instead of indexing an empty zone list.
func TestParseNoZones(t *testing.T) {
	dir := minimalZones(t)
	c := caddy.NewTestController("dns", "bluegreen {\npool blue blue.db\npool green green.db\n}")
	dnsserver.GetConfig(c).Root = dir
	_, err := parse(c)
	require.ErrorContains(t, err, "no valid zone")
}

// TestParseStateOptions: store, admin, token and health, and that an
// optional sub-block does not swallow the properties after it.
func TestParseStateOptions(t *testing.T) {
	dir := minimalZones(t)
	const pools = "pool blue blue.db\npool green green.db\n"
	tests := []struct {
		input string
		check func(c *config) error
	}{
		{"bluegreen {\n" + pools + "}", func(c *config) error {
			return expect(c.store == "" && c.etcd == nil && c.admin == "127.0.0.1:8053" && c.token == "" && len(c.health) == 0, "the defaults")
		}},
		{"bluegreen {\n" + pools + "store state.db\n}", func(c *config) error {
			return expect(c.store == filepath.Join(dir, "state.db") && c.etcd == nil, "store resolved against the root")
		}},
		{"bluegreen {\n" + pools + "store /var/lib/bg/state.db\n}", func(c *config) error {
			return expect(c.store == "/var/lib/bg/state.db", "an absolute store path")
		}},
		{"bluegreen {\n" + pools + "store etcd http://127.0.0.1:2379\nname after\n}", func(c *config) error {
			return expect(c.etcd != nil && c.etcd.Prefix == "/bluegreen" && len(c.etcd.Endpoints) == 1 && c.name == "after", "etcd without a block, the next property kept")
		}},
		{"bluegreen {\nstore etcd http://127.0.0.1:2379 https://10.0.0.2:2379\n" + pools + "}", func(c *config) error {
			return expect(c.etcd != nil && len(c.etcd.Endpoints) == 2 && len(c.pools) == 2, "etcd first, pools after")
		}},
		{"bluegreen {\n" + pools + "store etcd http://127.0.0.1:2379 {\nprefix /prod\ntls cert.pem key.pem ca.pem\n}\nname after\n}", func(c *config) error {
			return expect(c.etcd != nil && c.etcd.Prefix == "/prod" && c.etcd.CA == filepath.Join(dir, "ca.pem") && c.name == "after", "etcd with a block")
		}},
		{"bluegreen {\n" + pools + "store etcd http://127.0.0.1:2379 {\n}\nname after\n}", func(c *config) error {
			return expect(c.etcd != nil && c.name == "after", "etcd with an empty block")
		}},
		{"bluegreen {\n" + pools + "admin off\n}", func(c *config) error { return expect(c.admin == "", "admin off") }},
		{"bluegreen {\n" + pools + "admin localhost:9053\n}", func(c *config) error { return expect(c.admin == "127.0.0.1:9053", "localhost as 127.0.0.1") }},
		{"bluegreen {\n" + pools + "admin [::1]:9053\n}", func(c *config) error { return expect(c.admin == "[::1]:9053", "IPv6 loopback") }},
		{"bluegreen {\n" + pools + "admin 0.0.0.0:9053\ntoken token\n}", func(c *config) error {
			return expect(c.admin == "0.0.0.0:9053" && c.token == "s3cret", "a wildcard address with a token (its first line, trimmed)")
		}},
		{"bluegreen {\n" + pools + "health green http://127.0.0.1:8080/healthz\n}", func(c *config) error {
			return expect(len(c.health) == 1 && c.health[0].Pool == "green" && c.health[0].Interval == 5*time.Second &&
				c.health[0].Timeout == 2*time.Second && c.health[0].Fails == 3 && c.health[0].Passes == 2, "health defaults 5s 2s 3 2")
		}},
		{"bluegreen {\n" + pools + "health blue tcp://h:1 interval 10ms timeout 10ms\nhealth green http://h:65535/\n}", func(c *config) error {
			return expect(len(c.health) == 2 && c.health[0].Interval == minHealthInterval && c.health[0].Timeout == minHealthTimeout &&
				c.health[1].URL.Port() == "65535", "the minimum interval and timeout, the lowest and highest ports")
		}},
		{"bluegreen {\n" + pools + "health blue tcp://127.0.0.1:80 interval 1s timeout 500ms fails 5 passes 1\nhealth green https://example.org/\n}", func(c *config) error {
			return expect(len(c.health) == 2 && c.health[0].Interval == time.Second && c.health[0].Timeout == 500*time.Millisecond &&
				c.health[0].Fails == 5 && c.health[0].Passes == 1 && c.health[1].Pool == "green", "health options")
		}},
	}
	for i, tc := range tests {
		cfg, err := parseIn(dir, tc.input)
		if err != nil {
			t.Errorf("Test %d: expected no error, got %v", i, err)
			continue
		}
		if err := tc.check(cfg); err != nil {
			t.Errorf("Test %d: %v, got %+v", i, err, cfg)
		}
	}
}

func expect(ok bool, what string) error {
	if ok {
		return nil
	}
	return fmt.Errorf("expected %s", what)
}

// TestParseLineNumbers: errors of a property name the Corefile line.
func TestParseLineNumbers(t *testing.T) {
	dir := minimalZones(t)
	_, err := parseIn(dir, "bluegreen {\npool blue blue.db\npool green green.db\nttl 10 20\n}")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Testfile:4")
}

// TestParseNoSideEffects: parse reads no zone file content, so a file that
// does not parse only fails in setup.
func TestParseNoSideEffects(t *testing.T) {
	dir := writeZones(t, map[string]string{"blue.db": "this is not a zone file\n", "green.db": ""})
	_, err := parseIn(dir, "bluegreen {\npool blue blue.db\npool green green.db\n}")
	require.NoError(t, err)
}

// TestParsePinsMatch: pins are stored masked and match what they should.
func TestParsePinsMatch(t *testing.T) {
	dir := minimalZones(t)
	cfg, err := parseIn(dir, "bluegreen {\npool blue blue.db\npool green green.db\npin green 192.0.2.77/25 2001:db8:0:ff::1/56\n}")
	require.NoError(t, err)
	b := &Bluegreen{cfg: cfg}
	tests := []struct {
		addr   string
		pinned bool
	}{
		{"192.0.2.1", true},
		{"192.0.2.127", true},
		{"192.0.2.128", false},
		{"2001:db8:0:ff::2", true},
		{"2001:db8:0:100::1", false},
		{"10.0.0.1", false},
	}
	for i, tc := range tests {
		idx, ok := b.pinned(netip.MustParseAddr(tc.addr))
		if ok != tc.pinned || (ok && idx != 1) {
			t.Errorf("Test %d: expected %s pinned %t to pool 1, got %t to %d", i, tc.addr, tc.pinned, ok, idx)
		}
	}
}

func TestSetup(t *testing.T) {
	dir := minimalZones(t)
	name := uniqueName()
	c := caddy.NewTestController("dns", "bluegreen example.org {\npool blue blue.db\npool green green.db\nbase base.db\nadmin off\nname "+name+"\n}")
	dnsserver.GetConfig(c).Root = dir
	require.NoError(t, setup(c))
	t.Cleanup(func() { forget(name) })
	plugins := dnsserver.GetConfig(c).Plugin
	require.Len(t, plugins, 1)
	b, ok := plugins[0](nil).(*Bluegreen)
	require.True(t, ok)
	assert.True(t, b.Ready())
	// Not ready before the zone files are loaded.
	assert.False(t, (&Bluegreen{loader: newLoader(b.cfg)}).Ready())
	assert.Equal(t, "bluegreen", b.Name())
	assert.NotNil(t, b.sw)
}

func TestSetupErrors(t *testing.T) {
	const soa = "@ IN SOA ns1.example.org. h.example.org. 1 7200 3600 1209600 60\n"
	tests := []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"base.db": soa, "blue.db": "www IN A 300.1.1.1\n", "green.db": ""}, `plugin/bluegreen: pool "blue": `},
		{map[string]string{"base.db": soa + "www IN BOGUS 1\n", "blue.db": "", "green.db": ""}, "plugin/bluegreen: base: "},
		{map[string]string{"base.db": "www IN A 192.0.2.1\n", "blue.db": "api IN A 192.0.2.2\n", "green.db": ""}, "plugin/bluegreen: no SOA record for example.org."},
		{map[string]string{"base.db": soa, "blue.db": "www.example.net. IN A 192.0.2.1\n", "green.db": ""}, "is outside zone example.org."},
		{map[string]string{"base.db": soa, "blue.db": "", "green.db": ""}, ""}, // sanity: this one works
	}
	for i, tc := range tests {
		dir := writeZones(t, tc.files)
		name := uniqueName()
		c := caddy.NewTestController("dns", "bluegreen example.org {\npool blue blue.db\npool green green.db\nbase base.db\nadmin off\nname "+name+"\n}")
		dnsserver.GetConfig(c).Root = dir
		err := setup(c)
		forget(name)
		if tc.want == "" {
			if err != nil {
				t.Errorf("Test %d: expected no error, got %v", i, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: expected an error containing %q, got %v", i, tc.want, err)
		}
		// The error names the file that failed.
		if err != nil && strings.Contains(tc.want, "pool") && !strings.Contains(err.Error(), filepath.Join(dir, "blue.db")) {
			t.Errorf("Test %d: expected the error to name %s, got %v", i, filepath.Join(dir, "blue.db"), err)
		}
	}
	// A parse error fails setup too, wrapped.
	c := caddy.NewTestController("dns", "bluegreen example.org {\npool blue blue.db\n}")
	dnsserver.GetConfig(c).Root = minimalZones(t)
	err := setup(c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plugin/bluegreen: Testfile:1 - Error during parsing: at least two pools")
}

func TestSetupRelativeToRoot(t *testing.T) {
	dir := minimalZones(t)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.Rename(filepath.Join(dir, "blue.db"), filepath.Join(dir, "sub", "blue.db")))
	cfg, err := parseIn(dir, "bluegreen {\npool blue sub/blue.db\npool green green.db\n}")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "sub", "blue.db"), cfg.pools[0].path)
	// Without the root the same relative path is not found.
	_, err = parseIn("", "bluegreen {\npool blue sub/blue.db\npool green green.db\n}")
	require.Error(t, err)
}
