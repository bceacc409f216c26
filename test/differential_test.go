package test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// The differential test: the same records served by CoreDNS's file plugin
// and by a switch, compared over thousands of generated questions. Each
// pool's clients (pinned by ECS) must get exactly what a file zone holding
// that pool's view gets: base's records of the names no pool switches plus
// the pool's records, and for a name other pools hold (directly or through
// a wildcard) and this one does not, the pool's records alone. Those two
// rules are the README's decisions; every other difference fails.
//
// Answers are compared on the wire: rcode, AA and TC bits and the records
// of each section (as sets; OPT aside, since the switch echoes ECS).

type diffZone struct {
	base  []string
	pools [][]string
	names []string
}

var diffLabels = []string{"a", "b", "c"}

func (g *diffZone) name(r *rand.Rand, wild bool) string {
	n := ""
	for range 1 + r.IntN(3) {
		n = diffLabels[r.IntN(len(diffLabels))] + "." + n
	}
	if wild && r.IntN(5) == 0 {
		n = "*." + n
	}
	return n + "example.org."
}

// records returns random records: addresses, text, MX, CNAME chains (and
// loops), delegations with glue and DS. An owner holds a CNAME or other
// data, never both.
func (g *diffZone) records(r *rand.Rand, n int, cuts bool) []string {
	var out []string
	cname := map[string]bool{}
	for range n {
		owner := g.name(r, true)
		g.names = append(g.names, owner)
		k := r.IntN(11)
		if c, seen := cname[owner]; seen && c != (k <= 1) {
			continue
		}
		cname[owner] = k <= 1
		switch k {
		case 0, 1:
			target := g.name(r, false)
			g.names = append(g.names, target)
			out = append(out, owner+" 300 IN CNAME "+target)
		case 2:
			out = append(out, owner+" 300 IN MX 10 "+g.name(r, false))
		case 3:
			if cuts && !strings.HasPrefix(owner, "*.") {
				out = append(out, owner+" 300 IN NS ns."+owner, "ns."+owner+" 300 IN A 192.0.2.53",
					owner+" 300 IN DS 12345 13 2 3A2B1C0D9E8F7A6B5C4D3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F3A2B")
				g.names = append(g.names, "ns."+owner)
			}
		case 4:
			out = append(out, owner+fmt.Sprintf(" 300 IN AAAA 2001:db8::%x", r.IntN(3)))
		case 5:
			out = append(out, owner+fmt.Sprintf(" 300 IN TXT \"t%d %s\"", r.IntN(2), strings.Repeat("x", r.IntN(200))))
		default:
			out = append(out, owner+fmt.Sprintf(" 300 IN A 192.0.2.%d", r.IntN(3)))
		}
	}
	return out
}

const diffApex = "example.org. 300 IN SOA ns1.example.org. h.example.org. 1 7200 3600 1209600 300\nexample.org. 300 IN NS ns1.example.org.\nns1.example.org. 300 IN A 192.0.2.254"

// chainsBase and chainsPool: a CNAME chain of 12 links alternating
// between base and pool (longer than the 8 the file plugin follows), a
// loop across base and pool, and a pool delegation with more glue than a
// 512-byte reply holds.
var chainsBase = append(strings.Split(diffApex, "\n"),
	"c0.example.org. 300 IN CNAME c1.example.org.", "c2.example.org. 300 IN CNAME c3.example.org.",
	"c4.example.org. 300 IN CNAME c5.example.org.", "c6.example.org. 300 IN CNAME c7.example.org.",
	"c8.example.org. 300 IN CNAME c9.example.org.", "c10.example.org. 300 IN CNAME c11.example.org.",
	"c12.example.org. 300 IN A 192.0.2.12",
	"loop1.example.org. 300 IN CNAME loop2.example.org.",
	"big.example.org. 300 IN MX 10 deleg.example.org.")

func chainsPool(net string) []string {
	p := []string{
		"c1.example.org. 300 IN CNAME c2.example.org.", "c3.example.org. 300 IN CNAME c4.example.org.",
		"c5.example.org. 300 IN CNAME c6.example.org.", "c7.example.org. 300 IN CNAME c8.example.org.",
		"c9.example.org. 300 IN CNAME c10.example.org.", "c11.example.org. 300 IN CNAME c12.example.org.",
		"loop2.example.org. 300 IN CNAME loop1.example.org.",
	}
	for i := range 30 {
		p = append(p, fmt.Sprintf("deleg.example.org. 300 IN NS ns%d.deleg.example.org.", i),
			fmt.Sprintf("ns%d.deleg.example.org. 300 IN A %s.%d", i, net, i+1),
			fmt.Sprintf("ns%d.deleg.example.org. 300 IN AAAA 2001:db8::%x", i, i+1))
	}
	return p
}

// diffScenario is a generated switch and its reference zones.
type diffScenario struct {
	name  string
	base  []string   // nil: no base file
	pools [][]string // pool files
}

