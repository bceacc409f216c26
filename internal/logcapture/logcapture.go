// Package logcapture sends CoreDNS's log to a buffer for a test, so the
// test can assert what was (and was not) logged.
package logcapture

import (
	"io"
	"strings"
	"sync"
	"testing"

	clog "github.com/coredns/coredns/plugin/pkg/log"
)

// Buffer is a log sink safe for the concurrent writes of loggers.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything logged so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start sends CoreDNS's log to a new Buffer until the test ends, then
// discards it.
func Start(t testing.TB) *Buffer {
	t.Helper()
	buf := &Buffer{}
	clog.SetOutput(buf)
	t.Cleanup(func() { clog.SetOutput(io.Discard) })
	return buf
}
