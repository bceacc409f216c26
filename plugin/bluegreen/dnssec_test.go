package bluegreen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// writeKey writes a dnssec-keygen style key pair for owner into dir and
// returns its base name; extra lines go into the .private file (timing
// metadata).
func writeKey(t testing.TB, dir, owner string, flags uint16, extra ...string) (string, *dns.DNSKEY) {
	t.Helper()
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600}, Flags: flags, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	priv, err := k.Generate(256)
	require.NoError(t, err)
	base := fmt.Sprintf("K%s+%03d+%05d", owner, k.Algorithm, k.KeyTag())
	require.NoError(t, os.WriteFile(filepath.Join(dir, base+".key"), []byte(k.String()+"\n"), 0o644))
	private := k.PrivateKeyString(priv)
	for _, e := range extra {
		private += e + "\n"
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, base+".private"), []byte(private), 0o600))
	return base, k
}

func TestDNSSECSetupErrors(t *testing.T) {
	dir := stdZones(t)
	good, _ := writeKey(t, dir, "example.org.", 257)
	other, _ := writeKey(t, dir, "example.net.", 257)
	past := time.Now().Add(-48 * time.Hour).UTC().Format("20060102150405")
	future := time.Now().Add(48 * time.Hour).UTC().Format("20060102150405")
	inactive, _ := writeKey(t, dir, "example.org.", 257, "Inactive: "+past)
	deleted, _ := writeKey(t, dir, "example.org.", 257, "Delete: "+past)
	later, _ := writeKey(t, dir, "example.org.", 257, "Activate: "+future)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "signed.db"), []byte(greenDB+"www RRSIG A 13 3 60 20261230000000 20261130000000 12345 example.org. AAAA\n"), 0o644))
	for _, tc := range []struct{ body, want string }{
		{"dnssec", "want 'dnssec key file KEY...'"},
		{"dnssec key", "want 'dnssec key file KEY...'"},
		{"dnssec key directory keys", "want 'dnssec key file KEY...'"},
		{"dnssec key file Kmissing", "dnssec: key Kmissing"},
		{"dnssec key file " + other, "is for example.net., which this block does not serve"},
		{"dnssec key file " + inactive, "expired: inactive since"},
		{"dnssec key file " + deleted + ".private", "expired: deleted since"},
		{"dnssec key file " + later + ".key", "not active until"},
		{"dnssec key file " + good + "\ndnssec key file " + good, "dnssec: declared twice"},
	} {
		err := setupErr(t, dir, pools3+tc.body)
		require.Error(t, err, tc.body)
		require.Contains(t, err.Error(), tc.want, tc.body)
	}
	err := setupErr(t, dir, "base base.db\npool blue blue.db\npool green signed.db\ndnssec key file "+good)
	require.ErrorContains(t, err, "holds RRSIG records")
	require.ErrorContains(t, err, "unsigned zone file")
	// Without dnssec, a signed pool file is served as it is.
	require.NoError(t, setupErr(t, dir, "base base.db\npool blue blue.db\npool green signed.db"))
}

// Two zones in one block: each needs its own key.
func TestDNSSECKeyPerZone(t *testing.T) {
	dir := stdZones(t)
	good, _ := writeKey(t, dir, "example.org.", 257)
	name := uniqueName()
	t.Cleanup(func() { forget(name) })
	err := setupErrFor(t, dir, "bluegreen example.org example.net", name, pools3+"dnssec key file "+good)
	require.ErrorContains(t, err, "no key for zone example.net.")
}

func doQuery(qname string, qtype uint16) *dns.Msg {
	m := query(qname, qtype)
	m.SetEdns0(1232, true)
	return m
}

