package bluegreen

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/pkg/fuzz"
	"github.com/coredns/coredns/plugin/test"

	"github.com/miekg/dns"
)

// fuzzSeeds returns packed queries: plain, with EDNS0 and DO, with ECS of
// every family (including dig's family 0), zone transfers, names outside
// the zone and odd spellings.
func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	add := func(m *dns.Msg) {
		buf, err := m.Pack()
		if err != nil {
			f.Fatalf("packing seed %v: %v", m, err)
		}
		seeds = append(seeds, buf)
	}
	withECS := func(qname string, qtype uint16, e *dns.EDNS0_SUBNET) *dns.Msg {
		m := query(qname, qtype)
		m.SetEdns0(1232, true)
		m.IsEdns0().Option = append(m.IsEdns0().Option, e)
		return m
	}
	for _, qname := range []string{"www.example.org.", "api.example.org.", "chain.example.org.", "alias.example.org.",
		"foo.wild.example.org.", "x.wild.example.org.", "onlyblue.example.org.", "nowhere.example.org.", "example.org.",
		"www.sub.example.org.", "selfloop.example.org.", "WWW.EXAMPLE.ORG.", "example.net.", "."} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeMX, dns.TypeSRV, dns.TypeCNAME, dns.TypeSOA, dns.TypeNS, dns.TypeANY} {
			add(query(qname, qtype))
		}
	}
	add(query("example.org.", dns.TypeAXFR))
	add(query("example.org.", dns.TypeIXFR))
	add(withECS("www.example.org.", dns.TypeA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("192.0.2.0").To4()}))
	add(withECS("www.example.org.", dns.TypeA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 32, Address: net.ParseIP("10.9.0.1").To4()}))
	add(withECS("www.example.org.", dns.TypeA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 0, Address: net.ParseIP("0.0.0.0").To4()}))
	add(withECS("www.example.org.", dns.TypeAAAA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 56, Address: net.ParseIP("2001:db8::")}))
	add(withECS("www.example.org.", dns.TypeAAAA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 128, Address: net.ParseIP("2001:db8:9::1")}))
	add(withECS("alias.example.org.", dns.TypeA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 0}))
	add(withECS("shared.example.org.", dns.TypeA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("192.0.2.0").To4()}))
	// IPv4-mapped subnets (pinned and not), and options RFC 7871 rejects:
	// bits beyond the prefix, a scope in a query, two ECS options.
	add(withECS("www.example.org.", dns.TypeA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 120, Address: net.ParseIP("::ffff:10.9.0.0")}))
	add(withECS("www.example.org.", dns.TypeA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 96, Address: net.ParseIP("::ffff:0.0.0.0")}))
	add(withECS("www.example.org.", dns.TypeA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 16, Address: net.ParseIP("192.0.2.1").To4()}))
	add(withECS("www.example.org.", dns.TypeA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, SourceScope: 24, Address: net.ParseIP("192.0.2.0").To4()}))
	two := withECS("www.example.org.", dns.TypeA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("192.0.2.0").To4()})
	two.IsEdns0().Option = append(two.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("198.51.100.0").To4()})
	add(two)
	notify := query("example.org.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	add(notify)
	m := withECS("www.example.org.", dns.TypeA, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("192.0.2.0").To4()})
	m.IsEdns0().Option = append([]dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"}}, m.IsEdns0().Option...)
	add(m)
	return seeds
}

// rdataKey is a record's type and data, without owner and TTL: wildcard
// answers carry the query's name.
func rdataKey(rr dns.RR) string {
	return dns.TypeToString[rr.Header().Rrtype] + " " + strings.TrimPrefix(rr.String(), rr.Header().String())
}

// poolOnly maps the data of records only one pool holds to that pool.
var poolOnly = func() map[string]string {
	held := map[string]map[string]bool{}
	for pool, text := range map[string]string{"blue": blueDB, "green": greenDB} {
		held[pool] = map[string]bool{}
		zp := dns.NewZoneParser(strings.NewReader(text), "example.org.", pool)
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			held[pool][rdataKey(rr)] = true
		}
	}
	only := map[string]string{}
	for k := range held["blue"] {
		if !held["green"][k] {
			only[k] = "blue"
		}
	}
	for k := range held["green"] {
		if !held["blue"][k] {
			only[k] = "green"
		}
	}
	return only
}()

// mixed reports whether a reply holds records only blue has and records
// only green has.
func mixed(m *dns.Msg) bool {
	seen := map[string]bool{}
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if p, ok := poolOnly[rdataKey(rr)]; ok {
				seen[p] = true
			}
		}
	}
	return len(seen) > 1
}

