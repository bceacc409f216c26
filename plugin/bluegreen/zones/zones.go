// Package zones loads the pool and base zone files of a switch and builds,
// for every pool, the view of the zone that pool's clients see. It knows
// nothing of CoreDNS's server; lookups are done with the file plugin's Zone.
package zones

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/file/tree"
	"github.com/coredns/coredns/plugin/pkg/upstream"

	"github.com/miekg/dns"
)

// MaxPools is the largest number of pools a switch may have (one bit each in
// a uint64 mask).
const MaxPools = 64

// Source is the text of one zone file and the name it came from.
type Source struct {
	Name string // pool name, or "" for base
	Path string
	Data []byte
}

// Zone is one served zone (origin) of a switch, with a view per pool.
type Zone struct {
	Origin string
	// Views[i] is base plus pool i: what pool i's clients see for any name.
	// Its tree is the base tree shared by every view with pool i's names
	// added by path copying (see overlay).
	Views []*file.Zone
	// Only[i] is pool i alone (plus the apex): it answers switched names
	// pool i does not hold, so they get NXDOMAIN or NODATA.
	Only []*file.Zone
	// exact maps a switched owner name to the mask of pools holding it.
	exact map[string]uint64
	// wild maps the parent of a wildcard owner ("*.a.example.org." ->
	// "a.example.org.") to the mask of pools holding that wildcard.
	wild map[string]uint64
	// cuts holds the owners of the pools' NS (below the apex) and DNAME
	// records: a name below one is a referral or a DNAME answer in that
	// pool's view and something else in others'.
	cuts map[string]struct{}
	// Names is the number of distinct owner names over base and pools.
	Names int
	// Records is the number of records parsed from each file, by path.
	Records map[string]int
	// Shadowed lists the base records that no view holds because a pool
	// holds their name (directly, through a wildcard or below a zone
	// cut), one entry per owner name and type, in base's order.
	Shadowed []Shadow
	// Warnings are about the files parsed for this generation (not those
	// reused from Options.Prev), each naming file and line.
	Warnings []string

	// SignedAt is when the oldest signatures in the views were made
	// (zero when the zone is not signed, see Options.Signer).
	SignedAt time.Time

	base   *parsed   // nil without base
	pools  []*parsed // by pool index
	common *tree.Tree
	owns   []*tree.Tree  // each pool's own records (the Only trees unsigned)
	signed *signedCommon // the signed base tree; nil when not signed
}

// Shadow is a base RRset that is never served: its name is switched.
type Shadow struct {
	Name   string
	Type   uint16
	Reason string // why the name is switched, e.g. "pool green holds it"
}

func (s Shadow) String() string {
	return fmt.Sprintf("%s %s (%s)", s.Name, dns.Type(s.Type), s.Reason)
}

// Switched reports whether qname (lower case, fully qualified, inside the
// zone) is a switched name and which pools hold it (bit i for pool i). A
// switched name held by no pool (mask 0) is an empty non-terminal of some
// pool's names or a name below a pool's zone cut (NS or DNAME). It does not
// allocate.
func (z *Zone) Switched(qname string) (bool, uint64) {
	mask, ok := z.exact[qname]
	if len(z.wild) > 0 || len(z.cuts) > 0 {
		// Every ancestor of qname strictly above it, down to the origin.
		for off, end := dns.NextLabel(qname, 0); !end; off, end = dns.NextLabel(qname, off) {
			parent := qname[off:]
			if m, found := z.wild[parent]; found {
				mask |= m
				ok = true
			}
			if _, found := z.cuts[parent]; found {
				ok = true
			}
			if len(parent) <= len(z.Origin) {
				break
			}
		}
	}
	return ok, mask
}

