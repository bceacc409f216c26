package bluegreen

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/coredns/caddy"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/admin"
)

// adminSettings are the admin block's settings besides the address.
type adminSettings struct {
	hosts []string    // Host names allowed besides the listener's own
	tls   *tls.Config // nil: plain HTTP
	tlsID string      // SHA-256 of the certificate, key and CA files
	caID  string      // SHA-256 of the CA file; "" without client certificates
}

// mtls reports whether the listener verifies client certificates.
func (a adminSettings) mtls() bool { return a.caID != "" }

// adminOptions returns the admin listener's options for package admin.
func (c *config) adminOptions() admin.Options {
	return admin.Options{Token: c.token, Hosts: c.listen.hosts, TLS: c.listen.tls, TLSID: c.listen.tlsID, CAID: c.listen.caID}
}

// parseAdmin parses 'admin ADDRESS [{ hosts NAME...; tls CERT KEY [CA] }]'
// or 'admin off', args being the line's arguments. It returns the address,
// "" for off. The certificate files are read here, so a reload re-reads
// them and a bad file fails setup at its line.
func parseAdmin(c *caddy.Controller, args []string, resolve func(string) string) (string, adminSettings, error) {
	var as adminSettings
	if len(args) != 1 {
		return "", as, c.Errf("admin: want 'admin ADDRESS' or 'admin off', ADDRESS optionally with a block { hosts NAME...; tls CERT KEY [CA] }")
	}
	addr := ""
	if args[0] != "off" {
		var err error
		if addr, err = adminAddr(args[0]); err != nil {
			return "", as, c.Errf("admin: %v", err)
		}
	}
	// The block is optional and opens on the address's line (see parseEtcd).
	if !c.NextArg() {
		return addr, as, nil
	}
	if c.Val() != "{" || addr == "" {
		return "", as, c.Errf("admin: want '{' after the address, got %q", c.Val())
	}
	seen := map[string]string{}
	for c.Next() {
		prop := c.Val()
		if prop == "}" {
			return addr, as, nil
		}
		if first, ok := seen[prop]; ok {
			return "", as, c.Errf("admin: %s: declared twice (first at %s)", prop, first)
		}
		seen[prop] = position(c)
		args := c.RemainingArgs()
		switch prop {
		case "hosts":
			if len(args) == 0 {
				return "", as, c.Errf("admin: want 'hosts NAME...'")
			}
			for _, h := range args {
				name, err := hostName(h)
				if err != nil {
					return "", as, c.Errf("admin: hosts: %v", err)
				}
				as.hosts = append(as.hosts, name)
			}
		case "tls":
			if len(args) != 2 && len(args) != 3 {
				return "", as, c.Errf("admin: want 'tls CERT KEY [CA]'")
			}
			for i := range args {
				args[i] = resolve(args[i])
			}
			if err := adminTLS(&as, args); err != nil {
				return "", as, c.Errf("admin: tls: %v", err)
			}
		default:
			return "", as, c.Errf("admin: unknown property '%s'", prop)
		}
	}
	return "", as, c.EOFErr()
}

// hostName checks an exact Host name for the allow-list and returns it
// lower case without a trailing dot. Wildcards are refused: they would let
// a rebinding attacker's name through.
func hostName(h string) (string, error) {
	name := strings.TrimSuffix(strings.ToLower(h), ".")
	if name == "" || len(name) > 253 {
		return "", fmt.Errorf("%q is not a DNS name", h)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%q is not a DNS name (exact names only, no wildcards)", h)
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' {
				return "", fmt.Errorf("%q is not a DNS name (exact names only, no wildcards)", h)
			}
		}
	}
	return name, nil
}

// adminTLS reads files (CERT KEY [CA]) into as: HTTPS with TLS 1.2 at
// least, and with a CA, client certificates it signed required.
func adminTLS(as *adminSettings, files []string) error {
	sum := sha256.New()
	var data [3][]byte
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		data[i] = b
		fmt.Fprintf(sum, "%d:", len(b))
		sum.Write(b)
	}
	cert, err := tls.X509KeyPair(data[0], data[1])
	if err != nil {
		return fmt.Errorf("%s, %s: %v", files[0], files[1], err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if len(files) == 3 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data[2]) {
			return fmt.Errorf("%s: no PEM certificate", files[2])
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
		ca := sha256.Sum256(data[2])
		as.caID = hex.EncodeToString(ca[:])
	}
	as.tls, as.tlsID = cfg, hex.EncodeToString(sum.Sum(nil))
	return nil
}
