package bluegreen

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/pick"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"

	"github.com/miekg/dns"
)

// The selection path alone: client key, hash and weighted pick, with 2 and
// 8 pools. It must not allocate.
func BenchmarkSelect(b *testing.B) {
	for _, pools := range []int{2, 8} {
		weights := make([]uint64, pools)
		names := make([]string, pools)
		for i := range weights {
			weights[i] = uint64(10 * (i + 1))
			names[i] = fmt.Sprintf("p%d", i)
		}
		snap, err := state.NewSnapshot(1, names, weights, time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		seed := pick.SwitchSeed("example.org")
		addr := netip.MustParseAddr("203.0.113.77")
		b.Run(fmt.Sprintf("sticky/%dpools", pools), func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for i := 0; i < b.N; i++ {
				n += snap.Pick(pick.Point(seed, pick.Mask(addr, 24)))
			}
			sink = n
		})
		b.Run(fmt.Sprintf("random/%dpools", pools), func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for i := 0; i < b.N; i++ {
				n += snap.Pick(pick.Random())
			}
			sink = n
		})
	}
}

var sink int

// ServeDNS end to end for one A record, next to the file plugin answering
// the same record from the same data, in the same run.
func BenchmarkServeDNSVersusFile(b *testing.B) {
	dir := stdZones(b)
	ctx := context.Background()
	bg := newTestBluegreen(b, dir, "base base.db\npool blue blue.db\npool green green.db\nweights blue 90 green 10")

	// The file plugin with the blue pool's view of the zone (base + blue).
	var zone strings.Builder
	for _, f := range []string{"base.db", "blue.db"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "$ORIGIN") || (f == "blue.db" && strings.HasPrefix(line, "$TTL")) {
				continue
			}
			zone.WriteString(line + "\n")
		}
	}
	z, err := file.Parse(strings.NewReader("$ORIGIN example.org.\n"+zone.String()), "example.org.", "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	fp := file.File{Zones: file.Zones{Z: map[string]*file.Zone{"example.org.": z}, Names: []string{"example.org."}}}

	plain := query("www.example.org", dns.TypeA)
	withECS := ecs(b, "www.example.org", dns.TypeA, "203.0.113.0/24")
	cases := []struct {
		name string
		h    interface {
			ServeDNS(context.Context, dns.ResponseWriter, *dns.Msg) (int, error)
		}
		m *dns.Msg
	}{
		{"file", fp, plain},
		{"bluegreen", bg, plain},
		{"bluegreen-ecs", bg, withECS},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &test.ResponseWriter{}
			for i := 0; i < b.N; i++ {
				rec := dnstest.NewRecorder(w)
				if _, err := tc.h.ServeDNS(ctx, rec, tc.m); err != nil {
					b.Fatal(err)
				}
				if rec.Msg == nil || len(rec.Msg.Answer) == 0 {
					b.Fatalf("no answer from %s", tc.name)
				}
			}
		})
	}
}
