package zones

import (
	"context"
	"crypto"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/file/tree"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// testSigner signs with one ECDSA key through miekg/dns (the plugin's
// Signer goes through CoreDNS's dnssec plugin; this package only needs
// signatures that verify).
type testSigner struct {
	key  *dns.DNSKEY
	priv crypto.Signer
	runs int
}

func newTestSigner(t testing.TB) *testSigner {
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600}, Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	p, err := k.Generate(256)
	require.NoError(t, err)
	return &testSigner{key: k, priv: p.(crypto.Signer)}
}

func (s *testSigner) DNSKEYs() []*dns.DNSKEY { return []*dns.DNSKEY{s.key} }

func (s *testSigner) Begin(now time.Time) func([]dns.RR) ([]dns.RR, error) {
	s.runs++
	return func(rrs []dns.RR) ([]dns.RR, error) {
		var sigs []dns.RR
		for _, set := range rrsets(rrs) {
			sig := &dns.RRSIG{Hdr: dns.RR_Header{Ttl: set[0].Header().Ttl}, Algorithm: s.key.Algorithm, SignerName: origin, KeyTag: s.key.KeyTag(),
				Inception: uint32(now.Add(-time.Hour).Unix()), Expiration: uint32(now.Add(8 * 24 * time.Hour).Unix())}
			if err := sig.Sign(s.priv, set); err != nil {
				return nil, err
			}
			sigs = append(sigs, sig)
		}
		return sigs, nil
	}
}

// rrsets groups rrs by owner and type, in first-seen order.
func rrsets(rrs []dns.RR) [][]dns.RR {
	var out [][]dns.RR
	idx := map[[2]string]int{}
	for _, rr := range rrs {
		k := [2]string{rr.Header().Name, dns.Type(rr.Header().Rrtype).String()}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], rr)
	}
	return out
}

func buildSigned(t *testing.T, s Signer, opts Options, base string, pools ...string) (*Zone, error) {
	t.Helper()
	var b *Source
	if base != "" {
		bs := src("", base)
		bs.Path = "base.db"
		b = &bs
	}
	var ps []Source
	for i, p := range pools {
		ps = append(ps, src(fmt.Sprintf("p%d", i), p))
	}
	opts.Signer = s
	if opts.Now.IsZero() {
		opts.Now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	}
	return BuildWith(origin, b, ps, opts)
}

// checkSigned checks that view is a correctly signed zone on its own:
// rebuilt from its records without DNSSEC ones, its authoritative names
// (the file plugin's AuthWalk) are exactly the NSEC owners, each NSEC
// points at the next one (the last at the apex) with the name's types,
// and every authoritative RRset (the apex SOA and NS too) carries an RRSIG
// that verifies with key; glue carries neither.
func checkSigned(t *testing.T, view *file.Zone, key *dns.DNSKEY, when time.Time) {
	t.Helper()
	var plain []dns.RR
	byName := map[string]*tree.Elem{}
	for _, e := range view.Tree.All() {
		byName[e.Name()] = e
		for _, rr := range e.All() {
			if t := rr.Header().Rrtype; t != dns.TypeRRSIG && t != dns.TypeNSEC {
				plain = append(plain, rr)
			}
		}
	}
	var auth []string
	authSet := map[string]bool{}
	newTree(plain).AuthWalk(func(e *tree.Elem, _ map[uint16][]dns.RR, ok bool) error {
		if ok {
			auth = append(auth, e.Name())
			authSet[e.Name()] = true
		}
		return nil
	})
	require.NotEmpty(t, auth)
	require.Equal(t, origin, auth[0])
	verify := func(set []dns.RR, sigs []dns.RR) {
		t.Helper()
		var covering []*dns.RRSIG
		for _, s := range sigs {
			if sig := s.(*dns.RRSIG); sig.TypeCovered == set[0].Header().Rrtype {
				covering = append(covering, sig)
			}
		}
		require.NotEmpty(t, covering, "no RRSIG over %s %s", set[0].Header().Name, dns.Type(set[0].Header().Rrtype))
		for _, sig := range covering {
			require.NoError(t, sig.Verify(key, set), "RRSIG over %s %s", set[0].Header().Name, dns.Type(set[0].Header().Rrtype))
			require.True(t, sig.ValidityPeriod(when))
		}
	}
	verify([]dns.RR{view.SOA}, view.SIGSOA)
	verify(view.NS, view.SIGNS)
	for i, name := range auth {
		e := byName[name]
		nsecs := e.Type(dns.TypeNSEC)
		require.Len(t, nsecs, 1, "NSEC at %s", name)
		nsec := nsecs[0].(*dns.NSEC)
		require.Equal(t, auth[(i+1)%len(auth)], nsec.NextDomain, "NSEC at %s", name)
		want := []uint16{dns.TypeRRSIG, dns.TypeNSEC}
		if name == origin {
			want = append(want, dns.TypeNS, dns.TypeSOA)
		}
		for _, ty := range e.Types() {
			if !slices.Contains(want, ty) {
				want = append(want, ty)
			}
		}
		slices.Sort(want)
		require.Equal(t, want, nsec.TypeBitMap, "NSEC bitmap at %s", name)
		for _, ty := range e.Types() {
			if ty == dns.TypeRRSIG || (ty == dns.TypeNS && name != origin) {
				continue
			}
			verify(e.Type(ty), e.Type(dns.TypeRRSIG))
		}
	}
	for name, e := range byName {
		if !authSet[name] {
			require.Nil(t, e.Type(dns.TypeNSEC), "glue %s has an NSEC", name)
			require.Nil(t, e.Type(dns.TypeRRSIG), "glue %s has an RRSIG", name)
		}
	}
}

