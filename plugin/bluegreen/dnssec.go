package bluegreen

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coredns/coredns/plugin/dnssec"
	"github.com/coredns/coredns/plugin/pkg/cache"
	"github.com/coredns/coredns/request"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/zones"

	"github.com/miekg/dns"
)

// resignAfter is how old the signatures may grow before the views are
// signed again. CoreDNS's dnssec plugin signs for eight days and makes new
// signatures once less than two remain; so does the switch.
const resignAfter = 6 * 24 * time.Hour

// zoneKey is one key of `dnssec key file KEY...`, as the dnssec plugin
// reads it, with where it came from.
type zoneKey struct {
	*dnssec.DNSKEY
	file string // the key's base name, Kexample.org.+013+12345
}

// dnssecProp reads `dnssec key file KEY...`: the dnssec plugin's words and
// key files (KEY is the base name, or the .key or .private file). Keys
// relative to the root plugin's directory are found there. validate checks
// that each key belongs to a zone of the block and each zone has one.
func (p *parser) dnssecProp(args []string, _ string) error {
	if len(args) < 3 || args[0] != "key" || args[1] != "file" {
		return p.c.Errf("dnssec: want 'dnssec key file KEY...'")
	}
	for _, k := range args[2:] {
		base := strings.TrimSuffix(strings.TrimSuffix(k, ".key"), ".private")
		base = p.resolve(base)
		key, err := dnssec.ParseKeyFile(base+".key", base+".private")
		if err != nil {
			return p.c.Errf("dnssec: key %s: %v", k, err)
		}
		if err := keyActive(base+".private", time.Now()); err != nil {
			return p.c.Errf("dnssec: key %s: %v", k, err)
		}
		p.cfg.keys = append(p.cfg.keys, zoneKey{DNSKEY: key, file: filepath.Base(base)})
	}
	return nil
}

// keyActive fails when the key's timing metadata (dnssec-keygen's
// Activate, Inactive and Delete lines in the .private file) says it must
// not sign now: signatures made with it would be withdrawn or fail.
func keyActive(private string, now time.Time) error {
	f, err := os.Open(private)
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		field, value, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch field {
		case "Activate", "Inactive", "Delete":
		default:
			continue
		}
		at, err := time.Parse("20060102150405", value)
		if err != nil {
			return fmt.Errorf("%s: %s: not a time (YYYYMMDDHHMMSS): %q", private, field, value)
		}
		switch {
		case field == "Activate" && now.Before(at):
			return fmt.Errorf("not active until %s (Activate in %s)", at.Format(time.RFC3339), private)
		case field == "Inactive" && !now.Before(at):
			return fmt.Errorf("expired: inactive since %s (Inactive in %s); generate a new key", at.Format(time.RFC3339), private)
		case field == "Delete" && !now.Before(at):
			return fmt.Errorf("expired: deleted since %s (Delete in %s); generate a new key", at.Format(time.RFC3339), private)
		}
	}
	return s.Err()
}

// validateKeys makes one signer per zone of the block from cfg.keys: each
// key's owner must be one of the zones, and each zone must have a key.
func (p *parser) validateKeys() error {
	cfg := p.cfg
	if len(cfg.keys) == 0 {
		return nil
	}
	pos := p.declared["dnssec"]
	byOrigin := map[string][]*dnssec.DNSKEY{}
	for _, k := range cfg.keys {
		owner := strings.ToLower(dns.Fqdn(k.K.Hdr.Name))
		found := false
		for _, o := range cfg.origins {
			if o == owner {
				found = true
			}
		}
		if !found {
			return errAt(pos, "dnssec: key %s (key tag %d) is for %s, which this block does not serve (%s)", k.file, k.K.KeyTag(), owner, strings.Join(cfg.origins, " "))
		}
		byOrigin[owner] = append(byOrigin[owner], k.DNSKEY)
	}
	cfg.signers = map[string]*zoneSigner{}
	for _, o := range cfg.origins {
		keys := byOrigin[o]
		if len(keys) == 0 {
			return errAt(pos, "dnssec: no key for zone %s; every zone of the block is signed", o)
		}
		cfg.signers[o] = newZoneSigner(o, keys)
	}
	return nil
}

// zoneSigner signs one zone's views with CoreDNS's dnssec plugin: its
// Sign makes the RRSIGs (with a KSK and ZSKs, the KSKs sign the DNSKEY set
// and the ZSKs the rest, as the plugin does; a single key signs all).
type zoneSigner struct {
	origin string
	keys   []*dnssec.DNSKEY
	split  bool
}

func newZoneSigner(origin string, keys []*dnssec.DNSKEY) *zoneSigner {
	ksk, zsk := 0, 0
	for _, k := range keys {
		switch k.K.Flags {
		case 257:
			ksk++
		case 256:
			zsk++
		}
	}
	return &zoneSigner{origin: origin, keys: keys, split: ksk > 0 && zsk > 0}
}

// DNSKEYs implements zones.Signer.
func (s *zoneSigner) DNSKEYs() []*dns.DNSKEY {
	out := make([]*dns.DNSKEY, len(s.keys))
	for i, k := range s.keys {
		out[i] = k.K
	}
	return out
}

// signCache is the capacity of a signing run's signature cache (the
// dnssec plugin's; a run signs every RRset once, so it stays small).
const signCache = 1024

// Begin implements zones.Signer. Each run gets its own dnssec plugin
// instance and cache: the plugin's cache judges signatures by the real
// clock, and a run's are all made at now.
func (s *zoneSigner) Begin(now time.Time) func([]dns.RR) ([]dns.RR, error) {
	d := dnssec.New([]string{s.origin}, s.keys, s.split, nil, cache.New[[]dns.RR](signCache))
	return func(rrs []dns.RR) ([]dns.RR, error) {
		m := new(dns.Msg)
		m.Response = true
		m.Answer = rrs[:len(rrs):len(rrs)]
		out := d.Sign(request.Request{Req: m, Zone: s.origin}, now, "bluegreen")
		sigs := out.Answer[len(rrs):]
		// The plugin leaves an RRset it failed to sign unsigned.
		signed := map[[2]string]bool{}
		for _, rr := range sigs {
			sig := rr.(*dns.RRSIG)
			signed[[2]string{sig.Hdr.Name, dns.Type(sig.TypeCovered).String()}] = true
		}
		for _, rr := range rrs {
			if !signed[[2]string{rr.Header().Name, dns.Type(rr.Header().Rrtype).String()}] {
				return nil, fmt.Errorf("no signature made for %s %s", rr.Header().Name, dns.Type(rr.Header().Rrtype))
			}
		}
		return sigs, nil
	}
}

var _ zones.Signer = (*zoneSigner)(nil)
