package bluegreen

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coretest "github.com/coredns/coredns/test"

	"github.com/bluegreen-dns/bluegreen/internal/freeport"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/rollout"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wireWrites counts the answers written as bytes (see wireWritten).
var wireWrites atomic.Int64

func init() { wireWritten = func() { wireWrites.Add(1) } }

// wireServer starts CoreDNS with a switch for example.org on 127.0.0.1
// and ::1 (the shared zones plus two names with big RRsets, ttl 30 10,
// lines added to the block; plugins added to the server, PORT a free
// port) and returns its IPv4 address and the switch's name.
func wireServer(t testing.TB, plugins []string, lines ...string) (string, string) {
	t.Helper()
	var big strings.Builder
	big.WriteString(baseDB)
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&big, "big60 IN A 10.0.0.%d\n", i+1)
		if i < 40 {
			fmt.Fprintf(&big, "big40 IN A 10.0.1.%d\n", i+1)
		}
	}
	dir := writeZones(t, map[string]string{"base.db": big.String(), "blue.db": blueDB, "green.db": greenDB})
	key, _ := writeKey(t, dir, "example.org.", 257)
	port := freeport.T(t)
	name := uniqueName()
	t.Cleanup(func() { forget(name) })
	server := strings.ReplaceAll(strings.Join(plugins, "\n\t"), "PORT", fmt.Sprint(freeport.T(t)))
	corefile := fmt.Sprintf(`example.org:%[1]d {
	bind 127.0.0.1 ::1
	%[5]s
	bluegreen {
		base %[2]s/base.db
		pool blue %[2]s/blue.db
		pool green %[2]s/green.db
		weights blue 50 green 50
		name %[3]s
		ttl 30 10
		reload 0
		admin off
		%[4]s
	}
}
`, port, dir, name, strings.ReplaceAll(strings.Join(lines, "\n\t\t"), "KEY", filepath.Join(dir, key)), server)
	inst, err := coretest.CoreDNSServer(corefile)
	require.NoError(t, err, "starting CoreDNS with:\n%s", corefile)
	t.Cleanup(func() {
		inst.Stop()
		inst.ShutdownCallbacks()
	})
	return fmt.Sprintf("127.0.0.1:%d", port), name
}

// exchangeBytes sends the query q to addr over proto and returns the
// reply's bytes as they came.
func exchangeBytes(t *testing.T, proto, addr string, q []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout(proto, addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	if proto == "udp" {
		_, err = c.Write(q)
		require.NoError(t, err)
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		require.NoError(t, err)
		return buf[:n]
	}
	_, err = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...))
	require.NoError(t, err)
	var l [2]byte
	_, err = io.ReadFull(c, l[:])
	require.NoError(t, err)
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	return buf
}

