package config

import (
	"errors"
	"fmt"
	"os"
)

// CheckFiles checks that every file the configuration names for reading
// (certificates, keys, CA files, password and token files) can be opened
// and is not a directory. Each problem carries the line of its key. Relative
// paths are relative to the working directory. It does not check log or
// audit outputs or routing.routes_file, which imapedge creates, nor whether
// the files' contents are valid (tlsconf does that).
func (c *Config) CheckFiles() []Problem {
	type file struct{ path, name string }
	var files []file
	for i, cert := range c.TLS.Certificates {
		p := fmt.Sprintf("tls.certificates[%d]", i)
		files = append(files, file{p + ".cert_file", cert.CertFile}, file{p + ".key_file", cert.KeyFile})
	}
	for i, b := range c.Backends {
		p := fmt.Sprintf("backends[%d]", i)
		files = append(files,
			file{p + ".ca_file", b.CAFile},
			file{p + ".client_cert_file", b.ClientCertFile},
			file{p + ".client_key_file", b.ClientKeyFile},
			file{p + ".master_password_file", b.MasterPasswordFile})
	}
	files = append(files,
		file{"admin.token_file", c.Admin.TokenFile},
		file{"migration.verify_password_file", c.Migration.VerifyPasswordFile})

	var probs []Problem
	for _, f := range files {
		if f.name == "" {
			continue
		}
		if msg := readable(f.name); msg != "" {
			s, _ := c.Source(f.path)
			probs = append(probs, Problem{Line: s.Line, Column: s.Column, Path: f.path, Msg: msg})
		}
	}
	return probs
}

// readable returns why the file name cannot be read, or "".
func readable(name string) string {
	fh, err := os.Open(name)
	if err != nil {
		return fmt.Sprintf("cannot read %s: %v", name, unwrapPath(err))
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return fmt.Sprintf("cannot read %s: %v", name, unwrapPath(err))
	}
	if st.IsDir() {
		return fmt.Sprintf("%s is a directory, not a file", name)
	}
	return ""
}

// unwrapPath drops the *PathError wrapper, whose text repeats the name.
func unwrapPath(err error) error {
	if pe := (*os.PathError)(nil); errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