// Options tune how the views are built.
type Options struct {
	// With BoundTTL, every record's TTL in the views is set into [TTLMin,
	// TTLMax] (TTLMin <= TTLMax). Answers are then served with TTLs already
	// in range, so the query path copies records only when a scheduled
	// change lowers the cap.
	BoundTTL       bool
	TTLMax, TTLMin uint32
	// Had holds the number of records each file (by path) held in the
	// generation being replaced. A file that held some and now holds none
	// was most likely caught while being written (an editor or cp
	// truncates, then writes), so it is an error rather than a pool
	// emptied in one step.
	Had map[string]int
	// Prev is the generation being replaced, if any: what did not change
	// is reused rather than parsed and built again.
	Prev *Zone
	// Signer, when set, signs every view (DNSSEC): the keys' DNSKEYs at
	// the apex, an RRSIG on every authoritative RRset, and an NSEC chain
	// per view, so each view is a signed zone of its own. The files must
	// then hold no RRSIG, NSEC or DNSKEY records. A view's names that
	// other pools hold are answered from the view (not from the pool's
	// records alone), since a denial must be provable from its chain.
	Signer Signer
	// Now is the signing time (time.Now() when zero).
	Now time.Time
	// Resign signs everything again; without it, the signed base tree of
	// Prev is reused when base did not change (and pools are signed at
	// Now).
	Resign bool
}

// Build parses base (Data may be nil when there is no base) and the pools
// for origin and builds the per-pool views, with TTLs as in the files.
func Build(origin string, base *Source, pools []Source) (*Zone, error) {
	return BuildWith(origin, base, pools, Options{})
}

