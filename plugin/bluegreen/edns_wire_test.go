package bluegreen_test

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServerRejectsMalformedEDNS: over UDP and TCP, an ECS option whose
// ADDRESS has more or fewer octets than its source prefix needs (RFC 7871
// §6) and a query with two OPT records (RFC 6891 §6.1.1) get FORMERR and
// no answer; the same options with the right octets are answered, alone
// and next to another option.
func TestServerRejectsMalformedEDNS(t *testing.T) {
	addr := chainServer(t, "weights green 1")
	ecsRaw := func(data ...byte) dns.EDNS0 { return &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: data} }
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}
	v6 := func(n int) []byte { return append([]byte{0, 2, 128, 0}, make([]byte, n)...) }
	for _, proto := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: proto}
		for i, tc := range []struct {
			name  string
			opts  []dns.EDNS0
			twice bool // a second OPT record
			rcode int
		}{
			{"/24 with 3 octets", []dns.EDNS0{ecsRaw(0, 1, 24, 0, 10, 1, 0)}, false, dns.RcodeSuccess},
			{"/24 with 3 octets and a cookie", []dns.EDNS0{cookie, ecsRaw(0, 1, 24, 0, 10, 1, 0)}, false, dns.RcodeSuccess},
			{"/32 with 4 octets", []dns.EDNS0{ecsRaw(0, 1, 32, 0, 10, 1, 0, 1)}, false, dns.RcodeSuccess},
			{"/128 with 16 octets", []dns.EDNS0{ecsRaw(v6(16)...)}, false, dns.RcodeSuccess},
			{"/0 with none", []dns.EDNS0{ecsRaw(0, 1, 0, 0)}, false, dns.RcodeSuccess},
			{"/24 with 5 octets", []dns.EDNS0{ecsRaw(0, 1, 24, 0, 10, 1, 0, 0, 0)}, false, dns.RcodeFormatError},
			{"/24 with 4 octets", []dns.EDNS0{ecsRaw(0, 1, 24, 0, 10, 1, 0, 0)}, false, dns.RcodeFormatError},
			{"/24 with 5 octets and a cookie", []dns.EDNS0{ecsRaw(0, 1, 24, 0, 10, 1, 0, 0, 0), cookie}, false, dns.RcodeFormatError},
			{"/32 with none", []dns.EDNS0{ecsRaw(0, 1, 32, 0)}, false, dns.RcodeFormatError},
			{"/128 with 2", []dns.EDNS0{ecsRaw(v6(2)...)}, false, dns.RcodeFormatError},
			{"/0 with one", []dns.EDNS0{ecsRaw(0, 1, 0, 0, 0)}, false, dns.RcodeFormatError},
			{"two OPT records", nil, true, dns.RcodeFormatError},
			{"two OPT records, one with ECS", []dns.EDNS0{ecsRaw(0, 1, 24, 0, 10, 1, 0)}, true, dns.RcodeFormatError},
		} {
			m := new(dns.Msg)
			m.SetQuestion("www.example.org.", dns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = tc.opts
			if tc.twice {
				second := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
				second.SetUDPSize(1232)
				m.Extra = append(m.Extra, second)
			}
			r, _, err := c.Exchange(m, addr)
			require.NoError(t, err, "Test %s/%d (%s)", proto, i, tc.name)
			assert.Equal(t, dns.RcodeToString[tc.rcode], dns.RcodeToString[r.Rcode], "Test %s/%d (%s): rcode", proto, i, tc.name)
			if tc.rcode == dns.RcodeSuccess {
				assert.Len(t, r.Answer, 1, "Test %s/%d (%s): answer", proto, i, tc.name)
			} else {
				assert.Empty(t, r.Answer, "Test %s/%d (%s): answer", proto, i, tc.name)
			}
		}
	}
}
