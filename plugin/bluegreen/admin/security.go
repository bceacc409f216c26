package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// MaxBody is the largest request body the API reads; a larger one gets 413.
const MaxBody = 64 << 10

// checkToken reports whether r carries "Authorization: Bearer TOKEN" with
// the server's token. Both sides are hashed first, so the comparison takes
// the same time whatever the token's length and content.
func (s *Server) checkToken(r *http.Request) bool {
	if !s.hasToken {
		return true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// checkHost refuses a Host header that names neither the listener, a name
// of the admin block's hosts, nor a loopback address: a browser tricked by DNS rebinding sends the attacker's
// name. The port is not compared (a port forward changes it). An IP
// literal equal to the local address of the connection is the listener's
// own address (for a listener on all interfaces).
func (s *Server) checkHost(r *http.Request) error {
	host := hostOnly(r.Host)
	if host == "" {
		return errors.New("missing Host header")
	}
	if host == "localhost" || host == s.host {
		return nil
	}
	if _, ok := slices.BinarySearch(s.hosts, host); ok {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if a.IsLoopback() {
			return nil
		}
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ap, err := netip.ParseAddrPort(la.String()); err == nil && ap.Addr().Unmap() == a {
				return nil
			}
		}
	}
	return fmt.Errorf("host %s is not this listener, one of its hosts or a loopback address", short(r.Host))
}

// hostOnly returns the host of a Host header or listen address, lower
// case, without port, brackets or a trailing dot.
func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// checkOrigin refuses cross-origin browser requests: an Origin header that
// is not this scheme and Host (Origin: null included), a Sec-Fetch-Site other than
// same-origin or none, and, for writes, whatever net/http's
// CrossOriginProtection refuses. Clients that are not browsers (curl,
// scripts) send neither header.
func (s *Server) checkOrigin(r *http.Request) error {
	if o := r.Header.Values("Origin"); len(o) > 0 {
		if len(o) > 1 {
			return errors.New("more than one Origin header")
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		u, err := url.Parse(o[0])
		if err != nil || u.Scheme != scheme || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Errorf("cross-origin request from %s refused", short(o[0]))
		}
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return fmt.Errorf("cross-origin request (Sec-Fetch-Site: %s) refused", short(site))
	}
	if err := s.cop.Check(r); err != nil {
		return err
	}
	return nil
}

// checkContentType requires a JSON body on writes: HTML forms cannot send
// one, so this stops form-based cross-site requests too.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		if ct == "" {
			return errors.New("Content-Type must be application/json, got none")
		}
		return fmt.Errorf("Content-Type must be application/json, got %s", short(ct))
	}
	return nil
}

// readBody reads r's body, at most MaxBody bytes. It returns the status
// code for an error: 413 for a body over the limit, else 400.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	if r.ContentLength > MaxBody {
		// Close the connection after the answer: otherwise net/http reads
		// (up to 256 KiB of) the unread body before it sends the answer,
		// waiting out the read timeout for a client that sends none.
		w.Header().Set("Connection", "close")
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes is over the limit of %d bytes", r.ContentLength, MaxBody)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body is over the limit of %d bytes", MaxBody)
	case err != nil:
		return nil, http.StatusBadRequest, fmt.Errorf("reading body: %v", err)
	}
	return b, 0, nil
}
