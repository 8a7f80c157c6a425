// Package config decodes, defaults and validates imapedge's proxy.yaml
// (DESIGN.md §3, a public interface).
//
// Decoding is strict: an unknown key, a duplicate key, a value of the wrong
// type or a bad value is a [Problem] with its line and column, and [Parse]
// reports every problem of a file at once in an [*Errors].
//
// Value syntax:
//
//   - Durations: Go syntax ("30s", "31m", "1h30m", "250ms") or a bare 0.
//     Negative durations are rejected.
//   - Sizes: a non-negative decimal integer, optionally followed (without a
//     space) by one of the units B, KiB, MiB, GiB (powers of 1024): "512",
//     "4096B", "16KiB", "1MiB". Decimal units (KB, MB, k …) are rejected
//     because they are ambiguous.
//   - Networks: a list of CIDR prefixes ("10.0.0.0/8", "2001:db8::/32") or
//     bare addresses ("192.0.2.1" means /32, "2001:db8::1" means /128). A
//     prefix with host bits set ("10.0.0.1/8") is rejected as a likely typo.
//   - Booleans: true or false only (not yes/no/on/off).
//   - Addresses: "host:port" with a numeric port. Listener and admin addresses
//     may leave the host empty (all interfaces) and may use port 0 (an
//     ephemeral port, for tests); backend addresses need a host and a port in
//     1-65535.
//   - Integers: decimal only, at most 2147483647; no count may be negative.
//
// A key whose value is null ("key:" or "key: ~") counts as absent: its
// default applies. YAML aliases (*name) and therefore merge keys are
// rejected; an anchor alone is harmless and ignored. A file must hold exactly
// one YAML document. Keys and enumeration values are case-sensitive; HTTP
// header names in routing.lookup.http.headers must be unique ignoring case.
//
// Beyond single values, Parse checks (DESIGN.md §3 leaves these open, so they
// are decided here): listener and backend names are unique and non-empty; two
// listeners may not share an address (port 0 excepted); backends[].weight is
// at least 1 (take a backend out with drain/down, not weight 0); a backend's
// pool is not empty; each route has exactly one of user/domain and one of
// backend/pool, names a defined backend or a pool that has backends, a
// domain contains no "@", and no user or domain (compared lower-cased) has two
// routes; there is at least one backend and routing.default_pool has
// backends; tls.certificates is required when a listener uses implicit or
// starttls; client_cert_file/client_key_file, master_user/master_password_file
// and migration.verify_user/verify_password_file are set both or neither;
// policy.idle_timeout is at least 30m (RFC 9051 §5.4); admin.token_file may
// be empty only when admin.address is a loopback IP or "localhost" (an empty
// host means all interfaces, so it needs a token); routing.lookup.http.url, if
// set, is an http or https URL; policy.trusted_proxies is required when a
// listener has proxy_protocol; log.output and audit.output are not empty.
// Timeouts, intervals, windows and cooldowns must be greater than 0, except
// the cache TTLs, auth_failures.max_delay and the drain and migration
// durations, which may be 0. Counts of 0 mean "off"/"unlimited" (including
// auth_failures.per_ip and per_user); breaker failures, health rise and fall,
// migration batch_size and preauth max_bad_commands are at least 1.
package config

import (
	"crypto/tls"
	"time"

	"github.com/imapedge/imapedge/policy"
)

// TLSMode says how a listener or a backend leg uses TLS.
type TLSMode string

// TLS modes.
const (
	TLSNone     TLSMode = "none"     // plain TCP, no TLS at all
	TLSStartTLS TLSMode = "starttls" // plain TCP upgraded with STARTTLS
	TLSImplicit TLSMode = "implicit" // TLS from the first byte
)

// ForwardMode says how a backend learns the client's identity.
type ForwardMode string

// Forward modes.
const (
	ForwardNone    ForwardMode = "none"     // nothing
	ForwardID      ForwardMode = "id"       // IMAP ID with x-originating-ip etc.
	ForwardProxyV1 ForwardMode = "proxy-v1" // PROXY protocol v1 header
	ForwardProxyV2 ForwardMode = "proxy-v2" // PROXY protocol v2 header
)

// CompressMode says what a listener does with COMPRESS=DEFLATE.
type CompressMode string

// Compress modes.
const (
	CompressTerminate CompressMode = "terminate" // imapedge (de)compresses itself
	CompressStrip     CompressMode = "strip"     // not advertised, COMPRESS gets NO
)

// LookupProtocol is the wire protocol of the HTTP route lookup.
type LookupProtocol string

// Lookup protocols.
const (
	LookupAuthHTTP LookupProtocol = "auth_http" // nginx mail auth_http
	LookupJSON     LookupProtocol = "json"      // imapedge's JSON protocol (DESIGN.md §4)
)

// Networks is a list of IP prefixes, the type package policy enforces. A
// bare address in the file becomes a single-address prefix (/32 or /128).
type Networks = policy.Networks

