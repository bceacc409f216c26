package zones

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/file/tree"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// insertTree is what newTree replaces: the records inserted one by one.
func insertTree(rrs []dns.RR) *tree.Tree {
	t := &tree.Tree{}
	for _, rr := range rrs {
		t.Insert(rr)
	}
	return t
}

// elemsOf lists a tree's elements in order, each as its name and its
// records by type in stored order.
func elemsOf(t *tree.Tree) []string {
	var out []string
	for _, e := range t.All() {
		s := e.Name()
		for _, ty := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeNS, dns.TypeCNAME} {
			for _, rr := range e.Type(ty) {
				s += " | " + rr.String()
			}
		}
		out = append(out, s)
	}
	return out
}

// newTree holds exactly what inserting the records one by one holds: the
// same elements in the same (canonical) order, a name's records in the
// given order, whether names have escapes, mixed case, wildcards or
// repeat; and it is a search tree that finds every name.
func TestNewTreeAsInserted(t *testing.T) {
	labels := []string{"a", "B", "ab", "a-b", "*", "z0", `a\.b`, `\065`, `x\032y`, "Aa", "a0"}
	for seed := range uint64(30) {
		r := rand.New(rand.NewPCG(seed, 3))
		var rrs []dns.RR
		n := 50 + r.IntN(20_000)
		for i := range n {
			name := "example.org."
			for range 1 + r.IntN(3) {
				l := labels[r.IntN(len(labels))]
				if seed%2 == 0 && strings.Contains(l, `\`) {
					l = "q" // half the seeds without escapes (the fast key)
				}
				name = l + "." + name
			}
			var rr dns.RR
			var err error
			switch r.IntN(3) {
			case 0:
				rr, err = dns.NewRR(fmt.Sprintf("%s 60 IN A 192.0.2.%d", name, i%250))
			case 1:
				rr, err = dns.NewRR(fmt.Sprintf("%s 60 IN TXT \"%d\"", name, i))
			default:
				rr, err = dns.NewRR(fmt.Sprintf("%s 60 IN AAAA 2001:db8::%x", name, i))
			}
			require.NoError(t, err)
			rr.Header().Name = name // as written, escapes and case kept
			rrs = append(rrs, rr)
		}
		want, got := insertTree(rrs), newTree(rrs)
		require.Equal(t, want.Len(), got.Len(), "seed %d", seed)
		require.Equal(t, elemsOf(want), elemsOf(got), "seed %d", seed)
		for _, rr := range rrs {
			e, ok := got.Search(rr.Header().Name)
			require.True(t, ok, "seed %d: %s not found", seed, rr.Header().Name)
			require.Equal(t, 0, tree.Less(e, rr.Header().Name))
		}
	}
}

func TestCanonicalKey(t *testing.T) {
	names := []string{"example.org.", "a.example.org.", "A.example.org.", "ab.example.org.", "a-b.example.org.", "b.a.example.org.", "*.example.org.", "z.example.org.", "org.", "."}
	for _, a := range names {
		for _, b := range names {
			want := tree.Less(nameElem(&dns.A{Hdr: dns.RR_Header{Name: b}}), a)
			got := strings.Compare(canonicalKey(a), canonicalKey(b))
			require.Equal(t, sgn(want), sgn(got), "%s vs %s", a, b)
		}
	}
}

func sgn(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

// nameIndex answers as a map of the names and their ancestors would, by
// canonical keys and (a name with escapes among them) by the tree's order.
func TestNameIndex(t *testing.T) {
	for _, escaped := range []bool{false, true} {
		names := []string{"example.org.", "a.example.org.", "b.c.example.org.", "B.C.example.org.", "*.w.example.org.", "zz.example.org."}
		if escaped {
			names = append(names, `x\.y.example.org.`)
		}
		var rrs []dns.RR
		for _, n := range names {
			rrs = append(rrs, &dns.A{Hdr: dns.RR_Header{Name: n, Rrtype: dns.TypeA, Class: dns.ClassINET}})
		}
		x := newNameIndex(rrs)
		require.Equal(t, len(names)-1, x.len())
		for name, want := range map[string][2]bool{ // has, hasBelow
			"example.org.":       {true, true},
			"a.example.org.":     {true, false},
			"c.example.org.":     {false, true},
			"C.EXAMPLE.org.":     {false, true},
			"b.c.example.org.":   {true, false},
			"w.example.org.":     {false, true},
			"*.w.example.org.":   {true, false},
			`x\.y.example.org.`:  {escaped, false},
			"y.example.org.":     {false, false},
			"b.example.org.":     {false, false},
			"zz.example.org.":    {true, false},
			"zzz.example.org.":   {false, false},
			"org.":               {false, true},
			"q.zz.example.org.":  {false, false},
			"\\097.example.org.": {true, false},
		} {
			require.Equal(t, want[0], x.has(name), "escaped %t: has %s", escaped, name)
			require.Equal(t, want[1], x.hasBelow(name), "escaped %t: hasBelow %s", escaped, name)
		}
	}
}
