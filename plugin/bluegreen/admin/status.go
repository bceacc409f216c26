package admin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

// The status page: static files that hold no state (served without the
// token, so the page can ask for it) and one JSON endpoint, statusPath,
// that the page polls under the API's rules.
const (
	statusPath    = "/v1/status"
	statusHistory = 20 // history entries per switch on the page
	// pageCSP allows the page's own files and requests only: no inline
	// script or style, no other origin, no framing, no forms.
	pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

//go:embed status
var statusFiles embed.FS

// pageFiles maps the page's paths to their embedded file and type.
var pageFiles = map[string][2]string{
	"/":                 {"status/index.html", "text/html; charset=utf-8"},
	"/status/app.js":    {"status/app.js", "text/javascript; charset=utf-8"},
	"/status/style.css": {"status/style.css", "text/css; charset=utf-8"},
	"/status/icon.svg":  {"status/icon.svg", "image/svg+xml"},
}

// authMarker in index.html becomes "token" when the server has a token,
// so the page asks for it before its first request.
const authMarker = "{{auth}}"

// servePage serves the status page's static files and reports whether r
// asked for one. They carry no state, so no token is needed; the Host and
// origin checks have run.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) bool {
	f, ok := pageFiles[r.URL.Path]
	if !ok {
		return false
	}
	setPageHeaders(w.Header())
	if !allowed(w, r, readMethods) || !queryOK(w, r, nil) {
		return true
	}
	b, err := statusFiles.ReadFile(f[0])
	if err != nil { // cannot happen: the files are embedded
		writeError(w, http.StatusInternalServerError, err.Error())
		return true
	}
	if r.URL.Path == "/" {
		auth := "none"
		if s.hasToken {
			auth = "token"
		}
		b = bytes.Replace(b, []byte(authMarker), []byte(auth), 1)
	}
	w.Header().Set("Content-Type", f[1])
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return true
}

func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// StatusBody is the answer of GET /v1/status: every switch of the listener
// with what the status page shows.
type StatusBody struct {
	Switches []SwitchStatus `json:"switches"`
	// SampleInterval is the time between two answer samples, in seconds.
	SampleInterval int `json:"sample_interval"`
}

// SwitchStatus is one switch on the status page.
type SwitchStatus struct {
	State   *state.View    `json:"state"`
	History []HistoryEntry `json:"history"`
	// Answers is the answers per pool over the last 15 minutes, oldest
	// first.
	Answers []Sample `json:"answers"`
}

// HistoryEntry is a history entry without the remote address.
type HistoryEntry struct {
	Version uint64            `json:"version"`
	Time    time.Time         `json:"time"`
	Source  string            `json:"source"`
	From    map[string]uint64 `json:"from"`
	To      map[string]uint64 `json:"to"`
	Reason  string            `json:"reason,omitempty"`
}

// status answers GET /v1/status, with an ETag of the body and 304 when
// If-None-Match names it.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if !allowed(w, r, readMethods) || !queryOK(w, r, nil) {
		return
	}
	body := StatusBody{Switches: []SwitchStatus{}, SampleInterval: int(sampleInterval / time.Second)}
	for _, sw := range s.switchList() {
		ss := SwitchStatus{State: sw.View(), History: []HistoryEntry{}, Answers: answers.samples(sw.Name)}
		for i, c := range sw.History() {
			if i == statusHistory {
				break
			}
			ss.History = append(ss.History, HistoryEntry{Version: c.Version, Time: c.Time, Source: c.Source, From: c.From, To: c.To, Reason: c.Reason})
		}
		body.Switches = append(body.Switches, ss)
	}
	b, err := json.Marshal(body)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if noneMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}

// noneMatch reports whether an If-None-Match header value names etag.
func noneMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// switchList returns the server's switches sorted by name.
func (s *Server) switchList() []*state.Switch {
	s.mu.RLock()
	sws := make([]*state.Switch, 0, len(s.switches))
	for _, sw := range s.switches {
		sws = append(sws, sw)
	}
	s.mu.RUnlock()
	sort.Slice(sws, func(i, j int) bool { return sws[i].Name < sws[j].Name })
	return sws
}
