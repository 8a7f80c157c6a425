package config

import (
	"regexp"
	"strings"
)

// enforced lists the keys whose behaviour imapedge implements, as path
// prefixes with list indices written "[]". A key matches an entry when its
// path equals it or continues it with "." or "[". Every other key is
// accepted and validated but reported by [Config.NotEnforced]. When a
// feature lands, add its keys here (and drop "(not enforced yet)" from
// proxy.yaml).
var enforced = []string{
	"listeners[].name",
	"listeners[].address",
	"listeners[].tls",
	"listeners[].compress",
	"tls.certificates",
	"tls.min_version",
	"tls.handshake_timeout",
	"backends[].name",
	"backends[].address",
	"backends[].tls",
	"backends[].ca_file",
	"backends[].server_name",
	"backends[].insecure_skip_verify",
	"backends[].client_cert_file",
	"backends[].client_key_file",
	"backends[].pool",
	"backends[].weight",
	"backends[].connect_timeout",
	"backends[].login_timeout",
	"backends[].allow_plaintext_login",
	"routing.routes",
	"routing.default_pool",
	"policy.plaintext_auth_networks",
	"policy.preauth",
	"policy.idle_timeout",
	"policy.auth_failures.max_delay",
	"log",
	"audit",
	"admin.address",
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// isEnforced reports whether the key at path (with real indices) is covered
// by the enforced table.
func isEnforced(path string) bool {
	generic := indexRE.ReplaceAllString(path, "[]")
	for _, e := range enforced {
		if rest, ok := strings.CutPrefix(generic, e); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			return true
		}
	}
	return false
}

// NotEnforced returns, in file order, the paths of the keys set in the file
// (e.g. "listeners[0].proxy_protocol", "routing.lookup.http.url") whose
// behaviour is not enforced yet, so that serve and check can warn about
// them. Only keys holding values count (not sections), and a key counts
// when present even if it holds its default value. Use [Config.Source] for
// a key's line.
func (c *Config) NotEnforced() []string {
	var out []string
	for _, p := range c.present {
		if !isEnforced(p) {
			out = append(out, p)
		}
	}
	return out
}