// BuildWith is Build with options. The records in the views are parsed
// from the sources here and owned by the views: no caller holds them, so
// their TTLs are bounded in place.
//
// The views share the base: base's records not shadowed by a pool go into
// one tree, and each view's tree is that tree with the pool's own names
// added by path copying (overlay), so a view costs the pool's size, not the
// base's. With Options.Prev, a file whose content did not change is not
// parsed again, and the base tree (and a view's tree) is reused when what
// it holds is unchanged.
func BuildWith(origin string, base *Source, pools []Source, opts Options) (*Zone, error) {
	origin = dns.Fqdn(strings.ToLower(origin))
	if len(pools) > MaxPools {
		return nil, fmt.Errorf("at most %d pools are supported, got %d", MaxPools, len(pools))
	}
	prev := opts.Prev
	if prev != nil && (prev.Origin != origin || len(prev.pools) != len(pools) || (prev.base == nil) != (base == nil)) {
		prev = nil
	}
	bound := bounds{opts.BoundTTL, opts.TTLMax, opts.TTLMin}
	// The files are parsed in parallel.
	var basePs *parsed
	poolPs := make([]*parsed, len(pools))
	errs := make([]error, len(pools)+1)
	var wg sync.WaitGroup
	if base != nil {
		wg.Go(func() {
			var old *parsed
			if prev != nil {
				old = prev.base
			}
			ps, err := parseSource(origin, base, old, bound, opts.Had)
			if err != nil {
				errs[len(pools)] = fmt.Errorf("base: %w", err)
				return
			}
			basePs = ps
		})
	}
	for i := range pools {
		wg.Go(func() {
			var old *parsed
			if prev != nil {
				old = prev.pools[i]
			}
			ps, err := parseSource(origin, &pools[i], old, bound, opts.Had)
			if err != nil {
				errs[i] = fmt.Errorf("pool %q: %w", pools[i].Name, err)
				return
			}
			poolPs[i] = ps
		})
	}
	wg.Wait()
	// The base error first, then the pools' in declared order, as a
	// sequential load would report them.
	if err := errs[len(pools)]; err != nil {
		return nil, err
	}
	for _, err := range errs[:len(pools)] {
		if err != nil {
			return nil, err
		}
	}
	if opts.Signer != nil {
		if basePs != nil {
			if err := refuseSigned(basePs); err != nil {
				return nil, fmt.Errorf("base: %w", err)
			}
		}
		for i, ps := range poolPs {
			if err := refuseSigned(ps); err != nil {
				return nil, fmt.Errorf("pool %q: %w", pools[i].Name, err)
			}
		}
	}
	var baseRRs []dns.RR
	if basePs != nil {
		baseRRs = basePs.rrs
	}
	poolRRs := make([][]dns.RR, len(pools))
	for i, ps := range poolPs {
		poolRRs[i] = ps.rrs
	}
	var warnings []string
	for _, ps := range append([]*parsed{basePs}, poolPs...) {
		if ps != nil && (prev == nil || !slices.Contains(append([]*parsed{prev.base}, prev.pools...), ps)) {
			warnings = append(warnings, ps.warnings...)
		}
	}

	// The apex: SOA and NS from base when it has them, else from the pool
	// itself, else from the first pool that has them.
	baseSOA, baseNS := apexOf(baseRRs, origin)
	firstSOA, firstNS := baseSOA, baseNS
	for _, rrs := range poolRRs {
		s, n := apexOf(rrs, origin)
		if firstSOA == nil && s != nil {
			firstSOA = s
		}
		if len(firstNS) == 0 && len(n) > 0 {
			firstNS = n
		}
	}
	if firstSOA == nil {
		return nil, fmt.Errorf("no SOA record for %s in base or any pool", origin)
	}

	z := &Zone{Origin: origin, exact: map[string]uint64{}, wild: map[string]uint64{}, cuts: map[string]struct{}{}, Records: map[string]int{}, base: basePs, pools: poolPs, Warnings: warnings}
	if base != nil {
		z.Records[base.Path] = len(baseRRs)
	}
	for i, p := range pools {
		z.Records[p.Path] = len(poolRRs[i])
	}
	pooled := map[string]struct{}{} // the pools' owner names
	for i, rrs := range poolRRs {
		for _, rr := range rrs {
			name := rr.Header().Name
			pooled[name] = struct{}{}
			if name == origin && apexType(rr) {
				continue
			}
			z.exact[name] |= 1 << uint(i)
			if strings.HasPrefix(name, "*.") {
				z.wild[name[2:]] |= 1 << uint(i)
			}
			if t := rr.Header().Rrtype; t == dns.TypeNS || t == dns.TypeDNAME {
				z.cuts[name] = struct{}{}
			}
		}
	}
	// Base's names in canonical order, sorted once per base file (a map
	// of a 1,000,000-name base's names and their ancestors took a fifth
	// of the load); the tree of base's records is built from this order.
	var bx *nameIndex
	if basePs != nil {
		bx = basePs.index()
	} else {
		bx = &nameIndex{}
	}
	z.Names = bx.len()
	for name := range pooled {
		if !bx.has(name) {
			z.Names++
		}
	}

	// A name that exists only as an ancestor of pool names (an empty
	// non-terminal) is NODATA for the pools holding a descendant and
	// NXDOMAIN for the others; it is noted as switched, held by no pool
	// (mask 0), for Switched's callers. Names base holds, or has
	// descendants of, are not.
	desc := map[string]uint64{}
	for name, mask := range z.exact {
		for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
			if parent := name[off:]; len(parent) > len(origin) {
				desc[parent] |= mask
			}
		}
	}
	all := uint64(1)<<uint(len(pools)) - 1
	for name, mask := range desc {
		_, held := z.exact[name]
		if mask != all && !held && !bx.has(name) && !bx.hasBelow(name) {
			z.exact[name] = 0
		}
	}

	// Base records of switched names are not part of any view: a switched
	// name is answered from the selected pool only.
	common := make([]dns.RR, 0, len(baseRRs))
	inCommon := make([]bool, len(baseRRs))
	shadowed := map[Shadow]struct{}{}
	for i, rr := range baseRRs {
		name := rr.Header().Name
		if name == origin && apexType(rr) {
			continue // apex SOA/NS are added per view below
		}
		if sw, _ := z.Switched(name); sw {
			s := Shadow{Name: name, Type: rr.Header().Rrtype}
			if _, seen := shadowed[s]; !seen {
				shadowed[s] = struct{}{}
				s.Reason = z.switchedBy(name, pools)
				z.Shadowed = append(z.Shadowed, s)
			}
			continue
		}
		common = append(common, rr)
		inCommon[i] = true
	}

	// The shared base tree: the previous one when base and what it
	// shadows are unchanged.
	reuseCommon := prev != nil && basePs == prev.base && sameShadow(z.Shadowed, prev.Shadowed)
	if reuseCommon {
		z.common = prev.common
	} else {
		order, runs := bx.subset(inCommon)
		z.common = treeFrom(baseRRs, order, runs)
	}
	var sign func([]dns.RR) ([]dns.RR, error)
	if opts.Signer != nil {
		now := opts.Now
		if now.IsZero() {
			now = time.Now()
		}
		sign = opts.Signer.Begin(now)
		if reuseCommon && prev.signed != nil && prev.signed.signer == opts.Signer && !opts.Resign {
			z.signed = prev.signed
		} else {
			keys := apexKeys(origin, opts.Signer, firstSOA)
			if bound.on {
				boundTTL(keys, bound.max, bound.min)
			}
			sc, err := signCommon(origin, common, keys, nsecTTL(firstSOA, bound), opts.Signer, sign, now)
			if err != nil {
				return nil, fmt.Errorf("signing %s: %w", origin, err)
			}
			z.signed = sc
		}
		z.SignedAt = z.signed.at
	}

	for i, rrs := range poolRRs {
		soa, ns := baseSOA, baseNS
		ownSOA, ownNS := apexOf(rrs, origin)
		if soa == nil {
			soa = ownSOA
		}
		if soa == nil {
			soa = firstSOA
		}
		if len(ns) == 0 {
			ns = ownNS
		}
		if len(ns) == 0 {
			ns = firstNS
		}
		apex := append([]dns.RR{soa}, ns...)

		// The pool's own tree is its Only view; the view is the shared
		// base tree with the pool's names added.
		var own, view *tree.Tree
		if prev != nil && poolPs[i] == prev.pools[i] {
			own = prev.owns[i]
			if reuseCommon && z.signed == nil {
				view = prev.Views[i].Tree
			}
		}
		if own == nil {
			var ownRRs []dns.RR
			for _, rr := range rrs {
				if rr.Header().Name == origin && apexType(rr) {
					continue
				}
				ownRRs = append(ownRRs, rr)
			}
			own = newTree(ownRRs)
		}
		z.owns = append(z.owns, own)
		if z.signed != nil {
			add, err := signView(origin, z.signed, own, nsecTTL(soa, bound), sign)
			if err != nil {
				return nil, fmt.Errorf("signing %s for pool %q: %w", origin, pools[i].Name, err)
			}
			sigs, err := sign(apex)
			if err != nil {
				return nil, fmt.Errorf("signing %s for pool %q: %w", origin, pools[i].Name, err)
			}
			vz := newZone(origin, pools[i].Path, append(apex, sigs...), overlay(z.signed.tree, add))
			z.Views = append(z.Views, vz)
			z.Only = append(z.Only, vz)
			continue
		}
		if view == nil {
			view = overlay(z.common, own.All())
		}
		z.Views = append(z.Views, newZone(origin, pools[i].Path, apex, view))
		z.Only = append(z.Only, newZone(origin, pools[i].Path, apex, own))
	}
	return z, nil
}