// TestWireSameBytes: through a real CoreDNS server, over UDP and TCP,
// with and without signing, an answer written as bytes is byte for byte
// the answer the message path writes for the same query: header bits,
// question, records with their clamped TTLs, OPT flags and size, the ECS
// option echoed with its scope. Queries the bytes path must leave to the
// message path (another class, options other than ECS, replies to
// truncate or compress, writers that need a message) are checked to take
// it, and to come out the same; a question in mixed case is echoed as
// asked.
func TestWireSameBytes(t *testing.T) {
	ecsRaw := func(data ...byte) dns.EDNS0 { return &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: data} }
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}
	type edns struct {
		size  uint16
		do    bool
		flags uint16 // other bits of the OPT's flags
		opts  []dns.EDNS0
	}
	v4 := ecsRaw(0, 1, 24, 0, 10, 1, 2)
	v4full := ecsRaw(0, 1, 32, 0, 10, 1, 2, 3)
	v6 := ecsRaw(0, 2, 56, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 1)
	v6full := ecsRaw(append([]byte{0, 2, 128, 0}, net.ParseIP("2001:db8::1")...)...)
	mapped := ecsRaw(0, 2, 120, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2)
	zero := ecsRaw(0, 0, 0, 0)
	zero4 := ecsRaw(0, 1, 0, 0)
	ednsCases := []struct {
		name string
		e    *edns
		fast bool
	}{
		{"no EDNS", nil, true},
		{"EDNS 1232", &edns{size: 1232}, true},
		{"EDNS 512 DO", &edns{size: 512, do: true}, true},
		{"EDNS 4096 DO, Z bits", &edns{size: 4096, do: true, flags: 0x4101}, true},
		{"ECS /24", &edns{size: 1232, opts: []dns.EDNS0{v4}}, true},
		{"ECS /24 DO, Z bits", &edns{size: 1232, do: true, flags: 0x0100, opts: []dns.EDNS0{v4}}, true},
		{"ECS /32", &edns{size: 1400, opts: []dns.EDNS0{v4full}}, true},
		{"ECS v6 /56 DO", &edns{size: 1232, do: true, opts: []dns.EDNS0{v6}}, true},
		{"ECS v6 /128", &edns{size: 1232, opts: []dns.EDNS0{v6full}}, true},
		{"ECS mapped /120", &edns{size: 1232, opts: []dns.EDNS0{mapped}}, true},
		{"ECS family 0", &edns{size: 1232, do: true, opts: []dns.EDNS0{zero}}, true},
		{"ECS v4 /0", &edns{size: 1232, opts: []dns.EDNS0{zero4}}, true},
		{"cookie", &edns{size: 1232, opts: []dns.EDNS0{cookie}}, false},
		{"ECS and cookie", &edns{size: 1232, do: true, opts: []dns.EDNS0{v4, cookie}}, false},
	}
	questions := []struct {
		name  string
		qtype uint16
		class uint16
		fast  bool
	}{
		{"www.example.org.", dns.TypeA, dns.ClassINET, true},
		{"www.example.org.", dns.TypeAAAA, dns.ClassINET, true},
		{"api.example.org.", dns.TypeA, dns.ClassINET, true},
		{"mail.example.org.", dns.TypeA, dns.ClassINET, true},
		{"zero.example.org.", dns.TypeA, dns.ClassINET, true},
		{"long.example.org.", dns.TypeA, dns.ClassINET, true},
		{"onlyblue.example.org.", dns.TypeA, dns.ClassINET, true},
		{"a.wild.example.org.", dns.TypeA, dns.ClassINET, true},
		{"missing.example.org.", dns.TypeA, dns.ClassINET, true},
		{"version.example.org.", dns.TypeMX, dns.ClassINET, true},
		{"x.sub.example.org.", dns.TypeA, dns.ClassINET, true},
		{"example.org.", dns.TypeSOA, dns.ClassINET, true},
		{"example.org.", dns.TypeDNSKEY, dns.ClassINET, true},
		{"example.org.", dns.TypeANY, dns.ClassINET, true},
		{"selfloop.example.org.", dns.TypeA, dns.ClassINET, true},
		{"WWW.Example.org.", dns.TypeA, dns.ClassINET, true},
		{"x\\065B.wild.EXAMPLE.org.", dns.TypeA, dns.ClassINET, true},
		{"Missing.example.ORG.", dns.TypeAAAA, dns.ClassINET, true},
		{"www.example.org.", dns.TypeA, dns.ClassCHAOS, false},
		{"big40.example.org.", dns.TypeA, dns.ClassINET, true}, // over 512, under 1480
		{"big60.example.org.", dns.TypeA, dns.ClassINET, true}, // over 1480
	}
	for _, setup := range []struct {
		signed  bool
		plugins []string
		bytes   bool // the setup lets the bytes path write
		metrics bool // the metrics plugin counts every reply
	}{
		{false, nil, true, false},
		{true, nil, true, false},
		{true, []string{"errors", "prometheus 127.0.0.1:PORT"}, true, true},
		{false, []string{"log . {rcode}"}, false, false},
	} {
		signed := setup.signed
		var lines []string
		if signed {
			lines = append(lines, "dnssec key file KEY")
		}
		addr, _ := wireServer(t, setup.plugins, lines...)
		counted := total(responseMetrics(t, 0))
		_, port, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		for _, tr := range []struct{ proto, addr string }{
			{"udp", addr}, {"tcp", addr},
			{"udp", net.JoinHostPort("::1", port)}, // 1220 bytes before CoreDNS compresses
		} {
			proto, addr := tr.proto, tr.addr
			for qi, qc := range questions {
				for ei, ec := range ednsCases {
					for _, bits := range [][2]bool{{false, false}, {true, true}} {
						m := new(dns.Msg)
						m.Id = uint16(qi<<8 | ei)
						m.Question = []dns.Question{{Name: qc.name, Qtype: qc.qtype, Qclass: qc.class}}
						m.RecursionDesired, m.CheckingDisabled = bits[0], bits[1]
						if ec.e != nil {
							m.SetEdns0(ec.e.size, ec.e.do)
							opt := m.IsEdns0()
							opt.Hdr.Ttl |= uint32(ec.e.flags)
							opt.Option = ec.e.opts
						}
						q, err := m.Pack()
						require.NoError(t, err)
						what := fmt.Sprintf("signed %v, plugins %q, %s %s, %s/%s class %d, %s, rd/cd %v", signed, setup.plugins, proto, addr, qc.name,
							dns.TypeToString[qc.qtype], qc.class, ec.name, bits[0])

						exchangeBytes(t, proto, addr, q) // the first asking prepares the answer
						var m0, m1, m2 map[string]float64
						if setup.metrics {
							counted++
							m0 = responseMetrics(t, counted)
						}
						before := wireWrites.Load()
						fast := exchangeBytes(t, proto, addr, q)
						wrote := wireWrites.Load() - before
						if setup.metrics {
							counted++
							m1 = responseMetrics(t, counted)
						}
						wireOff.Store(true)
						slow := exchangeBytes(t, proto, addr, q)
						wireOff.Store(false)
						if setup.metrics {
							counted++
							m2 = responseMetrics(t, counted)
						}
						// The metrics plugin counts the same responses by
						// rcode and plugin; the message path's size is
						// dns.Msg.Len before the OPT is added (RRSIGs
						// estimated), the bytes path's what was written.
						fastM, slowM := delta(m0, m1), delta(m1, m2)
						for k, v := range fastM {
							if strings.HasSuffix(k, " sum") && wrote == 1 {
								n := len(fast)
								if proto == "tcp" {
									n += 2 // the length before the message
								}
								assert.Equal(t, float64(n), v, "%s: %s", what, k)
								delete(fastM, k)
								delete(slowM, k)
							}
						}
						assert.Equal(t, slowM, fastM, "%s: the metrics plugin's counts", what)
						assert.Equal(t, int64(0), wireWrites.Load()-before-wrote, "%s: written as bytes with the bytes path off", what)

						reply := new(dns.Msg)
						require.NoError(t, reply.Unpack(slow), what)
						// The cases the bytes path leaves alone: not an
						// IN question, other options, and
						// replies the ScrubWriter changed (truncated, or
						// compressed: packed differently from a message
						// that asks for no compression); and SERVFAIL.
						reply.Compress = false
						plain, err := reply.Pack()
						require.NoError(t, err, what)
						want := setup.bytes && qc.fast && ec.fast && !reply.Truncated && bytes.Equal(plain, slow) &&
							reply.Rcode != dns.RcodeServerFailure // SERVFAILs are not kept
						assert.Equal(t, want, wrote == 1, "%s: written as bytes (reply %d bytes, TC %v)", what, len(slow), reply.Truncated)
						if !bytes.Equal(fast, slow) {
							other := new(dns.Msg)
							_ = other.Unpack(fast)
							t.Errorf("%s: the bytes path wrote\n%x\n%v\nthe message path\n%x\n%v", what, fast, other, slow, reply)
						}
					}
				}
			}
		}
	}
}

