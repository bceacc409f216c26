package bluegreen

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/internal/logcapture"
)

// inputTimeout bounds every call below that used to block on bad input.
const inputTimeout = 5 * time.Second

// mkfifo replaces path with a named pipe. Until the test ends, a reader
// blocked in opening it is let go by opening it for writing, so a test that
// fails cannot hang.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, os.Remove(path))
	require.NoError(t, syscall.Mkfifo(path, 0o644))
	t.Cleanup(func() { unblockFIFO(path) })
}

// unblockFIFO opens path for writing, without blocking, and closes it: a
// reader waiting in open gets end of file.
func unblockFIFO(path string) {
	if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
}

// within runs f and fails the test when it does not return in time; unblock
// (may be nil) then lets a call blocked on a FIFO go.
func within(t *testing.T, what string, unblock func(), f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(inputTimeout):
		if unblock != nil {
			unblock()
		}
		t.Fatalf("expected %s to return within %v, it blocked", what, inputTimeout)
	}
}

// setupErr runs setup on a bluegreen block reading files from dir and
// returns its error.
func setupErr(t *testing.T, dir, body string) error {
	t.Helper()
	name := uniqueName()
	c := caddy.NewTestController("dns", "bluegreen example.org {\nname "+name+"\nadmin off\n"+body+"\n}")
	dnsserver.GetConfig(c).Root = dir
	t.Cleanup(func() { forget(name) })
	var err error
	within(t, "setup", func() { unblockFIFO(filepath.Join(dir, "green.db")) }, func() { err = setup(c) })
	return err
}

// TestSetupRefusesNonRegular: a pool file that is a named pipe, or a
// directory, fails setup with a clear error instead of blocking it; a
// symbolic link to a regular file is fine.
func TestSetupRefusesNonRegular(t *testing.T) {
	dir := stdZones(t)
	mkfifo(t, filepath.Join(dir, "green.db"))
	err := setupErr(t, dir, pools3)
	require.ErrorContains(t, err, "is a named pipe (FIFO), not a regular file")
	assert.Contains(t, err.Error(), `pool "green"`)

	dir = stdZones(t)
	require.NoError(t, os.Remove(filepath.Join(dir, "green.db")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "green.db"), 0o755))
	require.ErrorContains(t, setupErr(t, dir, pools3), "is a directory, not a regular file")

	dir = stdZones(t)
	require.NoError(t, os.Rename(filepath.Join(dir, "green.db"), filepath.Join(dir, "green-v2.db")))
	require.NoError(t, os.Symlink("green-v2.db", filepath.Join(dir, "green.db")))
	require.NoError(t, setupErr(t, dir, pools3), "expected a symbolic link to a regular file to load")
}

// TestSetupIncludeNonRegular: $INCLUDE of a device or a named pipe fails
// setup instead of reading without end or blocking.
func TestSetupIncludeNonRegular(t *testing.T) {
	tests := []struct {
		include string // "" includes a named pipe in the zone directory
		want    string
	}{
		{"/dev/zero", "/dev/zero is a character device, not a regular file"},
		{"", "is a named pipe (FIFO), not a regular file"},
	}
	for i, tc := range tests {
		dir := stdZones(t)
		include := tc.include
		if include == "" {
			include = filepath.Join(dir, "pipe.db")
			require.NoError(t, syscall.Mkfifo(include, 0o644))
			t.Cleanup(func() { unblockFIFO(include) })
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "green.db"), []byte(greenDB+"$INCLUDE "+include+"\n"), 0o644))
		err := setupErr(t, dir, pools3)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: expected setup to fail with %q, got %v", i, tc.want, err)
		}
	}
}

