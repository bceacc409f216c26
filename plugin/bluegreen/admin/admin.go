// Package admin serves bluegreen's admin HTTP API: the state of every
// switch registered on a listener, and the writes that change weights. It
// talks only to package state.
//
// A Server is one listener address and the switches served on it. Servers
// follow the life cycle of CoreDNS's health and ready plugins: started on
// startup, shut down before a Corefile reload, started again when the
// reload fails. At most one Server per address runs in the process: one
// starting on an address shuts down any other still running there, so a
// reload that fails late cannot leave two listeners splitting connections.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/plugin/pkg/reuseport"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

var log = clog.NewWithPlugin("bluegreen")

// Server is the admin API on one listener address.
type Server struct {
	addr     string
	host     string // the listener's host as a Host header names it; "" for all interfaces
	hasToken bool
	tokenSum [32]byte // SHA-256 of the token; the token itself is not kept
	cop      *http.CrossOriginProtection

	mu       sync.RWMutex
	switches map[string]*state.Switch

	srv *http.Server // the running server, guarded by liveMu
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

// route is one endpoint below /v1/switches/{name}.
type route struct {
	methods []string // the first is the one named in the endpoint's docs
	write   bool     // a write: JSON body, no query parameters
	params  []string // the query parameters a read accepts
	handle  func(s *Server, w http.ResponseWriter, r *http.Request, sw *state.Switch, body []byte)
}

var routes = map[string]route{
	"":               {methods: []string{http.MethodGet, http.MethodHead}, handle: (*Server).getSwitch},
	"weights":        {methods: []string{http.MethodPut}, write: true, handle: (*Server).putWeights},
	"promote":        {methods: []string{http.MethodPost}, write: true, handle: (*Server).promote},
	"rollback":       {methods: []string{http.MethodPost}, write: true, handle: (*Server).rollback},
	"history":        {methods: []string{http.MethodGet, http.MethodHead}, handle: (*Server).history},
	"explain":        {methods: []string{http.MethodGet, http.MethodHead}, params: []string{"client"}, handle: (*Server).explain},
	"rollout":        {methods: []string{http.MethodPost, http.MethodDelete}, write: true, handle: (*Server).rollout},
	"rollout/pause":  {methods: []string{http.MethodPost}, write: true, handle: (*Server).pauseRollout},
	"rollout/resume": {methods: []string{http.MethodPost}, write: true, handle: (*Server).resumeRollout},
}

var readMethods = []string{http.MethodGet, http.MethodHead}

// ServeHTTP implements http.Handler. Checks run in this order: Host (403),
// cross-origin (403), token (401, not for /healthz), path (404), method
// (405), query parameters (400), Content-Type (415), body size (413), body
// and If-Match (400); then the change (412, 409, 400, 503).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")

	if err := s.checkHost(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if err := s.checkOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if r.URL.Path == "/healthz" {
		if allowed(w, r, readMethods) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}
		return
	}
	if !s.checkToken(r) {
		h.Set("WWW-Authenticate", `Bearer realm="bluegreen"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	if r.URL.Path == "/v1/switches" {
		if allowed(w, r, readMethods) && queryOK(w, r, nil) {
			s.list(w)
		}
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/switches/")
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s", short(r.URL.Path)))
		return
	}
	name, action, _ := strings.Cut(rest, "/")
	sw := s.lookup(name)
	if sw == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no switch %s", short(name)))
		return
	}
	rt, ok := routes[action]
	if !ok || strings.HasSuffix(rest, "/") {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s", short(r.URL.Path)))
		return
	}
	if !allowed(w, r, rt.methods) {
		return
	}
	if !rt.write {
		if queryOK(w, r, rt.params) {
			rt.handle(s, w, r, sw, nil)
		}
		return
	}
	if r.URL.RawQuery != "" {
		writeError(w, http.StatusBadRequest, "a write takes no query parameters: send them in the JSON body")
		return
	}
	if err := checkContentType(r); err != nil {
		writeError(w, http.StatusUnsupportedMediaType, err.Error())
		return
	}
	body, code, err := readBody(w, r)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	rt.handle(s, w, r, sw, body)
}

// allowed answers 405 when r's method is not in methods.
func allowed(w http.ResponseWriter, r *http.Request, methods []string) bool {
	if contains(methods, r.Method) {
		return true
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	msg := fmt.Sprintf("method %s not allowed, use %s", short(r.Method), strings.Join(methods, " or "))
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		msg = fmt.Sprintf("a %s never changes state: use %s with a JSON body", r.Method, methods[0])
	}
	writeError(w, http.StatusMethodNotAllowed, msg)
	return false
}

// queryOK answers 400 when r has a query parameter not in params.
func queryOK(w http.ResponseWriter, r *http.Request, params []string) bool {
	q, err := urlQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return false
	}
	for k := range q {
		if !contains(params, k) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %s", short(k)))
			return false
		}
	}
	return true
}

func urlQuery(r *http.Request) (map[string][]string, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("invalid query: %v", err)
	}
	return q, nil
}

func (s *Server) list(w http.ResponseWriter) {
	s.mu.RLock()
	sws := make([]*state.Switch, 0, len(s.switches))
	for _, sw := range s.switches {
		sws = append(sws, sw)
	}
	s.mu.RUnlock()
	sort.Slice(sws, func(i, j int) bool { return sws[i].Name < sws[j].Name })
	views := make([]*state.View, len(sws))
	for i, sw := range sws {
		views[i] = sw.View()
	}
	writeJSON(w, http.StatusOK, views)
}

func (s *Server) getSwitch(w http.ResponseWriter, _ *http.Request, sw *state.Switch, _ []byte) {
	writeState(w, sw.View())
}

func (s *Server) history(w http.ResponseWriter, _ *http.Request, sw *state.Switch, _ []byte) {
	writeJSON(w, http.StatusOK, sw.History())
}

func (s *Server) explain(w http.ResponseWriter, r *http.Request, sw *state.Switch, _ []byte) {
	q, _ := urlQuery(r)
	vals := q["client"]
	if len(vals) != 1 {
		writeError(w, http.StatusBadRequest, "want one query parameter client=IP")
		return
	}
	a, err := netip.ParseAddr(vals[0])
	if err != nil || a.Zone() != "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("client %s is not an IP address", short(vals[0])))
		return
	}
	e, ok := sw.Explain(a)
	if !ok {
		writeError(w, http.StatusNotImplemented, "explain is not available for this switch")
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// commit applies an update to a switch: one of its write methods.
type commit func(context.Context, state.Update) (*state.View, error)

// decoder decodes a write's body into u and returns the commit to run.
type decoder func(body []byte, u *state.Update) (commit, error)

// write runs one change: the If-Match header and the body (decoded by
// decode, which fills in the update and returns what to do) are checked
// first, each a 400; then do commits and the result is answered.
func write(w http.ResponseWriter, r *http.Request, body []byte, decode decoder) {
	im, err := ifMatch(r)
	if errors.Is(err, errNoMatch) {
		writeError(w, http.StatusPreconditionFailed, "If-Match: "+err.Error()+": nothing changed")
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	u := state.Update{IfMatch: im, Source: state.SourceAPI, Remote: r.RemoteAddr}
	do, err := decode(body, &u)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	v, err := do(commitContext(r), u)
	writeResult(w, v, err)
}

func (s *Server) putWeights(w http.ResponseWriter, r *http.Request, sw *state.Switch, body []byte) {
	write(w, r, body, func(b []byte, u *state.Update) (commit, error) {
		wb, err := decodeWeights(b)
		u.Weights, u.Reason = wb.weights, wb.reason
		return sw.Apply, err
	})
}

func (s *Server) promote(w http.ResponseWriter, r *http.Request, sw *state.Switch, body []byte) {
	write(w, r, body, func(b []byte, u *state.Update) (commit, error) {
		pb, err := decodePromote(b)
		u.Reason = pb.reason
		return func(ctx context.Context, u state.Update) (*state.View, error) { return sw.Promote(ctx, pb.pool, u) }, err
	})
}

// reasonOnly decodes a body that is empty or {"reason":"..."} for do.
func reasonOnly(do commit) decoder {
	return func(b []byte, u *state.Update) (commit, error) {
		var err error
		u.Reason, err = decodeRollback(b)
		return do, err
	}
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request, sw *state.Switch, body []byte) {
	write(w, r, body, reasonOnly(sw.Rollback))
}

// rollout starts a rollout (POST) or aborts it (DELETE).
func (s *Server) rollout(w http.ResponseWriter, r *http.Request, sw *state.Switch, body []byte) {
	if r.Method == http.MethodDelete {
		write(w, r, body, reasonOnly(sw.AbortRollout))
		return
	}
	write(w, r, body, func(b []byte, u *state.Update) (commit, error) {
		rb, err := decodeRollout(b)
		u.Reason = rb.reason
		req := state.RolloutRequest{Steps: rb.steps, AbortOnUnhealthy: rb.abortOnUnhealthy, Analysis: rb.analysis}
		return func(ctx context.Context, u state.Update) (*state.View, error) { return sw.StartRollout(ctx, req, u) }, err
	})
}

func (s *Server) pauseRollout(w http.ResponseWriter, r *http.Request, sw *state.Switch, body []byte) {
	write(w, r, body, reasonOnly(sw.PauseRollout))
}

func (s *Server) resumeRollout(w http.ResponseWriter, r *http.Request, sw *state.Switch, body []byte) {
	write(w, r, body, reasonOnly(sw.ResumeRollout))
}

// commitContext is the context of a write: the request's values, but not
// its cancellation, so a client that hangs up cannot cut a commit short
// and leave its outcome unknown.
func commitContext(r *http.Request) context.Context {
	return context.WithoutCancel(r.Context())
}

// writeResult answers a write: the new state, or the error's status.
func writeResult(w http.ResponseWriter, v *state.View, err error) {
	var (
		invalid  *state.InvalidError
		conflict *state.ConflictError
		storeErr *state.StoreError
	)
	switch {
	case err == nil:
		writeState(w, v)
	case errors.Is(err, state.ErrVersion):
		writeError(w, http.StatusPreconditionFailed, "If-Match: "+err.Error()+": nothing changed")
	case errors.As(err, &conflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.As(err, &invalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrOutcomeUnknown):
		writeError(w, http.StatusServiceUnavailable, err.Error()+"; GET the switch to see whether it was (the version tells)")
	case errors.As(err, &storeErr):
		writeError(w, http.StatusServiceUnavailable, err.Error()+": nothing changed")
	default:
		log.Errorf("Admin API: unexpected error: %s", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeState(w http.ResponseWriter, v *state.View) {
	w.Header().Set("ETag", fmt.Sprintf(`"%d"`, v.Version))
	writeJSON(w, http.StatusOK, v)
}

// errorBody is every error's body.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
