package zones

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin/file/tree"

	"github.com/miekg/dns"
)

// Signer signs a zone's views (Options.Signer). The plugin's implementation
// hands the work to CoreDNS's dnssec plugin; this package decides what is
// signed and builds the NSEC chains.
type Signer interface {
	// DNSKEYs returns the zone's public keys, published at the apex of
	// every view.
	DNSKEYs() []*dns.DNSKEY
	// Begin starts a signing run at now. The function it returns signs
	// every RRset in rrs (grouped by owner and type) and returns their
	// RRSIGs; it fails unless every RRset got at least one. It may be
	// called from several goroutines at once.
	Begin(now time.Time) func(rrs []dns.RR) ([]dns.RR, error)
}

// signedCommon is the shared base tree, signed: every authoritative RRset
// has its RRSIGs and every authoritative name the NSEC of the chain over
// the base's names alone. A view replaces only the elements whose NSEC
// differs in its own chain (around the pool's names).
type signedCommon struct {
	tree   *tree.Tree
	elems  []*tree.Elem          // every element, in tree (canonical) order
	auth   map[*tree.Elem]string // authoritative element -> its NSEC's next name
	at     time.Time             // when the signatures were made
	signer Signer
	keys   []dns.RR // the DNSKEY records at the apex (TTL set)
}

// refuseSigned fails when a file holds DNSSEC records: with a signer the
// switch makes the signatures, NSEC chain and DNSKEYs of each view itself.
func refuseSigned(ps *parsed) error {
	for _, rr := range ps.rrs {
		switch t := rr.Header().Rrtype; t {
		case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeDNSKEY:
			return fmt.Errorf("%s: holds %s records (%s): with dnssec the switch signs each view itself, so give it the unsigned zone file", ps.path, dns.Type(t), rr.Header().Name)
		}
	}
	return nil
}

// signable returns the records of e that get an RRSIG: all but RRSIGs,
// NSECs and (below the apex) the NS records of a delegation, which the
// parent is not authoritative for.
func signable(origin string, e *tree.Elem) []dns.RR {
	var out []dns.RR
	for _, rr := range e.All() {
		switch rr.Header().Rrtype {
		case dns.TypeRRSIG, dns.TypeNSEC:
			continue
		case dns.TypeNS:
			if e.Name() != origin {
				continue
			}
		}
		out = append(out, rr)
	}
	return out
}