// TestReloadFIFO: a pool file replaced by a named pipe while the server
// runs is an error logged and counted once; the old records keep serving,
// a fixed file is loaded, and stop still returns.
func TestReloadFIFO(t *testing.T) {
	logs := logcapture.Start(t)
	dir := stdZones(t)
	b := newTestBluegreen(t, dir, pools3+"weights green 1\nreload 0")
	green := filepath.Join(dir, "green.db")
	mkfifo(t, green)

	for range 3 {
		within(t, "a reload check", func() { unblockFIFO(green) }, b.loader.check)
	}
	assert.Equal(t, 1.0, reloads(b, "green", "error"))
	assert.Equal(t, 1, strings.Count(logs.String(), "[ERROR]"), "expected the error logged once over 3 checks:\n%s", logs.String())
	assert.Contains(t, logs.String(), green+" is a named pipe (FIFO), not a regular file")
	assert.ElementsMatch(t, greenAddrs, wwwAddrs(t, b))

	// With the goroutine running: a fix is loaded, and stop returns.
	b.loader.cfg.reload = 10 * time.Millisecond
	b.loader.start()
	require.NoError(t, os.Remove(green))
	require.NoError(t, os.WriteFile(green, []byte(greenWWW("203.0.113.1", "203.0.113.2")), 0o644))
	assert.Eventually(t, func() bool {
		return assert.ObjectsAreEqualValues([]string{"203.0.113.1", "203.0.113.2"}, wwwAddrs(t, b))
	}, inputTimeout, 5*time.Millisecond, "expected the fixed green.db served")
	mkfifo(t, green)
	assert.Eventually(t, func() bool { return reloads(b, "green", "error") == 2 }, inputTimeout, 5*time.Millisecond)
	within(t, "stop", func() { unblockFIFO(green) }, b.loader.stop)
}

// TestReloadIncludeDevZero: a pool file that comes to $INCLUDE /dev/zero
// is an error; it neither grows memory nor blocks the check.
func TestReloadIncludeDevZero(t *testing.T) {
	dir := stdZones(t)
	b := newTestBluegreen(t, dir, pools3+"weights green 1\nreload 0")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "green.db"), []byte(greenDB+"$INCLUDE /dev/zero\n"), 0o644))
	within(t, "a reload check", nil, b.loader.check)
	assert.Equal(t, 1.0, reloads(b, "green", "error"))
	assert.Contains(t, lastErr(b.loader), "/dev/zero is a character device, not a regular file")
	assert.ElementsMatch(t, greenAddrs, wwwAddrs(t, b))
}

// TestReloadTruncated: a pool file that held records and is found empty (0
// bytes, or only comments) is an error: an editor or cp was most likely
// writing it. At setup an empty pool is fine, and a pool loaded empty may
// change while empty.
func TestReloadTruncated(t *testing.T) {
	tests := []string{"", "; being written\n\n", "$ORIGIN example.org.\n$TTL 60\n"}
	for i, content := range tests {
		logs := logcapture.Start(t)
		dir := stdZones(t)
		b := newTestBluegreen(t, dir, pools3+"weights green 1\nreload 0")
		require.NoError(t, os.WriteFile(filepath.Join(dir, "green.db"), []byte(content), 0o644))
		for range 3 {
			b.loader.check()
		}
		if got := reloads(b, "green", "error"); got != 1 {
			t.Errorf("Test %d: expected an empty green.db counted as one error, got %v", i, got)
		}
		if got := reloads(b, "green", "success"); got != 0 {
			t.Errorf("Test %d: expected no success counted, got %v", i, got)
		}
		if n := strings.Count(logs.String(), "file is empty (no records) where the loaded version had 11; was it being written?"); n != 1 {
			t.Errorf("Test %d: expected the error logged once over 3 checks, got %d times:\n%s", i, n, logs.String())
		}
		if got := wwwAddrs(t, b); !assert.ElementsMatch(t, greenAddrs, got) {
			t.Errorf("Test %d: expected the old green records served, got %v", i, got)
		}
	}

	dir := stdZones(t)
	green := filepath.Join(dir, "green.db")
	// Loaded empty at setup, a pool may stay empty across changes.
	require.NoError(t, os.WriteFile(green, nil, 0o644))
	b := newTestBluegreen(t, dir, pools3+"weights green 1\nreload 0")
	assert.Empty(t, wwwAddrs(t, b), "expected an empty green pool loaded at setup")
	require.NoError(t, os.WriteFile(green, []byte("; still empty\n"), 0o644))
	b.loader.check()
	assert.Equal(t, 1.0, reloads(b, "green", "success"))
	assert.Empty(t, lastErr(b.loader))
}