// Config is a decoded and validated proxy.yaml. Field tags drive decoding:
// yaml is the key, default its default (in file syntax), oneof the allowed
// values of an enumeration, min/max the bounds, required marks keys without a
// default, and conf:"size" marks sizes.
type Config struct {
	Listeners []Listener `yaml:"listeners"`
	TLS       TLS        `yaml:"tls"`
	Backends  []Backend  `yaml:"backends"`
	Routing   Routing    `yaml:"routing"`
	Policy    Policy     `yaml:"policy"`
	Log       Log        `yaml:"log"`
	Audit     Audit      `yaml:"audit"`
	Admin     Admin      `yaml:"admin"`
	Drain     Drain      `yaml:"drain"`
	Migration Migration  `yaml:"migration"`

	name    string            // file name for messages
	sources map[string]Source // where each key present was written
	present []string          // leaf keys present, in file order
}

// Listener is one entry of listeners.
type Listener struct {
	Name               string        `yaml:"name" required:"true"`
	Address            string        `yaml:"address" required:"true"`
	TLS                TLSMode       `yaml:"tls" required:"true" oneof:"implicit,starttls,none"`
	ProxyProtocol      bool          `yaml:"proxy_protocol"`
	ProxyHeaderTimeout time.Duration `yaml:"proxy_header_timeout" default:"3s" min:"1ns"`
	Compress           CompressMode  `yaml:"compress" default:"terminate" oneof:"terminate,strip"`
}

// TLS is the tls section: the proxy's server certificates.
type TLS struct {
	// Certificates are chosen by SNI; the first is the default.
	Certificates     []Certificate `yaml:"certificates"`
	MinVersion       string        `yaml:"min_version" default:"1.2" oneof:"1.2,1.3"`
	HandshakeTimeout time.Duration `yaml:"handshake_timeout" default:"10s" min:"1ns"`
}

