package zones

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

// MaxFileSize is the most bytes one zone file may hold, counted together
// with every file it pulls in with $INCLUDE. A larger file is an error, not
// a memory exhaustion.
const MaxFileSize = 512 << 20

// maxFileSize is MaxFileSize; tests lower it.
var maxFileSize int64 = MaxFileSize

// parse reads a zone file for origin, lower-cases owner names and checks
// that every record lies inside the zone.
func parse(origin, path string, data []byte) ([]dns.RR, []string, error) {
	return parseReader(origin, path, bytes.NewReader(data), int64(len(data)))
}

// noTTL is the TTL the parser gives a record that states none when no
// $TTL or earlier TTL applies: RFC 2181 makes it invalid as a real TTL.
const noTTL = math.MaxUint32

// lineReader counts the lines the zone parser has read: it reads byte by
// byte from an io.ByteReader, so the count is the line it is at.
type lineReader struct {
	r    io.ByteReader
	line int
}

func (l *lineReader) ReadByte() (byte, error) {
	c, err := l.r.ReadByte()
	if err == nil && c == '\n' {
		l.line++
	}
	return c, err
}

func (l *lineReader) Read(p []byte) (int, error) {
	for i := range p {
		c, err := l.ReadByte()
		if err != nil {
			return i, err
		}
		p[i] = c
	}
	return len(p), nil
}

// parseReader parses r, which holds size bytes. $INCLUDE opens regular
// files only, and every file included counts against the same MaxFileSize
// as the file itself.
//
// A record with no TTL before any $TTL or TTL gets TTL 0 (raised to the
// minimum later); each is returned as a warning naming file and line.
func parseReader(origin, path string, r io.Reader, size int64) ([]dns.RR, []string, error) {
	if size > maxFileSize {
		return nil, nil, tooLarge(path)
	}
	// The parser resolves a relative $INCLUDE against the directory of the
	// file it is given and hands the include FS the result with its
	// leading "/" removed: give it the absolute path, so the FS can tell
	// where a name is.
	file, root := path, ""
	if abs, err := filepath.Abs(path); err == nil && path != "" {
		file, root = filepath.ToSlash(abs), string(filepath.Separator)
	}
	inc := &includeFS{root: root, left: maxFileSize - size}
	defer inc.close()
	br, ok := r.(io.ByteReader)
	if !ok {
		br = bufio.NewReader(r)
	}
	lr := &lineReader{r: br}
	zp := dns.NewZoneParser(lr, origin, file)
	zp.SetIncludeAllowed(true)
	zp.SetIncludeFS(inc)
	zp.SetDefaultTTL(noTTL)
	var (
		rrs      []dns.RR
		warnings []string
	)
	soas := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		h.Name = strings.ToLower(h.Name)
		if h.Ttl == noTTL {
			h.Ttl = 0
			warnings = append(warnings, fmt.Sprintf("%s:%d: %s %s has no TTL and no $TTL or earlier TTL applies: TTL 0", path, lr.line, h.Name, dns.Type(h.Rrtype)))
		}
		if !dns.IsSubDomain(origin, h.Name) {
			return nil, nil, fmt.Errorf("%s: record %s is outside zone %s", path, h.Name, origin)
		}
		switch h.Rrtype {
		case dns.TypeSOA:
			if h.Name != origin {
				return nil, nil, fmt.Errorf("%s: SOA owner %s is not the zone apex %s", path, h.Name, origin)
			}
			soas++
			if soas > 1 {
				return nil, nil, fmt.Errorf("%s: more than one SOA record", path)
			}
		case dns.TypeNSEC3, dns.TypeNSEC3PARAM:
			return nil, nil, fmt.Errorf("%s: NSEC3 zones are not supported", path)
		}
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", path, err)
	}
	return rrs, warnings, nil
}

// ReadFile reads the zone file at path. It refuses anything but a regular
// file (a symbolic link to one is fine): a named pipe would block the read
// forever and a device might never end. A file larger than MaxFileSize is
// an error; the size is enforced on the bytes read, not taken from stat.
func ReadFile(path string) ([]byte, error) {
	f, fi, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi.Size() > maxFileSize {
		return nil, tooLarge(path)
	}
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, maxFileSize+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > maxFileSize {
		return nil, tooLarge(path)
	}
	return buf.Bytes(), nil
}

func tooLarge(path string) error {
	return fmt.Errorf("%s: too large: a zone file, with the files it $INCLUDEs, may hold at most %d MiB", path, maxFileSize>>20)
}

// openRegular opens path for reading if it is a regular file. It checks
// before opening (opening a named pipe blocks until a writer comes) and
// again on the open file, which is opened non-blocking in case the path
// was replaced in between.
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, notRegular(path, fi.Mode())
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	if fi, err = f.Stat(); err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, notRegular(path, fi.Mode())
	}
	return f, fi, nil
}

func notRegular(path string, m fs.FileMode) error {
	what := "not a regular file"
	switch t := m.Type(); {
	case t&fs.ModeDir != 0:
		what = "a directory"
	case t&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		what = "a socket"
	case t&fs.ModeCharDevice != 0:
		what = "a character device"
	case t&fs.ModeDevice != 0:
		what = "a device"
	}
	if what != "not a regular file" {
		what += ", not a regular file"
	}
	return fmt.Errorf("%s is %s", path, what)
}

// includeFS opens the files of $INCLUDE directives for one parse: regular
// files only, and no more bytes in all than the parse has left.
type includeFS struct {
	root   string // prefix of the names the parser asks for; "" for relative
	left   int64  // bytes the parse may still read
	opened []*os.File
}

func (fsys *includeFS) Open(name string) (fs.File, error) {
	path := filepath.FromSlash(name)
	if !filepath.IsAbs(path) {
		path = filepath.Join(fsys.root, path)
	}
	f, fi, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	fsys.opened = append(fsys.opened, f)
	if fi.Size() > fsys.left {
		return nil, tooLarge(path)
	}
	return &includeFile{File: f, fsys: fsys}, nil
}

// close closes every file opened: the parser closes an included file only
// when it reads it to the end.
func (fsys *includeFS) close() {
	for _, f := range fsys.opened {
		f.Close()
	}
}

// includeFile is an included file whose reads count against the parse's
// budget; one that goes over it fails to read.
type includeFile struct {
	*os.File
	fsys *includeFS
}

func (f *includeFile) Read(p []byte) (int, error) {
	if f.fsys.left < 0 {
		return 0, tooLarge(f.Name())
	}
	if int64(len(p)) > f.fsys.left+1 {
		p = p[:f.fsys.left+1]
	}
	n, err := f.File.Read(p)
	f.fsys.left -= int64(n)
	if f.fsys.left < 0 {
		return 0, tooLarge(f.Name())
	}
	return n, err
}