const signBase = `$ORIGIN example.org.
$TTL 300
@       IN SOA  ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60
@       IN NS   ns1.example.org.
@       IN MX   10 mail.example.org.
ns1     IN A    127.0.0.1
mail    IN A    192.0.2.25
b       IN A    192.0.2.2
d       IN A    192.0.2.4
sub     IN NS   ns.sub.example.org.
sub     IN DS   12345 13 2 3A2B1C0D9E8F7A6B5C4D3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F3A2B
ns.sub  IN A    192.0.2.53
x.y     IN A    192.0.2.5
*.w     IN TXT  "wild"
`

func TestSignViews(t *testing.T) {
	s := newTestSigner(t)
	blue := "$ORIGIN example.org.\n$TTL 60\nc IN A 192.0.2.10\n@ IN TXT \"blue apex\"\n"
	green := "$ORIGIN example.org.\n$TTL 60\nc IN AAAA 2001:db8::1\nz.y IN A 192.0.2.11\ncut IN NS ns.other.net.\n"
	when := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	z, err := buildSigned(t, s, Options{Now: when, BoundTTL: true, TTLMax: 30, TTLMin: 1}, signBase, blue, green)
	require.NoError(t, err)
	require.Equal(t, when, z.SignedAt)
	for _, v := range z.Views {
		checkSigned(t, v, s.key, when)
	}
	// The apex holds the key (TTL bounded like every record).
	apex, ok := z.Views[1].Tree.Search(origin)
	require.True(t, ok)
	require.Len(t, apex.Type(dns.TypeDNSKEY), 1)
	require.EqualValues(t, 30, apex.Type(dns.TypeDNSKEY)[0].Header().Ttl)
	// Names other pools hold are answered from the view (a denial from
	// its chain): Only is the view.
	for i := range z.Views {
		require.Same(t, z.Views[i], z.Only[i])
	}
}

// genZones returns a random base and three pools for seed: names from
// three labels, wildcards, delegations with glue, apex records in pools.
func genZones(seed uint64) (string, []string) {
	r := rand.New(rand.NewPCG(seed, 11))
	name := func() string {
		n := ""
		for range 1 + r.IntN(3) {
			n = []string{"a", "b", "c"}[r.IntN(3)] + "." + n
		}
		if r.IntN(6) == 0 {
			n = "*." + n
		}
		return n + "example.org."
	}
	records := func(n int) string {
		var b strings.Builder
		b.WriteString("$ORIGIN example.org.\n$TTL 60\n")
		for range n {
			owner := name()
			switch r.IntN(7) {
			case 0:
				if !strings.HasPrefix(owner, "*.") {
					fmt.Fprintf(&b, "%s NS ns.%s\nns.%s A 192.0.2.53\n%s DS 12345 13 2 3A2B1C0D9E8F7A6B5C4D3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F3A2B\n", owner, owner, owner, owner)
					continue
				}
				fallthrough
			case 1:
				fmt.Fprintf(&b, "%s TXT \"t\"\n", owner)
			case 2:
				fmt.Fprintf(&b, "@ TXT \"apex %d\"\n", r.IntN(2))
			case 3:
				fmt.Fprintf(&b, "%s MX 10 %s\n", owner, name())
			default:
				fmt.Fprintf(&b, "%s A 192.0.2.%d\n", owner, r.IntN(3))
			}
		}
		return b.String()
	}
	base := "$ORIGIN example.org.\n$TTL 60\n@ SOA ns1 host 1 2 3 4 60\n@ NS ns1\nns1 A 127.0.0.1\n" + records(15)
	return base, []string{records(3), records(4), records(2)}
}