// FuzzServeDNS feeds packed messages to ServeDNS in every sticky mode, and
// to a switch that signs its zones. It
// must never panic, and a reply it writes must pack (it goes on the wire)
// and never mix two pools' records.
func FuzzServeDNS(f *testing.F) {
	dir := stdZones(f)
	key, _ := writeKey(f, dir, "example.org.", 257)
	pins := "pin green 10.9.0.0/16 2001:db8:9::/48\n"
	instances := []*Bluegreen{
		newTestBluegreen(f, dir, pools3+"weights blue 50 green 50\n"+pins),
		newTestBluegreen(f, dir, pools3+"weights blue 50 green 50\nsticky ip\n"+pins),
		newTestBluegreen(f, dir, pools3+"weights blue 1 green 1\nsticky off\nfallthrough\nttl 5 5"),
		newTestBluegreen(f, dir, pools3+"weights green 1\nsticky subnet 0 0\n"+pins),
		newTestBluegreen(f, dir, pools3+"weights blue 50 green 50\n"+pins+"dnssec key file "+key),
	}
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// What CoreDNS's own fuzzing does for a plugin.
		fuzz.Do(instances[0], data)

		r := new(dns.Msg)
		if err := r.Unpack(data); err != nil || len(r.Question) == 0 {
			return
		}
		for i, b := range instances {
			for _, remote := range []string{"192.0.2.1", "10.9.1.1", "2001:db8:9::1"} {
				rec := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: remote})
				b.ServeDNS(context.Background(), rec, r.Copy())
				if rec.Msg == nil {
					continue
				}
				if _, err := rec.Msg.Pack(); err != nil {
					t.Errorf("Instance %d: expected the reply to pack, got %v for %v", i, err, rec.Msg)
				}
				if mixed(rec.Msg) {
					t.Errorf("Instance %d: expected records of one pool, got %v", i, rec.Msg)
				}
			}
		}
	})
}

// FuzzParse feeds Corefile text to parse. It must never panic; whatever it
// accepts must load.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	for name, content := range map[string]string{"base.db": baseDB, "blue.db": blueDB, "green.db": greenDB, "token": "s3cret\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	seeds := []string{
		"bluegreen {\npool blue blue.db\npool green green.db\n}",
		"bluegreen example.org {\nbase base.db\npool blue blue.db\npool green green.db\nweights blue 90 green 10\nttl 60 5\nsticky subnet 20 48\npin green 10.0.0.0/8 2001:db8::/32\nreload 1s\nname prod\nfallthrough\n}",
		"bluegreen example.org example.net {\npool blue blue.db\npool green green.db\nsticky ip\nadmin off\n}",
		"bluegreen {\npool blue blue.db\npool green green.db\nsticky off\nadmin 127.0.0.1:8053\ntoken token\n}",
		"bluegreen {\npool blue blue.db\npool green green.db\nstore state.db\n}",
		"bluegreen {\npool blue blue.db\npool green green.db\nadmin 127.0.0.1:8053 {\nhosts a.example b.example.\n}\n}",
		"bluegreen {\npool blue blue.db\npool green green.db\nadmin 0.0.0.0:8053 {\ntls token token token\n}\n}",
		"bluegreen bad..name {\npool blue blue.db\npool green green.db\n}",
		"bluegreen {\npool blue blue.db\n}",
		"bluegreen {\npool blue blue.db\npool green green.db\nweights blue 0\n}",
		"bluegreen {\npool blue blue.db\npool green green.db\npin green ::ffff:10.0.0.0/104\n}",
		"bluegreen {\npool blue blue.db\npool green green.db\nttl 10 20\n}",
		"bluegreen {\npool blue blue.db\npool green green.db\nhealth blue http://127.0.0.1/ interval 1s\n}",
		"bluegreen {\npool blue blue.db\npool green green.db\n}\nbluegreen {\n}",
		"bluegreen {\n\tpool blue \"blue.db\"\n\tpool green green.db # comment\n}",
		"bluegreen",
		"bluegreen {",
		"{",
		"",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		// parse reads the token file and load the zone files: keep the
		// fuzzer away from devices that block or never end.
		for _, dev := range []string{"/dev", "/proc", "/sys"} {
			if strings.Contains(input, dev) {
				return
			}
		}
		for _, keys := range [][]string{nil, {"dns://example.org.:53"}} {
			c := caddy.NewTestController("dns", input)
			c.ServerBlockKeys = keys
			dnsserver.GetConfig(c).Root = dir
			cfg, err := parse(c)
			if err != nil {
				continue
			}
			if len(cfg.origins) == 0 || len(cfg.pools) < 2 || cfg.name == "" || cfg.ttlMin > cfg.ttlMax {
				t.Errorf("expected a checked config, got %+v", cfg)
			}
			// The zone files parse for the zones named; loading may fail
			// (the files hold example.org), but must not panic.
			newLoader(cfg).load()
		}
	})
}

// TestMixed checks the fuzz oracle itself.
func TestMixed(t *testing.T) {
	tests := []struct {
		rrs  []dns.RR
		want bool
	}{
		{[]dns.RR{test.A("www.example.org. 30 IN A 192.0.2.10"), test.A("www.example.org. 30 IN A 198.51.100.10")}, true},
		{[]dns.RR{test.A("foo.wild.example.org. 30 IN A 192.0.2.30"), test.TXT(`version.example.org. 30 IN TXT "green"`)}, true},
		{[]dns.RR{test.A("www.example.org. 30 IN A 192.0.2.10"), test.A("www.example.org. 30 IN A 192.0.2.11")}, false},
		{[]dns.RR{test.CNAME("api.example.org. 30 IN CNAME www.example.org."), test.A("www.example.org. 30 IN A 198.51.100.10")}, false},
		{[]dns.RR{test.A("shared.example.org. 30 IN A 192.0.2.99")}, false},
	}
	for i, tc := range tests {
		m := new(dns.Msg)
		m.Answer = tc.rrs
		if got := mixed(m); got != tc.want {
			t.Errorf("Test %d: expected mixed %t, got %t", i, tc.want, got)
		}
	}
}
