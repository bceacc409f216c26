package zones

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const origin = "example.org."

const baseDB = `$ORIGIN example.org.
$TTL 300
@       IN SOA  ns1.example.org. hostmaster.example.org. 2026112201 7200 3600 1209600 60
@       IN NS   ns1.example.org.
@       IN MX   10 mail.example.org.
ns1     IN A    127.0.0.1
mail    IN A    192.0.2.25
shared  IN A    192.0.2.99
www     IN A    192.0.2.250
x.app   IN A    192.0.2.251
`

const blueDB = `$ORIGIN example.org.
$TTL 60
www     IN A     192.0.2.10
www     IN A     192.0.2.11
api     IN CNAME www.example.org.
*.app   IN A     192.0.2.30
onlyblue IN TXT  "blue"
`

const greenDB = `$ORIGIN example.org.
$TTL 60
www     IN A     198.51.100.10
www     IN AAAA  2001:db8::20
api     IN CNAME www.example.org.
y.app   IN A     198.51.100.30
`

func src(name, data string) Source {
	return Source{Name: name, Path: name + ".db", Data: []byte(data)}
}

func build(t *testing.T, base string, pools ...string) *Zone {
	t.Helper()
	var b *Source
	if base != "" {
		s := src("", base)
		s.Path = "base.db"
		b = &s
	}
	names := []string{"blue", "green", "red"}
	var ps []Source
	for i, p := range pools {
		ps = append(ps, src(names[i], p))
	}
	z, err := Build(origin, b, ps)
	require.NoError(t, err)
	return z
}

func lookup(z *file.Zone, qname string, qtype uint16) ([]dns.RR, []dns.RR, file.Result) {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	st := request.Request{W: &test.ResponseWriter{}, Req: m}
	answer, ns, _, res := z.Lookup(context.Background(), st, qname)
	return answer, ns, res
}

func TestSwitched(t *testing.T) {
	z := build(t, baseDB, blueDB, greenDB)
	tests := []struct {
		qname    string
		switched bool
		mask     uint64
	}{
		{"www.example.org.", true, 0b11},
		{"api.example.org.", true, 0b11},
		{"onlyblue.example.org.", true, 0b01},
		{"y.app.example.org.", true, 0b11}, // green's name and blue's wildcard
		{"z.app.example.org.", true, 0b01}, // blue's wildcard
		{"a.b.app.example.org.", true, 0b01},
		{"x.app.example.org.", true, 0b01}, // a base name under a pool's wildcard
		{"*.app.example.org.", true, 0b01},
		{"app.example.org.", false, 0}, // the wildcard covers names below, not its parent
		{"example.org.", false, 0},     // the apex: pools hold no data there
		{"mail.example.org.", false, 0},
		{"shared.example.org.", false, 0},
		{"nowhere.example.org.", false, 0},
		{"sub.www.example.org.", false, 0},
	}
	for i, tc := range tests {
		sw, mask := z.Switched(tc.qname)
		if sw != tc.switched || mask != tc.mask {
			t.Errorf("Test %d: expected Switched(%s) = %t, %b, got %t, %b", i, tc.qname, tc.switched, tc.mask, sw, mask)
		}
	}
	assert.Equal(t, origin, z.Origin)
	assert.Len(t, z.Views, 2)
	assert.Len(t, z.Only, 2)
	// example.org, ns1, mail, shared, www, x.app; api, *.app, onlyblue, y.app
	assert.Equal(t, 10, z.Names)
}

func TestSwitchedApex(t *testing.T) {
	tests := []struct {
		green    string
		switched bool
		mask     uint64
	}{
		// SOA and NS at the apex of a pool do not switch the apex.
		{"@ IN SOA ns2.example.org. h.example.org. 1 7200 3600 1209600 60\n@ IN NS ns2.example.org.\n", false, 0},
		// Data at the apex does.
		{"@ IN A 198.51.100.1\n", true, 0b10},
		{"@ IN TXT \"v=green\"\n", true, 0b10},
	}
	for i, tc := range tests {
		z := build(t, baseDB, blueDB, "$ORIGIN example.org.\n"+tc.green)
		sw, mask := z.Switched(origin)
		if sw != tc.switched || mask != tc.mask {
			t.Errorf("Test %d: expected apex switched %t, %b, got %t, %b", i, tc.switched, tc.mask, sw, mask)
		}
	}
}