// Every view of random zones is a signed zone of its own, holding the same
// records as the unsigned view plus the keys.
func TestSignViewsGenerated(t *testing.T) {
	s := newTestSigner(t)
	when := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for seed := range uint64(40) {
		base, pools := genZones(seed)
		z, err := buildSigned(t, s, Options{Now: when}, base, pools...)
		require.NoError(t, err, "seed %d", seed)
		plain, err := buildPlain(t, base, pools...)
		require.NoError(t, err, "seed %d", seed)
		for i, v := range z.Views {
			t.Run(fmt.Sprintf("seed%d/pool%d", seed, i), func(t *testing.T) {
				checkSigned(t, v, s.key, when)
				require.Equal(t, append(viewRecords(plain.Views[i]), "example.org.\tDNSKEY"), viewRecords(v))
			})
		}
	}
}

// A signed view (the shared base tree with the pool's elements and the
// re-chained ones put in by path copying) answers every DO question
// exactly as a file zone built the ordinary way from the same records:
// the copied elements are found by Search, Prev and the closest-encloser
// walk as in any zone tree.
func TestSignedViewsAnswerAsFileZone(t *testing.T) {
	s := newTestSigner(t)
	for seed := range uint64(25) {
		base, pools := genZones(seed)
		z, err := buildSigned(t, s, Options{}, base, pools...)
		require.NoError(t, err, "seed %d", seed)
		for i, v := range z.Views {
			flat := file.NewZone(origin, "")
			for _, rr := range append(append([]dns.RR{v.SOA}, v.NS...), append(v.SIGSOA, v.SIGNS...)...) {
				require.NoError(t, flat.Insert(dns.Copy(rr)))
			}
			var names []string
			for _, e := range v.Tree.All() {
				for _, rr := range e.All() {
					require.NoError(t, flat.Insert(dns.Copy(rr)))
				}
				names = append(names, e.Name(), "x."+e.Name(), "zz"+e.Name())
			}
			for _, q := range names {
				for _, qt := range []uint16{dns.TypeA, dns.TypeTXT, dns.TypeMX, dns.TypeNS, dns.TypeDS, dns.TypeDNSKEY, dns.TypeNSEC, dns.TypeSOA, dns.TypeAAAA} {
					want := doLookup(flat, q, qt)
					got := doLookup(v, q, qt)
					require.Equal(t, want, got, "seed %d pool %d: %s %s", seed, i, q, dns.Type(qt))
				}
			}
		}
	}
}

// doLookup returns a DO lookup's result and sections as sorted text.
func doLookup(z *file.Zone, qname string, qtype uint16) []string {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.SetEdns0(1232, true)
	st := request.Request{W: &test.ResponseWriter{}, Req: m}
	answer, ns, extra, res := z.Lookup(context.Background(), st, qname)
	out := []string{fmt.Sprint("result ", res)}
	for n, sec := range [][]dns.RR{answer, ns, extra} {
		var rrs []string
		for _, rr := range sec {
			rrs = append(rrs, fmt.Sprint(n, " ", rr.String()))
		}
		slices.Sort(rrs)
		out = append(out, rrs...)
	}
	return out
}

// The views still share the signed base: a pool of one name copies a path
// and the few elements around its name, not the base.
func TestSignedViewsShareBase(t *testing.T) {
	const n = 3000
	s := newTestSigner(t)
	one := func(addr string) string { return "$ORIGIN example.org.\n$TTL 60\nwww IN A " + addr + "\n" }
	z, err := buildSigned(t, s, Options{}, bigBase(n), one("192.0.2.10"), one("192.0.2.11"), one("192.0.2.12"))
	require.NoError(t, err)
	var trees []*tree.Tree
	for _, v := range z.Views {
		trees = append(trees, v.Tree)
	}
	base := nodes(z.signed.tree)
	all := nodes(trees...)
	require.Greater(t, base, n)
	require.LessOrEqual(t, all, base+3*2*26, "expected the views to share the base's %d nodes, got %d distinct nodes", base, all)
}

