package bluegreen_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	coretest "github.com/coredns/coredns/test"

	"github.com/bluegreen-dns/bluegreen/internal/freeport"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// namesZones writes blue, green and red pool files, each answering www
// with its own address, for any origin.
func namesZones(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	const soa = "@ 3600 IN SOA ns1 hostmaster 2026010101 7200 3600 1209600 120\n"
	for name, data := range map[string]string{
		"blue.db":  soa + "www 60 IN A 10.1.0.1\n",
		"green.db": soa + "www 60 IN A 10.2.0.1\n",
		"red.db":   soa + "www 60 IN A 10.3.0.1\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600))
	}
	return dir
}

// namesBlock returns a server block with keys, on 127.0.0.1, whose
// bluegreen block has the pools (name and file in dir), weights first
// pool 1, and the extra lines.
func namesBlock(keys, dir string, pools []string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s {\n\tbind 127.0.0.1\n\tbluegreen {\n", keys)
	for _, p := range pools {
		fmt.Fprintf(&b, "\t\tpool %s %s/%s.db\n", p, dir, p)
	}
	fmt.Fprintf(&b, "\t\tweights %s 1\n\t\treload 0\n\t\tadmin off\n", pools[0])
	for _, e := range extra {
		fmt.Fprintf(&b, "\t\t%s\n", e)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// forgetSwitches drops the named switches from the process-wide registry
// when the test ends.
func forgetSwitches(t *testing.T, names ...string) {
	t.Cleanup(func() {
		for _, n := range names {
			state.Forget(n)
		}
	})
}

// startCorefile starts corefile and stops it when the test ends (the
// instance in *inst then, so a test can replace it by a reload's).
func startCorefile(t *testing.T, corefile string) **caddy.Instance {
	t.Helper()
	inst, err := coretest.CoreDNSServer(corefile)
	require.NoError(t, err, "starting CoreDNS with:\n%s", corefile)
	p := &inst
	t.Cleanup(func() {
		(*p).Stop()
		(*p).ShutdownCallbacks()
	})
	return p
}

// addrOf asks the server on 127.0.0.1:port for qname A and returns the
// address in the answer.
func addrOf(t *testing.T, port int, qname string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(qname, dns.TypeA)
	r, err := dns.Exchange(m, fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err, "%s on port %d", qname, port)
	require.Len(t, r.Answer, 1, "%s on port %d: %v", qname, port, r)
	return r.Answer[0].(*dns.A).A.String()
}

// TestDuplicateSwitchName: two server blocks of one Corefile that end up
// with the same switch name fail the start, with a message that names the
// switch and both blocks.
func TestDuplicateSwitchName(t *testing.T) {
	dir := namesZones(t)
	p1, p2 := freeport.T(t), freeport.T(t)
	tests := []struct {
		name     string
		blocks   [2]string
		switchNm string
		first    string // the first block's keys, as CoreDNS spells them
		second   string
	}{
		{
			name: "same zone, two ports",
			blocks: [2]string{namesBlock(fmt.Sprintf("dup1.example:%d", p1), dir, []string{"blue", "green"}),
				namesBlock(fmt.Sprintf("dup1.example:%d", p2), dir, []string{"blue", "red"}, "ttl 5")},
			switchNm: "dup1.example",
			first:    fmt.Sprintf("dns://dup1.example.:%d", p1),
			second:   fmt.Sprintf("dns://dup1.example.:%d", p2),
		},
		{
			name: "explicit name of one, zone of the other",
			blocks: [2]string{namesBlock(fmt.Sprintf("dup2.example:%d", p1), dir, []string{"blue", "green"}),
				namesBlock(fmt.Sprintf("other2.example:%d", p1), dir, []string{"blue", "green"}, "name dup2.example")},
			switchNm: "dup2.example",
			first:    fmt.Sprintf("dns://dup2.example.:%d", p1),
			second:   fmt.Sprintf("dns://other2.example.:%d", p1),
		},
		{
			name: "same explicit name, blocks with several keys",
			blocks: [2]string{namesBlock(fmt.Sprintf("a3.example:%d b3.example:%d", p1, p1), dir, []string{"blue", "green"}, "name dup3"),
				namesBlock(fmt.Sprintf("c3.example:%d", p2), dir, []string{"blue", "green"}, "name dup3")},
			switchNm: "dup3",
			first:    fmt.Sprintf("dns://a3.example.:%d dns://b3.example.:%d", p1, p1),
			second:   fmt.Sprintf("dns://c3.example.:%d", p2),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forgetSwitches(t, tc.switchNm)
			corefile := tc.blocks[0] + tc.blocks[1]
			inst, err := coretest.CoreDNSServer(corefile)
			if err == nil {
				inst.Stop()
				inst.ShutdownCallbacks()
				t.Fatalf("expected the start to fail for switch %q declared twice, it started:\n%s", tc.switchNm, corefile)
			}
			msg := err.Error()
			assert.Contains(t, msg, "plugin/bluegreen: ")
			assert.Contains(t, msg, fmt.Sprintf("switch %q", tc.switchNm))
			// Each block by its keys and the line of its bluegreen directive
			// (the third line of a block).
			first := fmt.Sprintf("%s (Corefile:3)", tc.first)
			second := fmt.Sprintf("%s (Corefile:%d)", tc.second, strings.Count(tc.blocks[0], "\n")+3)
			assert.Contains(t, msg, first, "the message names the first block")
			assert.Contains(t, msg, second, "the message names the second block")
			assert.Contains(t, msg, "give one of them a different 'name'")
		})
	}
}

// TestSwitchNamesPerBlock: blocks with different switch names, and blocks
// with several keys (set up once per block), start; each block answers
// from its own switch; reloads with the same Corefile work; a reload that
// declares a switch twice fails and leaves the running Corefile serving,
// and a good reload after it works.
func TestSwitchNamesPerBlock(t *testing.T) {
	dir := namesZones(t)
	p1, p2, p3 := freeport.T(t), freeport.T(t), freeport.T(t)
	forgetSwitches(t, "one.example", "two.example", "multi", ".")
	corefile := namesBlock(fmt.Sprintf("one.example:%d", p1), dir, []string{"blue", "green"}) +
		namesBlock(fmt.Sprintf("two.example:%d", p2), dir, []string{"red", "blue"}, "ttl 5") +
		// Several zones on one port, and a block on two ports.
		namesBlock(fmt.Sprintf("three.example:%d four.example:%d", p3, p3), dir, []string{"green", "blue"}, "name multi") +
		namesBlock(fmt.Sprintf(".:%d five.example:%d", p1, p2), dir, []string{"blue", "red"}) // default name "."

	check := func(stage string) {
		t.Helper()
		assert.Equal(t, "10.1.0.1", addrOf(t, p1, "www.one.example."), "%s: one.example answers from its blue pool", stage)
		assert.Equal(t, "10.3.0.1", addrOf(t, p2, "www.two.example."), "%s: two.example answers from its red pool", stage)
		assert.Equal(t, "10.2.0.1", addrOf(t, p3, "www.three.example."), "%s: three.example answers from multi's green pool", stage)
		assert.Equal(t, "10.2.0.1", addrOf(t, p3, "www.four.example."), "%s: four.example answers from multi's green pool", stage)
		assert.Equal(t, "10.1.0.1", addrOf(t, p1, "www."), "%s: the root block answers from its blue pool", stage)
		assert.Equal(t, "10.1.0.1", addrOf(t, p2, "www.five.example."), "%s: five.example answers from the root block's blue pool", stage)
		for name, pools := range map[string][]string{
			"one.example": {"blue", "green"},
			"two.example": {"red", "blue"},
			"multi":       {"green", "blue"},
			".":           {"blue", "red"},
		} {
			sw := state.Lookup(name)
			require.NotNil(t, sw, "%s: switch %q exists", stage, name)
			var got []string
			for _, p := range sw.View().Pools {
				got = append(got, p.Name)
			}
			assert.Equal(t, pools, got, "%s: switch %q has its own block's pools", stage, name)
		}
	}

	inst := startCorefile(t, corefile)
	check("start")

	for i := range 3 {
		next, err := (*inst).Restart(coretest.NewInput(corefile))
		require.NoError(t, err, "reload %d with the same Corefile", i)
		*inst = next
		check(fmt.Sprintf("reload %d", i))
	}

	bad := corefile + namesBlock(fmt.Sprintf("one.example:%d", p3), dir, []string{"blue", "red"})
	next, err := (*inst).Restart(coretest.NewInput(bad))
	if err == nil {
		*inst = next
	}
	require.Error(t, err, "a reload that declares one.example twice must fail")
	assert.Contains(t, err.Error(), `switch "one.example"`)
	assert.Contains(t, err.Error(), fmt.Sprintf("dns://one.example.:%d", p3))
	check("after the failed reload")

	next, err = (*inst).Restart(coretest.NewInput(corefile))
	require.NoError(t, err, "a good reload after the failed one")
	*inst = next
	check("after the good reload")
}
