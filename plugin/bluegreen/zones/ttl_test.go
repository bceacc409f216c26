package zones

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A record with no TTL where neither $TTL nor an earlier TTL applies gets
// TTL 0, with a warning naming file and line; records after an explicit
// TTL take it, as RFC 1035 and BIND do.
func TestNoTTLWarning(t *testing.T) {
	tests := []struct {
		data     string
		ttls     []uint32
		warnings []string
	}{
		{
			"$ORIGIN example.org.\n@ IN SOA ns1 h 1 2 3 4 5\n\nwww IN A 192.0.2.1\n",
			[]uint32{0, 0},
			[]string{
				"z.db:2: example.org. SOA has no TTL and no $TTL or earlier TTL applies: TTL 0",
				"z.db:4: www.example.org. A has no TTL and no $TTL or earlier TTL applies: TTL 0",
			},
		},
		{"$ORIGIN example.org.\n$TTL 60\n@ IN SOA ns1 h 1 2 3 4 5\nwww IN A 192.0.2.1\n", []uint32{60, 60}, nil},
		{"$ORIGIN example.org.\n@ 30 IN SOA ns1 h 1 2 3 4 5\nwww IN A 192.0.2.1\n", []uint32{30, 30}, nil},
		{"$ORIGIN example.org.\n@ 0 IN SOA ns1 h 1 2 3 4 5\nwww IN A 192.0.2.1\n", []uint32{0, 0}, nil}, // stated
		// No class either: accepted the same way, with the warning.
		{"$ORIGIN example.org.\nwww A 192.0.2.1\nmail 20 A 192.0.2.2\nftp A 192.0.2.3\n", []uint32{0, 20, 20},
			[]string{"z.db:2: www.example.org. A has no TTL and no $TTL or earlier TTL applies: TTL 0"}},
	}
	for i, tc := range tests {
		rrs, warnings, err := parse("example.org.", "z.db", []byte(tc.data))
		require.NoError(t, err, "Test %d", i)
		var ttls []uint32
		for _, rr := range rrs {
			ttls = append(ttls, rr.Header().Ttl)
		}
		require.Equal(t, tc.ttls, ttls, "Test %d: TTLs", i)
		require.Equal(t, tc.warnings, warnings, "Test %d: warnings", i)
	}

	// Build reports the warnings of the files it parsed, not of files it
	// reused from the previous generation.
	base := Source{Path: "base.db", Data: []byte("$ORIGIN example.org.\n@ IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\n")}
	pools := []Source{src("blue", blueDB), src("green", greenDB)}
	z1, err := BuildWith(origin, &base, pools, Options{})
	require.NoError(t, err)
	require.Len(t, z1.Warnings, 2)
	pools[1] = src("green", greenDB+"x IN A 192.0.2.7\n")
	z2, err := BuildWith(origin, &base, pools, Options{Prev: z1})
	require.NoError(t, err)
	require.Empty(t, z2.Warnings)
}