func TestSwitchedNoAllocs(t *testing.T) {
	z := build(t, baseDB, blueDB, greenDB)
	for i, q := range []string{"www.example.org.", "a.b.app.example.org.", "nowhere.example.org.", "example.org."} {
		if n := testing.AllocsPerRun(100, func() { z.Switched(q) }); n != 0 {
			t.Errorf("Test %d: expected Switched(%s) to do 0 allocations, got %.1f", i, q, n)
		}
	}
}

// TestViews looks names up in each pool's view (Views[i], or Only[i] when
// the name is switched and pool i lacks it, as ServeDNS does).
func TestViews(t *testing.T) {
	z := build(t, baseDB, blueDB, greenDB)
	tests := []struct {
		pool   int
		qname  string
		qtype  uint16
		result file.Result
		answer []string // rdata of the answer, in any order
	}{
		// A switched name is answered from the pool only, never from base.
		{0, "www.example.org.", dns.TypeA, file.Success, []string{"192.0.2.10", "192.0.2.11"}},
		{1, "www.example.org.", dns.TypeA, file.Success, []string{"198.51.100.10"}},
		{0, "www.example.org.", dns.TypeAAAA, file.NoData, nil},
		{1, "www.example.org.", dns.TypeAAAA, file.Success, []string{"2001:db8::20"}},
		// In-zone CNAMEs resolve inside the pool's view.
		{0, "api.example.org.", dns.TypeA, file.Success, []string{"www.example.org.", "192.0.2.10", "192.0.2.11"}},
		{1, "api.example.org.", dns.TypeA, file.Success, []string{"www.example.org.", "198.51.100.10"}},
		// Only blue holds onlyblue: green gets NXDOMAIN.
		{0, "onlyblue.example.org.", dns.TypeTXT, file.Success, []string{"blue"}},
		{1, "onlyblue.example.org.", dns.TypeTXT, file.NameError, nil},
		// Wildcards: blue synthesises, green holds one name only.
		{0, "z.app.example.org.", dns.TypeA, file.Success, []string{"192.0.2.30"}},
		{1, "z.app.example.org.", dns.TypeA, file.NameError, nil},
		{0, "y.app.example.org.", dns.TypeA, file.Success, []string{"192.0.2.30"}},
		{1, "y.app.example.org.", dns.TypeA, file.Success, []string{"198.51.100.30"}},
		// Base's x.app is under blue's wildcard: switched, base's record is gone.
		{0, "x.app.example.org.", dns.TypeA, file.Success, []string{"192.0.2.30"}},
		{1, "x.app.example.org.", dns.TypeA, file.NameError, nil},
		// Names no pool holds come from base in every view.
		{0, "shared.example.org.", dns.TypeA, file.Success, []string{"192.0.2.99"}},
		{1, "shared.example.org.", dns.TypeA, file.Success, []string{"192.0.2.99"}},
		{0, "example.org.", dns.TypeMX, file.Success, []string{"mail.example.org."}},
		{1, "example.org.", dns.TypeMX, file.Success, []string{"mail.example.org."}},
		{0, "nowhere.example.org.", dns.TypeA, file.NameError, nil},
		{1, "shared.example.org.", dns.TypeAAAA, file.NoData, nil},
	}
	for i, tc := range tests {
		sw, mask := z.Switched(tc.qname)
		view := z.Views[tc.pool]
		if sw && mask&(1<<uint(tc.pool)) == 0 {
			view = z.Only[tc.pool]
		}
		answer, ns, res := lookup(view, tc.qname, tc.qtype)
		if res != tc.result {
			t.Errorf("Test %d: expected result %d for %s in pool %d, got %d", i, tc.result, tc.qname, tc.pool, res)
			continue
		}
		var got []string
		for _, rr := range answer {
			got = append(got, rdata(rr))
		}
		if !assert.ElementsMatch(t, tc.answer, got) {
			t.Errorf("Test %d: expected answer %v for %s in pool %d, got %v", i, tc.answer, tc.qname, tc.pool, got)
		}
		if tc.result == file.NameError || tc.result == file.NoData {
			if len(ns) != 1 || ns[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("Test %d: expected the SOA in the authority section, got %v", i, ns)
			}
		}
	}
}

