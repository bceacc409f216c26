// Package test holds the integration and end-to-end tests of bluegreen: they
// start real CoreDNS servers (in process from Corefile strings, or the built
// binary) and query them over UDP and TCP.
package test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	coretest "github.com/coredns/coredns/test"

	"github.com/bluegreen-dns/bluegreen/internal/freeport"
	"github.com/bluegreen-dns/bluegreen/test/harness"

	_ "github.com/bluegreen-dns/bluegreen/internal/build" // Standard plugins plus bluegreen.

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

func init() { clog.Discard() }

// zoneDir copies the zone files of testdata/ into a fresh temporary
// directory and returns it, so a test may change them.
func zoneDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"base.db", "blue.db", "green.db", "red.db", "net.db"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	return dir
}

// writeFileAtomic replaces path with data in one rename, so a reload never
// reads half a file.
func writeFileAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, data, 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// server is a CoreDNS instance started in process.
type server struct {
	inst     *caddy.Instance
	udp, tcp string
}

// startServer starts a CoreDNS server from a Corefile; every "DIR" in it is
// replaced by dir. The server stops when the test ends.
func startServer(t testing.TB, corefile, dir string) *server {
	t.Helper()
	corefile = strings.ReplaceAll(corefile, "DIR", dir)
	inst, udp, tcp, err := coretest.CoreDNSServerAndPorts(corefile)
	require.NoError(t, err, "starting CoreDNS with:\n%s", corefile)
	require.NotEmpty(t, udp, "no UDP listener")
	require.NotEmpty(t, tcp, "no TCP listener")
	s := &server{inst: inst, udp: udp, tcp: tcp}
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() {
	if s.inst != nil {
		s.inst.Stop()
		s.inst.ShutdownCallbacks()
		s.inst = nil
	}
}

// bgCorefile is a server with a bluegreen block for example.org (the block's
// body is given) and the file plugin serving example.net, the target of the
// pools' out-of-zone CNAMEs.
func bgCorefile(body string) string {
	return `.:0 {
	bind 127.0.0.1
	bluegreen example.org {
		admin off
		base DIR/base.db
		pool blue DIR/blue.db
		pool green DIR/green.db
		` + body + `
	}
	file DIR/net.db example.net
}`
}

// query builds a query with EDNS0 (bufsize 1232) and, when ecs is valid, an
// EDNS Client Subnet option for that prefix.
func query(name string, qtype uint16, ecs netip.Prefix) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	if ecs.IsValid() {
		m.IsEdns0().Option = append(m.IsEdns0().Option, ecsOption(ecs))
	}
	return m
}

func ecsOption(p netip.Prefix) *dns.EDNS0_SUBNET {
	p = p.Masked()
	e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: uint8(p.Bits())}
	if p.Addr().Is4() {
		e.Family = 1
		a := p.Addr().As4()
		e.Address = net.IP(a[:])
	} else {
		e.Family = 2
		a := p.Addr().As16()
		e.Address = net.IP(a[:])
	}
	return e
}

// replyECS returns the reply's ECS option, or nil.
func replyECS(m *dns.Msg) *dns.EDNS0_SUBNET {
	opt := m.IsEdns0()
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			return e
		}
	}
	return nil
}

// exchange sends m over net ("udp" or "tcp") and returns the reply.
func exchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	var (
		r   *dns.Msg
		err error
	)
	for range 3 { // UDP may drop a datagram under -race; retry a little.
		if r, _, err = c.Exchange(m.Copy(), addr); err == nil {
			return r
		}
	}
	require.NoError(t, err, "%s query %s to %s", network, m.Question[0].Name, addr)
	return r
}

// both runs f for UDP and TCP.
func both(t *testing.T, s *server, f func(t *testing.T, network, addr string)) {
	t.Run("udp", func(t *testing.T) { f(t, "udp", s.udp) })
	t.Run("tcp", func(t *testing.T) { f(t, "tcp", s.tcp) })
}

// poolOfName returns the pool a domain name belongs to: a label that is the
// pool's name or ends in "-" and the pool's name (svc-blue.example.org.,
// green.example.net.).
func poolOfName(name string) string {
	for _, label := range dns.SplitDomainName(name) {
		for _, p := range []string{"blue", "green", "red"} {
			if label == p || strings.HasSuffix(label, "-"+p) {
				return p
			}
		}
	}
	return ""
}

// poolOfRR returns the pool a record can only have come from, or "" for
// records that belong to no pool (base records, SOA, NS, OPT).
func poolOfRR(rr dns.RR) string {
	if p := poolOfName(rr.Header().Name); p != "" {
		return p
	}
	v4 := func(ip net.IP) string {
		ip4 := ip.To4()
		if ip4 == nil || ip4[0] != 10 {
			return ""
		}
		return map[byte]string{1: "blue", 2: "green", 3: "red"}[ip4[1]]
	}
	switch x := rr.(type) {
	case *dns.A:
		return v4(x.A)
	case *dns.AAAA:
		a, _ := netip.AddrFromSlice(x.AAAA)
		for p, pool := range map[string]string{"2001:db8:1::/48": "blue", "2001:db8:2::/48": "green", "2001:db8:3::/48": "red"} {
			if netip.MustParsePrefix(p).Contains(a) {
				return pool
			}
		}
	case *dns.TXT:
		if len(x.Txt) == 1 {
			switch x.Txt[0] {
			case "blue", "green", "red":
				return x.Txt[0]
			}
		}
	case *dns.CNAME:
		return poolOfName(x.Target)
	case *dns.SRV:
		return poolOfName(x.Target)
	case *dns.MX:
		return poolOfName(x.Mx)
	}
	return ""
}

