package bluegreen

import (
	"encoding/binary"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
)

// A prepared answer is also kept packed (wireAnswer), and ServeDNS writes
// those bytes itself when nothing on the way to the socket needs the reply
// as a message (see wireWriter: CoreDNS's own writers and the metrics
// plugin's recorder are fine; cache, log, dnstap, rewrite and the like
// get a *dns.Msg as before). The bytes are exactly those the server would
// have sent for the message: the header and question as SetReply makes
// them, the records with their TTLs clamped, and the OPT CoreDNS's
// SizeAndDo leaves (wireReply lists when it steps aside).
// TestWireSameBytes holds the two paths to the same bytes and metrics.

// wireOff turns the bytes path off (tests compare the two paths), and
// wireWritten, when set before any server starts (by tests), is called
// for every answer written as bytes.
var (
	wireOff     atomic.Bool
	wireWritten func()
)

// wireAnswer is a prepared answer packed for its lower-case question of
// class IN, without an OPT: ID 0, RD and CD clear.
type wireAnswer struct {
	buf  []byte
	qend int     // the end of the question's name
	ttls []ttlAt // every record's TTL, to clamp per query
	// maxTTL is the largest TTL of the records, or none when there are
	// no records: the TTL ServeDNS notes is its clamp.
	maxTTL uint32
	none   bool
}

type ttlAt struct {
	off int
	ttl uint32
}

// wire returns pa packed for key's question, built on first use; nil when
// pa cannot be written as bytes (a SERVFAIL, a record miekg/dns cannot
// pack).
func (pa *prepared) wire(key preparedKey) *wireAnswer {
	if w := pa.packed.Load(); w != nil {
		if w.buf == nil {
			return nil
		}
		return w
	}
	w := packAnswer(pa, key)
	if w == nil {
		w = &wireAnswer{}
	}
	pa.packed.Store(w)
	if w.buf == nil {
		return nil
	}
	return w
}

// packAnswer packs pa as ServeDNS's message path would, for a lower-case
// question of class IN; nil when it cannot.
func packAnswer(pa *prepared, key preparedKey) *wireAnswer {
	if pa.result == file.ServerFailure {
		return nil
	}
	m := new(dns.Msg)
	m.Response = true
	m.Opcode = dns.OpcodeQuery
	m.Authoritative = true
	m.Question = []dns.Question{{Name: key.qname, Qtype: key.qtype, Qclass: dns.ClassINET}}
	m.Answer, m.Ns, m.Extra = pa.answer, pa.ns, pa.extra
	switch pa.result {
	case file.NameError:
		m.Rcode = dns.RcodeNameError
	case file.Delegation:
		m.Authoritative = len(m.Answer) > 0
	}
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			return nil
		}
	}
	buf, err := m.Pack()
	if err != nil {
		return nil
	}
	w := &wireAnswer{buf: buf, none: len(pa.answer)+len(pa.ns)+len(pa.extra) == 0}
	w.maxTTL = maxTTL(pa.answer, pa.ns, pa.extra)
	// The records' TTLs: past the question, each record is its owner
	// name, type, class, TTL, RDLENGTH and RDATA.
	off, ok := skipName(buf, 12)
	w.qend = off
	off += 4
	for i := 0; ok && i < len(pa.answer)+len(pa.ns)+len(pa.extra); i++ {
		if off, ok = skipName(buf, off); !ok || off+10 > len(buf) {
			return nil
		}
		w.ttls = append(w.ttls, ttlAt{off: off + 4, ttl: binary.BigEndian.Uint32(buf[off+4:])})
		off += 10 + int(binary.BigEndian.Uint16(buf[off+8:]))
	}
	if !ok || off != len(buf) {
		return nil
	}
	return w
}

// skipName returns the offset past the domain name at off.
func skipName(buf []byte, off int) (int, bool) {
	for off < len(buf) {
		c := int(buf[off])
		switch {
		case c == 0:
			return off + 1, true
		case c&0xC0 == 0xC0:
			return off + 2, off+2 <= len(buf)
		case c&0xC0 != 0:
			return 0, false
		}
		off += 1 + c
	}
	return 0, false
}

// rawType is the type of miekg/dns's own ResponseWriter, and trackerType
// that of the writer CoreDNS's plugin.NextOrFailure hands each plugin (it
// notes which plugin wrote), once seen.
var rawType, trackerType atomic.Pointer[reflect.Type]

// isType reports whether t is *pkg.name, learning it into known.
func isType(t reflect.Type, known *atomic.Pointer[reflect.Type], pkg, name string) bool {
	if k := known.Load(); k != nil {
		return t == *k
	}
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct || t.Elem().Name() != name || t.Elem().PkgPath() != pkg {
		return false
	}
	learned := t // t itself stays on the stack
	known.Store(&learned)
	return true
}