func rdata(rr dns.RR) string {
	switch x := rr.(type) {
	case *dns.A:
		return x.A.String()
	case *dns.AAAA:
		return x.AAAA.String()
	case *dns.CNAME:
		return x.Target
	case *dns.MX:
		return x.Mx
	case *dns.TXT:
		return strings.Join(x.Txt, "")
	case *dns.SOA:
		return x.Ns
	}
	return rr.String()
}

func TestApexSwitchedAnswers(t *testing.T) {
	// Green holds an A at the apex: the apex is switched, so base's apex MX
	// is no longer served, and blue gets NODATA for the apex A. (The file
	// plugin reports NODATA at an apex that holds only SOA and NS as Success
	// with an empty answer.)
	z := build(t, baseDB, blueDB, "$ORIGIN example.org.\n@ IN A 198.51.100.1\n")
	tests := []struct {
		pool   int
		qtype  uint16
		result file.Result
		answer []string
	}{
		{0, dns.TypeA, file.Success, nil},
		{1, dns.TypeA, file.Success, []string{"198.51.100.1"}},
		{0, dns.TypeMX, file.Success, nil},
		{1, dns.TypeMX, file.NoData, nil},
		{0, dns.TypeSOA, file.Success, []string{"ns1.example.org."}},
		{1, dns.TypeSOA, file.Success, []string{"ns1.example.org."}},
		{0, dns.TypeNS, file.Success, []string{"ns1.example.org."}},
	}
	for i, tc := range tests {
		sw, mask := z.Switched(origin)
		view := z.Views[tc.pool]
		if sw && mask&(1<<uint(tc.pool)) == 0 {
			view = z.Only[tc.pool]
		}
		answer, _, res := lookup(view, origin, tc.qtype)
		var got []string
		for _, rr := range answer {
			if ns, ok := rr.(*dns.NS); ok {
				got = append(got, ns.Ns)
				continue
			}
			got = append(got, rdata(rr))
		}
		if res != tc.result || !assert.ElementsMatch(t, tc.answer, got) {
			t.Errorf("Test %d: expected %d %v for the apex %s in pool %d, got %d %v", i, tc.result, tc.answer, dns.TypeToString[tc.qtype], tc.pool, res, got)
		}
	}
}

