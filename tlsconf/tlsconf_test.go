package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// selfSigned is SelfSigned that fails the test on error.
func selfSigned(t *testing.T, hosts ...string) (tls.Certificate, []byte) {
	t.Helper()
	cert, certPEM, err := SelfSigned(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}

// writeCert writes cert as PEM files into dir and returns their names.
func writeCert(t *testing.T, dir, name string, cert tls.Certificate) CertFile {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	f := CertFile{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key")}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(f.CertFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.KeyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// rsaSelfSigned makes an RSA certificate for host, to test choosing between
// an RSA and an ECDSA certificate for one name.
func rsaSelfSigned(t *testing.T, host string) tls.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host + " (rsa)"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{host},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key} // Leaf left nil on purpose
}

type handshakeResult struct {
	state     tls.ConnectionState
	clientErr error
	serverErr error
}

// handshake runs one TLS handshake over loopback TCP.
func handshake(t *testing.T, server, client *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, server)
		err = tc.Handshake()
		if err == nil {
			// Wait for the client to finish reading the handshake (and
			// any TLS 1.3 tickets) before closing.
			var b [1]byte
			tc.Read(b[:])
		}
		serverErr <- err
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, client)
	var res handshakeResult
	res.clientErr = tc.Handshake()
	res.state = tc.ConnectionState()
	tc.Close()
	res.serverErr = <-serverErr
	return res
}

// servedName returns the common name of the certificate the server sent.
func servedName(t *testing.T, store *Store, client *tls.Config) string {
	t.Helper()
	res := handshake(t, store.ServerConfig(), client)
	if res.clientErr != nil || res.serverErr != nil {
		t.Fatalf("handshake: client %v, server %v", res.clientErr, res.serverErr)
	}
	return res.state.PeerCertificates[0].Subject.CommonName
}

func sni(name string) *tls.Config {
	return &tls.Config{ServerName: name, InsecureSkipVerify: true}
}

