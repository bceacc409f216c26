package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

// The API's routes on net/http's ServeMux. Each endpoint is registered
// twice: with its methods, and without a method, which answers 405 (a GET
// on a write says that a GET never changes state); every path the mux does
// not know is a JSON 404.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s", short(r.URL.Path)))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { allowed(w, r, readMethods) })
	mux.HandleFunc("GET /v1/switches", func(w http.ResponseWriter, r *http.Request) {
		if queryOK(w, r, nil) {
			s.list(w)
		}
	})
	mux.HandleFunc("/v1/switches", func(w http.ResponseWriter, r *http.Request) { allowed(w, r, readMethods) })
	mux.HandleFunc(statusPath, s.status) // the status page's data (status.go)
	mux.HandleFunc("/v1/switches/{$}", func(w http.ResponseWriter, r *http.Request) { s.switchOf(w, r) })
	// A path below a switch that names no endpoint: 404, naming the switch
	// when there is none of that name.
	mux.HandleFunc("/v1/switches/{name}/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		if s.switchOf(w, r) != nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s", short(r.URL.Path)))
		}
	})

	s.read(mux, "", nil, (*Server).getSwitch)
	s.read(mux, "/history", nil, (*Server).history)
	s.read(mux, "/explain", []string{"client"}, (*Server).explain)
	s.read(mux, "/rollout/analysis", nil, (*Server).analysis)
	s.write(mux, "/weights", []string{http.MethodPut}, (*Server).putWeights)
	s.write(mux, "/promote", []string{http.MethodPost}, (*Server).promote)
	s.write(mux, "/rollback", []string{http.MethodPost}, (*Server).rollback)
	s.write(mux, "/rollout", []string{http.MethodPost, http.MethodDelete}, (*Server).rollout)
	s.write(mux, "/rollout/pause", []string{http.MethodPost}, (*Server).pauseRollout)
	s.write(mux, "/rollout/resume", []string{http.MethodPost}, (*Server).resumeRollout)
	return mux
}

// handler serves one endpoint of switch sw; body is a write's JSON body.
type handler func(s *Server, w http.ResponseWriter, r *http.Request, sw *state.Switch, body []byte)

var readMethods = []string{http.MethodGet, http.MethodHead}

// read registers GET (and so HEAD) /v1/switches/{name}SUFFIX, which
// accepts the query parameters params.
func (s *Server) read(mux *http.ServeMux, suffix string, params []string, h handler) {
	pattern := "/v1/switches/{name}" + suffix
	mux.HandleFunc("GET "+pattern, func(w http.ResponseWriter, r *http.Request) {
		if sw := s.switchOf(w, r); sw != nil && queryOK(w, r, params) {
			h(s, w, r, sw, nil)
		}
	})
	s.refuse(mux, pattern, readMethods)
}

// write registers a write endpoint: no query parameters, a JSON body of
// at most MaxBody bytes.
func (s *Server) write(mux *http.ServeMux, suffix string, methods []string, h handler) {
	pattern := "/v1/switches/{name}" + suffix
	for _, m := range methods {
		mux.HandleFunc(m+" "+pattern, func(w http.ResponseWriter, r *http.Request) {
			sw := s.switchOf(w, r)
			if sw == nil {
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
			h(s, w, r, sw, body)
		})
	}
	s.refuse(mux, pattern, methods)
}

// refuse answers every other method on pattern: 404 for an unknown switch,
// else 405.
func (s *Server) refuse(mux *http.ServeMux, pattern string, methods []string) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if s.switchOf(w, r) != nil {
			allowed(w, r, methods)
		}
	})
}

// switchOf returns the switch the request's path names, or answers 404.
func (s *Server) switchOf(w http.ResponseWriter, r *http.Request) *state.Switch {
	name := r.PathValue("name")
	sw := s.lookup(name)
	if sw == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no switch %s", short(name)))
	}
	return sw
}

// ServeHTTP implements http.Handler: the checks every request passes
// first, in this order: Host (403), cross-origin (403), the status page's
// files, token (401, not for /healthz); then the route: path (404), method (405), query
// parameters (400), Content-Type (415), body size (413), body and
// If-Match (400); then the change (412, 409, 400, 503).
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
	// The status page's files hold no state: no token, so the page can
	// ask for it (status.go).
	if s.servePage(w, r) {
		return
	}
	if r.URL.Path != "/healthz" && !s.checkToken(r) {
		h.Set("WWW-Authenticate", `Bearer realm="bluegreen"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	// The mux would redirect a path that is not clean; no endpoint has one.
	if p := r.URL.Path; p == "" || p[0] != '/' || (path.Clean(p) != p && path.Clean(p)+"/" != p) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s", short(p)))
		return
	}
	s.mux.ServeHTTP(w, r)
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
