package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// minIdleTimeout is the shortest post-auth idle timeout allowed: RFC 9051
// §5.4 requires an autologout timer of at least 30 minutes.
const minIdleTimeout = 30 * time.Minute

// where returns the position of path, or of its nearest ancestor that was
// written in the file, or no position.
func (d *decoder) where(path string) pos {
	for path != "" {
		if s, ok := d.sources[path]; ok {
			return pos{s.Line, s.Column}
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return pos{}
}

// report adds a cross-field problem at path unless the value at path
// already failed to decode.
func (d *decoder) report(path, format string, args ...any) {
	if d.failed[path] {
		return
	}
	d.addf(d.where(path), path, format, args...)
}

// set reports whether the key at path was written in the file.
func (d *decoder) set(path string) bool {
	_, ok := d.sources[path]
	return ok
}

// validate runs the checks that involve more than one value.
func (d *decoder) validate(c *Config) {
	d.validateListeners(c)
	d.validateTLS(c)
	pools := d.validateBackends(c)
	d.validateRouting(c, pools)
	d.validatePolicy(c)
	d.validateAdmin(c)
	bothOrNeither(d, "migration.verify_user", c.Migration.VerifyUser, "migration.verify_password_file", c.Migration.VerifyPasswordFile)
	for _, out := range []struct{ path, v string }{{"log.output", c.Log.Output}, {"audit.output", c.Audit.Output}} {
		if out.v == "" {
			d.report(out.path, "must not be empty (stderr, stdout or a file path)")
		}
	}
}

func (d *decoder) validateListeners(c *Config) {
	if len(c.Listeners) == 0 {
		d.report("listeners", "at least one listener is required")
		return
	}
	names := map[string]string{} // name -> path
	addrs := map[string]string{} // address -> listener name
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if d.failed[p] {
			continue // not a map: already reported
		}
		switch first, dup := names[l.Name]; {
		case l.Name == "" && d.set(p+".name"):
			d.report(p+".name", "must not be empty")
		case dup:
			d.report(p+".name", "duplicate listener name %q (first at line %d)", l.Name, d.where(first).line)
		case l.Name != "":
			names[l.Name] = p + ".name"
		}
		if l.Address == "" && !d.set(p+".address") {
			continue // reported as required
		}
		if _, msg := hostPort(l.Address, false, true); msg != "" {
			d.report(p+".address", "%s", msg)
			continue
		}
		if other, dup := addrs[l.Address]; dup && !strings.HasSuffix(l.Address, ":0") {
			d.report(p+".address", "%s is also the address of listener %q", l.Address, other)
		} else {
			addrs[l.Address] = l.Name
		}
	}
}

func (d *decoder) validateTLS(c *Config) {
	for i, cert := range c.TLS.Certificates {
		p := fmt.Sprintf("tls.certificates[%d]", i)
		if cert.CertFile == "" && d.set(p+".cert_file") {
			d.report(p+".cert_file", "must not be empty")
		}
		if cert.KeyFile == "" && d.set(p+".key_file") {
			d.report(p+".key_file", "must not be empty")
		}
	}
	if len(c.TLS.Certificates) > 0 {
		return
	}
	for i, l := range c.Listeners {
		if d.failed[fmt.Sprintf("listeners[%d]", i)] {
			continue
		}
		if l.TLS == TLSImplicit || l.TLS == TLSStartTLS {
			p := fmt.Sprintf("listeners[%d].tls", i)
			if d.set("tls.certificates") {
				p = "tls.certificates"
			}
			d.addf(d.where(p), "tls.certificates", "at least one certificate is required: listener %q uses tls %s", l.Name, l.TLS)
			return
		}
	}
}

// validateBackends checks the backends and returns the set of pool names.
func (d *decoder) validateBackends(c *Config) map[string]bool {
	pools := map[string]bool{}
	names := map[string]string{}
	for i, b := range c.Backends {
		p := fmt.Sprintf("backends[%d]", i)
		if d.failed[p] {
			continue // not a map: already reported
		}
		switch first, dup := names[b.Name]; {
		case b.Name == "" && d.set(p+".name"):
			d.report(p+".name", "must not be empty")
		case dup:
			d.report(p+".name", "duplicate backend name %q (first at line %d)", b.Name, d.where(first).line)
		case b.Name != "":
			names[b.Name] = p + ".name"
		}
		if b.Address != "" || d.set(p+".address") {
			if _, msg := hostPort(b.Address, true, false); msg != "" {
				d.report(p+".address", "%s", msg)
			}
		}
		if b.Pool == "" {
			d.report(p+".pool", "must not be empty")
		} else {
			pools[b.Pool] = true
		}
		bothOrNeither(d, p+".client_cert_file", b.ClientCertFile, p+".client_key_file", b.ClientKeyFile)
		bothOrNeither(d, p+".master_user", b.MasterUser, p+".master_password_file", b.MasterPasswordFile)
	}
	return pools
}

// bothOrNeither reports a problem when exactly one of two keys is set.
func bothOrNeither(d *decoder, pa, a, pb, b string) {
	switch {
	case a != "" && b == "":
		d.report(pa, "requires %s", pb)
	case a == "" && b != "":
		d.report(pb, "requires %s", pa)
	}
}

func (d *decoder) validateRouting(c *Config, pools map[string]bool) {
	backends := map[string]bool{}
	for i, b := range c.Backends {
		if !d.failed[fmt.Sprintf("backends[%d]", i)] {
			backends[b.Name] = true
		}
	}
	if len(c.Backends) == 0 {
		d.report("backends", "at least one backend is required")
	} else if !pools[c.Routing.DefaultPool] {
		msg := fmt.Sprintf("pool %q has no backends", c.Routing.DefaultPool)
		if !d.set("routing.default_pool") {
			msg += " (routing.default_pool defaults to \"default\"; set it, or give a backend pool: default)"
		}
		d.addf(d.where(firstSet(d, "routing.default_pool", "backends")), "routing.default_pool", "%s", msg)
	}

	seen := map[string]string{} // "user:x" / "domain:x" -> path
	for i, r := range c.Routing.Routes {
		p := fmt.Sprintf("routing.routes[%d]", i)
		if d.failed[p] {
			continue
		}
		key := ""
		switch {
		case r.User != "" && r.Domain != "":
			d.report(p, "a route has either user or domain, not both")
		case r.User == "" && r.Domain == "":
			d.report(p, "a route needs user or domain")
		case r.User != "":
			key = "user " + strings.ToLower(strings.TrimSpace(r.User))
		default:
			key = "domain " + strings.ToLower(strings.TrimSpace(r.Domain))
			if strings.Contains(r.Domain, "@") {
				d.report(p+".domain", "%q is not a domain (use user: for addresses)", r.Domain)
			}
		}
		if key != "" {
			if first, dup := seen[key]; dup {
				d.report(p, "a second route for %s (first at line %d)", key, d.where(first).line)
			} else {
				seen[key] = p
			}
		}
		switch {
		case r.Backend != "" && r.Pool != "":
			d.report(p, "a route has either backend or pool, not both")
		case r.Backend == "" && r.Pool == "":
			d.report(p, "a route needs backend or pool")
		case r.Backend != "" && !backends[r.Backend]:
			d.report(p+".backend", "backend %q is not defined in backends", r.Backend)
		case r.Pool != "" && !pools[r.Pool]:
			d.report(p+".pool", "pool %q has no backends", r.Pool)
		}
	}

	if u := c.Routing.Lookup.HTTP.URL; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			d.report("routing.lookup.http.url", "%q is not an http:// or https:// URL", u)
		}
	}
}

