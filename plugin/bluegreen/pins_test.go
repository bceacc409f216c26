package bluegreen

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestServeDNSPinsLongestPrefix: nested pins to different pools act like
// routes, the most specific prefix wins, whatever order the Corefile
// declares them in; the ECS scope still narrows to the pin that splits the
// client's subnet, and explain names the pin that decided.
func TestServeDNSPinsLongestPrefix(t *testing.T) {
	dir := stdZones(t)
	// Weights send every unpinned client to blue, so green comes from a pin.
	const weights = "weights blue 1\nsticky subnet 16 48\n"
	nested := []string{
		"pin green 10.0.0.0/8 2001:db8::/32",
		"pin blue 10.1.0.0/16 2001:db8:1::/48",
		"pin green 10.1.2.0/24 2001:db8:1:2::/64",
		"pin blue 10.1.2.128/32",
	}
	reversed := []string{nested[3], nested[2], nested[1], nested[0]}
	var bs []*Bluegreen
	for _, order := range [][]string{nested, reversed} {
		body := pools3 + weights
		for _, l := range order {
			body += l + "\n"
		}
		bs = append(bs, newTestBluegreen(t, dir, body))
	}

	tests := []struct {
		remote string
		ecs    string // "" for none
		want   string
		scope  uint8 // with ECS
		pin    string
	}{
		// Source addresses.
		{"10.200.0.1", "", "green", 0, "10.0.0.0/8"},
		{"10.1.200.1", "", "blue", 0, "10.1.0.0/16"},
		{"10.1.2.1", "", "green", 0, "10.1.2.0/24"},
		{"10.1.2.128", "", "blue", 0, "10.1.2.128/32"},
		{"10.1.2.129", "", "green", 0, "10.1.2.0/24"},
		{"11.0.0.1", "", "blue", 0, ""},
		{"2001:db8:ff::1", "", "green", 0, "2001:db8::/32"},
		{"2001:db8:1:ff::1", "", "blue", 0, "2001:db8:1::/48"},
		{"2001:db8:1:2::1", "", "green", 0, "2001:db8:1:2::/64"},
		// ECS: the key is a /16 (or /48); the scope widens to the
		// longest pin inside it, so a resolver caches each answer only
		// for clients the same pin (or none) decides.
		{"192.0.2.1", "10.200.0.1/32", "green", 16, "10.0.0.0/8"},
		{"192.0.2.1", "10.1.200.1/32", "blue", 32, "10.1.0.0/16"},
		{"192.0.2.1", "10.1.2.1/32", "green", 32, "10.1.2.0/24"},
		{"192.0.2.1", "10.1.2.128/32", "blue", 32, "10.1.2.128/32"},
		{"192.0.2.1", "10.1.2.0/24", "green", 24, "10.1.2.0/24"},
		{"192.0.2.1", "10.1.3.0/24", "blue", 24, "10.1.0.0/16"},
		{"192.0.2.1", "2001:db8:1:2::/64", "green", 64, "2001:db8:1:2::/64"},
		{"192.0.2.1", "2001:db8:1:3::/64", "blue", 64, "2001:db8:1::/48"},
		{"192.0.2.1", "2001:db8:2::/48", "green", 48, "2001:db8::/32"},
	}
	for n, b := range bs {
		for i, tc := range tests {
			m := query("www.example.org.", dns.TypeA)
			if tc.ecs != "" {
				m = ecs(t, "www.example.org.", dns.TypeA, tc.ecs)
			}
			r, _, err := serve(context.Background(), b, m, tc.remote)
			require.NoError(t, err)
			if got := poolOf(r); got != tc.want {
				t.Errorf("Test %d/%d: expected %s (ECS %q) to get %s, got %s", n, i, tc.remote, tc.ecs, tc.want, got)
			}
			if tc.ecs != "" {
				if e := replyECS(r); e == nil || e.SourceScope != tc.scope {
					t.Errorf("Test %d/%d: expected ECS %s echoed with scope %d, got %v", n, i, tc.ecs, tc.scope, e)
				}
			}
			client := tc.remote
			if tc.ecs != "" {
				client = netip.MustParsePrefix(tc.ecs).Addr().String()
			}
			e := b.explain(netip.MustParseAddr(client))
			want := ""
			if tc.pin != "" {
				want = "pinned to " + tc.want + " by " + tc.pin
			}
			if e.Pool != tc.want || (want != "" && e.Reason != want) || (want == "" && !strings.HasPrefix(e.Reason, "sticky subnet")) {
				t.Errorf("Test %d/%d: expected explain(%s) to say %s (%q), got %s (%q)", n, i, client, tc.want, want, e.Pool, e.Reason)
			}
		}
	}
}
