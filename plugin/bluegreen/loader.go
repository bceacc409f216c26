package bluegreen

import (
	"crypto/sha256"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/zones"
)

// baseLabel is the pool label used for base in metrics and metadata. It is
// not a valid pool name, so it never clashes with one.
const baseLabel = "_base"

// zoneData is one generation of a switch's zone data: a zones.Zone per
// served origin.
type zoneData struct {
	byOrigin map[string]*zones.Zone
	answers  map[string]*answers // prepared answers by origin
	hashes   map[string][32]byte // file path -> content hash
	records  map[string]int      // file path -> records parsed from it
	shadowed []string            // base records a pool's name hides
	warnings []string            // about the files parsed for this generation
	signedAt time.Time           // the oldest signatures (zero when not signed)
}

// loader reads a switch's zone files and re-reads them when they change.
type loader struct {
	cfg  *config
	data atomic.Pointer[zoneData]

	mu         sync.Mutex
	lastErr    string
	lastShadow string // the shadowed base records last warned about
	done       chan struct{}
	wg         sync.WaitGroup
	now        func() time.Time // the signing clock; tests set it
}

func newLoader(cfg *config) *loader {
	l := &loader{cfg: cfg, now: time.Now}
	// Every series exists from the start at 0, so alerts and rate() see
	// the first reload (or failure) as a change.
	for _, f := range l.files() {
		zoneReloads.WithLabelValues(cfg.name, f[0], "success")
		zoneReloads.WithLabelValues(cfg.name, f[0], "error")
	}
	return l
}

// files returns every zone file with its pool label.
func (l *loader) files() [][2]string {
	var fs [][2]string
	if l.cfg.base != "" {
		fs = append(fs, [2]string{baseLabel, l.cfg.base})
	}
	for _, p := range l.cfg.pools {
		fs = append(fs, [2]string{p.name, p.path})
	}
	return fs
}

// read returns the content of every file by path; on error it also returns
// the file that failed.
func (l *loader) read() (map[string][]byte, [2]string, error) {
	out := map[string][]byte{}
	for _, f := range l.files() {
		b, err := zones.ReadFile(f[1])
		if err != nil {
			if f[0] == baseLabel {
				return nil, f, fmt.Errorf("base: %v", err)
			}
			return nil, f, fmt.Errorf("pool %q: %v", f[0], err)
		}
		out[f[1]] = b
	}
	return out, [2]string{}, nil
}

// build parses contents into a new generation; old is the generation it
// replaces (nil at setup), whose unchanged files and trees are reused.
func (l *loader) build(contents map[string][]byte, old *zoneData) (*zoneData, error) {
	return l.buildSigned(contents, old, false)
}

// buildSigned is build; with resign, the views of a signed switch are
// signed again in full (the re-sign timer), else only what changed is.
func (l *loader) buildSigned(contents map[string][]byte, old *zoneData, resign bool) (*zoneData, error) {
	var had map[string]int
	if old != nil {
		had = old.records
	}
	d := &zoneData{byOrigin: map[string]*zones.Zone{}, answers: map[string]*answers{}, hashes: map[string][32]byte{}, records: map[string]int{}}
	for path, b := range contents {
		d.hashes[path] = sha256.Sum256(b)
	}
	var base *zones.Source
	if l.cfg.base != "" {
		base = &zones.Source{Path: l.cfg.base, Data: contents[l.cfg.base]}
	}
	pools := make([]zones.Source, len(l.cfg.pools))
	for i, p := range l.cfg.pools {
		pools[i] = zones.Source{Name: p.name, Path: p.path, Data: contents[p.path]}
	}
	for _, origin := range l.cfg.origins {
		opts := zones.Options{BoundTTL: true, TTLMax: l.cfg.ttlMax, TTLMin: l.cfg.ttlMin, Had: had}
		if old != nil {
			opts.Prev = old.byOrigin[origin]
		}
		if s := l.cfg.signers[origin]; s != nil {
			opts.Signer, opts.Now, opts.Resign = s, l.now(), resign
		}
		z, err := zones.BuildWith(origin, base, pools, opts)
		if err != nil {
			return nil, err
		}
		d.byOrigin[origin] = z
		if !z.SignedAt.IsZero() && (d.signedAt.IsZero() || z.SignedAt.Before(d.signedAt)) {
			d.signedAt = z.SignedAt
		}
		d.answers[origin] = &answers{}
		// Every origin parses the same files to the same number of
		// records (a record outside the origin is an error).
		for path, n := range z.Records {
			d.records[path] = n
		}
		for _, s := range z.Shadowed {
			d.shadowed = append(d.shadowed, s.String())
		}
		for _, w := range z.Warnings {
			if !slices.Contains(d.warnings, w) {
				d.warnings = append(d.warnings, w)
			}
		}
	}
	return d, nil
}

// maxShadowed is how many shadowed base records a warning names.
const maxShadowed = 10

// warnShadowed logs the base records that are never served because a pool
// holds their name, once for each distinct set. SPEC §2 makes such names
// switched on purpose, but a base record that silently stops being served
// (a pool's "*" swallowing base's ns1, a pool's apex A hiding base's apex
// MX) is usually a mistake.
func (l *loader) warnShadowed(d *zoneData) {
	list := d.shadowed
	more := 0
	if len(list) > maxShadowed {
		list, more = list[:maxShadowed], len(list)-maxShadowed
	}
	msg := strings.Join(list, ", ")
	if more > 0 {
		msg += fmt.Sprintf(" and %d more", more)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if msg == l.lastShadow {
		return
	}
	l.lastShadow = msg
	if msg != "" {
		log.Warningf("Switch %s: base records never served because a pool holds their name: %s", l.cfg.name, msg)
	}
}

// warnFiles logs what the parser found doubtful in the files just parsed,
// such as a record with no TTL where no $TTL applies (TTL 0, raised to the
// minimum), as BIND warns when it loads such a file.
func (l *loader) warnFiles(d *zoneData) {
	for i, w := range d.warnings {
		if i == maxShadowed {
			log.Warningf("Switch %s: and %d more warnings", l.cfg.name, len(d.warnings)-i)
			return
		}
		log.Warningf("Switch %s: %s", l.cfg.name, w)
	}
}

// store makes d the generation served. Signing a generation leaves
// several times its size in garbage (the signing runs' messages and
// strings); it is handed back to the system at once, not over minutes.
func (l *loader) store(d *zoneData) {
	l.data.Store(d)
	if !d.signedAt.IsZero() {
		debug.FreeOSMemory()
	}
}

// load reads and parses every file; used at setup, where an error fails it.
func (l *loader) load() error {
	contents, _, err := l.read()
	if err != nil {
		return err
	}
	d, err := l.build(contents, nil)
	if err != nil {
		return err
	}
	l.store(d)
	l.warnShadowed(d)
	l.warnFiles(d)
	return nil
}
