package bluegreen

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/pick"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"

	"github.com/miekg/dns"
)

// The selection path alone: client key (from the source address or the
// ECS option), hash and weighted pick, sticky and random, with 2 and 8
// pools. It must not allocate.
func BenchmarkSelect(b *testing.B) {
	for _, pools := range []int{2, 8} {
		files := map[string]string{"base.db": baseDB}
		body := "base base.db\n"
		weights := "weights"
		for i := range pools {
			files[fmt.Sprintf("p%d.db", i)] = fmt.Sprintf("$ORIGIN example.org.\nwww 60 IN A 192.0.2.%d\n", i+1)
			body += fmt.Sprintf("pool p%d p%d.db\n", i, i)
			weights += fmt.Sprintf(" p%d %d", i, 10*(i+1))
		}
		dir := writeZones(b, files)
		for _, sticky := range []string{stickySubnet, stickyOff} {
			bg := newTestBluegreen(b, dir, body+weights+"\nsticky "+sticky)
			mode := "sticky"
			if sticky == stickyOff {
				mode = "random"
			}
			for _, q := range []struct {
				name string
				m    *dns.Msg
			}{
				{"plain", query("www.example.org", dns.TypeA)},
				{"ecs", ecs(b, "www.example.org", dns.TypeA, "203.0.113.0/24")},
			} {
				b.Run(fmt.Sprintf("%s/%dpools/%s", mode, pools, q.name), func(b *testing.B) {
					w := newBenchWriter("198.51.100.7")
					snap := bg.sw.Load()
					b.ReportAllocs()
					n := 0
					for b.Loop() {
						n += bg.selectPool(w, q.m, snap)
					}
					sink = n
				})
			}
		}
	}
}

// selectPool is ServeDNS's selection: client key, pins, hash, pick.
func (b *Bluegreen) selectPool(w dns.ResponseWriter, r *dns.Msg, snap *state.Snapshot) int {
	cl := b.client(w, r)
	if idx, pinned := b.pinned(cl.addr); pinned {
		return idx
	}
	if b.cfg.sticky == stickyOff {
		return snap.Pick(pick.Random())
	}
	return snap.Pick(pick.Point(b.seed, cl.key))
}

// benchWriter is test.ResponseWriter with a fixed remote address: like the
// server's writers, RemoteAddr does not allocate.
type benchWriter struct {
	test.ResponseWriter
	remote net.Addr
}

func newBenchWriter(ip string) *benchWriter {
	return &benchWriter{remote: &net.UDPAddr{IP: net.ParseIP(ip), Port: 40212}}
}

func (w *benchWriter) RemoteAddr() net.Addr { return w.remote }

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
	random := newTestBluegreen(b, dir, "base base.db\npool blue blue.db\npool green green.db\nweights blue 90 green 10\nsticky off")
	// DO: a switch signing its views, next to the file plugin serving the
	// signed blue view's records as a pre-signed zone.
	key, _ := writeKey(b, dir, "example.org.", 257)
	signed := newTestBluegreen(b, dir, "base base.db\npool blue blue.db\npool green green.db\nweights blue 90 green 10\ndnssec key file "+key)
	view := signed.loader.data.Load().byOrigin["example.org."].Views[0]
	sz := file.NewZone("example.org.", "")
	for _, rr := range append(append([]dns.RR{view.SOA}, view.NS...), append(view.SIGSOA, view.SIGNS...)...) {
		sz.Insert(dns.Copy(rr))
	}
	for _, e := range view.Tree.All() {
		for _, rr := range e.All() {
			sz.Insert(dns.Copy(rr))
		}
	}
	fsigned := file.File{Zones: file.Zones{Z: map[string]*file.Zone{"example.org.": sz}, Names: []string{"example.org."}}}
	do := query("www.example.org", dns.TypeA)
	do.SetEdns0(1232, true)
	nx := query("nowhere.example.org", dns.TypeA)
	nx.SetEdns0(1232, true)
	doECS := ecs(b, "www.example.org", dns.TypeA, "203.0.113.0/24")
	doECS.IsEdns0().SetDo()
	cases := []benchCase{
		{"file", fp, plain},
		{"bluegreen", bg, plain},
		{"bluegreen-ecs", bg, withECS},
		{"bluegreen-random", random, plain},
		{"file-ecs", fp, withECS},
		{"file-do", fsigned, do},
		{"bluegreen-do", signed, do},
		{"file-do-nxdomain", fsigned, nx},
		{"bluegreen-do-nxdomain", signed, nx},
		{"bluegreen-do-ecs", signed, doECS},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			w := newBenchWriter("198.51.100.7")
			for i := 0; i < b.N; i++ {
				rec := dnstest.NewRecorder(w)
				if _, err := tc.h.ServeDNS(ctx, rec, tc.m); err != nil {
					b.Fatal(err)
				}
				if rec.Msg == nil || (len(rec.Msg.Answer) == 0 && rec.Msg.Rcode != dns.RcodeNameError) {
					b.Fatalf("no answer from %s", tc.name)
				}
			}
		})
	}

	// To the bytes, as the server writes them: CoreDNS's ScrubWriter
	// around a writer that packs (WriteMsg) or takes bytes (Write), as
	// miekg/dns's own does, less the socket. The switch writes its kept
	// answers' bytes there (the writer stands in for miekg's own).
	old := rawType.Load()
	bt := reflect.TypeFor[*packWriter]()
	rawType.Store(&bt)
	defer rawType.Store(old)
	for _, tc := range []benchCase{
		{"wire/file-do", fsigned, do},
		{"wire/bluegreen-do", signed, do},
		{"wire/file-do-nxdomain", fsigned, nx},
		{"wire/bluegreen-do-nxdomain", signed, nx},
		{"wire/file-ecs", fp, withECS},
		{"wire/bluegreen-ecs", bg, withECS},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &packWriter{benchWriter: *newBenchWriter("198.51.100.7")}
			tc.h.ServeDNS(ctx, request.NewScrubWriter(tc.m, w), tc.m) // keeps the answer
			for i := 0; i < b.N; i++ {
				w.n = 0
				if _, err := tc.h.ServeDNS(ctx, request.NewScrubWriter(tc.m, w), tc.m); err != nil {
					b.Fatal(err)
				}
				if w.n < 100 {
					b.Fatalf("%d bytes from %s", w.n, tc.name)
				}
			}
		})
	}
}

// benchCase is a question for a handler (the switch or the file plugin).
type benchCase struct {
	name string
	h    interface {
		ServeDNS(context.Context, dns.ResponseWriter, *dns.Msg) (int, error)
	}
	m *dns.Msg
}

// packWriter packs what it is handed, as miekg/dns's writer does before
// the socket, and counts the bytes.
type packWriter struct {
	benchWriter
	n int
}

func (w *packWriter) WriteMsg(m *dns.Msg) error {
	buf, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

func (w *packWriter) Write(buf []byte) (int, error) {
	w.n += len(buf)
	return len(buf), nil
}
