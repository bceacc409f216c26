package zones

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const soaLine = "@ IN SOA ns1 h 1 7200 3600 1209600 60\n"

// fifo makes a named pipe at path. Until the test ends, a reader blocked in
// opening it is let go by opening it for writing, so a failing test cannot
// hang.
func fifo(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, syscall.Mkfifo(path, 0o644))
	t.Cleanup(func() { unblock(path) })
}

func unblock(path string) {
	if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
}

// returns runs f and fails the test when it does not return within 5s;
// a call blocked on one of the pipes is then let go.
func returns(t *testing.T, pipes []string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		for _, p := range pipes {
			unblock(p)
		}
		t.Fatal("expected the call to return within 5s, it blocked")
	}
}

// lowerMax sets maxFileSize to n for the test.
func lowerMax(t *testing.T, n int64) {
	old := maxFileSize
	maxFileSize = n
	t.Cleanup(func() { maxFileSize = old })
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular.db")
	require.NoError(t, os.WriteFile(regular, []byte("www IN A 192.0.2.1\n"), 0o644))
	require.NoError(t, os.Symlink("regular.db", filepath.Join(dir, "link.db")))
	fifo(t, filepath.Join(dir, "pipe.db"))
	require.NoError(t, os.Symlink("pipe.db", filepath.Join(dir, "pipelink.db")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "dir.db"), 0o755))
	pipes := []string{filepath.Join(dir, "pipe.db")}

	tests := []struct {
		path string
		want string // "" reads the regular file's content; else a substring of the error
	}{
		{regular, ""},
		{filepath.Join(dir, "link.db"), ""},
		{filepath.Join(dir, "pipe.db"), "pipe.db is a named pipe (FIFO), not a regular file"},
		{filepath.Join(dir, "pipelink.db"), "pipelink.db is a named pipe (FIFO), not a regular file"},
		{filepath.Join(dir, "dir.db"), "dir.db is a directory, not a regular file"},
		{"/dev/zero", "/dev/zero is a character device, not a regular file"},
		{filepath.Join(dir, "missing.db"), "no such file"},
	}
	for i, tc := range tests {
		var b []byte
		var err error
		returns(t, pipes, func() { b, err = ReadFile(tc.path) })
		if tc.want == "" {
			if err != nil || string(b) != "www IN A 192.0.2.1\n" {
				t.Errorf("Test %d: expected %s read, got %q, %v", i, tc.path, b, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: expected an error containing %q, got %v", i, tc.want, err)
		}
	}
}

// TestReadFileTooLarge: the cap is checked on stat, and on the bytes read
// when stat tells less than the file holds.
func TestReadFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	// A sparse file one byte over the real cap: refused without reading it.
	huge := filepath.Join(dir, "huge.db")
	f, err := os.Create(huge)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(MaxFileSize+1))
	require.NoError(t, f.Close())
	_, err = ReadFile(huge)
	require.ErrorContains(t, err, "huge.db: too large: a zone file, with the files it $INCLUDEs, may hold at most 512 MiB")

	lowerMax(t, 1024)
	for i, tc := range []struct {
		size int
		ok   bool
	}{{1024, true}, {1025, false}} {
		path := filepath.Join(dir, "sized.db")
		require.NoError(t, os.WriteFile(path, make([]byte, tc.size), 0o644))
		b, err := ReadFile(path)
		if tc.ok != (err == nil) || (tc.ok && len(b) != tc.size) {
			t.Errorf("Test %d: expected %d bytes read: %t, got %d bytes, %v", i, tc.size, tc.ok, len(b), err)
		}
	}

	// Files of /proc say they are empty and are not: the cap holds on
	// what is read.
	const proc = "/proc/self/maps"
	if _, err := os.Stat(proc); err != nil {
		t.Skipf("no %s to read a file whose stat size lies: %v", proc, err)
	}
	lowerMax(t, 16)
	_, err = ReadFile(proc)
	require.ErrorContains(t, err, "too large")
}