// sigsVerify checks that every RRset of rrs other than RRSIGs has an RRSIG
// in rrs that verifies with key.
func sigsVerify(t *testing.T, rrs []dns.RR, key *dns.DNSKEY) {
	t.Helper()
	sets := map[[2]string][]dns.RR{}
	var sigs []*dns.RRSIG
	for _, rr := range rrs {
		if s, ok := rr.(*dns.RRSIG); ok {
			sigs = append(sigs, s)
			continue
		}
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		k := [2]string{rr.Header().Name, dns.Type(rr.Header().Rrtype).String()}
		sets[k] = append(sets[k], rr)
	}
	require.NotEmpty(t, sets)
	for k, set := range sets {
		ok := false
		for _, s := range sigs {
			if s.Hdr.Name == k[0] && dns.Type(s.TypeCovered).String() == k[1] {
				require.NoError(t, s.Verify(key, set), "%v", k)
				ok = true
			}
		}
		require.True(t, ok, "no RRSIG over %v", k)
	}
}

func TestDNSSECServe(t *testing.T) {
	dir := stdZones(t)
	base, key := writeKey(t, dir, "example.org.", 257)
	b := newTestBluegreen(t, dir, pools3+"weights green 1\ndnssec key file "+base)

	m, _, err := serve(context.Background(), b, doQuery("www.example.org.", dns.TypeA), "")
	require.NoError(t, err)
	require.Equal(t, "green", poolOf(m))
	sigsVerify(t, m.Answer, key)

	// Without DO, no DNSSEC records.
	m, _, err = serve(context.Background(), b, query("www.example.org.", dns.TypeA), "")
	require.NoError(t, err)
	for _, rr := range m.Answer {
		require.NotEqual(t, dns.TypeRRSIG, rr.Header().Rrtype)
	}

	m, _, err = serve(context.Background(), b, doQuery("example.org.", dns.TypeDNSKEY), "")
	require.NoError(t, err)
	require.Len(t, m.Answer, 2)
	require.Equal(t, key.PublicKey, m.Answer[0].(*dns.DNSKEY).PublicKey)
	sigsVerify(t, m.Answer, key)

	// A denial: the SOA and an NSEC covering the name, both signed.
	m, _, err = serve(context.Background(), b, doQuery("nothere.example.org.", dns.TypeA), "")
	require.NoError(t, err)
	require.Equal(t, dns.RcodeNameError, m.Rcode)
	nsec := 0
	for _, rr := range m.Ns {
		if rr.Header().Rrtype == dns.TypeNSEC {
			nsec++
		}
	}
	require.Positive(t, nsec)
	sigsVerify(t, m.Ns, key)
}

// The loader signs the views again once the signatures are six days old,
// by its clock, and not before.
func TestDNSSECResign(t *testing.T) {
	dir := stdZones(t)
	base, key := writeKey(t, dir, "example.org.", 257)
	b := newTestBluegreen(t, dir, pools3+"weights green 1\ndnssec key file "+base)
	signed := b.loader.data.Load().signedAt
	require.False(t, signed.IsZero())
	inception := func() uint32 {
		m, _, err := serve(context.Background(), b, doQuery("www.example.org.", dns.TypeA), "")
		require.NoError(t, err)
		sigsVerify(t, m.Answer, key)
		for _, rr := range m.Answer {
			if s, ok := rr.(*dns.RRSIG); ok {
				return s.Inception
			}
		}
		t.Fatal("no RRSIG")
		return 0
	}
	first := inception()
	b.loader.now = func() time.Time { return signed.Add(resignAfter - time.Second) }
	b.loader.resignIfDue()
	require.Equal(t, first, inception())
	later := signed.Add(resignAfter)
	b.loader.now = func() time.Time { return later }
	b.loader.resignIfDue()
	require.Equal(t, later, b.loader.data.Load().signedAt)
	// The dnssec plugin's signatures start three hours before signing.
	require.Equal(t, uint32(later.Add(-3*time.Hour).Unix()), inception())
}

// setupErrFor runs setup on "HEAD { name NAME; admin off; BODY }" with
// files in dir and returns its error.
func setupErrFor(t *testing.T, dir, head, name, body string) error {
	t.Helper()
	c := caddy.NewTestController("dns", head+" {\nname "+name+"\nadmin off\n"+body+"\n}")
	dnsserver.GetConfig(c).Root = dir
	return setup(c)
}