// TestSkipName: names in a packed message, plain and compressed, and
// the malformed ones packAnswer gives up on.
func TestSkipName(t *testing.T) {
	for i, tc := range []struct {
		buf  []byte
		off  int
		want int
		ok   bool
	}{
		{[]byte{0}, 0, 1, true},
		{[]byte{3, 'w', 'w', 'w', 0, 9}, 0, 5, true},
		{[]byte{9, 9, 1, 'a', 0xC0, 0}, 2, 6, true},
		{[]byte{1, 'a', 0xC0}, 0, 0, false},
		{[]byte{3, 'w', 'w'}, 0, 0, false},
		{[]byte{0x40, 0}, 0, 0, false},
	} {
		got, ok := skipName(tc.buf, tc.off)
		assert.Equal(t, tc.ok, ok, "Test %d: ok", i)
		if tc.ok {
			assert.Equal(t, tc.want, got, "Test %d: offset", i)
		}
	}
}

// TestWireTTLBeforeStep: while a rollout step is due within MAX, both
// paths lower every TTL to the seconds left, alike.
func TestWireTTLBeforeStep(t *testing.T) {
	addr, name := wireServer(t, nil, "dnssec key file KEY")
	_, err := state.Lookup(name).StartRollout(context.Background(), state.RolloutRequest{Steps: []rollout.Step{
		{Weights: map[string]uint64{"blue": 50, "green": 50}, Hold: rollout.Duration(20 * time.Second)},
		{Weights: map[string]uint64{"blue": 0, "green": 100}},
	}}, state.Update{Source: "test"})
	require.NoError(t, err)
	for _, qname := range []string{"www.example.org.", "mail.example.org.", "missing.example.org."} {
		m := new(dns.Msg)
		m.SetQuestion(qname, dns.TypeA)
		m.SetEdns0(1232, true)
		m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(10, 1, 2, 0)}}
		q, err := m.Pack()
		require.NoError(t, err)
		exchangeBytes(t, "udp", addr, q)
		// The seconds left tick between the two asks once in a while:
		// three pairs in a row cannot all straddle a tick.
		var fast, slow []byte
		for try := 0; try < 3; try++ {
			before := wireWrites.Load()
			fast = exchangeBytes(t, "udp", addr, q)
			require.Equal(t, int64(1), wireWrites.Load()-before, "%s: written as bytes", qname)
			wireOff.Store(true)
			slow = exchangeBytes(t, "udp", addr, q)
			wireOff.Store(false)
			if bytes.Equal(fast, slow) {
				break
			}
		}
		assert.Equal(t, slow, fast, qname)
		reply := new(dns.Msg)
		require.NoError(t, reply.Unpack(fast))
		require.NotEmpty(t, reply.Ns, qname)
		for _, rr := range append(reply.Answer, reply.Ns...) {
			assert.LessOrEqual(t, rr.Header().Ttl, uint32(20), "%s: %s", qname, rr)
			assert.GreaterOrEqual(t, rr.Header().Ttl, uint32(10), "%s: %s, MIN", qname, rr)
		}
	}
}

