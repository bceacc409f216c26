package bluegreen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// selfSigned writes a self-signed certificate and its key as cert.pem and
// key.pem into dir.
func selfSigned(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
}

// TestParseAdminBlock: the admin block's hosts (lower case, no trailing
// dot) and tls (TLS 1.2 at least; a CA requires client certificates and
// stands in for the token off loopback).
func TestParseAdminBlock(t *testing.T) {
	dir := minimalZones(t)
	selfSigned(t, dir)
	const pools = "pool blue blue.db\npool green green.db\n"

	cfg, err := parseIn(dir, "bluegreen {\n"+pools+"admin 127.0.0.1:9053 {\nhosts BlueGreen-Admin.dns.svc. x.example\n}\n}")
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9053", cfg.admin)
	assert.Equal(t, []string{"bluegreen-admin.dns.svc", "x.example"}, cfg.listen.hosts)
	assert.Nil(t, cfg.listen.tls, "no tls: plain HTTP")

	cfg, err = parseIn(dir, "bluegreen {\n"+pools+"admin 127.0.0.1:9053 {\ntls cert.pem key.pem\n}\n}")
	require.NoError(t, err)
	require.NotNil(t, cfg.listen.tls)
	assert.Equal(t, uint16(tls.VersionTLS12), cfg.listen.tls.MinVersion)
	assert.Equal(t, tls.NoClientCert, cfg.listen.tls.ClientAuth)
	assert.False(t, cfg.listen.mtls())
	assert.NotEmpty(t, cfg.listen.tlsID)

	// Off loopback with a CA and no token: mutual TLS is the boundary.
	cfg, err = parseIn(dir, "bluegreen {\n"+pools+"admin 0.0.0.0:9053 {\ntls cert.pem key.pem cert.pem\n}\n}")
	require.NoError(t, err)
	assert.Equal(t, tls.RequireAndVerifyClientCert, cfg.listen.tls.ClientAuth)
	assert.True(t, cfg.listen.mtls())
	assert.Empty(t, cfg.token)

	// The property after the block is still the bluegreen block's.
	cfg, err = parseIn(dir, "bluegreen {\n"+pools+"admin 127.0.0.1:9053 {\nhosts a.example\n}\nname after\n}")
	require.NoError(t, err)
	assert.Equal(t, "after", cfg.name)

	for i, tc := range []struct{ in, want string }{
		{"admin 127.0.0.1:9053 {\nhosts a.example\nhosts b.example\n}", "Testfile:6 - Error during parsing: admin: hosts: declared twice (first at Testfile:5)"},
		{"admin 127.0.0.1:9053 {\nhosts *.example\n}", "Testfile:5 - Error during parsing: admin: hosts: \"*.example\" is not a DNS name"},
		{"admin 127.0.0.1:9053 {\nhosts -a.example\n}", "is not a DNS name"},
		{"admin 127.0.0.1:9053 {\nhosts a/b\n}", "is not a DNS name"},
		{"admin 127.0.0.1:9053 {\ntls cert.pem missing.pem\n}", "Testfile:5 - Error during parsing: admin: tls: open "},
		{"admin 127.0.0.1:9053 {\ntls key.pem cert.pem\n}", "admin: tls:"},
		{"admin 127.0.0.1:9053 {\ntls cert.pem key.pem blue.db\n}", "blue.db: no PEM certificate"},
		{"admin 127.0.0.1:9053 {\ntls cert.pem key.pem\n}\nadmin off", "admin: declared twice"},
		{"admin 127.0.0.1:9053 hosts", "want 'admin ADDRESS' or 'admin off'"},
		{"admin 0.0.0.0:9053 {\ntls cert.pem key.pem\n}", "a token is required when the admin address is not a loopback address, unless tls has a CA"},
	} {
		_, err := parseIn(dir, "bluegreen {\n"+pools+tc.in+"\n}")
		if assert.Error(t, err, "Test %d: %q", i, tc.in) {
			assert.Contains(t, err.Error(), tc.want, "Test %d", i)
		}
	}
}