func TestSOASource(t *testing.T) {
	const (
		baseSOA  = "@ IN SOA base.example.org. h.example.org. 1 7200 3600 1209600 60\n"
		blueSOA  = "@ IN SOA blue.example.org. h.example.org. 1 7200 3600 1209600 60\n"
		greenSOA = "@ IN SOA green.example.org. h.example.org. 1 7200 3600 1209600 60\n"
		rec      = "www IN A 192.0.2.1\n"
	)
	tests := []struct {
		base, blue, green, red string
		want                   []string // SOA mname per pool
	}{
		{baseSOA, blueSOA + rec, greenSOA + rec, rec, []string{"base.", "base.", "base."}},
		{"", blueSOA + rec, greenSOA + rec, rec, []string{"blue.", "green.", "blue."}},
		{"", rec, greenSOA + rec, rec, []string{"green.", "green.", "green."}},
		{"", rec, rec, blueSOA + rec, []string{"blue.", "blue.", "blue."}},
		{rec, rec, greenSOA + rec, rec, []string{"green.", "green.", "green."}},
	}
	for i, tc := range tests {
		var b *Source
		if tc.base != "" {
			b = &Source{Path: "base.db", Data: []byte("$ORIGIN example.org.\n" + tc.base)}
		}
		pools := []Source{
			src("blue", "$ORIGIN example.org.\n"+tc.blue),
			src("green", "$ORIGIN example.org.\n"+tc.green),
			src("red", "$ORIGIN example.org.\n"+tc.red),
		}
		z, err := Build(origin, b, pools)
		if err != nil {
			t.Errorf("Test %d: expected no error, got %v", i, err)
			continue
		}
		for p, want := range tc.want {
			for _, view := range []*file.Zone{z.Views[p], z.Only[p]} {
				// NXDOMAIN carries the SOA of the view.
				_, ns, res := lookup(view, "nowhere.example.org.", dns.TypeA)
				if res != file.NameError || len(ns) != 1 {
					t.Fatalf("Test %d: expected NXDOMAIN with one SOA, got %d %v", i, res, ns)
				}
				if got := ns[0].(*dns.SOA).Ns; got != want+"example.org." {
					t.Errorf("Test %d: expected pool %d's SOA from %sexample.org., got %s", i, p, want, got)
				}
			}
		}
	}
}

func TestBuildErrors(t *testing.T) {
	const soa = "@ IN SOA ns1.example.org. h.example.org. 1 7200 3600 1209600 60\n"
	tests := []struct {
		base, blue, green string
		want              string // substring of the error
	}{
		{soa, "www.example.net. IN A 192.0.2.1\n", "", `pool "blue": blue.db: record www.example.net. is outside zone example.org.`},
		{"www.example.net. IN A 192.0.2.1\n" + soa, "", "", "base: base.db: record www.example.net. is outside zone"},
		{soa, "", "www IN SOA ns1.example.org. h.example.org. 1 7200 3600 1209600 60\n", `pool "green": green.db: SOA owner www.example.org. is not the zone apex`},
		{soa + soa, "", "", "base: base.db: more than one SOA record"},
		{"", soa + soa, "", `pool "blue": blue.db: more than one SOA record`},
		{"www IN A 192.0.2.1\n", "api IN A 192.0.2.2\n", "", "no SOA record for example.org. in base or any pool"},
		{"", "", "", "no SOA record for example.org."},
		{soa, "www IN A 300.0.0.1\n", "", `pool "blue": blue.db:`},
		{soa, "", "www IN BOGUS x\n", `pool "green": green.db:`},
		{"@ IN SOA broken\n", "", "", "base: base.db:"},
		{soa, "$INCLUDE /nonexistent/file.db\n", "", `pool "blue": blue.db:`},
		{soa, "", "@ IN NSEC3PARAM 1 0 0 -\n", "NSEC3 zones are not supported"},
	}
	for i, tc := range tests {
		b := &Source{Path: "base.db", Data: []byte("$ORIGIN example.org.\n" + tc.base)}
		pools := []Source{src("blue", "$ORIGIN example.org.\n"+tc.blue), src("green", "$ORIGIN example.org.\n"+tc.green)}
		_, err := Build(origin, b, pools)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: expected an error containing %q, got %v", i, tc.want, err)
		}
	}
}

func TestBuildTooManyPools(t *testing.T) {
	soa := src("p", "$ORIGIN example.org.\n@ IN SOA ns1.example.org. h.example.org. 1 7200 3600 1209600 60\n")
	pools := make([]Source, MaxPools+1)
	for i := range pools {
		pools[i] = soa
	}
	_, err := Build(origin, nil, pools)
	require.ErrorContains(t, err, "at most 64 pools")

	z, err := Build(origin, nil, pools[:MaxPools])
	require.NoError(t, err)
	require.Len(t, z.Views, MaxPools)
}