// wireWriter reports whether nothing between w and the socket needs the
// reply as a message, and returns the metrics plugin's recorder on the
// way, if any (it needs the rcode). Between them may be the writers
// plugin.NextOrFailure hands out (a Write goes through them as a WriteMsg
// does, noting the plugin), one metrics Recorder (a Write adds to its
// length; ServeDNS sets its rcode), and last CoreDNS's ScrubWriter around
// miekg/dns's own writer. Anything else (cache, log, dnstap, rewrite,
// DoH, gRPC, a test's recorder) takes the message path.
func wireWriter(w dns.ResponseWriter) (*metrics.Recorder, bool) {
	var rec *metrics.Recorder
	for range 16 { // a NextOrFailure writer per plugin ahead, and the recorder
		switch x := w.(type) {
		case *request.ScrubWriter:
			return rec, isType(reflect.TypeOf(x.ResponseWriter), &rawType, "github.com/miekg/dns", "response")
		case *metrics.Recorder:
			if rec != nil || x.Recorder == nil {
				return nil, false
			}
			rec, w = x, x.Recorder.ResponseWriter
		default:
			if !isType(reflect.TypeOf(w), &trackerType, "github.com/coredns/coredns/plugin", "pluginWriter") {
				return nil, false
			}
			f := reflect.ValueOf(w).Elem().Field(0)
			if f.Type() != responseWriterType {
				return nil, false
			}
			w, _ = f.Interface().(dns.ResponseWriter)
		}
	}
	return nil, false
}

var responseWriterType = reflect.TypeFor[dns.ResponseWriter]()

var wireBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1232); return &b }}

// wireReply returns pa's packed answer to r, in a buffer of wireBufs, to
// write to w, and the largest TTL in it (see Bluegreen.count). A question
// in mixed case (0x20) is echoed as asked. It steps aside (false) for
// whatever the message path would handle differently: a writer that
// needs a message (see wireWriter), a question not of class IN, an OPT
// with options other than ECS, and a reply that the ScrubWriter would
// truncate or compress (bigger than the client's buffer, or over 1480
// bytes on UDP over IPv4 and 1220 over IPv6).
func wireReply(w dns.ResponseWriter, r *dns.Msg, st *request.Request, key preparedKey, pa *prepared, cl *client, scope uint8, max, min uint32) (*[]byte, uint32, bool) {
	if wireOff.Load() {
		return nil, 0, false
	}
	rec, ok := wireWriter(w)
	if !ok || len(r.Question) == 0 || r.Question[0].Qclass != dns.ClassINET {
		return nil, 0, false
	}
	qname := r.Question[0].Name
	if qname != key.qname && !strings.EqualFold(qname, key.qname) {
		return nil, 0, false // escapes that lower-case differently
	}
	if cl.opt != nil && len(cl.opt.Option) > 0 && (cl.ecs == nil || len(cl.opt.Option) != 1) {
		return nil, 0, false
	}
	wa := pa.wire(key)
	if wa == nil {
		return nil, 0, false
	}
	size := len(wa.buf)
	var ecsLen int
	if cl.opt != nil {
		size += 11
		if cl.ecs != nil {
			ecsLen = 4 + (int(cl.ecs.SourceNetmask)+7)/8
			size += 4 + ecsLen
		}
	}
	if size > st.Size() {
		return nil, 0, false
	}
	if st.Proto() == "udp" && (size > 1480 && st.Family() == 1 || size > 1220 && st.Family() == 2) {
		return nil, 0, false
	}

	bp := wireBufs.Get().(*[]byte)
	buf := append((*bp)[:0], wa.buf...)
	binary.BigEndian.PutUint16(buf, r.Id)
	if qname != key.qname {
		// The question as asked (0x20 case): the same length, and
		// nothing points into it (no compression).
		if end, err := dns.PackDomainName(qname, buf, 12, nil, false); err != nil || end != wa.qend {
			wireBufs.Put(bp)
			return nil, 0, false
		}
	}
	if r.RecursionDesired {
		buf[2] |= 0x01
	}
	if r.CheckingDisabled {
		buf[3] |= 0x10
	}
	for _, t := range wa.ttls {
		binary.BigEndian.PutUint32(buf[t.off:], clamp(t.ttl, max, min))
	}
	if cl.opt != nil {
		// The OPT SizeAndDo leaves: the client's UDP size, version 0, no
		// extended RCODE, the DO bit (and, with no ECS, the rest of the
		// request's flags' upper byte); with ECS, the option echoed with
		// the scope.
		binary.BigEndian.PutUint16(buf[10:], binary.BigEndian.Uint16(buf[10:])+1)
		flags := uint16(cl.opt.Hdr.Ttl & 0xff00)
		if cl.ecs != nil {
			flags &= 0x8000
		}
		buf = append(buf, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(cl.opt.UDPSize()>>8), byte(cl.opt.UDPSize()), 0, 0, byte(flags>>8), byte(flags))
		if cl.ecs == nil {
			buf = append(buf, 0, 0)
		} else {
			e := cl.ecs
			if scope > e.SourceNetmask {
				scope = e.SourceNetmask
			}
			buf = append(buf, byte((4+ecsLen)>>8), byte(4+ecsLen), 0, dns.EDNS0SUBNET, byte(ecsLen>>8), byte(ecsLen),
				byte(e.Family>>8), byte(e.Family), e.SourceNetmask, scope)
			n := ecsLen - 4
			switch e.Family {
			case 1:
				buf = append(buf, e.Address.To4()[:n]...)
			case 2:
				buf = append(buf, e.Address.To16()[:n]...)
			}
		}
	}
	*bp = buf
	if rec != nil {
		rec.Rcode = int(buf[3] & 0x0f)
	}
	if wa.none {
		return bp, 0, true
	}
	return bp, clamp(wa.maxTTL, max, min), true
}
