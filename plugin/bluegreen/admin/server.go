// Package admin serves bluegreen's admin HTTP API: the state of every
// switch registered on a listener, and the writes that change weights. It
// talks only to package state.
//
// server.go holds the listeners: a Server is one address, its settings and
// the switches served on it, a Group is the Servers of one Corefile
// instance, and a process-wide registry (live) holds the socket bound to
// each address. api.go holds the routes, the handlers and the mapping of
// errors to HTTP statuses; security.go the checks every request passes
// first.
//
// Life cycle: a Group starts on startup. The first Server on an address
// binds it without SO_REUSEPORT (no other socket can join it) and starts
// the one http.Server that serves that socket until the final shutdown. A
// Corefile reload does not stop it: the new instance's Server, when it
// starts (OnStartup), becomes the socket's current Server, whose handler,
// Host list, token and TLS settings (certificates re-read from the files)
// apply from the next connection or request on. The listener and every
// open connection stay, so no request fails during a reload; requests in
// flight finish under the Server they started with. A connection made
// under other TLS settings (plain HTTP, or another client CA) gets 421 and
// is closed. The old Group's OnShutdown stops only sockets whose current
// Server it holds (addresses the new Corefile dropped). A failed reload
// starts the old Group again, which makes its Servers current again.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

var log = clog.NewWithPlugin("bluegreen")

// Options are a listener's settings besides its address.
type Options struct {
	Token string      // bearer token; "" for none
	Hosts []string    // Host names allowed besides the listener's own and loopback
	TLS   *tls.Config // HTTPS when set; ClientCAs turns on client certificates
	// TLSID identifies the certificate, key and CA files' contents, so
	// server blocks that share an address can be checked to agree.
	TLSID string
	// CAID identifies the client CA ("" without one): connections made
	// under another CA, or under plain HTTP, are not served after a reload.
	CAID string
}

// Server is the admin API on one listener address.
type Server struct {
	addr     string
	host     string // the listener's host as a Host header names it; "" for all interfaces
	hosts    []string
	hasToken bool
	tokenSum [32]byte // SHA-256 of the token; the token itself is not kept
	tls      *tls.Config
	tlsID    string
	mode     string // "" plain HTTP, else "tls:" and the CA's identity
	cop      *http.CrossOriginProtection

	mux *http.ServeMux // routes(): the API's endpoints

	mu       sync.RWMutex
	switches map[string]*state.Switch

	prev       *Server       // the socket's Server before Start made this one current, guarded by liveMu
	stopSample chan struct{} // stops the status page's sampler while s is current, guarded by liveMu
}

// New returns a server for addr (host:port) with bearer token token; an
// empty token means no authentication.
func New(addr, token string) *Server { return NewServer(addr, Options{Token: token}) }

// NewServer returns a server for addr (host:port) with options o.
func NewServer(addr string, o Options) *Server {
	s := &Server{
		addr:     addr,
		host:     hostOnly(addr),
		hosts:    slices.Sorted(slices.Values(o.Hosts)),
		hasToken: o.Token != "",
		tokenSum: sha256.Sum256([]byte(o.Token)),
		tls:      o.TLS,
		tlsID:    o.TLSID,
		cop:      http.NewCrossOriginProtection(),
		switches: map[string]*state.Switch{},
	}
	if o.TLS != nil {
		s.mode = "tls:" + o.CAID
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
	live   = map[string]*socket{} // bound sockets by address
)

// socket is one bound admin address and the http.Server that serves it
// for the life of the process; cur is the Server whose settings and
// handler apply.
type socket struct {
	ln  net.Listener
	srv *http.Server
	cur atomic.Pointer[Server]

	mode string // the mode of the connection Accept returned last (Serve's goroutine only)
}

// modeKey keys, in a connection's context, the TLS mode it was accepted under.
type modeKey struct{}

// Accept returns the next connection, wrapped in TLS when the current
// Server serves HTTPS (net/http does the handshake).
func (sk *socket) Accept() (net.Conn, error) {
	c, err := sk.ln.Accept()
	if err != nil {
		return nil, err
	}
	s := sk.cur.Load()
	sk.mode = s.mode
	if s.tls != nil {
		return tls.Server(c, s.tls), nil
	}
	return c, nil
}

func (sk *socket) Close() error   { return sk.ln.Close() }
func (sk *socket) Addr() net.Addr { return sk.ln.Addr() }

// connContext records the mode the connection was accepted under; it runs
// in Serve's goroutine right after Accept.
func (sk *socket) connContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, modeKey{}, sk.mode)
}