// TestBuildCase: owner names and the origin are case-insensitive.
func TestBuildCase(t *testing.T) {
	b := &Source{Path: "base.db", Data: []byte("$ORIGIN Example.ORG.\n@ IN SOA ns1 h 1 7200 3600 1209600 60\n")}
	pools := []Source{src("blue", "$ORIGIN example.org.\nWWW IN A 192.0.2.1\n"), src("green", "$ORIGIN example.org.\nwww IN A 192.0.2.2\n")}
	z, err := Build("EXAMPLE.org", b, pools)
	require.NoError(t, err)
	assert.Equal(t, origin, z.Origin)
	sw, mask := z.Switched("www.example.org.")
	assert.True(t, sw)
	assert.Equal(t, uint64(0b11), mask)
}

// TestBuildInclude: $INCLUDE is allowed and resolves like file's parser.
func TestBuildInclude(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc.db")
	require.NoError(t, os.WriteFile(inc, []byte("included IN A 192.0.2.7\n"), 0o644))
	b := &Source{Path: "base.db", Data: []byte("$ORIGIN example.org.\n@ IN SOA ns1 h 1 7200 3600 1209600 60\n")}
	pools := []Source{src("blue", "$ORIGIN example.org.\n$INCLUDE "+inc+"\n"), src("green", "")}
	z, err := Build(origin, b, pools)
	require.NoError(t, err)
	sw, mask := z.Switched("included.example.org.")
	assert.True(t, sw)
	assert.Equal(t, uint64(0b01), mask)
}

// TestBuildIndependent: building twice from the same text gives
// independent trees (a reload never aliases the previous generation).
func TestBuildIndependent(t *testing.T) {
	z1 := build(t, baseDB, blueDB, greenDB)
	z2 := build(t, baseDB, blueDB, greenDB)
	a1, _, _ := lookup(z1.Views[0], "www.example.org.", dns.TypeA)
	a2, _, _ := lookup(z2.Views[0], "www.example.org.", dns.TypeA)
	require.NotEmpty(t, a1)
	a1[0].Header().Ttl = 12345
	assert.NotEqual(t, uint32(12345), a2[0].Header().Ttl)
}

// An empty non-terminal that only some pools have is switched (mask 0): it
// is NODATA for those pools and NXDOMAIN for the others. One that every
// pool, or base, has below it is not.
func TestSwitchedEmptyNonTerminal(t *testing.T) {
	blue := "$ORIGIN example.org.\nwww IN A 192.0.2.1\na.deep IN A 192.0.2.2\nb.both IN A 192.0.2.3\nc.based IN A 192.0.2.4\n"
	green := "$ORIGIN example.org.\nwww IN A 198.51.100.1\nb.both IN A 198.51.100.3\n"
	base := baseDB + "d.based IN A 192.0.2.5\n"
	z := build(t, base, blue, green)
	tests := []struct {
		qname    string
		switched bool
		mask     uint64
	}{
		{"deep.example.org.", true, 0},
		{"a.deep.example.org.", true, 0b01},
		{"both.example.org.", false, 0},  // every pool has a name below it
		{"based.example.org.", false, 0}, // base has a name below it
	}
	for i, tc := range tests {
		sw, mask := z.Switched(tc.qname)
		if sw != tc.switched || mask != tc.mask {
			t.Errorf("Test %d: expected Switched(%s) = %t, %b, got %t, %b", i, tc.qname, tc.switched, tc.mask, sw, mask)
		}
	}
	ans, _, res := lookup(z.Views[0], "deep.example.org.", dns.TypeA)
	assert.Empty(t, ans)
	assert.Contains(t, []file.Result{file.NoData, file.Success}, res, "blue holds a.deep: deep is NODATA (the file plugin says Success with no answer)")
	_, _, res = lookup(z.Views[1], "deep.example.org.", dns.TypeA)
	assert.Equal(t, file.NameError, res, "green holds nothing there: NXDOMAIN")
}