func TestSNISelection(t *testing.T) {
	var certs []tls.Certificate
	for _, hosts := range [][]string{
		{"default.example"},
		{"*.example.net"}, // before the exact one: exact must still win
		{"imap.example.net"},
		{"mail.example.org", "mail.example.com"},
		{"IMAP.Example.COM"},
	} {
		c, _ := selfSigned(t, hosts...)
		certs = append(certs, c)
	}
	store, err := NewStoreFromCertificates(certs, tls.VersionTLS12)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		client *tls.Config
		want   string
	}{
		{"exact", sni("mail.example.org"), "mail.example.org"},
		{"second SAN", sni("mail.example.com"), "mail.example.org"},
		{"exact, upper-case SNI", sni("MAIL.Example.ORG"), "mail.example.org"},
		{"exact, upper-case SAN", sni("imap.example.com"), "IMAP.Example.COM"},
		{"exact beats wildcard", sni("imap.example.net"), "imap.example.net"},
		{"wildcard", sni("a.example.net"), "*.example.net"},
		{"wildcard, upper-case", sni("A.EXAMPLE.NET"), "*.example.net"},
		{"wildcard is one label only", sni("b.a.example.net"), "default.example"},
		{"wildcard does not match its parent", sni("example.net"), "default.example"},
		{"unknown", sni("unknown.example"), "default.example"},
		{"no SNI", &tls.Config{InsecureSkipVerify: true}, "default.example"},
		{"IP address: no SNI sent", sni("127.0.0.1"), "default.example"},
		{"TLS 1.2 client", &tls.Config{ServerName: "a.example.net", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}, "*.example.net"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := servedName(t, store, tc.client); got != tc.want {
				t.Errorf("served %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSNIPrefersASupportedCertificate(t *testing.T) {
	def, _ := selfSigned(t, "default.example")
	ecdsaCert, _ := selfSigned(t, "mail.example.org") // ECDSA, listed first
	rsaCert := rsaSelfSigned(t, "mail.example.org")
	store, err := NewStoreFromCertificates([]tls.Certificate{def, ecdsaCert, rsaCert}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := servedName(t, store, sni("mail.example.org")); got != "mail.example.org" {
		t.Errorf("modern client got %q, want the first (ECDSA) certificate", got)
	}
	rsaOnly := &tls.Config{
		ServerName:         "mail.example.org",
		InsecureSkipVerify: true,
		MaxVersion:         tls.VersionTLS12,
		CipherSuites:       []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
	}
	if got := servedName(t, store, rsaOnly); got != "mail.example.org (rsa)" {
		t.Errorf("RSA-only client got %q, want the RSA certificate", got)
	}
}

func TestGetCertificateDoesNoParsing(t *testing.T) {
	def, _ := selfSigned(t, "default.example")
	wild, _ := selfSigned(t, "*.example.org")
	store, err := NewStoreFromCertificates([]tls.Certificate{def, wild}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range store.set.Load().certs {
		if c.Leaf == nil {
			t.Fatal("leaf not parsed at load")
		}
	}
	hello := &tls.ClientHelloInfo{ServerName: "a.example.org"}
	if n := testing.AllocsPerRun(100, func() { store.getCertificate(hello) }); n != 0 {
		t.Errorf("getCertificate allocates %v times per call", n)
	}
}

func TestServerConfig(t *testing.T) {
	c, _ := selfSigned(t, "a.example")
	for _, tc := range []struct {
		min, want uint16
	}{
		{0, tls.VersionTLS12},
		{tls.VersionTLS12, tls.VersionTLS12},
		{tls.VersionTLS13, tls.VersionTLS13},
	} {
		store, err := NewStoreFromCertificates([]tls.Certificate{c}, tc.min)
		if err != nil {
			t.Fatal(err)
		}
		cfg := store.ServerConfig()
		if cfg.MinVersion != tc.want {
			t.Errorf("min %#x: MinVersion = %#x, want %#x", tc.min, cfg.MinVersion, tc.want)
		}
		if store.ServerConfig() != cfg {
			t.Error("ServerConfig returns a different *tls.Config on each call")
		}
	}
	for _, min := range []uint16{tls.VersionTLS10, tls.VersionTLS11, 0x0305} {
		if _, err := NewStoreFromCertificates([]tls.Certificate{c}, min); err == nil {
			t.Errorf("min version %#x accepted", min)
		}
	}
}

func TestMinVersionRefusesOldClients(t *testing.T) {
	c, _ := selfSigned(t, "a.example")
	store12, err := NewStoreFromCertificates([]tls.Certificate{c}, tls.VersionTLS12)
	if err != nil {
		t.Fatal(err)
	}
	old := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	res := handshake(t, store12.ServerConfig(), old)
	if res.clientErr == nil || res.serverErr == nil {
		t.Fatalf("TLS 1.1 client: client %v, server %v; want both to fail", res.clientErr, res.serverErr)
	}
	if !strings.Contains(res.serverErr.Error(), "version") {
		t.Errorf("server error %v does not mention the version", res.serverErr)
	}

	// A TLS 1.2 client is fine with 1.2 and refused by a 1.3-only store.
	tls12 := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}
	if res := handshake(t, store12.ServerConfig(), tls12); res.clientErr != nil || res.state.Version != tls.VersionTLS12 {
		t.Errorf("TLS 1.2 client against min 1.2: %v, version %#x", res.clientErr, res.state.Version)
	}
	store13, err := NewStoreFromCertificates([]tls.Certificate{c}, tls.VersionTLS13)
	if err != nil {
		t.Fatal(err)
	}
	if res := handshake(t, store13.ServerConfig(), tls12); res.clientErr == nil {
		t.Error("TLS 1.2 client accepted by a min 1.3 store")
	}
}

func TestNewStoreFromFiles(t *testing.T) {
	dir := t.TempDir()
	a, _ := selfSigned(t, "a.example")
	b, _ := selfSigned(t, "b.example")
	fa, fb := writeCert(t, dir, "a", a), writeCert(t, dir, "b", b)

	store, err := NewStore([]CertFile{fa, fb}, tls.VersionTLS12)
	if err != nil {
		t.Fatal(err)
	}
	if got := servedName(t, store, sni("b.example")); got != "b.example" {
		t.Errorf("SNI b.example served %q", got)
	}
	if got := servedName(t, store, sni("")); got != "a.example" {
		t.Errorf("no SNI served %q, want the first certificate", got)
	}
	var cns []string
	for _, leaf := range store.Certificates() {
		cns = append(cns, leaf.Subject.CommonName)
	}
	if !slices.Equal(cns, []string{"a.example", "b.example"}) {
		t.Errorf("Certificates() = %v", cns)
	}

	missing := CertFile{CertFile: filepath.Join(dir, "missing.crt"), KeyFile: fb.KeyFile}
	if _, err := NewStore([]CertFile{fa, missing}, 0); err == nil || !strings.Contains(err.Error(), missing.CertFile) {
		t.Errorf("missing file: err = %v, want it to name %s", err, missing.CertFile)
	}
	mismatched := CertFile{CertFile: fa.CertFile, KeyFile: fb.KeyFile}
	if _, err := NewStore([]CertFile{mismatched}, 0); err == nil || !strings.Contains(err.Error(), fb.KeyFile) {
		t.Errorf("mismatched key: err = %v, want it to name %s", err, fb.KeyFile)
	}
	if _, err := NewStore(nil, 0); err == nil {
		t.Error("no certificates accepted")
	}
	if _, err := NewStoreFromCertificates(nil, 0); err == nil {
		t.Error("no certificates accepted")
	}
	if _, err := NewStoreFromCertificates([]tls.Certificate{{Certificate: a.Certificate}}, 0); err == nil {
		t.Error("certificate without private key accepted")
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	v1, _ := selfSigned(t, "v1.example")
	f := writeCert(t, dir, "server", v1)
	store, err := NewStore([]CertFile{f}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := servedName(t, store, sni("")); got != "v1.example" {
		t.Fatalf("served %q", got)
	}

	v2, _ := selfSigned(t, "v2.example")
	writeCert(t, dir, "server", v2)
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := servedName(t, store, sni("")); got != "v2.example" {
		t.Errorf("after Reload served %q, want v2.example", got)
	}

	if err := os.WriteFile(f.CertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = store.Reload()
	if err == nil || !strings.Contains(err.Error(), f.CertFile) {
		t.Errorf("Reload of a broken file: err = %v, want it to name %s", err, f.CertFile)
	}
	if got := servedName(t, store, sni("")); got != "v2.example" {
		t.Errorf("after a failed Reload served %q, want the old v2.example", got)
	}

	// A store without files has nothing to reload.
	mem, err := NewStoreFromCertificates([]tls.Certificate{v1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.Reload(); err != nil {
		t.Errorf("Reload of an in-memory store: %v", err)
	}
}

// TestReloadDuringHandshakes is meant for -race.
func TestReloadDuringHandshakes(t *testing.T) {
	dir := t.TempDir()
	c, _ := selfSigned(t, "a.example")
	f := writeCert(t, dir, "server", c)
	store, err := NewStore([]CertFile{f}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range 10 {
				if err := store.Reload(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for range 5 {
		servedName(t, store, sni("a.example"))
	}
	wg.Wait()
}

func TestSelfSigned(t *testing.T) {
	before := time.Now()
	cert, certPEM := selfSigned(t, "mail.example.org", "127.0.0.1", "::1", "localhost")
	leaf := cert.Leaf
	if leaf == nil {
		t.Fatal("Leaf not set")
	}
	if !slices.Equal(leaf.DNSNames, []string{"mail.example.org", "localhost"}) {
		t.Errorf("DNSNames = %v", leaf.DNSNames)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IPAddresses = %v", leaf.IPAddresses)
	}
	if leaf.Subject.CommonName != "mail.example.org" {
		t.Errorf("CommonName = %q", leaf.Subject.CommonName)
	}
	if key, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok || key.Curve != elliptic.P256() {
		t.Errorf("private key %T, want ECDSA P-256", cert.PrivateKey)
	}
	if d := before.Add(-time.Hour).Sub(leaf.NotBefore); d < -time.Minute || d > time.Minute {
		t.Errorf("NotBefore = %v, want about an hour ago", leaf.NotBefore)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 364*24*time.Hour || d > 367*24*time.Hour {
		t.Errorf("validity %v, want one year", d)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" || string(block.Bytes) != string(cert.Certificate[0]) {
		t.Error("certPEM does not hold the certificate")
	}
	if err := leaf.VerifyHostname("mail.example.org"); err != nil {
		t.Error(err)
	}
}

func writeCA(t *testing.T, certPEM []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientConfigVerification(t *testing.T) {
	cert, certPEM := selfSigned(t, "backend.internal", "127.0.0.1")
	store, err := NewStoreFromCertificates([]tls.Certificate{cert}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ca := writeCA(t, certPEM)
	_, otherPEM := selfSigned(t, "backend.internal")
	otherCA := writeCA(t, otherPEM)

	for _, tc := range []struct {
		name    string
		client  Client
		address string
		wantErr bool
	}{
		{"CA file, IP from address", Client{CAFile: ca}, "127.0.0.1:993", false},
		{"CA file, host from address", Client{CAFile: ca}, "backend.internal:993", false},
		{"CA file, explicit server name", Client{CAFile: ca, ServerName: "backend.internal"}, "10.0.0.1:993", false},
		{"wrong server name", Client{CAFile: ca, ServerName: "wrong.internal"}, "127.0.0.1:993", true},
		{"wrong host in address", Client{CAFile: ca}, "wrong.internal:993", true},
		{"wrong CA", Client{CAFile: otherCA}, "backend.internal:993", true},
		{"system roots", Client{}, "backend.internal:993", true},
		{"insecure", Client{InsecureSkipVerify: true}, "127.0.0.1:993", false},
		{"insecure, wrong name", Client{InsecureSkipVerify: true, ServerName: "wrong.internal"}, "127.0.0.1:993", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ClientConfig(tc.client, tc.address)
			if err != nil {
				t.Fatal(err)
			}
			res := handshake(t, store.ServerConfig(), cfg)
			if gotErr := res.clientErr != nil; gotErr != tc.wantErr {
				t.Errorf("client error %v, want error: %v", res.clientErr, tc.wantErr)
			}
			var verr *tls.CertificateVerificationError
			if tc.wantErr && !errors.As(res.clientErr, &verr) {
				t.Errorf("client error %v is not a verification error", res.clientErr)
			}
		})
	}
}

func TestClientConfigFields(t *testing.T) {
	cfg, err := ClientConfig(Client{}, "mail.example.org:993")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "mail.example.org" || cfg.MinVersion != tls.VersionTLS12 || cfg.RootCAs != nil ||
		cfg.InsecureSkipVerify || cfg.Certificates != nil || cfg.ClientSessionCache == nil {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = ClientConfig(Client{MinVersion: tls.VersionTLS13}, "[::1]:993")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "::1" || cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("ServerName %q MinVersion %#x", cfg.ServerName, cfg.MinVersion)
	}

	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("nothing here"), 0o600)
	for _, tc := range []struct {
		name    string
		client  Client
		address string
	}{
		{"missing CA file", Client{CAFile: filepath.Join(dir, "missing.pem")}, "a:993"},
		{"CA file without certificates", Client{CAFile: garbage}, "a:993"},
		{"cert without key", Client{ClientCertFile: garbage}, "a:993"},
		{"key without cert", Client{ClientKeyFile: garbage}, "a:993"},
		{"broken client cert", Client{ClientCertFile: garbage, ClientKeyFile: garbage}, "a:993"},
		{"address without port", Client{}, "mail.example.org"},
		{"no host to verify", Client{}, ":993"},
		{"unknown version", Client{MinVersion: 0x0200}, "a:993"},
	} {
		if _, err := ClientConfig(tc.client, tc.address); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestClientConfigClientCertificate(t *testing.T) {
	dir := t.TempDir()
	serverCert, serverPEM := selfSigned(t, "127.0.0.1")
	clientCert, clientPEM := selfSigned(t, "imapedge-client")
	clientFiles := writeCert(t, dir, "client", clientCert)

	store, err := NewStoreFromCertificates([]tls.Certificate{serverCert}, 0)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(clientPEM)
	server := store.ServerConfig().Clone()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	server.ClientCAs = pool

	withCert, err := ClientConfig(Client{
		CAFile:         writeCA(t, serverPEM),
		ClientCertFile: clientFiles.CertFile,
		ClientKeyFile:  clientFiles.KeyFile,
	}, "127.0.0.1:993")
	if err != nil {
		t.Fatal(err)
	}
	if res := handshake(t, server, withCert); res.clientErr != nil || res.serverErr != nil {
		t.Errorf("mTLS: client %v, server %v", res.clientErr, res.serverErr)
	}

	withoutCert, err := ClientConfig(Client{CAFile: writeCA(t, serverPEM)}, "127.0.0.1:993")
	if err != nil {
		t.Fatal(err)
	}
	if res := handshake(t, server, withoutCert); res.serverErr == nil {
		t.Error("server accepted a client without a certificate")
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint16
		wantErr bool
	}{
		{"1.2", tls.VersionTLS12, false},
		{"1.3", tls.VersionTLS13, false},
		{" 1.3 ", 0, true},
		{"1.0", 0, true},
		{"1.1", 0, true},
		{"1.4", 0, true},
		{"TLS1.2", 0, true},
		{"", 0, true},
		{"12", 0, true},
	} {
		got, err := ParseVersion(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseVersion(%q) = %#x, %v; want %#x, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}
