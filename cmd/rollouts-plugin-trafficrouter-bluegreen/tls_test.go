package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type pki struct {
	dir                                    string
	ca                                     *x509.CertPool
	server                                 tls.Certificate
	caFile, certFile, keyFile, otherCAFile string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: x509.NewCertPool()}
	caCert, caKey := makeCert(t, nil, nil, &x509.Certificate{
		Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	})
	p.ca.AddCert(caCert)
	p.caFile = p.write(t, "ca.crt", "CERTIFICATE", caCert.Raw)
	srv, srvKey := makeCert(t, caCert, caKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "bluegreen-admin"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	})
	p.server = tls.Certificate{Certificate: [][]byte{srv.Raw}, PrivateKey: srvKey}
	cl, clKey := makeCert(t, caCert, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "argo-rollouts"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	})
	p.certFile = p.write(t, "client.crt", "CERTIFICATE", cl.Raw)
	der, err := x509.MarshalECPrivateKey(clKey)
	require.NoError(t, err)
	p.keyFile = p.write(t, "client.key", "EC PRIVATE KEY", der)
	other, _ := makeCert(t, nil, nil, &x509.Certificate{
		Subject: pkix.Name{CommonName: "another CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	})
	p.otherCAFile = p.write(t, "other-ca.crt", "CERTIFICATE", other.Raw)
	return p
}

var serial int64

func makeCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c, key
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(p.dir, name)
	require.NoError(t, os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return f
}

// An https adminURL: caFile trusts the listener's certificate, and
// certFile/keyFile answer a listener that verifies clients. The listener
// is a TLS front on loopback (client certificates required) for the real
// server's API.
func TestHTTPS(t *testing.T) {
	s := startServer(t)
	p := newPKI(t)
	target, err := url.Parse(s.api)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Host = target.Host
		rp.ServeHTTP(w, r)
	}))
	front.TLS = &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.ca,
		MinVersion:   tls.VersionTLS12,
	}
	front.Config.ErrorLog = nil
	front.StartTLS()
	defer front.Close()

	base := func(c map[string]any) {
		c["adminURL"] = front.URL
		c["caFile"], c["certFile"], c["keyFile"] = p.caFile, p.certFile, p.keyFile
	}
	for _, tc := range []struct {
		name string
		edit func(c map[string]any)
		want string
	}{
		{"no client certificate", func(c map[string]any) { delete(c, "certFile"); delete(c, "keyFile") }, "certificate required"},
		{"no caFile", func(c map[string]any) { delete(c, "caFile") }, "certificate signed by unknown authority"},
		{"another CA", func(c map[string]any) { c["caFile"] = p.otherCAFile }, "certificate signed by unknown authority"},
		{"caFile not PEM", func(c map[string]any) { c["caFile"] = p.keyFile + ".absent" }, "caFile: open"},
		{"caFile is a key", func(c map[string]any) { c["caFile"] = p.keyFile }, "no PEM certificate"},
		{"key does not match", func(c map[string]any) { c["keyFile"] = p.caFile }, "certFile/keyFile"},
	} {
		r := reconciler(t, rollout(t, s, func(c map[string]any) { base(c); tc.edit(c) }))
		require.ErrorContains(t, r.SetWeight(40), tc.want, tc.name)
	}
	require.Equal(t, weights(100, 0), s.state(t).Weights, "a refused call changed the switch")

	r := reconciler(t, rollout(t, s, base))
	require.NoError(t, r.SetWeight(40))
	require.Equal(t, weights(60, 40), s.state(t).Weights)
	v, err := r.VerifyWeight(40)
	require.NoError(t, err)
	require.NotNil(t, v)
}