// firstSet returns the first of paths that was written in the file, or the
// last one.
func firstSet(d *decoder, paths ...string) string {
	for _, p := range paths {
		if d.set(p) {
			return p
		}
	}
	return paths[len(paths)-1]
}

func (d *decoder) validatePolicy(c *Config) {
	if t := c.Policy.IdleTimeout; t < minIdleTimeout {
		d.report("policy.idle_timeout", "%s is too short: RFC 9051 §5.4 requires an idle (autologout) timer of at least 30 minutes", d.sources["policy.idle_timeout"].Raw)
	}
	if len(c.Policy.TrustedProxies) > 0 || d.failed["policy.trusted_proxies"] {
		return
	}
	for i, l := range c.Listeners {
		if l.ProxyProtocol {
			p := fmt.Sprintf("listeners[%d].proxy_protocol", i)
			d.addf(d.where(p), "policy.trusted_proxies", "must not be empty: listener %q has proxy_protocol: true", l.Name)
			return
		}
	}
}

func (d *decoder) validateAdmin(c *Config) {
	a := c.Admin
	if a.Address == "" {
		return
	}
	host, msg := hostPort(a.Address, false, true)
	if msg != "" {
		d.report("admin.address", "%s", msg)
		return
	}
	if a.TokenFile == "" && !isLoopback(host) {
		d.report("admin.address", "%s is not a loopback address, so admin.token_file is required", a.Address)
	}
}
