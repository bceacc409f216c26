package zones

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkBuild100k: base plus two pools of 100,000 names each, the load
// `make bench` times through the whole server.
func BenchmarkBuild100k(b *testing.B) {
	const names = 100_000
	base := []byte("$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n")
	pool := func(octet int) []byte {
		var sb strings.Builder
		sb.WriteString("$ORIGIN example.org.\n$TTL 60\n")
		for i := range names {
			fmt.Fprintf(&sb, "h%d IN A 10.%d.%d.%d\n", i, octet, i/256%256, i%256)
		}
		return []byte(sb.String())
	}
	blue, green := pool(1), pool(2)
	b.ResetTimer()
	for b.Loop() {
		if _, err := BuildWith("example.org.", &Source{Path: "base.db", Data: base},
			[]Source{{Name: "blue", Path: "blue.db", Data: blue}, {Name: "green", Path: "green.db", Data: green}},
			Options{BoundTTL: true, TTLMax: 30, TTLMin: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildLargeBase: a 1,000,000-name base and three pools of one
// name each, issue 16's shape (to load in under 5 s through the server).
func BenchmarkBuildLargeBase(b *testing.B) {
	const names = 1_000_000
	var sb strings.Builder
	sb.WriteString("$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n")
	for i := range names {
		fmt.Fprintf(&sb, "h%d IN A 10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
	}
	base := []byte(sb.String())
	var pools []Source
	for i, p := range []string{"blue", "green", "red"} {
		pools = append(pools, Source{Name: p, Path: p + ".db", Data: fmt.Appendf(nil, "$ORIGIN example.org.\n$TTL 300\nwww IN A 192.0.2.%d\n", i+1)})
	}
	b.ResetTimer()
	for b.Loop() {
		z, err := BuildWith("example.org.", &Source{Path: "base.db", Data: base}, pools, Options{BoundTTL: true, TTLMax: 30, TTLMin: 1})
		if err != nil {
			b.Fatal(err)
		}
		if z.Names != names+3 { // h0..h999999, the apex, ns1 and www
			b.Fatalf("expected %d names, got %d", names+3, z.Names)
		}
	}
}