func diffScenarios(seed uint64) []diffScenario {
	r := rand.New(rand.NewPCG(seed, 11))
	g := &diffZone{}
	apex := strings.Split(diffApex, "\n")
	base := append(slices.Clone(apex), g.records(r, 6+r.IntN(8), true)...)
	same := g.records(r, 2+r.IntN(5), false)
	p0, p1 := g.records(r, 1+r.IntN(5), false), g.records(r, 1+r.IntN(5), false)
	d0, d1 := g.records(r, 3+r.IntN(4), true), g.records(r, 3+r.IntN(4), true)
	only := g.records(r, 6+r.IntN(6), true)
	return []diffScenario{
		{"chains", chainsBase, [][]string{chainsPool("192.0.2"), chainsPool("198.51.100")}},
		{"identical", base, [][]string{same, same}},
		{"base+pools", base, [][]string{p0, p1}},
		{"pools-only", nil, [][]string{append(slices.Clone(apex), only...), append(slices.Clone(apex), only...)}},
		{"delegations", base, [][]string{d0, d1}},
	}
}

// views computes each pool's reference zone text: its view, and its own
// records (with the apex) for names other pools hold.
func (sc diffScenario) views(t *testing.T) (views, own []string, heldBy func(qname string) uint64) {
	held := map[string]uint64{}
	var wild, cuts []string
	for i, p := range sc.pools {
		for _, l := range p {
			rr, err := dns.NewRR(l)
			require.NoError(t, err)
			n := rr.Header().Name
			if n == "example.org." && (rr.Header().Rrtype == dns.TypeSOA || rr.Header().Rrtype == dns.TypeNS) {
				continue
			}
			held[n] |= 1 << i
			if strings.HasPrefix(n, "*.") {
				wild = append(wild, n[2:])
			}
			if rr.Header().Rrtype == dns.TypeNS {
				cuts = append(cuts, n)
			}
		}
	}
	below := func(n string, parents []string) bool {
		for _, p := range parents {
			if n != p && dns.IsSubDomain(p, n) {
				return true
			}
		}
		return false
	}
	heldBy = func(q string) uint64 {
		m := held[q]
		for i, p := range sc.pools {
			for _, l := range p {
				if o, ok := strings.CutPrefix(strings.Fields(l)[0], "*."); ok && q != o && dns.IsSubDomain(o, q) {
					m |= 1 << i
				}
			}
		}
		return m
	}
	apex := strings.Split(diffApex, "\n")[:2]
	for _, p := range sc.pools {
		var v []string
		for _, l := range sc.base {
			rr, err := dns.NewRR(l)
			require.NoError(t, err)
			n := rr.Header().Name
			isApex := n == "example.org." && (rr.Header().Rrtype == dns.TypeSOA || rr.Header().Rrtype == dns.TypeNS)
			if _, ok := held[n]; isApex || (!ok && !below(n, wild) && !below(n, cuts)) {
				v = append(v, l)
			}
		}
		v = append(v, p...)
		o := slices.Clone(p)
		if sc.base != nil {
			o = append(slices.Clone(apex), p...)
		}
		views = append(views, strings.Join(v, "\n")+"\n")
		own = append(own, strings.Join(o, "\n")+"\n")
	}
	return views, own, heldBy
}