// bounds is how a file's TTLs were bounded when it was parsed.
type bounds struct {
	on       bool
	max, min uint32
}

// parsed is one file's records, kept so that the next generation can reuse
// them when the file did not change.
type parsed struct {
	path  string
	sum   [32]byte
	bound bounds
	rrs   []dns.RR
	// warnings about the file, for the generation that parsed it
	warnings []string

	indexOnce sync.Once
	idx       *nameIndex // see index
}

// index returns the file's owner names in canonical order, sorted on first
// use and kept with the file's records.
func (p *parsed) index() *nameIndex {
	p.indexOnce.Do(func() { p.idx = newNameIndex(p.rrs) })
	return p.idx
}

// parseSource parses s, or returns old when it holds the same file content
// parsed the same way.
func parseSource(origin string, s *Source, old *parsed, bound bounds, had map[string]int) (*parsed, error) {
	sum := sha256.Sum256(s.Data)
	if old != nil && old.path == s.Path && old.sum == sum && old.bound == bound {
		return old, nil
	}
	rrs, warnings, err := parse(origin, s.Path, s.Data)
	if err == nil {
		err = notEmptied(s.Path, len(rrs), had)
	}
	if err != nil {
		return nil, err
	}
	if bound.on {
		boundTTL(rrs, bound.max, bound.min)
	}
	for _, rr := range rrs {
		normalize(rr)
	}
	return &parsed{path: s.Path, sum: sum, bound: bound, rrs: rrs, warnings: warnings}, nil
}

func sameShadow(a, b []Shadow) bool {
	return slices.EqualFunc(a, b, func(x, y Shadow) bool { return x.Name == y.Name && x.Type == y.Type })
}

// notEmptied returns an error when the file at path parsed to no records
// but held some in the generation being replaced (had).
func notEmptied(path string, n int, had map[string]int) error {
	if n == 0 && had[path] > 0 {
		return fmt.Errorf("%s: file is empty (no records) where the loaded version had %d; was it being written?", path, had[path])
	}
	return nil
}

