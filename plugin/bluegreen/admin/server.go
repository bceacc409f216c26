// Package admin serves bluegreen's admin HTTP API: the state of every
// switch registered on a listener, and the writes that change weights. It
// talks only to package state.
//
// server.go holds the listeners: a Server is one address and the switches
// served on it, a Group is the Servers of one Corefile instance, and a
// process-wide registry (live) holds the Server running on each address.
// api.go holds the routes, the handlers and the mapping of errors to HTTP
// statuses; security.go the checks every request passes first.
//
// Life cycle: a Group starts on startup. A Corefile reload does not stop
// it first: the new instance's Server takes the address over when it
// starts (OnStartup), so the API never goes away; the old Group stops on
// OnShutdown, which stops only Servers still registered as live. A failed
// reload starts the old Group again. At most one Server per address runs.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/plugin/pkg/reuseport"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

var log = clog.NewWithPlugin("bluegreen")

// Server is the admin API on one listener address.
type Server struct {
	addr     string
	host     string // the listener's host as a Host header names it; "" for all interfaces
	hasToken bool
	tokenSum [32]byte // SHA-256 of the token; the token itself is not kept
	cop      *http.CrossOriginProtection

	mux *http.ServeMux // routes(): the API's endpoints

	mu       sync.RWMutex
	switches map[string]*state.Switch

	srv        *http.Server  // the running server, guarded by liveMu
	stopSample chan struct{} // stops the status page's sampler, guarded by liveMu
}

// New returns a server for addr (host:port) with bearer token token; an
// empty token means no authentication.
func New(addr, token string) *Server {
	s := &Server{
		addr:     addr,
		host:     hostOnly(addr),
		hasToken: token != "",
		tokenSum: sha256.Sum256([]byte(token)),
		cop:      http.NewCrossOriginProtection(),
		switches: map[string]*state.Switch{},
	}
	if a, err := netip.ParseAddr(s.host); err == nil && a.IsUnspecified() {
		s.host = ""
	}
	s.mux = s.routes()
	return s
}

// Addr returns the listen address.
func (s *Server) Addr() string { return s.addr }

// SameToken reports whether token is the server's token.
func (s *Server) SameToken(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return (token != "") == s.hasToken && subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// Add serves sw on this server.
func (s *Server) Add(sw *state.Switch) {
	s.mu.Lock()
	s.switches[sw.Name] = sw
	s.mu.Unlock()
}

func (s *Server) lookup(name string) *state.Switch {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.switches[name]
}

// Timeouts of the HTTP server.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second // a write waits for the store to commit
	idleTimeout       = 60 * time.Second
	shutdownTimeout   = 5 * time.Second
	maxHeaderBytes    = 64 << 10
)

var (
	liveMu sync.Mutex
	live   = map[string]*Server{} // running servers by address
)

// Start listens on the server's address and serves the API, then shuts
// down any other Server running on the same address (a reload's takeover). Starting a running
// server does nothing.
func (s *Server) Start() error {
	liveMu.Lock()
	defer liveMu.Unlock()
	if s.srv != nil {
		return nil
	}
	// SO_REUSEPORT would also let this process share the port with another
	// process, which then gets half the API's connections: unless this
	// process serves the address already (a reload), bind it plainly once
	// first, which fails when any other socket holds it.
	if live[s.addr] == nil {
		probe, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("admin %s: %w", s.addr, err)
		}
		probe.Close()
	}
	// Listen before the old server on the address stops (SO_REUSEPORT lets
	// both listen), so a Corefile reload leaves no moment without a listener.
	ln, err := reuseport.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("admin %s: %w", s.addr, err)
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	go s.srv.Serve(ln)
	s.startSampler()
	if old := live[s.addr]; old != nil {
		old.stopLocked()
	}
	live[s.addr] = s
	return nil
}

// Stop shuts the server down, waiting a few seconds for requests in flight.
// Stopping a server that is not running does nothing.
func (s *Server) Stop() error {
	liveMu.Lock()
	defer liveMu.Unlock()
	s.stopLocked()
	return nil
}

func (s *Server) stopLocked() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		log.Infof("Failed to stop admin http server on %s: %s", s.addr, err)
		s.srv.Close()
	}
	s.srv = nil
	s.stopSampler()
	if live[s.addr] == s {
		delete(live, s.addr)
	}
}

// Group is the set of admin servers of one CoreDNS instance (one Corefile),
// by address.
type Group struct {
	servers map[string]*Server
	order   []string
}

// NewGroup returns an empty group.
func NewGroup() *Group { return &Group{servers: map[string]*Server{}} }

// Check returns an error when a switch with token cannot join the server
// at addr: every switch on one address must have the same token.
func (g *Group) Check(addr, token string) error {
	if s := g.servers[addr]; s != nil && !s.SameToken(token) {
		return fmt.Errorf("admin %s: server blocks that share an admin address must have the same token", addr)
	}
	return nil
}

// Add serves sw on the server at addr, creating it.
func (g *Group) Add(addr, token string, sw *state.Switch) error {
	if err := g.Check(addr, token); err != nil {
		return err
	}
	s := g.servers[addr]
	if s == nil {
		s = New(addr, token)
		g.servers[addr] = s
		g.order = append(g.order, addr)
	}
	s.Add(sw)
	return nil
}

// Start starts every server of the group, or none: on an error the ones
// already started are stopped again.
func (g *Group) Start() error {
	for i, addr := range g.order {
		if err := g.servers[addr].Start(); err != nil {
			for _, a := range g.order[:i] {
				g.servers[a].Stop()
			}
			return err
		}
	}
	return nil
}

// Stop stops every server of the group.
func (g *Group) Stop() error {
	for _, addr := range g.order {
		g.servers[addr].Stop()
	}
	return nil
}