func TestIncludeRefused(t *testing.T) {
	dir := t.TempDir()
	fifo(t, filepath.Join(dir, "pipe.db"))
	pipes := []string{filepath.Join(dir, "pipe.db")}
	tests := []struct {
		include string
		want    string
	}{
		{"/dev/zero", "/dev/zero is a character device, not a regular file"},
		{filepath.Join(dir, "pipe.db"), "pipe.db is a named pipe (FIFO), not a regular file"},
		{"pipe.db", "pipe.db is a named pipe (FIFO), not a regular file"}, // relative to the including file
		{dir, "is a directory, not a regular file"},
	}
	for i, tc := range tests {
		pools := []Source{
			{Name: "blue", Path: filepath.Join(dir, "blue.db"), Data: []byte("$ORIGIN example.org.\n" + soaLine + "$INCLUDE " + tc.include + "\n")},
			{Name: "green", Path: filepath.Join(dir, "green.db")},
		}
		var err error
		returns(t, pipes, func() { _, err = Build(origin, nil, pools) })
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `pool "blue"`) {
			t.Errorf("Test %d: expected an error for pool \"blue\" containing %q, got %v", i, tc.want, err)
		}
	}
}

// TestIncludeResolves: a relative $INCLUDE resolves against the including
// file's directory, whether that file's path is absolute or relative; a
// symbolic link to a regular file may be included.
func TestIncludeResolves(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "pools"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pools", "inc.db"), []byte("included IN A 192.0.2.7\n"), 0o644))
	require.NoError(t, os.Symlink("inc.db", filepath.Join(dir, "pools", "link.db")))
	t.Chdir(dir)
	for i, tc := range []struct{ path, include string }{
		{filepath.Join(dir, "pools", "blue.db"), "inc.db"},
		{filepath.Join("pools", "blue.db"), "inc.db"},
		{filepath.Join("pools", "blue.db"), "link.db"},
		{filepath.Join("pools", "blue.db"), filepath.Join(dir, "pools", "inc.db")},
	} {
		pools := []Source{
			{Name: "blue", Path: tc.path, Data: []byte("$ORIGIN example.org.\n" + soaLine + "$INCLUDE " + tc.include + "\n")},
			{Name: "green", Path: "green.db"},
		}
		z, err := Build(origin, nil, pools)
		if err != nil {
			t.Errorf("Test %d: expected %s included from %s, got %v", i, tc.include, tc.path, err)
			continue
		}
		if sw, mask := z.Switched("included.example.org."); !sw || mask != 0b01 {
			t.Errorf("Test %d: expected the included name held by blue, got %t, %b", i, sw, mask)
		}
	}
}

// TestIncludeTooLarge: a file and everything it includes share one cap,
// whether stat tells the size or only the reads do.
func TestIncludeTooLarge(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc.db")
	require.NoError(t, os.WriteFile(inc, []byte("included IN A 192.0.2.7\n"), 0o644)) // 24 bytes
	main := "$ORIGIN example.org.\n" + soaLine                                        // 59 bytes
	lowerMax(t, 200)
	tests := []struct {
		data string
		ok   bool
	}{
		{main + "$INCLUDE inc.db\n", true},
		{main + strings.Repeat("$INCLUDE inc.db\n", 3), true},
		{main + strings.Repeat("$INCLUDE inc.db\n", 6), false}, // 59 + 6*16 + 6*24 bytes > 200
		{main + strings.Repeat(";", 200), false},
	}
	if _, err := os.Stat("/proc/self/maps"); err == nil {
		tests = append(tests, struct {
			data string
			ok   bool
		}{main + "$INCLUDE /proc/self/maps\n", false})
	}
	for i, tc := range tests {
		pools := []Source{{Name: "blue", Path: filepath.Join(dir, "blue.db"), Data: []byte(tc.data)}, {Name: "green", Path: "green.db"}}
		_, err := Build(origin, nil, pools)
		if tc.ok && err != nil {
			t.Errorf("Test %d: expected the zone to load, got %v", i, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "too large")) {
			t.Errorf("Test %d: expected a too large error, got %v", i, err)
		}
	}
}