// switchedBy says why the switched name is: the pools holding it, else the
// nearest pool wildcard above it, else the pool zone cut above it.
func (z *Zone) switchedBy(name string, pools []Source) string {
	if mask := z.exact[name]; mask != 0 {
		if mask&(mask-1) == 0 {
			return "pool " + poolNames(mask, pools) + " holds it"
		}
		return "pools " + poolNames(mask, pools) + " hold it"
	}
	for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
		parent := name[off:]
		if mask, ok := z.wild[parent]; ok {
			return "pool wildcard *." + parent + " in " + poolNames(mask, pools)
		}
		if len(parent) <= len(z.Origin) {
			break
		}
	}
	for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
		parent := name[off:]
		if _, ok := z.cuts[parent]; ok {
			return "below pool NS or DNAME at " + parent + " in " + poolNames(z.exact[parent], pools)
		}
		if len(parent) <= len(z.Origin) {
			break
		}
	}
	return "a pool holds names below it"
}

// poolNames names the pools in mask, comma-separated, in declared order.
func poolNames(mask uint64, pools []Source) string {
	var names []string
	for i, p := range pools {
		if mask&(1<<uint(i)) != 0 {
			names = append(names, p.Name)
		}
	}
	return strings.Join(names, ", ")
}

// boundTTL sets every TTL in rrs into [min, max], in place.
func boundTTL(rrs []dns.RR, max, min uint32) {
	if max < min {
		max = min
	}
	for _, rr := range rrs {
		h := rr.Header()
		switch {
		case h.Ttl > max:
			h.Ttl = max
		case h.Ttl < min:
			h.Ttl = min
		}
	}
}

// newZone returns a file plugin zone with the apex records (SOA, NS and
// their RRSIGs, normalised) and the tree tr.
func newZone(origin, path string, apex []dns.RR, tr *tree.Tree) *file.Zone {
	z := file.NewZone(origin, path)
	z.Upstream = upstream.New()
	for _, rr := range apex {
		switch x := rr.(type) {
		case *dns.SOA:
			z.SOA = x
		case *dns.NS:
			z.NS = append(z.NS, rr)
		case *dns.RRSIG:
			if x.TypeCovered == dns.TypeSOA {
				z.SIGSOA = append(z.SIGSOA, rr)
			} else {
				z.SIGNS = append(z.SIGNS, rr)
			}
		}
	}
	z.Tree = tr
	return z
}

// normalize does to rr what file.Zone.Insert does to the records it is
// given (lower-case owner, except for SRV, and targets), once, when the
// file is parsed.
func normalize(rr dns.RR) {
	h := rr.Header()
	if h.Rrtype != dns.TypeSRV {
		h.Name = strings.ToLower(canonicalEscape(h.Name))
	}
	switch x := rr.(type) {
	case *dns.NS:
		x.Ns = strings.ToLower(x.Ns)
	case *dns.SOA:
		x.Ns, x.Mbox = strings.ToLower(x.Ns), strings.ToLower(x.Mbox)
	case *dns.CNAME:
		x.Target = strings.ToLower(x.Target)
	case *dns.MX:
		x.Mx = strings.ToLower(x.Mx)
	case *dns.SVCB:
		x.Target = strings.ToLower(x.Target)
	case *dns.HTTPS:
		x.Target = strings.ToLower(x.Target)
	}
}

// canonicalEscape is the file plugin's: a name's escapes in one form.
func canonicalEscape(name string) string {
	if !strings.ContainsRune(name, '\\') {
		return name
	}
	buf := make([]byte, len(name)+1)
	off, err := dns.PackDomainName(name, buf, 0, nil, false)
	if err != nil {
		return name
	}
	out, _, err := dns.UnpackDomainName(buf[:off], 0)
	if err != nil {
		return name
	}
	return out
}

// apexType reports whether rr is one of the apex records (SOA, NS and their
// signatures) that base provides for every view.
func apexType(rr dns.RR) bool {
	switch rr.Header().Rrtype {
	case dns.TypeSOA, dns.TypeNS:
		return true
	case dns.TypeRRSIG:
		c := rr.(*dns.RRSIG).TypeCovered
		return c == dns.TypeSOA || c == dns.TypeNS
	}
	return false
}

func apexOf(rrs []dns.RR, origin string) (soa dns.RR, ns []dns.RR) {
	for _, rr := range rrs {
		if rr.Header().Name != origin || !apexType(rr) {
			continue
		}
		if rr.Header().Rrtype == dns.TypeSOA {
			soa = rr
			continue
		}
		ns = append(ns, rr)
	}
	return soa, ns
}
