package bluegreen

import (
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// client is what the selection needs to know about the asker.
type client struct {
	key   netip.Addr // address the sticky hash is computed over (masked)
	addr  netip.Addr // address pins are matched against
	ecs   *dns.EDNS0_SUBNET
	opt   *dns.OPT
	scope uint8 // scope prefix length of a switched answer, in the ECS option's family
	// formErr: the query has more than one OPT (RFC 6891 §6.1.1) or a
	// malformed ECS option (RFC 7871 §6, §7.1.2); it gets FORMERR.
	formErr bool
}

// requestECS returns the request's OPT and its (first) EDNS Client Subnet
// option.
func requestECS(r *dns.Msg) (*dns.OPT, *dns.EDNS0_SUBNET) {
	opt := r.IsEdns0()
	if opt == nil {
		return nil, nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			return opt, e
		}
	}
	return opt, nil
}

// ecsWireOK reports whether e, the ECS option of opt, came with exactly
// the ADDRESS octets its SOURCE PREFIX-LENGTH needs (RFC 7871 §6). The
// decoder pads or truncates ADDRESS to a full address, so the length on
// the wire is recovered from the OPT's RDLENGTH minus the other options.
// An OPT built in memory (RDLENGTH 0, e.g. by rewrite) is not checked.
func ecsWireOK(opt *dns.OPT, e *dns.EDNS0_SUBNET) bool {
	rdlen := int(opt.Hdr.Rdlength)
	if rdlen == 0 {
		return true
	}
	want := 4 + 4 + (int(e.SourceNetmask)+7)/8
	if len(opt.Option) == 1 {
		return rdlen == want
	}
	others := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	for _, o := range opt.Option {
		if o != dns.EDNS0(e) {
			others.Option = append(others.Option, o)
		}
	}
	const hdr = 11 // root name, type, class, TTL, RDLENGTH
	buf := make([]byte, hdr+rdlen)
	n, err := dns.PackRR(others, buf, 0, nil, false)
	return err == nil && n-hdr+want == rdlen
}

// opts returns how many OPT records m holds.
func opts(m *dns.Msg) int {
	n := 0
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	return n
}

// moreECS reports whether opt holds more than one ECS option.
func moreECS(opt *dns.OPT) bool {
	n := 0
	for _, o := range opt.Option {
		if _, ok := o.(*dns.EDNS0_SUBNET); ok {
			n++
		}
	}
	return n > 1
}

// ecsAddr returns the client subnet an ECS option names, as an address
// (masked) and a prefix length, or false when the option is malformed in
// a way RFC 7871 §7.1.2 has a server reject with FORMERR: a SCOPE
// PREFIX-LENGTH other than 0 in a query, an unknown FAMILY, a SOURCE
// PREFIX-LENGTH longer than the family's addresses, an address that is
// missing, of the other family, or has bits set beyond the source prefix.
//
// An IPv4-mapped IPv6 subnet (::ffff:a.b.c.d/p, p >= 96) is the IPv4
// subnet a.b.c.d/(p-96), as the source address ::ffff:a.b.c.d is a.b.c.d:
// pins and the sticky key see the IPv4 client. A /96 names no IPv4 bits:
// prefix 0, the source address is the client.
//
// miekg/dns unpacks ADDRESS into a full-length address; ecsWireOK checks
// how many octets came on the wire.
func ecsAddr(e *dns.EDNS0_SUBNET) (netip.Addr, int, bool) {
	var a netip.Addr
	if e.SourceScope != 0 {
		return a, 0, false
	}
	bits := int(e.SourceNetmask)
	switch e.Family {
	case 0:
		// Family 0 with source prefix 0 is legal (dig's +subnet=0): no
		// address, "do not use my subnet". It is echoed with scope 0.
		return a, 0, bits == 0
	case 1:
		ip := e.Address.To4()
		if ip == nil || bits > 32 {
			return a, 0, false
		}
		a = netip.AddrFrom4([4]byte(ip))
	case 2:
		if len(e.Address) != net.IPv6len || bits > 128 {
			return a, 0, false
		}
		a = netip.AddrFrom16([16]byte(e.Address))
	default:
		return a, 0, false
	}
	if p, _ := a.Prefix(bits); p.Addr() != a {
		return a, 0, false
	}
	if a.Is4In6() {
		// Masked and mapped: bits >= 96.
		return a.Unmap(), bits - 96, true
	}
	return a, bits, true
}

// sourceAddr returns the transport source address of the query.
func sourceAddr(w dns.ResponseWriter) netip.Addr {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// ecsReply is a reply's OPT with its ECS option, in one allocation.
type ecsReply struct {
	opt   dns.OPT
	ecs   dns.EDNS0_SUBNET
	opts  [1]dns.EDNS0
	extra [1]dns.RR
}

// withReplyOPT returns extra with an OPT appended that echoes the request's
// ECS with the given scope. The server keeps an OPT the reply already has
// (it would strip ECS from a copy of the request's). extra may belong to a
// zone tree: it is never appended to in place.
func withReplyOPT(extra []dns.RR, req *dns.OPT, e *dns.EDNS0_SUBNET, scope uint8) []dns.RR {
	r := &ecsReply{}
	r.opt.Hdr = dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}
	r.opt.SetUDPSize(req.UDPSize())
	if req.Do() {
		r.opt.SetDo()
	}
	if scope > e.SourceNetmask {
		scope = e.SourceNetmask
	}
	r.ecs = dns.EDNS0_SUBNET{
		Code:          dns.EDNS0SUBNET,
		Family:        e.Family,
		SourceNetmask: e.SourceNetmask,
		SourceScope:   scope,
		Address:       e.Address,
	}
	r.opts[0] = &r.ecs
	r.opt.Option = r.opts[:]
	if len(extra) == 0 {
		r.extra[0] = &r.opt
		return r.extra[:]
	}
	return append(extra[:len(extra):len(extra)], &r.opt)
}

// replyOPT returns an OPT for the reply that echoes the request's ECS with
// the given scope.
func replyOPT(req *dns.OPT, e *dns.EDNS0_SUBNET, scope uint8) *dns.OPT {
	return withReplyOPT(nil, req, e, scope)[0].(*dns.OPT)
}