// poolsOf returns every pool that records of m (all sections) come from.
func poolsOf(m *dns.Msg) map[string]int {
	seen := map[string]int{}
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if p := poolOfRR(rr); p != "" {
				seen[p]++
			}
		}
	}
	return seen
}

// onePool fails unless every pool record in m comes from a single pool,
// and returns it ("" when m holds no pool record).
func onePool(t testing.TB, m *dns.Msg) string {
	t.Helper()
	seen := poolsOf(m)
	require.LessOrEqual(t, len(seen), 1, "answer mixes pools %v:\n%s", seen, m)
	for p := range seen {
		return p
	}
	return ""
}

// subnet returns the i-th distinct client /24, counting from 11.0.0.0.
func subnet(i int) netip.Prefix {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], 0x0B000000+uint32(i)<<8)
	return netip.PrefixFrom(netip.AddrFrom4(a), 24)
}

// refPool is the pool index the spec's formula gives key (harness.RefPool,
// an implementation independent of the plugin's).
func refPool(switchName string, key netip.Addr, weights []uint64) int {
	return harness.RefPool(switchName, key, weights)
}

// exchangeMany sends every message over one UDP socket, keeping up to
// window queries in flight, and returns the replies in order. A query with
// no reply after 400ms is sent again; the test fails when a query gets no
// reply after 8 tries or when the whole batch takes longer than limit.
func exchangeMany(t testing.TB, addr string, msgs []*dns.Msg, window int, limit time.Duration) []*dns.Msg {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	require.NoError(t, err)
	defer conn.Close()
	if uc, ok := conn.(*net.UDPConn); ok {
		uc.SetReadBuffer(4 << 20)
	}

	type flight struct {
		idx   int
		wire  []byte
		sent  time.Time
		tries int
	}
	var (
		mu       sync.Mutex
		inflight = map[uint16]*flight{}
		replies  = make([]*dns.Msg, len(msgs))
		got      int
		failure  error
		slots    = make(chan struct{}, window)
		done     = make(chan struct{})
		freeIDs  = make(chan uint16, 65536)
	)
	for id := range 65536 {
		freeIDs <- uint16(id)
	}
	deadline := time.Now().Add(limit)
	conn.SetReadDeadline(deadline)

	go func() { // receiver
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				mu.Lock()
				if got < len(msgs) && failure == nil {
					failure = fmt.Errorf("after %d of %d replies: %v", got, len(msgs), err)
				}
				mu.Unlock()
				return
			}
			r := new(dns.Msg)
			if r.Unpack(buf[:n]) != nil {
				continue
			}
			mu.Lock()
			f, ok := inflight[r.Id]
			if ok && len(r.Question) == 1 && strings.EqualFold(r.Question[0].Name, msgs[f.idx].Question[0].Name) {
				delete(inflight, r.Id)
				replies[f.idx] = r
				got++
				freeIDs <- r.Id
				<-slots
			}
			finished := got == len(msgs)
			mu.Unlock()
			if finished {
				return
			}
		}
	}()

	go func() { // retransmitter
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				mu.Lock()
				for _, f := range inflight {
					if now.Sub(f.sent) < 400*time.Millisecond {
						continue
					}
					if f.tries >= 8 && failure == nil {
						failure = fmt.Errorf("no reply to query %d (%s) after %d tries", f.idx, msgs[f.idx].Question[0].Name, f.tries)
						conn.SetReadDeadline(time.Now())
					}
					f.tries++
					f.sent = now
					conn.Write(f.wire)
				}
				mu.Unlock()
			}
		}
	}()

send:
	for i, m := range msgs {
		select {
		case slots <- struct{}{}:
		case <-done:
			break send
		}
		id := <-freeIDs
		c := m.Copy()
		c.Id = id
		wire, err := c.Pack()
		require.NoError(t, err)
		mu.Lock()
		inflight[id] = &flight{idx: i, wire: wire, sent: time.Now(), tries: 1}
		mu.Unlock()
		conn.Write(wire)
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	require.NoError(t, failure)
	require.Equal(t, len(msgs), got, "replies received")
	return replies
}

// poolsByClient asks name TXT for every client subnet over ECS and returns
// the pool of each reply (the TXT record names it).
func poolsByClient(t testing.TB, addr, name string, clients []netip.Prefix, limit time.Duration) []string {
	t.Helper()
	msgs := make([]*dns.Msg, len(clients))
	for i, c := range clients {
		msgs[i] = query(name, dns.TypeTXT, c)
	}
	replies := exchangeMany(t, addr, msgs, 256, limit)
	pools := make([]string, len(replies))
	for i, r := range replies {
		require.Equal(t, dns.RcodeSuccess, r.Rcode, "client %s: %s", clients[i], r)
		pools[i] = onePool(t, r)
		require.NotEmpty(t, pools[i], "client %s: no pool record in\n%s", clients[i], r)
	}
	return pools
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback port free for TCP and UDP (see
// internal/freeport).
func freePort(t testing.TB) int {
	t.Helper()
	return freeport.T(t)
}