// responseMetrics returns the metrics plugin's response counts by label
// set and the sum and count of its response sizes by label set, once the
// responses counted number want (the plugin counts after the reply is
// written).
func responseMetrics(t *testing.T, want float64) map[string]float64 {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		mfs, err := prometheus.DefaultGatherer.Gather()
		require.NoError(t, err)
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
				switch mf.GetName() {
				case "coredns_dns_responses_total":
					out[key] = m.GetCounter().GetValue()
				case "coredns_dns_response_size_bytes":
					out[key+" sum"] = m.GetHistogram().GetSampleSum()
					out[key+" count"] = float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		if total(out) >= want && sized(out) >= want {
			return out
		}
		require.True(t, time.Now().Before(deadline), "%v responses counted after 2 s, want %v", total(out), want)
	}
}

// total returns the responses counted in m.
func total(m map[string]float64) (n float64) {
	for k, v := range m {
		if strings.HasPrefix(k, "coredns_dns_responses_total{") {
			n += v
		}
	}
	return n
}

// sized returns the response sizes observed in m.
func sized(m map[string]float64) (n float64) {
	for k, v := range m {
		if strings.HasPrefix(k, "coredns_dns_response_size_bytes{") && strings.HasSuffix(k, " count") {
			n += v
		}
	}
	return n
}

// delta returns what changed from a to b.
func delta(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range b {
		if v != a[k] {
			out[k] = v - a[k]
		}
	}
	return out
}

// FuzzWireSameBytes: any query the server answers, sent to it as bytes,
// gets the same reply from the bytes path as from the message path, from
// an unsigned and from a signed switch (the first asking keeps the
// answer).
func FuzzWireSameBytes(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
		do    bool
		ecs   string
	}{
		{"www.example.org.", dns.TypeA, false, ""},
		{"WwW.example.org.", dns.TypeAAAA, true, "10.1.2.0/24"},
		{"missing.example.org.", dns.TypeA, true, "2001:db8::/56"},
		{"big40.example.org.", dns.TypeA, true, ""},
		{"x.sub.example.org.", dns.TypeNS, false, "10.0.0.0/8"},
	} {
		m := query(q.name, q.qtype)
		m.SetEdns0(1232, q.do)
		if q.ecs != "" {
			m.IsEdns0().Option = ecs(f, q.name, q.qtype, q.ecs).IsEdns0().Option
		}
		buf, err := m.Pack()
		require.NoError(f, err)
		f.Add(buf, false)
		f.Add(buf, true)
	}
	plain, _ := wireServer(f, nil)
	signed, _ := wireServer(f, nil, "dnssec key file KEY")
	f.Fuzz(func(t *testing.T, q []byte, sign bool) {
		if new(dns.Msg).Unpack(q) != nil {
			return // the server drops what does not unpack
		}
		addr := plain
		if sign {
			addr = signed
		}
		if _, ok := askBytes(addr, q, time.Second); !ok {
			return // no reply (the first asking keeps an answer)
		}
		fast, ok := askBytes(addr, q, 5*time.Second)
		require.True(t, ok, "no reply the second time")
		wireOff.Store(true)
		slow, ok := askBytes(addr, q, 5*time.Second)
		wireOff.Store(false)
		require.True(t, ok, "no reply from the message path")
		if !bytes.Equal(fast, slow) {
			a, b := new(dns.Msg), new(dns.Msg)
			_, _ = a.Unpack(fast), b.Unpack(slow)
			t.Fatalf("query %x: the bytes path wrote\n%x\n%v\nthe message path\n%x\n%v", q, fast, a, slow, b)
		}
	})
}

// askBytes sends q over UDP and returns the reply's bytes, or false after
// timeout.
func askBytes(addr string, q []byte, timeout time.Duration) ([]byte, bool) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(q); err != nil {
		return nil, false
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil, false
	}
	return buf[:n], true
}
