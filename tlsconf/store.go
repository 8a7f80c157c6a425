// Package tlsconf builds the TLS configurations imapedge uses: server
// certificates chosen by SNI and reloadable at run time, and client
// configurations for the connections to backends.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// CertFile names a PEM certificate chain and its private key.
type CertFile struct{ CertFile, KeyFile string }

// Store holds the server certificates. It is safe for concurrent use;
// [Store.Reload] swaps the certificates atomically, and connections already
// established keep the certificate they were given.
type Store struct {
	files    []CertFile
	config   *tls.Config
	set      atomic.Pointer[certSet]
	reloadMu sync.Mutex // serializes Reload
}

// certSet is one immutable generation of certificates with their SNI index.
type certSet struct {
	certs    []*tls.Certificate            // configuration order; certs[0] is the default
	exact    map[string][]*tls.Certificate // lower-case DNS SAN -> certificates
	wildcard map[string][]*tls.Certificate // "*.example.org" SAN, keyed "example.org"
}

// NewStore loads every certificate and key file. An error names the file
// that failed. minVersion is tls.VersionTLS12 (also used for 0) or
// tls.VersionTLS13. The first certificate is the default one.
func NewStore(files []CertFile, minVersion uint16) (*Store, error) {
	s, err := newStore(minVersion)
	if err != nil {
		return nil, err
	}
	certs, err := loadFiles(files)
	if err != nil {
		return nil, err
	}
	set, err := newCertSet(certs)
	if err != nil {
		return nil, err
	}
	s.files = append([]CertFile(nil), files...)
	s.set.Store(set)
	return s, nil
}

// NewStoreFromCertificates is [NewStore] for certificates already in
// memory, e.g. from [SelfSigned]. Such a store has nothing to reload.
func NewStoreFromCertificates(certs []tls.Certificate, minVersion uint16) (*Store, error) {
	s, err := newStore(minVersion)
	if err != nil {
		return nil, err
	}
	set, err := newCertSet(certs)
	if err != nil {
		return nil, err
	}
	s.set.Store(set)
	return s, nil
}

func newStore(minVersion uint16) (*Store, error) {
	switch minVersion {
	case 0:
		minVersion = tls.VersionTLS12
	case tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, fmt.Errorf("tlsconf: minimum TLS version %#04x not supported (want 1.2 or 1.3)", minVersion)
	}
	s := &Store{}
	s.config = &tls.Config{
		MinVersion:     minVersion,
		GetCertificate: s.getCertificate,
	}
	return s, nil
}

// Reload re-reads the certificate files. On any error the store keeps the
// certificates it had and the error names the file. A store built by
// [NewStoreFromCertificates] has no files and Reload does nothing.
func (s *Store) Reload() error {
	if len(s.files) == 0 {
		return nil
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	certs, err := loadFiles(s.files)
	if err != nil {
		return err
	}
	set, err := newCertSet(certs)
	if err != nil {
		return err
	}
	s.set.Store(set)
	return nil
}

// ServerConfig returns the server TLS configuration: the minimum version
// and a GetCertificate that picks a certificate by SNI. An exact match on a
// certificate's DNS names wins (case-insensitive), then a wildcard match
// ("*.example.org" matches "a.example.org", not "example.org" nor
// "b.a.example.org"); without a match, or without SNI, the first
// certificate is used. When several certificates match equally (say RSA and
// ECDSA for one name), the first one the client supports is chosen.
//
// Every call returns the same *tls.Config, so session ticket keys are shared
// across connections. It must not be modified; Clone it to change it.
func (s *Store) ServerConfig() *tls.Config {
	return s.config
}

// Certificates returns the parsed leaf certificates in configuration order,
// e.g. to report their expiry. They must not be modified.
func (s *Store) Certificates() []*x509.Certificate {
	set := s.set.Load()
	out := make([]*x509.Certificate, len(set.certs))
	for i, c := range set.certs {
		out[i] = c.Leaf
	}
	return out
}

// getCertificate implements tls.Config.GetCertificate. It does no parsing:
// every leaf was parsed at load time.
func (s *Store) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := s.set.Load()
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if name != "" {
		if c := choose(set.exact[name], hello); c != nil {
			return c, nil
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if c := choose(set.wildcard[name[i+1:]], hello); c != nil {
				return c, nil
			}
		}
	}
	return set.certs[0], nil
}

// choose returns the first candidate the client supports, else the first
// candidate, else nil.
func choose(cands []*tls.Certificate, hello *tls.ClientHelloInfo) *tls.Certificate {
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0]
	}
	for _, c := range cands {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	return cands[0]
}

// loadFiles loads every key pair, naming the file in any error.
func loadFiles(files []CertFile) ([]tls.Certificate, error) {
	if len(files) == 0 {
		return nil, errors.New("tlsconf: no certificates configured")
	}
	certs := make([]tls.Certificate, 0, len(files))
	for _, f := range files {
		c, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: certificate %s (key %s): %w", f.CertFile, f.KeyFile, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// newCertSet copies the certificates, parses every leaf once and indexes
// the DNS names.
func newCertSet(certs []tls.Certificate) (*certSet, error) {
	if len(certs) == 0 {
		return nil, errors.New("tlsconf: no certificates configured")
	}
	set := &certSet{
		exact:    make(map[string][]*tls.Certificate),
		wildcard: make(map[string][]*tls.Certificate),
	}
	for i := range certs {
		c := certs[i] // a copy: the caller's value is not modified
		if len(c.Certificate) == 0 || c.PrivateKey == nil {
			return nil, fmt.Errorf("tlsconf: certificate #%d has no certificate chain or no private key", i+1)
		}
		if c.Leaf == nil {
			leaf, err := x509.ParseCertificate(c.Certificate[0])
			if err != nil {
				return nil, fmt.Errorf("tlsconf: certificate #%d: %w", i+1, err)
			}
			c.Leaf = leaf
		}
		set.certs = append(set.certs, &c)
		for _, name := range c.Leaf.DNSNames {
			name = strings.TrimSuffix(strings.ToLower(name), ".")
			if parent, ok := strings.CutPrefix(name, "*."); ok {
				set.wildcard[parent] = append(set.wildcard[parent], &c)
			} else {
				set.exact[name] = append(set.exact[name], &c)
			}
		}
	}
	return set, nil
}