// MinTLSVersion returns MinVersion as a crypto/tls version constant.
func (t TLS) MinTLSVersion() uint16 {
	if t.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// Certificate is one server certificate with its key.
type Certificate struct {
	CertFile string `yaml:"cert_file" required:"true"`
	KeyFile  string `yaml:"key_file" required:"true"`
}

// Backend is one entry of backends.
type Backend struct {
	Name    string  `yaml:"name" required:"true"`
	Address string  `yaml:"address" required:"true"`
	TLS     TLSMode `yaml:"tls" default:"none" oneof:"none,starttls,implicit"`
	// CAFile empty means the system roots.
	CAFile string `yaml:"ca_file"`
	// ServerName empty means the host part of Address.
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	ClientCertFile     string `yaml:"client_cert_file"`
	ClientKeyFile      string `yaml:"client_key_file"`
	Pool               string `yaml:"pool" default:"default"`
	// Weight is at least 1; to take a backend out, use drain or down.
	Weight         int           `yaml:"weight" default:"1" min:"1"`
	ForwardClient  ForwardMode   `yaml:"forward_client" default:"none" oneof:"none,id,proxy-v1,proxy-v2"`
	ConnectTimeout time.Duration `yaml:"connect_timeout" default:"5s" min:"1ns"`
	LoginTimeout   time.Duration `yaml:"login_timeout" default:"15s" min:"1ns"`
	// AllowPlaintextLogin permits sending passwords over a plain leg to a
	// non-loopback address.
	AllowPlaintextLogin bool   `yaml:"allow_plaintext_login"`
	MasterUser          string `yaml:"master_user"`
	MasterPasswordFile  string `yaml:"master_password_file"`
}

// Routing is the routing section.
type Routing struct {
	DefaultPool  string  `yaml:"default_pool" default:"default"`
	Routes       []Route `yaml:"routes"`
	RoutesFile   string  `yaml:"routes_file"`
	Lookup       Lookup  `yaml:"lookup"`
	Health       Health  `yaml:"health"`
	MaxReferrals int     `yaml:"max_referrals" default:"2"`
}

// Route sends a user or a domain to a backend or a pool. Exactly one of
// User and Domain is set, and exactly one of Backend and Pool.
type Route struct {
	User    string `yaml:"user"`
	Domain  string `yaml:"domain"`
	Backend string `yaml:"backend"`
	Pool    string `yaml:"pool"`
}

// Lookup is routing.lookup. It is enabled when HTTP.URL is set.
type Lookup struct {
	HTTP HTTPLookup `yaml:"http"`
}

// HTTPLookup is routing.lookup.http.
type HTTPLookup struct {
	URL      string         `yaml:"url"`
	Protocol LookupProtocol `yaml:"protocol" default:"auth_http" oneof:"auth_http,json"`
	Timeout  time.Duration  `yaml:"timeout" default:"2s" min:"1ns"`
	// CacheTTL 0 disables caching of positive answers.
	CacheTTL time.Duration `yaml:"cache_ttl" default:"60s"`
	// NegativeCacheTTL 0 disables caching of negative answers.
	NegativeCacheTTL time.Duration     `yaml:"negative_cache_ttl" default:"10s"`
	Headers          map[string]string `yaml:"headers"`
	OverridesRoutes  bool              `yaml:"overrides_routes"`
	Breaker          Breaker           `yaml:"breaker"`
}

// Breaker is the lookup's circuit breaker.
type Breaker struct {
	Failures int           `yaml:"failures" default:"5" min:"1"`
	Cooldown time.Duration `yaml:"cooldown" default:"10s" min:"1ns"`
}

// Health is routing.health, the backend health checks.
type Health struct {
	Interval time.Duration `yaml:"interval" default:"5s" min:"1ns"`
	Timeout  time.Duration `yaml:"timeout" default:"2s" min:"1ns"`
	Rise     int           `yaml:"rise" default:"2" min:"1"`
	Fall     int           `yaml:"fall" default:"3" min:"1"`
}

// Policy is the policy section. Counts of 0 mean "off" / "unlimited".
type Policy struct {
	PlaintextAuthNetworks Networks      `yaml:"plaintext_auth_networks"`
	TrustedProxies        Networks      `yaml:"trusted_proxies"`
	AllowNetworks         Networks      `yaml:"allow_networks"`
	DenyNetworks          Networks      `yaml:"deny_networks"`
	MaxConnections        int           `yaml:"max_connections"`
	MaxConnectionsPerIP   int           `yaml:"max_connections_per_ip"`
	MaxSessionsPerUser    int           `yaml:"max_sessions_per_user"`
	AuthFailures          AuthFailures  `yaml:"auth_failures"`
	Preauth               Preauth       `yaml:"preauth"`
	IdleTimeout           time.Duration `yaml:"idle_timeout" default:"31m"`
}

// AuthFailures is policy.auth_failures, the login failure throttling.
type AuthFailures struct {
	// PerIP 0 disables the per-IP limit.
	PerIP int `yaml:"per_ip" default:"10"`
	// PerUser 0 disables the per-user limit.
	PerUser  int           `yaml:"per_user" default:"10"`
	Window   time.Duration `yaml:"window" default:"10m" min:"1ns"`
	MaxDelay time.Duration `yaml:"max_delay" default:"5s"`
	// ExemptNetworks are never throttled.
	ExemptNetworks Networks `yaml:"exempt_networks"`
}

// Preauth is policy.preauth, the limits before authentication.
type Preauth struct {
	Timeout        time.Duration `yaml:"timeout" default:"60s" min:"1ns"`
	MaxLine        int64         `yaml:"max_line" conf:"size" default:"16KiB" min:"1KiB"`
	MaxLiteral     int64         `yaml:"max_literal" conf:"size" default:"8KiB"`
	MaxBadCommands int           `yaml:"max_bad_commands" default:"3" min:"1"`
}

// Log is the log section, the operational log.
type Log struct {
	Level  string `yaml:"level" default:"info" oneof:"debug,info,warn,error"`
	Format string `yaml:"format" default:"json" oneof:"json,console"`
	// Output is "stderr", "stdout" or a file path.
	Output string `yaml:"output" default:"stderr"`
}

// Audit is the audit section, the per-command event stream.
type Audit struct {
	Commands bool `yaml:"commands"`
	// Output is "stdout", "stderr" or a file path.
	Output string `yaml:"output" default:"stdout"`
}

// Admin is the admin section. An empty Address means no admin listener.
type Admin struct {
	Address   string `yaml:"address"`
	TokenFile string `yaml:"token_file"`
}

// Drain is the drain section.
type Drain struct {
	Spread        time.Duration `yaml:"spread" default:"30s"`
	ShutdownGrace time.Duration `yaml:"shutdown_grace" default:"60s"`
}

// Migration is the migration section.
type Migration struct {
	HoldMax    time.Duration `yaml:"hold_max" default:"30s"`
	BatchSize  int           `yaml:"batch_size" default:"100" min:"1"`
	BatchPause time.Duration `yaml:"batch_pause" default:"5s"`
	// RollbackFailureRate 0 disables automatic rollback.
	RollbackFailureRate float64       `yaml:"rollback_failure_rate" default:"0.2" min:"0" max:"1"`
	Watch               time.Duration `yaml:"watch" default:"5m"`
	VerifyUser          string        `yaml:"verify_user"`
	VerifyPasswordFile  string        `yaml:"verify_password_file"`
}

// Source says where a key was written in the file.
type Source struct {
	Line, Column int    // of the key (of the entry, for list entries)
	Raw          string // the scalar value as written; empty for maps and lists
}

// Default returns a configuration holding every default of DESIGN.md §3 and
// no listeners, backends or routes. It is not valid on its own.
func Default() *Config {
	c := &Config{sources: map[string]Source{}}
	applyDefaults(reflectValue(c))
	return c
}

// File returns the file name the configuration was parsed from.
func (c *Config) File() string { return c.name }

// Source returns where the key at path (e.g. "backends[1].tls",
// "policy.trusted_proxies[0]") was written, and false if the file did not set
// it.
func (c *Config) Source(path string) (Source, bool) {
	s, ok := c.sources[path]
	return s, ok
}
