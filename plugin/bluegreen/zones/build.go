package zones

import (
	"cmp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/coredns/coredns/plugin/file/tree"

	"github.com/miekg/dns"
)

// newTree returns a zone tree holding rrs (normalised by parseSource). It
// holds what inserting them one by one with the tree's Insert would (the
// same elements, each made by the tree's own Insert, with a name's records
// in the order given), but it is built without a million rebalancing
// inserts: the records are sorted once in canonical order (on every CPU),
// and the tree is built balanced from the sorted elements. The file
// plugin's lookups only read it as a binary search tree. It never writes
// to a record: records of unchanged files are shared with the generation
// still serving.
func newTree(rrs []dns.RR) *tree.Tree {
	x := newNameIndex(rrs)
	return treeFrom(rrs, x.order, x.runs)
}

// treeFrom builds the tree of the records rrs[order[...]], in canonical
// order, each name's records starting at an index in runs.
func treeFrom(rrs []dns.RR, order, runs []int32) *tree.Tree {
	if len(order) == 0 {
		return &tree.Tree{}
	}
	elems := make([]*tree.Elem, len(runs))
	chunks := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for c := range chunks {
		wg.Go(func() {
			for r := c; r < len(runs); r += chunks {
				end := int32(len(order))
				if r+1 < len(runs) {
					end = runs[r+1]
				}
				t := &tree.Tree{}
				for _, i := range order[runs[r]:end] {
					t.Insert(rrs[i])
				}
				elems[r] = t.Root.Elem
			}
		})
	}
	wg.Wait()
	return &tree.Tree{Root: balanced(elems), Count: len(elems)}
}

// nameIndex is a file's records in canonical order of their owner names:
// what BuildWith asks of base (is a name there, is any name below it)
// without a map of a million names and their ancestors, and the order
// base's tree is built in. It is kept with the parsed file: eight bytes a
// record.
type nameIndex struct {
	rrs   []dns.RR
	order []int32 // indexes into rrs, canonical order, a name's records in file order
	runs  []int32 // where each name's records start in order
}

func newNameIndex(rrs []dns.RR) *nameIndex {
	items := canonicalOrder(rrs)
	x := &nameIndex{rrs: rrs, order: make([]int32, len(items))}
	for k, it := range items {
		x.order[k] = int32(it.i)
		if k == 0 || !sameName(rrs, items[k-1], it) {
			x.runs = append(x.runs, int32(k))
		}
	}
	return x
}

// sameName reports whether two sorted records have the same owner name.
func sameName(rrs []dns.RR, a, b sortItem) bool {
	if a.key != b.key {
		return false
	}
	if a.key != "" {
		return true
	}
	return tree.Less(nameElem(rrs[a.i]), rrs[b.i].Header().Name) == 0
}

// subset returns the order and runs of the records for which keep is
// true.
func (x *nameIndex) subset(keep []bool) (order, runs []int32) {
	order = make([]int32, 0, len(x.order))
	for r, start := range x.runs {
		end := int32(len(x.order))
		if r+1 < len(x.runs) {
			end = x.runs[r+1]
		}
		first := true
		for _, i := range x.order[start:end] {
			if !keep[i] {
				continue
			}
			if first {
				runs = append(runs, int32(len(order)))
				first = false
			}
			order = append(order, i)
		}
	}
	return order, runs
}

// len is the number of distinct names.
func (x *nameIndex) len() int { return len(x.runs) }

func (x *nameIndex) name(k int) string { return x.rrs[x.order[x.runs[k]]].Header().Name }

// search returns the first k whose name sorts at or after name (an element
// named name).
func (x *nameIndex) search(elem *tree.Elem) int {
	return sort.Search(len(x.runs), func(k int) bool { return tree.Less(elem, x.name(k)) >= 0 })
}

// has reports whether name is one of the names.
func (x *nameIndex) has(name string) bool {
	elem := nameElem(&dns.ANY{Hdr: dns.RR_Header{Name: name}})
	k := x.search(elem)
	return k < len(x.runs) && tree.Less(elem, x.name(k)) == 0
}

