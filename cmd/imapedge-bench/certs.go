package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"

	"github.com/imapedge/imapedge/tlsconf"
)

// certFiles is the self-signed server certificate shared by the proxies.
type certFiles struct {
	cert, key, combined string // PEM files; combined = cert + key (HAProxy)
	der                 []byte
}

// writeSelfSigned generates an ECDSA P-256 self-signed certificate for
// localhost and 127.0.0.1 (tlsconf.SelfSigned) and writes it to dir.
func writeSelfSigned(dir string) (certFiles, error) {
	cert, certPEM, err := tlsconf.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		return certFiles{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return certFiles{}, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	cf := certFiles{
		cert:     filepath.Join(dir, "cert.pem"),
		key:      filepath.Join(dir, "key.pem"),
		combined: filepath.Join(dir, "combined.pem"),
		der:      cert.Certificate[0],
	}
	if err := os.WriteFile(cf.cert, certPEM, 0o644); err != nil {
		return cf, err
	}
	if err := os.WriteFile(cf.key, keyPEM, 0o600); err != nil {
		return cf, err
	}
	if err := os.WriteFile(cf.combined, append(append([]byte{}, certPEM...), keyPEM...), 0o600); err != nil {
		return cf, err
	}
	return cf, nil
}