// diffQuestions: every name, a child, a sibling and every ancestor, in
// random case.
func diffQuestions(r *rand.Rand, sc diffScenario) []string {
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if !seen[n] && dns.IsSubDomain("example.org.", n) {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, f := range append(sc.pools, sc.base) {
		for _, l := range f {
			fs := strings.Fields(l)
			for _, n := range []string{fs[0], fs[len(fs)-1]} {
				n = strings.TrimPrefix(strings.ToLower(n), "*.")
				if !strings.HasSuffix(n, "example.org.") {
					continue
				}
				add(n)
				add("x." + n)
				add("zz." + n)
				for off, end := dns.NextLabel(n, 0); !end; off, end = dns.NextLabel(n, off) {
					add(n[off:])
				}
			}
		}
	}
	slices.Sort(out)
	for i, n := range out {
		if r.IntN(3) == 0 {
			b := []byte(n)
			for j := range b {
				if r.IntN(2) == 0 && b[j] >= 'a' && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			out[i] = string(b)
		}
	}
	return out
}

var diffTypes = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeMX, dns.TypeCNAME, dns.TypeNS, dns.TypeSOA, dns.TypeDS, dns.TypeANY}

// wire is a reply as compared: rcode, AA, TC and the sorted sections.
func wire(m *dns.Msg) string {
	sec := func(rrs []dns.RR) string {
		var s []string
		for _, rr := range rrs {
			if rr.Header().Rrtype != dns.TypeOPT {
				s = append(s, rr.String())
			}
		}
		slices.Sort(s)
		return strings.Join(s, "\n  ")
	}
	return fmt.Sprintf("%s aa=%v tc=%v\nanswer:\n  %s\nauthority:\n  %s\nadditional:\n  %s", dns.RcodeToString[m.Rcode], m.Authoritative, m.Truncated, sec(m.Answer), sec(m.Ns), sec(m.Extra))
}

func TestDifferentialFile(t *testing.T) {
	seeds := 4
	if testing.Short() {
		seeds = 1
	}
	total := 0
	for seed := range uint64(seeds) {
		for _, sc := range diffScenarios(seed) {
			dir := t.TempDir()
			views, own, heldBy := sc.views(t)
			body := "admin off\nttl 300 1\nreload 0\nsticky subnet 24 56\n"
			if sc.base != nil {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "base.db"), []byte(strings.Join(sc.base, "\n")+"\n"), 0o644))
				body += "base DIR/base.db\n"
			}
			var refs, refsOwn []*server
			for i, p := range sc.pools {
				require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%d.db", i)), []byte(strings.Join(p, "\n")+"\n"), 0o644))
				require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("view%d.db", i)), []byte(views[i]), 0o644))
				require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("own%d.db", i)), []byte(own[i]), 0o644))
				body += fmt.Sprintf("pool p%d DIR/p%d.db\npin p%d 10.0.%d.0/24\n", i, i, i, i)
				refs = append(refs, startServer(t, fmt.Sprintf(".:0 {\n bind 127.0.0.1\n file DIR/view%d.db example.org\n}", i), dir))
				refsOwn = append(refsOwn, startServer(t, fmt.Sprintf(".:0 {\n bind 127.0.0.1\n file DIR/own%d.db example.org\n}", i), dir))
			}
			bg := startServer(t, ".:0 {\n bind 127.0.0.1\n bluegreen example.org {\n"+body+" }\n}", dir)

			r := rand.New(rand.NewPCG(seed, 3))
			for _, qname := range diffQuestions(r, sc) {
				lower := strings.ToLower(qname)
				for _, qtype := range diffTypes {
					for i := range sc.pools {
						ref := refs[i]
						if m := heldBy(lower); m != 0 && m&(1<<i) == 0 {
							ref = refsOwn[i]
						}
						// One combination of DO, buffer size and transport
						// per question and pool, chosen at random.
						do, small, network := r.IntN(2) == 0, r.IntN(4) == 0, "udp"
						if r.IntN(4) == 0 {
							network = "tcp"
						}
						q := new(dns.Msg)
						q.SetQuestion(qname, qtype)
						size := uint16(1232)
						if small {
							size = 512
						}
						q.SetEdns0(size, do)
						want := exchange(t, network, addrOf(ref, network), q)
						q.IsEdns0().Option = append(q.IsEdns0().Option, ecsOption(netip.MustParsePrefix(fmt.Sprintf("10.0.%d.0/24", i))))
						// Asked twice: the second asking finds the
						// answer kept, which goes out as bytes.
						for ask := 1; ask <= 2; ask++ {
							got := exchange(t, network, addrOf(bg, network), q)
							want := want
							if want.Truncated && got.Truncated {
								// The echoed ECS option takes room in a
								// truncated reply: it may hold fewer records.
								want = subset(want, got)
							}
							if w, g := wire(want), wire(got); w != g {
								t.Fatalf("seed %d %s pool p%d: %s %s do=%v bufsize=%d %s, asking %d:\nfile:\n%s\nbluegreen:\n%s\nbase %q\npools %q", seed, sc.name, i, qname, dns.TypeToString[qtype], do, size, network, ask, w, g, sc.base, sc.pools)
							}
						}
						total++
					}
				}
			}
			bg.stop()
			for i := range refs {
				refs[i].stop()
				refsOwn[i].stop()
			}
		}
	}
	t.Logf("%d answers compared with the file plugin's", total)
}

// subset returns want with only the records got holds, when got holds no
// record want lacks (else want unchanged, so the difference shows).
func subset(want, got *dns.Msg) *dns.Msg {
	out := want.Copy()
	keep := func(ws, gs []dns.RR) ([]dns.RR, bool) {
		have := map[string]bool{}
		for _, rr := range gs {
			have[rr.String()] = true
		}
		var kept []dns.RR
		for _, rr := range ws {
			if have[rr.String()] {
				kept = append(kept, rr)
				delete(have, rr.String())
			}
		}
		for s := range have {
			if !strings.Contains(s, "OPT") {
				return ws, false
			}
		}
		return kept, true
	}
	var ok1, ok2, ok3 bool
	out.Answer, ok1 = keep(want.Answer, got.Answer)
	out.Ns, ok2 = keep(want.Ns, got.Ns)
	out.Extra, ok3 = keep(want.Extra, got.Extra)
	if !ok1 || !ok2 || !ok3 {
		return want
	}
	return out
}

func addrOf(s *server, network string) string {
	if network == "tcp" {
		return s.tcp
	}
	return s.udp
}