// TestIncludeClosed: an included file is closed when the parse stops in
// it, not only when the parser reads it to the end.
func TestIncludeClosed(t *testing.T) {
	fds := func() int {
		e, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("cannot count open files: %v", err)
		}
		return len(e)
	}
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc.db")
	require.NoError(t, os.WriteFile(inc, []byte("www.example.net. IN A 192.0.2.7\nmore IN A 192.0.2.8\n"), 0o644))
	pools := []Source{{Name: "blue", Path: filepath.Join(dir, "blue.db"), Data: []byte("$ORIGIN example.org.\n" + soaLine + "$INCLUDE inc.db\n")}, {Name: "green", Path: "green.db"}}
	before := fds()
	for range 50 {
		_, err := Build(origin, nil, pools)
		require.ErrorContains(t, err, "outside zone")
	}
	assert.Less(t, fds(), before+10, "expected the included files closed")
}

// TestBuildHad: a file that held records in the replaced generation and
// now holds none is an error; one that held none may stay empty.
func TestBuildHad(t *testing.T) {
	base := &Source{Path: "base.db", Data: []byte(baseDB)}
	full := []Source{src("blue", blueDB), src("green", greenDB)}
	z, err := Build(origin, base, full)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"base.db": 8, "blue.db": 5, "green.db": 4}, z.Records)

	tests := []struct {
		base, green string
		had         map[string]int
		want        string // "" for no error
	}{
		{baseDB, "", nil, ""},
		{baseDB, "", map[string]int{"green.db": 0}, ""},
		{baseDB, "", z.Records, `pool "green": green.db: file is empty (no records) where the loaded version had 4; was it being written?`},
		{baseDB, "; a comment\n\n$TTL 60\n", z.Records, `pool "green": green.db: file is empty`},
		{"", greenDB, z.Records, `base: base.db: file is empty (no records) where the loaded version had 8`},
	}
	for i, tc := range tests {
		pools := []Source{src("blue", blueDB), src("green", tc.green)}
		_, err := BuildWith(origin, &Source{Path: "base.db", Data: []byte(tc.base)}, pools, Options{Had: tc.had})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Test %d: expected no error, got %v", i, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Test %d: expected an error containing %q, got %v", i, tc.want, err)
		}
	}
}

// TestShadowed: base records whose name is switched are listed once per
// name and type, with the reason; apex SOA and NS are not.
func TestShadowed(t *testing.T) {
	base := baseDB + "ns1 IN AAAA ::1\nns1 IN A 127.0.0.2\nhost.sub IN A 192.0.2.60\n"
	blue := "$ORIGIN example.org.\n@ IN TXT \"blue\"\nwww IN A 192.0.2.10\n*.app IN A 192.0.2.30\nsub IN NS ns.elsewhere.net.\n"
	green := "$ORIGIN example.org.\nwww IN A 198.51.100.10\n* IN A 198.51.100.1\n"
	z := build(t, base, blue, green)
	var got []string
	for _, s := range z.Shadowed {
		got = append(got, s.String())
	}
	want := []string{
		"example.org. MX (pool blue holds it)",
		"ns1.example.org. A (pool wildcard *.example.org. in green)",
		"mail.example.org. A (pool wildcard *.example.org. in green)",
		"shared.example.org. A (pool wildcard *.example.org. in green)",
		"www.example.org. A (pools blue, green hold it)",
		"x.app.example.org. A (pool wildcard *.app.example.org. in blue)",
		"ns1.example.org. AAAA (pool wildcard *.example.org. in green)",
		"host.sub.example.org. A (pool wildcard *.example.org. in green)",
	}
	assert.Equal(t, want, got)

	// Below a pool's zone cut, with no wildcard above.
	z = build(t, base, blue, "$ORIGIN example.org.\nwww IN A 198.51.100.10\n")
	got = got[:0]
	for _, s := range z.Shadowed {
		got = append(got, s.String())
	}
	assert.Contains(t, got, "host.sub.example.org. A (below pool NS or DNAME at sub.example.org. in blue)")
	for _, s := range z.Shadowed {
		if s.Name == origin && (s.Type == dns.TypeSOA || s.Type == dns.TypeNS) {
			t.Errorf("expected the apex SOA and NS, served for every view, not listed; got %s", s)
		}
	}

	// Nothing switched over base's names: nothing listed.
	assert.Empty(t, build(t, baseDB, "$ORIGIN example.org.\nonly IN A 192.0.2.1\n", "$ORIGIN example.org.\nonly IN A 192.0.2.2\n").Shadowed)
}