// TestShadowedWarning: base records whose name a pool holds are never
// served (SPEC §2); a warning names them at load, and at reload only when
// the set changes. Apex SOA and NS are served for every view and are not
// named.
func TestShadowedWarning(t *testing.T) {
	const warning = "base records never served because a pool holds their name: "
	logs := logcapture.Start(t)
	base := "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n@ IN NS ns1\n@ IN MX 10 mail\nns1 IN A 127.0.0.1\nmail IN A 192.0.2.25\n"
	blue := "$ORIGIN example.org.\n* IN A 192.0.2.10\n"
	green := "$ORIGIN example.org.\n@ IN A 198.51.100.10\nwww IN A 198.51.100.11\n"
	dir := writeZones(t, map[string]string{"base.db": base, "blue.db": blue, "green.db": green})
	b := newTestBluegreen(t, dir, pools3+"reload 0")

	want := "Switch " + b.cfg.name + ": " + warning +
		"example.org. MX (pool green holds it), ns1.example.org. A (pool wildcard *.example.org. in blue), mail.example.org. A (pool wildcard *.example.org. in blue)"
	assert.Contains(t, logs.String(), "[WARNING] plugin/bluegreen: "+want+"\n")
	assert.NotContains(t, logs.String(), "SOA (")
	assert.NotContains(t, logs.String(), " NS (")

	// A reload that leaves the set as it was does not warn again.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "green.db"), []byte(green+"api IN A 198.51.100.12\n"), 0o644))
	b.loader.check()
	assert.Equal(t, 1.0, reloads(b, "green", "success"))
	assert.Equal(t, 1, strings.Count(logs.String(), warning), "expected one warning for one set:\n%s", logs.String())

	// A reload that changes it does; more than ten are counted, not listed.
	var sb strings.Builder
	sb.WriteString(base)
	for i := range 12 {
		sb.WriteString("h" + string(rune('a'+i)) + " IN A 192.0.2.1\n")
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "base.db"), []byte(sb.String()), 0o644))
	b.loader.check()
	assert.Equal(t, 2, strings.Count(logs.String(), warning), "expected a warning for the changed set:\n%s", logs.String())
	assert.Contains(t, logs.String(), "hg.example.org. A (pool wildcard *.example.org. in blue) and 5 more\n")

	// Nothing shadowed, nothing said.
	before := strings.Count(logs.String(), "[WARNING]")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "blue.db"), []byte("$ORIGIN example.org.\n$TTL 60\nwww IN A 192.0.2.10\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "green.db"), []byte("$ORIGIN example.org.\n$TTL 60\nwww IN A 198.51.100.10\n"), 0o644))
	b.loader.check()
	assert.Equal(t, before, strings.Count(logs.String(), "[WARNING]"))
	assert.Empty(t, lastErr(b.loader))
}

// A pool file whose records state no TTL, with no $TTL, is served with TTL
// MIN as before, and the load warns naming file and line; a reload that
// does not parse the file again does not repeat it.
func TestNoTTLWarningLogged(t *testing.T) {
	logs := logcapture.Start(t)
	dir := stdZones(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "green.db"), []byte("$ORIGIN example.org.\nwww IN A 198.51.100.10\n"), 0o644))
	b := newTestBluegreen(t, dir, pools3+"reload 0")
	want := "[WARNING] plugin/bluegreen: Switch " + b.cfg.name + ": " + filepath.Join(dir, "green.db") + ":2: www.example.org. A has no TTL and no $TTL or earlier TTL applies: TTL 0\n"
	assert.Contains(t, logs.String(), want)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "blue.db"), []byte(blueDB+"extra IN A 192.0.2.77\n"), 0o644))
	b.loader.check()
	assert.Equal(t, 1, strings.Count(logs.String(), "has no TTL"), "expected one warning:\n%s", logs.String())
}