// A reload that changes a pool signs the pool again and reuses the signed
// base; Resign (the re-sign timer) signs everything at the new time.
func TestSignReuseAndResign(t *testing.T) {
	s := newTestSigner(t)
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	one := func(addr string) string { return "$ORIGIN example.org.\n$TTL 60\nwww IN A " + addr + "\n" }
	z0, err := buildSigned(t, s, Options{Now: t0}, signBase, one("192.0.2.10"), one("192.0.2.11"))
	require.NoError(t, err)
	t1 := t0.Add(time.Hour)
	z1, err := buildSigned(t, s, Options{Now: t1, Prev: z0}, signBase, one("192.0.2.10"), one("192.0.2.12"))
	require.NoError(t, err)
	require.Same(t, z0.signed, z1.signed)
	require.Equal(t, t0, z1.SignedAt)
	for _, v := range z1.Views {
		checkSigned(t, v, s.key, t1)
	}
	t2 := t0.Add(6 * 24 * time.Hour)
	z2, err := buildSigned(t, s, Options{Now: t2, Prev: z1, Resign: true}, signBase, one("192.0.2.10"), one("192.0.2.12"))
	require.NoError(t, err)
	require.NotSame(t, z1.signed, z2.signed)
	require.Equal(t, t2, z2.SignedAt)
	for _, v := range z2.Views {
		checkSigned(t, v, s.key, t2)
		sig := v.SIGSOA[0].(*dns.RRSIG)
		require.Equal(t, uint32(t2.Add(-time.Hour).Unix()), sig.Inception)
	}
}

// Files that are already signed are refused with a signer.
func TestSignRefusesSignedFiles(t *testing.T) {
	s := newTestSigner(t)
	for _, rec := range []string{
		"www RRSIG A 13 3 60 20261230000000 20261130000000 12345 example.org. AAAA",
		"www NSEC zz.example.org. A RRSIG NSEC",
		"@ DNSKEY 257 3 13 AAAA",
	} {
		pool := "$ORIGIN example.org.\n$TTL 60\nwww A 192.0.2.1\n" + rec + "\n"
		_, err := buildSigned(t, s, Options{}, signBase, pool, "$ORIGIN example.org.\n$TTL 60\nwww A 192.0.2.2\n")
		require.Error(t, err, rec)
		require.Contains(t, err.Error(), `pool "p0": p0.db: holds`)
		require.Contains(t, err.Error(), "unsigned zone file")
	}
}

// Looked up with DO, a view answers with signatures and proofs from its
// own chain: pool p1 holds c only, so b's NSEC in p1's view points at c
// and in p0's at d.
func TestSignedLookup(t *testing.T) {
	s := newTestSigner(t)
	z, err := buildSigned(t, s, Options{}, signBase, "$ORIGIN example.org.\n$TTL 60\nwww A 192.0.2.1\n", "$ORIGIN example.org.\n$TTL 60\nc A 192.0.2.2\n")
	require.NoError(t, err)
	do := func(v *file.Zone, qname string, qtype uint16) ([]dns.RR, []dns.RR, file.Result) {
		m := new(dns.Msg)
		m.SetQuestion(qname, qtype)
		m.SetEdns0(1232, true)
		st := request.Request{W: &test.ResponseWriter{}, Req: m}
		answer, ns, _, res := v.Lookup(context.Background(), st, qname)
		return answer, ns, res
	}
	answer, _, res := do(z.Views[0], "mail.example.org.", dns.TypeA)
	require.Equal(t, file.Success, res)
	require.Len(t, answer, 2)
	require.Equal(t, dns.TypeRRSIG, answer[1].Header().Rrtype)

	_, ns, res := do(z.Views[0], "bb.example.org.", dns.TypeA)
	require.Equal(t, file.NameError, res)
	require.Contains(t, nsecNext(ns), "b.example.org. -> d.example.org.")
	_, ns, res = do(z.Views[1], "bb.example.org.", dns.TypeA)
	require.Equal(t, file.NameError, res)
	require.Contains(t, nsecNext(ns), "b.example.org. -> c.example.org.")

	answer, _, res = do(z.Views[1], origin, dns.TypeDNSKEY)
	require.Equal(t, file.Success, res)
	require.Len(t, answer, 2)
}

// viewRecords lists a view's records other than RRSIG and NSEC as "owner\ttype
// rdata", sorted, and the DNSKEYs as "owner\tDNSKEY" (last).
func viewRecords(v *file.Zone) []string {
	var out []string
	keys := 0
	for _, e := range v.Tree.All() {
		for _, rr := range e.All() {
			switch rr.Header().Rrtype {
			case dns.TypeRRSIG, dns.TypeNSEC:
			case dns.TypeDNSKEY:
				keys++
			default:
				out = append(out, rr.String())
			}
		}
	}
	slices.Sort(out)
	for range keys {
		out = append(out, origin+"\tDNSKEY")
	}
	return out
}

func nsecNext(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if n, ok := rr.(*dns.NSEC); ok {
			out = append(out, n.Hdr.Name+" -> "+n.NextDomain)
		}
	}
	return out
}

func buildPlain(t *testing.T, base string, pools ...string) (*Zone, error) {
	t.Helper()
	bs := src("", base)
	bs.Path = "base.db"
	var ps []Source
	for i, p := range pools {
		ps = append(ps, src(fmt.Sprintf("p%d", i), p))
	}
	return Build(origin, &bs, ps)
}
