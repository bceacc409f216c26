package zones

import (
	"sort"

	"github.com/coredns/coredns/plugin/file/tree"
)

// overlay returns a tree holding base's elements and add's (in tree order,
// names base does not hold). It shares base's nodes: only the nodes on the
// paths from the root to where add's elements go are copied, and each run
// of add's elements that falls between two neighbouring base names hangs
// there as one balanced subtree. A view built this way costs the pool's
// size times the tree's depth, and the file plugin's lookup reads it like
// any zone tree (a binary search tree; colours are not read).
func overlay(base *tree.Tree, add []*tree.Elem) *tree.Tree {
	return &tree.Tree{Root: insertRun(base.Root, add), Count: base.Count + len(add)}
}

func insertRun(n *tree.Node, elems []*tree.Elem) *tree.Node {
	if len(elems) == 0 {
		return n
	}
	if n == nil {
		return balanced(elems)
	}
	// elems[:lo] sort before n, elems[hi:] after it.
	lo := sort.Search(len(elems), func(i int) bool { return tree.Less(n.Elem, elems[i].Name()) >= 0 })
	hi := lo
	c := *n
	if hi < len(elems) && tree.Less(n.Elem, elems[hi].Name()) == 0 {
		c.Elem = elems[hi] // the same name: add's element wins
		hi++
	}
	c.Left = insertRun(n.Left, elems[:lo])
	c.Right = insertRun(n.Right, elems[hi:])
	return &c
}

func balanced(elems []*tree.Elem) *tree.Node {
	if len(elems) == 0 {
		return nil
	}
	mid := len(elems) / 2
	return &tree.Node{Elem: elems[mid], Left: balanced(elems[:mid]), Right: balanced(elems[mid+1:]), Color: true}
}
