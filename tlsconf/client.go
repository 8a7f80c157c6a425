package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
)

// Client describes the TLS settings for connections to one backend.
type Client struct {
	CAFile                        string // PEM roots; empty: the system roots
	ServerName                    string // empty: the host part of the address
	InsecureSkipVerify            bool   // do not verify the backend's certificate
	ClientCertFile, ClientKeyFile string // both or neither: client certificate (mTLS)
	MinVersion                    uint16 // 0: TLS 1.2
}

// ClientConfig builds the client TLS configuration for a backend at address
// (host:port). The backend's certificate is verified against the roots from
// c.CAFile, or the system roots, and against c.ServerName, or the host part
// of address (an IP address is checked against the certificate's IP SANs).
// The configuration carries a session cache so reconnects can resume.
func ClientConfig(c Client, address string) (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify,
		MinVersion:         c.MinVersion,
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
	}
	switch c.MinVersion {
	case 0:
		cfg.MinVersion = tls.VersionTLS12
	case tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, fmt.Errorf("tlsconf: backend %s: unknown TLS version %#04x", address, c.MinVersion)
	}

	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: backend address %q: %w", address, err)
		}
		cfg.ServerName = host
	}
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		return nil, fmt.Errorf("tlsconf: backend %s: no server name to verify", address)
	}

	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: backend %s: CA file: %w", address, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tlsconf: backend %s: CA file %s: no PEM certificates found", address, c.CAFile)
		}
		cfg.RootCAs = pool
	}

	switch {
	case c.ClientCertFile == "" && c.ClientKeyFile == "":
	case c.ClientCertFile == "" || c.ClientKeyFile == "":
		return nil, fmt.Errorf("tlsconf: backend %s: client certificate needs both a cert file and a key file", address)
	default:
		cert, err := tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: backend %s: client certificate %s (key %s): %w",
				address, c.ClientCertFile, c.ClientKeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// ParseVersion parses a configured minimum TLS version: "1.2" or "1.3".
func ParseVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf(`tlsconf: TLS version %q not supported (want "1.2" or "1.3")`, s)
}