// nsecFor returns the NSEC record of e's name in a chain where next
// follows it: the bitmap lists e's types, RRSIG and NSEC (and at the apex
// NS and SOA, which the file plugin keeps outside the tree).
func nsecFor(origin string, e *tree.Elem, next string, ttl uint32) *dns.NSEC {
	types := []uint16{dns.TypeRRSIG, dns.TypeNSEC}
	if e.Name() == origin {
		types = append(types, dns.TypeNS, dns.TypeSOA)
	}
	for _, t := range e.Types() {
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	return &dns.NSEC{
		Hdr:        dns.RR_Header{Name: e.Name(), Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
		NextDomain: next,
		TypeBitMap: types,
	}
}

// nsecTTL is RFC 9077's TTL for NSEC records: the lesser of the SOA's TTL
// and its MINIMUM field, kept within the TTL bounds.
func nsecTTL(soa dns.RR, bound bounds) uint32 {
	s := soa.(*dns.SOA)
	ttl := min(s.Hdr.Ttl, s.Minttl)
	if bound.on {
		ttl = max(min(ttl, bound.max), bound.min)
	}
	return ttl
}

// apexKeys returns copies of the signer's DNSKEYs owned by origin with
// the SOA's TTL, as CoreDNS's sign plugin publishes them.
func apexKeys(origin string, s Signer, soa dns.RR) []dns.RR {
	var out []dns.RR
	for _, k := range s.DNSKEYs() {
		c := dns.Copy(k).(*dns.DNSKEY)
		c.Hdr.Name = origin
		c.Hdr.Ttl = soa.Header().Ttl
		out = append(out, c)
	}
	return out
}

// parallel runs f(0..n-1) on every CPU and returns the first error.
func parallel(n int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop the others early
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// signCommon builds and signs the shared base tree: common's records plus
// the keys at the apex, every authoritative RRset signed, the NSEC chain
// over common's authoritative names.
func signCommon(origin string, common, keys []dns.RR, ttl uint32, s Signer, sign func([]dns.RR) ([]dns.RR, error), at time.Time) (*signedCommon, error) {
	rrs := slices.Concat(common, keys)
	t := newTree(rrs)
	sc := &signedCommon{tree: t, auth: map[*tree.Elem]string{}, at: at, signer: s, keys: keys}
	var auth []*tree.Elem
	t.AuthWalk(func(e *tree.Elem, _ map[uint16][]dns.RR, ok bool) error {
		sc.elems = append(sc.elems, e)
		if ok {
			auth = append(auth, e)
		}
		return nil
	})
	for i, e := range auth {
		sc.auth[e] = auth[(i+1)%len(auth)].Name()
	}
	// The elements are new (newTree), not yet served: they are completed
	// in place, each by one goroutine.
	err := parallel(len(auth), func(i int) error {
		e := auth[i]
		nsec := nsecFor(origin, e, sc.auth[e], ttl)
		sigs, err := sign(append(signable(origin, e), nsec))
		if err != nil {
			return err
		}
		e.Insert(nsec)
		for _, sig := range sigs {
			e.Insert(sig)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sc, nil
}

// entry is one name of a view: the shared base's element, the pool's, or
// both (the apex, when the pool holds apex records).
type entry struct {
	name string
	c, p *tree.Elem
}

// merge returns common's and the pool's elements by name, in tree order.
func merge(common, pool []*tree.Elem) []entry {
	out := make([]entry, 0, len(common)+len(pool))
	i, j := 0, 0
	for i < len(common) || j < len(pool) {
		switch {
		case j == len(pool):
			out = append(out, entry{name: common[i].Name(), c: common[i]})
			i++
		case i == len(common):
			out = append(out, entry{name: pool[j].Name(), p: pool[j]})
			j++
		default:
			switch d := tree.Less(common[i], pool[j].Name()); {
			case d > 0: // the pool's name sorts after common's
				out = append(out, entry{name: common[i].Name(), c: common[i]})
				i++
			case d < 0:
				out = append(out, entry{name: pool[j].Name(), p: pool[j]})
				j++
			default:
				out = append(out, entry{name: common[i].Name(), c: common[i], p: pool[j]})
				i++
				j++
			}
		}
	}
	return out
}

// hasNS reports whether e holds NS records.
func hasNS(e *tree.Elem) bool { return e != nil && e.Type(dns.TypeNS) != nil }

// signView returns the elements pool's view adds to the signed base tree
// (overlay): the pool's names with their RRSIGs and NSECs, and copies of
// the base's elements whose NSEC differs in this view's chain (the names
// just before a pool's name) or that a pool's delegation hides. Names
// below a zone cut are glue: no NSEC, no RRSIG.
func signView(origin string, sc *signedCommon, own *tree.Tree, ttl uint32, sign func([]dns.RR) ([]dns.RR, error)) ([]*tree.Elem, error) {
	entries := merge(sc.elems, own.All())
	cuts := map[string]struct{}{}
	auth := make([]int, 0, len(entries))
	hidden := map[int]bool{}
	for k, en := range entries {
		if en.name != origin && (hasNS(en.c) || hasNS(en.p)) {
			cuts[en.name] = struct{}{}
		}
		below := false
		for off, end := dns.NextLabel(en.name, 0); !end; off, end = dns.NextLabel(en.name, off) {
			if _, ok := cuts[en.name[off:]]; ok {
				below = true
				break
			}
		}
		if below {
			hidden[k] = true
			continue
		}
		auth = append(auth, k)
	}

	add := make([]*tree.Elem, len(entries))
	var jobs []int // entries that need a new, signed element
	nexts := map[int]string{}
	for a, k := range auth {
		en := entries[k]
		next := entries[auth[(a+1)%len(auth)]].name
		if en.p == nil {
			if n, ok := sc.auth[en.c]; ok && n == next {
				continue // the base's element as signed
			}
		}
		jobs = append(jobs, k)
		nexts[k] = next
	}
	for k := range hidden {
		// Glue in this view: no NSEC, no RRSIG. A base element that
		// is glue in the base too needs no copy.
		en := entries[k]
		if _, signed := sc.auth[en.c]; !signed && en.p == nil {
			continue
		}
		var rrs []dns.RR
		for _, e := range []*tree.Elem{en.c, en.p} {
			if e == nil {
				continue
			}
			for _, rr := range e.All() {
				if t := rr.Header().Rrtype; t != dns.TypeNSEC && t != dns.TypeRRSIG {
					rrs = append(rrs, rr)
				}
			}
		}
		add[k] = newElem(rrs)
	}
	// Each job writes its own slot of add.
	err := parallel(len(jobs), func(i int) error {
		k := jobs[i]
		e, err := resigned(origin, entries[k], sc, nexts[k], ttl, sign)
		add[k] = e
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []*tree.Elem
	for _, e := range add {
		if e != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// unsignedAuth returns e's records without its NSEC and the NSEC's RRSIG
// (nil for a nil e).
func unsignedAuth(e *tree.Elem) []dns.RR {
	if e == nil {
		return nil
	}
	var out []dns.RR
	for _, rr := range e.All() {
		if rr.Header().Rrtype == dns.TypeNSEC {
			continue
		}
		if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == dns.TypeNSEC {
			continue
		}
		out = append(out, rr)
	}
	return out
}

// resigned returns a new element for en in a view where next follows it:
// the base's records with their signatures, the pool's records signed, and
// the NSEC pointing at next, signed.
func resigned(origin string, en entry, sc *signedCommon, next string, ttl uint32, sign func([]dns.RR) ([]dns.RR, error)) (*tree.Elem, error) {
	rrs := unsignedAuth(en.c)
	var toSign []dns.RR
	if _, signed := sc.auth[en.c]; en.c != nil && !signed {
		toSign = append(toSign, signableRRs(origin, en.name, rrs)...)
	}
	if en.p != nil {
		prs := en.p.All()
		rrs = append(rrs, prs...)
		toSign = append(toSign, signableRRs(origin, en.name, prs)...)
	}
	e := newElem(rrs)
	nsec := nsecFor(origin, e, next, ttl)
	sigs, err := sign(append(toSign, nsec))
	if err != nil {
		return nil, err
	}
	e.Insert(nsec)
	for _, sig := range sigs {
		e.Insert(sig)
	}
	return e, nil
}

// signableRRs is signable for a list of one name's records.
func signableRRs(origin, name string, rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		switch rr.Header().Rrtype {
		case dns.TypeRRSIG, dns.TypeNSEC:
			continue
		case dns.TypeNS:
			if name != origin {
				continue
			}
		}
		out = append(out, rr)
	}
	return out
}

// newElem returns a tree element holding rrs (one owner name), made by the
// tree's own Insert so that it is like every other element.
func newElem(rrs []dns.RR) *tree.Elem {
	t := &tree.Tree{}
	for _, rr := range rrs {
		t.Insert(rr)
	}
	if t.Root == nil {
		return nil
	}
	return t.Root.Elem
}