// ServeHTTP hands the request to the current Server.
func (sk *socket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := sk.cur.Load()
	if m, _ := r.Context().Value(modeKey{}).(string); m != s.mode {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusMisdirectedRequest, "the listener's TLS settings changed; connect again")
		return
	}
	s.ServeHTTP(w, r)
}

// Start makes s the Server of its address: it binds the address (without
// SO_REUSEPORT) and serves it, or, when this process serves the address
// already (a reload), takes the socket over. Starting the current server
// does nothing.
func (s *Server) Start() error {
	liveMu.Lock()
	defer liveMu.Unlock()
	if sk := live[s.addr]; sk != nil {
		if prev := sk.cur.Load(); prev != s {
			s.prev = prev
			sk.cur.Store(s)
			prev.stopSampler()
			s.startSampler()
			if s.tls == nil && prev.tls != nil {
				s.warnPlain()
			}
		}
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("admin %s: %w", s.addr, err)
	}
	sk := &socket{ln: ln}
	sk.cur.Store(s)
	sk.srv = &http.Server{
		Handler:           sk,
		ConnContext:       sk.connContext,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	go sk.srv.Serve(sk)
	live[s.addr] = sk
	s.prev = nil
	s.startSampler()
	if s.tls == nil {
		s.warnPlain()
	}
	return nil
}

// warnPlain logs that a listener reachable from other hosts speaks plain
// HTTP.
func (s *Server) warnPlain() {
	if ap, err := netip.ParseAddrPort(s.addr); err == nil && ap.Addr().IsLoopback() {
		return
	}
	log.Warningf("Admin API on %s is reachable from other hosts over plain HTTP: the token and every change cross the network unencrypted; add 'tls CERT KEY [CA]' to the admin block", s.addr)
}

// undo gives the socket back to the Server that was current before s
// started, or stops it when s bound it.
func (s *Server) undo() {
	liveMu.Lock()
	defer liveMu.Unlock()
	sk := live[s.addr]
	if sk == nil || sk.cur.Load() != s {
		return
	}
	if s.prev != nil {
		sk.cur.Store(s.prev)
		s.stopSampler()
		s.prev.startSampler()
		return
	}
	s.stopLocked(sk)
}

// Stop closes the socket when s is its current Server, waiting a few
// seconds for requests in flight. Otherwise it does nothing: the socket
// belongs to a later Server.
func (s *Server) Stop() error {
	liveMu.Lock()
	defer liveMu.Unlock()
	if sk := live[s.addr]; sk != nil && sk.cur.Load() == s {
		s.stopLocked(sk)
	}
	return nil
}

func (s *Server) stopLocked(sk *socket) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := sk.srv.Shutdown(ctx); err != nil {
		log.Infof("Failed to stop admin http server on %s: %s", s.addr, err)
		sk.srv.Close()
	}
	s.stopSampler()
	delete(live, s.addr)
}

// Group is the set of admin servers of one CoreDNS instance (one Corefile),
// by address.
type Group struct {
	servers map[string]*Server
	order   []string
}

// NewGroup returns an empty group.
func NewGroup() *Group { return &Group{servers: map[string]*Server{}} }

// Check returns an error when a switch with options o cannot join the
// server at addr: every switch on one address must have the same token,
// hosts and TLS settings.
func (g *Group) Check(addr string, o Options) error {
	s := g.servers[addr]
	if s == nil {
		return nil
	}
	if !s.SameToken(o.Token) {
		return fmt.Errorf("admin %s: server blocks that share an admin address must have the same token", addr)
	}
	if !slices.Equal(s.hosts, slices.Sorted(slices.Values(o.Hosts))) {
		return fmt.Errorf("admin %s: server blocks that share an admin address must have the same hosts", addr)
	}
	if s.tlsID != o.TLSID || (s.tls == nil) != (o.TLS == nil) {
		return fmt.Errorf("admin %s: server blocks that share an admin address must have the same tls", addr)
	}
	return nil
}

// Add serves sw on the server at addr, creating it.
func (g *Group) Add(addr string, o Options, sw *state.Switch) error {
	if err := g.Check(addr, o); err != nil {
		return err
	}
	s := g.servers[addr]
	if s == nil {
		s = NewServer(addr, o)
		g.servers[addr] = s
		g.order = append(g.order, addr)
	}
	s.Add(sw)
	return nil
}

// Start starts every server of the group, or none: on an error the ones
// already started give their sockets back (or close them).
func (g *Group) Start() error {
	for i, addr := range g.order {
		if err := g.servers[addr].Start(); err != nil {
			for _, a := range g.order[:i] {
				g.servers[a].undo()
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