// hasBelow reports whether a name strictly below name is one of the
// names: in canonical order, they follow name directly.
func (x *nameIndex) hasBelow(name string) bool {
	elem := nameElem(&dns.ANY{Hdr: dns.RR_Header{Name: name}})
	k := x.search(elem)
	if k < len(x.runs) && tree.Less(elem, x.name(k)) == 0 {
		k++
	}
	return k < len(x.runs) && dns.IsSubDomain(name, x.name(k))
}

// nameElem returns an element named after rr's owner, for tree.Less.
func nameElem(rr dns.RR) *tree.Elem {
	t := &tree.Tree{}
	t.Insert(rr)
	return t.Root.Elem
}

// sortItem is one record's place in canonical order: key compares bytewise
// as the tree's canonical order compares names ("" when the owner name has
// escapes and is compared with tree.Less instead); i is the record's index,
// which keeps equal names in the order given.
type sortItem struct {
	key string
	i   int
}

// canonicalOrder returns rrs' indexes sorted by owner name in the tree's
// canonical order (RFC 4034 §6.1), records of one name in the order given.
// It sorts on every CPU, then merges.
func canonicalOrder(rrs []dns.RR) []sortItem {
	items := make([]sortItem, len(rrs))
	escapes := false
	for i, rr := range rrs {
		name := rr.Header().Name
		if strings.IndexByte(name, '\\') >= 0 {
			escapes = true
		}
		items[i] = sortItem{i: i}
		if !escapes {
			items[i].key = canonicalKey(name)
		}
	}
	var compare func(a, b sortItem) int
	if escapes {
		// Rare: sort by the tree's own comparison.
		elems := make([]*tree.Elem, len(rrs))
		for i, rr := range rrs {
			items[i].key = ""
			elems[i] = nameElem(rr)
		}
		compare = func(a, b sortItem) int {
			if c := tree.Less(elems[a.i], rrs[b.i].Header().Name); c != 0 {
				return -c
			}
			return cmp.Compare(a.i, b.i)
		}
	} else {
		compare = func(a, b sortItem) int {
			if c := strings.Compare(a.key, b.key); c != 0 {
				return c
			}
			return cmp.Compare(a.i, b.i)
		}
	}
	parts := runtime.GOMAXPROCS(0)
	if len(items) < 10_000 || parts < 2 {
		slices.SortFunc(items, compare)
		return items
	}
	size := (len(items) + parts - 1) / parts
	var chunks [][]sortItem
	var wg sync.WaitGroup
	for lo := 0; lo < len(items); lo += size {
		chunk := items[lo:min(lo+size, len(items))]
		chunks = append(chunks, chunk)
		wg.Go(func() { slices.SortFunc(chunk, compare) })
	}
	wg.Wait()
	for len(chunks) > 1 {
		var next [][]sortItem
		for k := 0; k < len(chunks); k += 2 {
			if k+1 == len(chunks) {
				next = append(next, chunks[k])
				continue
			}
			next = append(next, mergeSorted(chunks[k], chunks[k+1], compare))
		}
		chunks = next
	}
	return chunks[0]
}

// mergeSorted merges two sorted runs into a new slice.
func mergeSorted(a, b []sortItem, compare func(a, b sortItem) int) []sortItem {
	out := make([]sortItem, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if compare(a[0], b[0]) <= 0 {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// canonicalKey returns a name without escapes as a string that compares
// bytewise as tree.Less compares names: its labels from the right, each
// lower-cased and ended by a zero byte (a shorter label, and fewer labels,
// sort first).
func canonicalKey(name string) string {
	name = strings.TrimSuffix(name, ".")
	b := make([]byte, 0, len(name)+2)
	for end := len(name); end > 0; {
		start := strings.LastIndexByte(name[:end], '.') + 1
		for _, c := range []byte(name[start:end]) {
			if c-'A' < 26 {
				c |= 0x20
			}
			b = append(b, c)
		}
		b = append(b, 0)
		end = start - 1
	}
	return string(b)
}
