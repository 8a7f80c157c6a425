package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// minimal is the smallest valid configuration: 7 lines.
const minimal = `listeners:
  - name: imap
    address: "127.0.0.1:1143"
    tls: none
backends:
  - name: store1
    address: "127.0.0.1:143"
`

const examplePath = "../../../proxy.yaml"

func parseOK(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse([]byte(src), "proxy.yaml")
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return c
}

// problems parses src and returns its problems formatted as
// "LINE:COL: PATH: MSG".
func problems(t *testing.T, src string) []string {
	t.Helper()
	c, err := Parse([]byte(src), "proxy.yaml")
	if err == nil {
		return nil
	}
	if c != nil {
		t.Errorf("Parse returned a config together with an error")
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, not *Errors: %v", err, err)
	}
	var out []string
	for _, p := range errs.Problems {
		out = append(out, p.String())
	}
	return out
}

// wantDefaults spells out DESIGN.md §3's defaults independently of the
// struct tags.
func wantDefaults() Config {
	return Config{
		TLS: TLS{MinVersion: "1.2", HandshakeTimeout: 10 * time.Second},
		Routing: Routing{
			DefaultPool: "default",
			Lookup: Lookup{HTTP: HTTPLookup{
				Protocol:         LookupAuthHTTP,
				Timeout:          2 * time.Second,
				CacheTTL:         60 * time.Second,
				NegativeCacheTTL: 10 * time.Second,
				Breaker:          Breaker{Failures: 5, Cooldown: 10 * time.Second},
			}},
			Health:       Health{Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3},
			MaxReferrals: 2,
		},
		Policy: Policy{
			AuthFailures: AuthFailures{PerIP: 10, PerUser: 10, Window: 10 * time.Minute, MaxDelay: 5 * time.Second},
			Preauth:      Preauth{Timeout: 60 * time.Second, MaxLine: 16 << 10, MaxLiteral: 8 << 10, MaxBadCommands: 3},
			IdleTimeout:  31 * time.Minute,
		},
		Log:   Log{Level: "info", Format: "json", Output: "stderr"},
		Audit: Audit{Output: "stdout"},
		Drain: Drain{Spread: 30 * time.Second, ShutdownGrace: 60 * time.Second},
		Migration: Migration{
			HoldMax: 30 * time.Second, BatchSize: 100, BatchPause: 5 * time.Second,
			RollbackFailureRate: 0.2, Watch: 5 * time.Minute,
		},
	}
}

func defaultBackend(name, addr string) Backend {
	return Backend{Name: name, Address: addr, TLS: TLSNone, Pool: "default", Weight: 1,
		ForwardClient: ForwardNone, ConnectTimeout: 5 * time.Second, LoginTimeout: 15 * time.Second}
}

// sections returns the exported fields of c for comparison.
func sections(c *Config) map[string]any {
	m := map[string]any{}
	v := reflect.ValueOf(c).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Type().Field(i); f.IsExported() {
			m[f.Name] = v.Field(i).Interface()
		}
	}
	return m
}

func compareSections(t *testing.T, got, want *Config, skip ...string) {
	t.Helper()
	g, w := sections(got), sections(want)
	for name := range w {
		if contains(skip, name) {
			continue
		}
		if !reflect.DeepEqual(g[name], w[name]) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, g[name], w[name])
		}
	}
}

func TestMinimalGetsDefaults(t *testing.T) {
	c := parseOK(t, minimal)
	want := wantDefaults()
	want.Listeners = []Listener{{Name: "imap", Address: "127.0.0.1:1143", TLS: TLSNone,
		ProxyHeaderTimeout: 3 * time.Second, Compress: CompressTerminate}}
	want.Backends = []Backend{defaultBackend("store1", "127.0.0.1:143")}
	compareSections(t, c, &want)
	if got := c.NotEnforced(); len(got) != 0 {
		t.Errorf("NotEnforced() = %q, want none", got)
	}
	if c.File() != "proxy.yaml" {
		t.Errorf("File() = %q", c.File())
	}
	if got := c.TLS.MinTLSVersion(); got != 0x0303 {
		t.Errorf("MinTLSVersion() = %#x, want TLS 1.2", got)
	}
}

func TestDefault(t *testing.T) {
	want := wantDefaults()
	compareSections(t, Default(), &want)
}

func TestListEntriesGetDefaults(t *testing.T) {
	c := parseOK(t, minimal+`  - name: store2
    address: "store2.example.org:993"
    tls: implicit
    weight: 3
    connect_timeout: 1s
`)
	want := defaultBackend("store2", "store2.example.org:993")
	want.TLS, want.Weight, want.ConnectTimeout = TLSImplicit, 3, time.Second
	if !reflect.DeepEqual(c.Backends[1], want) {
		t.Errorf("backends[1] = %+v, want %+v", c.Backends[1], want)
	}
}

func TestNullMeansAbsent(t *testing.T) {
	c := parseOK(t, minimal+`    weight:
    connect_timeout: ~
routing:
log: null
`)
	if b := c.Backends[0]; b.Weight != 1 || b.ConnectTimeout != 5*time.Second {
		t.Errorf("null values did not keep defaults: %+v", b)
	}
	if c.Log.Level != "info" || c.Routing.DefaultPool != "default" {
		t.Errorf("null sections did not keep defaults")
	}
}

func TestExample(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	c := parseOK(t, string(data))

	// Everything but the example values holds the defaults.
	want := wantDefaults()
	want.Routing.Routes = []Route{}
	want.Routing.Lookup.HTTP.Headers = map[string]string{}
	want.Policy.PlaintextAuthNetworks = Networks{}
	want.Policy.TrustedProxies = Networks{}
	want.Policy.AllowNetworks = Networks{}
	want.Policy.DenyNetworks = Networks{}
	want.Policy.AuthFailures.ExemptNetworks = Networks{}
	want.TLS.Certificates = []Certificate{{
		CertFile: "/etc/imapedge/mail.example.org.crt",
		KeyFile:  "/etc/imapedge/mail.example.org.key",
	}}
	want.Listeners = []Listener{
		{Name: "imaps", Address: "0.0.0.0:993", TLS: TLSImplicit, ProxyHeaderTimeout: 3 * time.Second, Compress: CompressTerminate},
		{Name: "imap", Address: "0.0.0.0:143", TLS: TLSStartTLS, ProxyHeaderTimeout: 3 * time.Second, Compress: CompressTerminate},
	}
	want.Backends = []Backend{defaultBackend("store1", "10.0.0.11:143")}
	compareSections(t, c, &want)

	// Every key of the schema appears in the example.
	var all []string
	walkKeys(reflect.TypeFor[Config](), "", &all)
	for _, k := range all {
		if strings.HasPrefix(k, "routing.routes[].") {
			continue // the example's routes are comments
		}
		found := false
		for p := range c.sources {
			if indexRE.ReplaceAllString(p, "[]") == k {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("proxy.yaml lacks %s", k)
		}
	}

	// "(not enforced yet)" marks exactly the keys NotEnforced reports.
	lines := strings.Split(string(data), "\n")
	notEnforced := map[int]bool{}
	for _, p := range c.NotEnforced() {
		notEnforced[c.sources[p].Line] = true
	}
	for _, p := range c.present {
		line := c.sources[p].Line
		marked := strings.Contains(lines[line-1], "(not enforced yet)")
		if marked != notEnforced[line] {
			t.Errorf("proxy.yaml:%d: %s: marked %v, but not enforced is %v", line, p, marked, notEnforced[line])
		}
	}
}

// walkKeys lists every leaf key of the schema, with list indices as "[]".
func walkKeys(t reflect.Type, path string, out *[]string) {
	for _, f := range infoFor(t).fields {
		p := join(path, f.key)
		switch {
		case f.typ.Kind() == reflect.Struct:
			walkKeys(f.typ, p, out)
		case isContainer(f.typ):
			walkKeys(f.typ.Elem(), p+"[]", out)
		default:
			*out = append(*out, p)
		}
	}
}

func TestTags(t *testing.T) {
	// infoFor panics on a bad tag; build every type of the schema.
	var all []string
	walkKeys(reflect.TypeFor[Config](), "", &all)
	if len(all) < 75 {
		t.Errorf("only %d keys in the schema", len(all))
	}
}

func TestEmpty(t *testing.T) {
	for _, src := range []string{"", "\n", "# only a comment\n", "---\n", "---\n# c\n...\n"} {
		_, err := Parse([]byte(src), "proxy.yaml")
		if err == nil || !strings.Contains(err.Error(), "proxy.yaml: listeners: at least one listener is required") {
			t.Errorf("Parse(%q) = %v, want at least one listener is required", src, err)
		}
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown key with suggestion", minimal + "polcy: {}\n",
			[]string{`8:1: polcy: unknown key "polcy" (did you mean "policy"?)`}},
		{"unknown nested key with suggestion", minimal + "    adress: x\n",
			[]string{`8:5: backends[0].adress: unknown key "adress" (did you mean "address"?)`}},
		{"unknown key without suggestion", minimal + "frobnicate: 1\n",
			[]string{`8:1: frobnicate: unknown key "frobnicate"`}},
		{"unknown key case", minimal + "Log: {}\n",
			[]string{`8:1: Log: unknown key "Log" (did you mean "log"?)`}},
		{"duplicate top-level key", minimal + "listeners: []\n",
			[]string{`8:1: listeners: duplicate key "listeners" (first at line 1)`}},
		{"duplicate nested key", minimal + "    address: \"127.0.0.1:144\"\n",
			[]string{`8:5: backends[0].address: duplicate key "address" (first at line 7)`}},
		{"duplicate key in flow map", minimal + "log: {level: info, level: debug}\n",
			[]string{`8:20: log.level: duplicate key "level" (first at line 8)`}},
		{"list where map expected", minimal + "policy: [a]\n",
			[]string{`8:1: policy: expected a map, got a list`}},
		{"map where list expected", minimal + "routing: {routes: {user: a}}\n",
			[]string{`8:11: routing.routes: expected a list, got a map`}},
		{"scalar where networks expected", minimal + "policy: {trusted_proxies: 10.0.0.0/8}\n",
			[]string{`8:10: policy.trusted_proxies: expected a list of networks, got the string "10.0.0.0/8"`}},
		{"map where scalar expected", minimal + "    weight: {a: 1}\n",
			[]string{`8:5: backends[0].weight: expected an integer, got a map`}},
		{"string where integer expected", minimal + "    weight: \"2\"\n",
			[]string{`8:5: backends[0].weight: expected a decimal integer, got "2"`}},
		{"yes is not a bool", minimal + "    insecure_skip_verify: yes\n",
			[]string{`8:5: backends[0].insecure_skip_verify: expected true or false, got "yes"`}},
		{"bad duration", minimal + "    connect_timeout: 5\n",
			[]string{`8:5: backends[0].connect_timeout: "5" is not a duration like 30s, 31m or 1h30m`}},
		{"zero duration where positive needed", minimal + "    login_timeout: 0s\n",
			[]string{`8:5: backends[0].login_timeout: 0s must be greater than 0`}},
		{"negative duration", minimal + "drain: {spread: -1s}\n",
			[]string{`8:9: drain.spread: -1s must not be negative`}},
		{"bad size", minimal + "policy: {preauth: {max_literal: 8 KiB}}\n",
			[]string{`8:20: policy.preauth.max_literal: "8 KiB" is not a size like 512, 4096B, 16KiB or 1MiB`}},
		{"decimal size unit", minimal + "policy: {preauth: {max_literal: 8KB}}\n",
			[]string{`8:20: policy.preauth.max_literal: "8KB": decimal units are not accepted; use B, KiB, MiB or GiB`}},
		{"max_line too small", minimal + "policy: {preauth: {max_line: 512}}\n",
			[]string{`8:20: policy.preauth.max_line: 512 must be at least 1KiB`}},
		{"max_bad_commands zero", minimal + "policy: {preauth: {max_bad_commands: 0}}\n",
			[]string{`8:20: policy.preauth.max_bad_commands: 0 must be at least 1`}},
		{"negative count", minimal + "policy: {max_connections: -1}\n",
			[]string{`8:10: policy.max_connections: -1 must not be negative`}},
		{"integer too large", minimal + "policy: {max_connections: 99999999999999999999}\n",
			[]string{`8:10: policy.max_connections: 99999999999999999999 is too large`}},
		{"bad cidr", minimal + "policy:\n  deny_networks:\n    - 10.0.0.0/33\n    - 10.1.0.0/16\n    - 10.2.0.1/16\n",
			[]string{
				`10:7: policy.deny_networks[0]: "10.0.0.0/33" is not a network like 10.0.0.0/8 or 2001:db8::/32`,
				`12:7: policy.deny_networks[2]: "10.2.0.1/16" has host bits set (did you mean 10.2.0.0/16?)`,
			}},
		{"bad address in network list", minimal + "policy: {allow_networks: [example.org]}\n",
			[]string{`8:27: policy.allow_networks[0]: "example.org" is not an IP address or a network like 10.0.0.0/8`}},
		{"list in network list", minimal + "policy: {allow_networks: [[1]]}\n",
			[]string{`8:27: policy.allow_networks[0]: expected a network like 10.0.0.0/8 or 192.0.2.1, got a list`}},
		{"rollback rate above 1", minimal + "migration: {rollback_failure_rate: 1.5}\n",
			[]string{`8:13: migration.rollback_failure_rate: 1.5 must be at most 1`}},
		{"rollback rate below 0", minimal + "migration: {rollback_failure_rate: -0.1}\n",
			[]string{`8:13: migration.rollback_failure_rate: -0.1 must be at least 0`}},
		{"rollback rate nan", minimal + "migration: {rollback_failure_rate: .nan}\n",
			[]string{`8:13: migration.rollback_failure_rate: expected a number, got ".nan"`}},
		{"idle timeout below RFC minimum", minimal + "policy:\n  idle_timeout: 29m\n",
			[]string{`9:3: policy.idle_timeout: 29m is too short: RFC 9051 §5.4 requires an idle (autologout) timer of at least 30 minutes`}},
		{"idle timeout zero", minimal + "policy: {idle_timeout: 0}\n",
			[]string{`8:10: policy.idle_timeout: 0 is too short: RFC 9051 §5.4 requires an idle (autologout) timer of at least 30 minutes`}},

		{"listener keys missing", "listeners:\n  - name: imap\nbackends: [{name: b, address: \"h:1\"}]\n",
			[]string{
				`2:5: listeners[0].address: is required`,
				`2:5: listeners[0].tls: is required (one of implicit, starttls, none)`,
			}},
		{"listener tls null", "listeners:\n  - name: imap\n    address: \":143\"\n    tls:\nbackends: [{name: b, address: \"h:1\"}]\n",
			[]string{`4:5: listeners[0].tls: is required (one of implicit, starttls, none)`}},
		{"listener name empty and duplicate", `listeners:
  - {name: "", address: ":143", tls: none}
  - {name: a, address: ":144", tls: none}
  - {name: a, address: ":145", tls: none}
backends: [{name: b, address: "h:1"}]
`, []string{
			`2:6: listeners[0].name: must not be empty`,
			`4:6: listeners[2].name: duplicate listener name "a" (first at line 3)`,
		}},
		{"listener addresses", `listeners:
  - {name: a, address: "0.0.0.0", tls: none}
  - {name: b, address: ":imap", tls: none}
  - {name: c, address: "[::1]:70000", tls: none}
  - {name: d, address: ":143", tls: none}
  - {name: e, address: ":143", tls: none}
  - {name: f, address: "127.0.0.1:0", tls: none}
  - {name: g, address: "127.0.0.1:0", tls: none}
backends: [{name: b, address: "h:1"}]
`, []string{
			`2:15: listeners[0].address: "0.0.0.0" has no port; write host:port`,
			`3:15: listeners[1].address: ":imap": port "imap" must be a number from 0 to 65535`,
			`4:15: listeners[2].address: "[::1]:70000": port "70000" must be a number from 0 to 65535`,
			`6:15: listeners[4].address: :143 is also the address of listener "d"`,
		}},
		{"backend problems", `listeners: [{name: a, address: ":143", tls: none}]
backends:
  - {name: b, address: ":143"}
  - {name: b, address: "h:0", weight: 0}
  - name: c
    address: "h:1"
    client_cert_file: c.pem
    master_password_file: pw
  - {name: d, address: "h:1", pool: ""}
`, []string{
			`3:15: backends[0].address: ":143" has no host`,
			`4:6: backends[1].name: duplicate backend name "b" (first at line 3)`,
			`4:15: backends[1].address: "h:0": port "0" must be a number from 1 to 65535`,
			`4:31: backends[1].weight: 0 must be at least 1`,
			`7:5: backends[2].client_cert_file: requires backends[2].client_key_file`,
			`8:5: backends[2].master_password_file: requires backends[2].master_user`,
			`9:31: backends[3].pool: must not be empty`,
		}},
		{"master user needs password file", minimal + "    master_user: admin\n",
			[]string{`8:5: backends[0].master_user: requires backends[0].master_password_file`}},
		{"client key needs cert", minimal + "    client_key_file: k.pem\n",
			[]string{`8:5: backends[0].client_key_file: requires backends[0].client_cert_file`}},
		{"no backends", "listeners: [{name: a, address: \":143\", tls: none}]\n",
			[]string{`backends: at least one backend is required`}},
		{"empty backends", "listeners: [{name: a, address: \":143\", tls: none}]\nbackends: []\n",
			[]string{`2:1: backends: at least one backend is required`}},
		{"default pool has no backends", minimal + "    pool: p\n",
			[]string{`5:1: routing.default_pool: pool "default" has no backends (routing.default_pool defaults to "default"; set it, or give a backend pool: default)`}},
		{"set default pool has no backends", minimal + "routing:\n  default_pool: nope\n",
			[]string{`9:3: routing.default_pool: pool "nope" has no backends`}},
		{"routes", minimal + `    pool: p
  - {name: s2, address: "h:1"}
routing:
  routes:
    - {user: a@example.org, domain: example.org, backend: store1}
    - {backend: store1}
    - {user: b@example.org, backend: store1, pool: p}
    - {user: c@example.org}
    - {user: d@example.org, backend: nope}
    - {domain: example.net, pool: nope}
    - {domain: x@example.net, pool: p}
    - {user: " A@Example.org", pool: p}
    - {user: a@example.org, pool: p}
    - [not, a, map]
    - {user: e@example.org, pool: p, frob: 1}
`, []string{
			`12:7: routing.routes[0]: a route has either user or domain, not both`,
			`13:7: routing.routes[1]: a route needs user or domain`,
			`14:7: routing.routes[2]: a route has either backend or pool, not both`,
			`15:7: routing.routes[3]: a route needs backend or pool`,
			`16:29: routing.routes[4].backend: backend "nope" is not defined in backends`,
			`17:29: routing.routes[5].pool: pool "nope" has no backends`,
			`18:8: routing.routes[6].domain: "x@example.net" is not a domain (use user: for addresses)`,
			`20:7: routing.routes[8]: a second route for user a@example.org (first at line 19)`,
			`21:7: routing.routes[9]: expected a map, got a list`,
			`22:38: routing.routes[10].frob: unknown key "frob"`,
		}},
		{"certificates required", `listeners:
  - {name: a, address: ":143", tls: none}
  - {name: b, address: ":993", tls: implicit}
backends: [{name: b, address: "h:1"}]
`, []string{`3:32: tls.certificates: at least one certificate is required: listener "b" uses tls implicit`}},
		{"certificates empty", `listeners: [{name: a, address: ":143", tls: starttls}]
backends: [{name: b, address: "h:1"}]
tls: {certificates: []}
`, []string{`3:7: tls.certificates: at least one certificate is required: listener "a" uses tls starttls`}},
		{"certificate entry incomplete", `listeners: [{name: a, address: ":143", tls: starttls}]
backends: [{name: b, address: "h:1"}]
tls:
  certificates:
    - cert_file: a.crt
    - {cert_file: "", key_file: b.key}
`, []string{
			`5:7: tls.certificates[0].key_file: is required`,
			`6:8: tls.certificates[1].cert_file: must not be empty`,
		}},
		{"trusted proxies required", `listeners:
  - {name: a, address: ":143", tls: none, proxy_protocol: true}
backends: [{name: b, address: "h:1"}]
`, []string{`2:43: policy.trusted_proxies: must not be empty: listener "a" has proxy_protocol: true`}},
		{"admin address", minimal + "admin: {address: \"localhost\"}\n",
			[]string{`8:9: admin.address: "localhost" has no port; write host:port`}},
		{"admin token required", minimal + "admin: {address: \"0.0.0.0:9143\"}\n",
			[]string{`8:9: admin.address: 0.0.0.0:9143 is not a loopback address, so admin.token_file is required`}},
		{"admin empty host needs token", minimal + "admin: {address: \":9143\"}\n",
			[]string{`8:9: admin.address: :9143 is not a loopback address, so admin.token_file is required`}},
		{"lookup url", minimal + "routing: {lookup: {http: {url: \"ftp://x/\"}}}\n",
			[]string{`8:27: routing.lookup.http.url: "ftp://x/" is not an http:// or https:// URL`}},
		{"headers", minimal + "routing:\n  lookup:\n    http:\n      headers: {X-A: 1, x-a: 2, \"bad name\": 3, X-B: [1]}\n",
			[]string{
				`11:25: routing.lookup.http.headers.x-a: duplicate key "x-a" (first at line 11)`,
				`11:33: routing.lookup.http.headers.bad name: "bad name" is not a valid HTTP header name`,
				`11:48: routing.lookup.http.headers.X-B: expected a header value, got a list`,
			}},
		{"empty outputs", minimal + "log: {output: \"\"}\naudit: {output: \"\"}\n",
			[]string{
				`8:7: log.output: must not be empty (stderr, stdout or a file path)`,
				`9:9: audit.output: must not be empty (stderr, stdout or a file path)`,
			}},
		{"verify user needs password file", minimal + "migration: {verify_user: v}\n",
			[]string{`8:13: migration.verify_user: requires migration.verify_password_file`}},
		{"alias", minimal + "x: &a 5s\ndrain: {spread: *a}\n",
			[]string{`8:1: x: unknown key "x"`, `9:9: drain.spread: aliases (*a) are not supported`}},
		{"merge key", minimal + "log: {<<: {level: info}}\n",
			[]string{`8:7: log.<<: unknown key "<<"`}},
		{"non-scalar key", minimal + "log: {[a]: 1}\n",
			[]string{`8:7: log: a key must be a plain name, got a list`}},
		{"two documents", minimal + "---\nlisteners: []\n",
			[]string{`8:1: a second YAML document; the file must hold exactly one`}},
		{"syntax error", minimal + "log: [\n",
			[]string{`8: did not find expected node content`}},
		{"root is a list", "- a\n",
			[]string{`1:1: expected a map, got a list`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problems(t, tt.src)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

func TestAdminLoopbackWithoutToken(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:9143", "[::1]:9143", "localhost:9143", "127.0.0.2:0"} {
		c := parseOK(t, minimal+"admin: {address: \""+addr+"\"}\n")
		if c.Admin.Address != addr {
			t.Errorf("admin.address = %q", c.Admin.Address)
		}
	}
	parseOK(t, minimal+"admin: {address: \"0.0.0.0:9143\", token_file: /etc/imapedge/token}\n")
}

func TestSyntaxErrorFormat(t *testing.T) {
	_, err := Parse([]byte(minimal+"log:\n\tlevel: info\n"), "proxy.yaml")
	want := "proxy.yaml:9: found character that cannot start any token"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestErrorsFormat(t *testing.T) {
	src := `listeners:
  - name: imaps
    address: "0.0.0.0:993"
    tls: implicit
backends:
  - name: store1
    address: "10.0.0.11:143"
  - name: store2
    address: "10.0.0.12:143"
    tls: tsl
    weigth: 2
policy:
  idle_timeout: 10m
`
	_, err := Parse([]byte(src), "proxy.yaml")
	want := `proxy.yaml:4:5: tls.certificates: at least one certificate is required: listener "imaps" uses tls implicit
proxy.yaml:10:5: backends[1].tls: "tsl" is not one of none, starttls, implicit
proxy.yaml:11:5: backends[1].weigth: unknown key "weigth" (did you mean "weight"?)
proxy.yaml:13:3: policy.idle_timeout: 10m is too short: RFC 9051 §5.4 requires an idle (autologout) timer of at least 30 minutes`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	var errs *Errors
	if !errors.As(err, &errs) || errs.File != "proxy.yaml" || len(errs.Problems) != 4 {
		t.Errorf("errors.As: %#v", errs)
	}
}

func TestEnums(t *testing.T) {
	// Each case: a YAML fragment appended to minimal, with %s for the value,
	// the path, the accepted values in order, and a function reading it back.
	tests := []struct {
		frag string
		path string
		vals []string
		get  func(*Config) string
	}{
		{"    tls: %s\n", "backends[0].tls", []string{"none", "starttls", "implicit"},
			func(c *Config) string { return string(c.Backends[0].TLS) }},
		{"    forward_client: %s\n", "backends[0].forward_client", []string{"none", "id", "proxy-v1", "proxy-v2"},
			func(c *Config) string { return string(c.Backends[0].ForwardClient) }},
		{"tls: {min_version: %s}\n", "tls.min_version", []string{"1.2", "1.3"},
			func(c *Config) string { return c.TLS.MinVersion }},
		{"routing: {lookup: {http: {protocol: %s}}}\n", "routing.lookup.http.protocol", []string{"auth_http", "json"},
			func(c *Config) string { return string(c.Routing.Lookup.HTTP.Protocol) }},
		{"log: {level: %s}\n", "log.level", []string{"debug", "info", "warn", "error"},
			func(c *Config) string { return c.Log.Level }},
		{"log: {format: %s}\n", "log.format", []string{"json", "console"},
			func(c *Config) string { return c.Log.Format }},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			for _, v := range tt.vals {
				c := parseOK(t, minimal+strings.Replace(tt.frag, "%s", v, 1))
				if got := tt.get(c); got != v {
					t.Errorf("%s: got %q, want %q", tt.path, got, v)
				}
			}
			bads := []string{"bogus", `""`}
			if up := strings.ToUpper(tt.vals[0]); up != tt.vals[0] {
				bads = append(bads, up)
			}
			for _, bad := range bads {
				got := problems(t, minimal+strings.Replace(tt.frag, "%s", bad, 1))
				want := "is not one of " + strings.Join(tt.vals, ", ")
				if len(got) != 1 || !strings.HasPrefix(got[0], "8:") || !strings.Contains(got[0], tt.path+": ") || !strings.HasSuffix(got[0], want) {
					t.Errorf("%s = %s: got %q, want one problem on line 8 ending %q", tt.path, bad, got, want)
				}
			}
		})
	}

	// Listener tls and compress sit before the backends in the file.
	listener := func(tls, compress string) string {
		return "listeners: [{name: a, address: \":143\", tls: " + tls + ", compress: " + compress + "}]\n" +
			"backends: [{name: b, address: \"h:1\"}]\ntls: {certificates: [{cert_file: c, key_file: k}]}\n"
	}
	for _, v := range []string{"implicit", "starttls", "none"} {
		if c := parseOK(t, listener(v, "strip")); string(c.Listeners[0].TLS) != v || c.Listeners[0].Compress != CompressStrip {
			t.Errorf("listener tls %s: got %+v", v, c.Listeners[0])
		}
	}
	if got := problems(t, listener("tsl", "gzip")); !reflect.DeepEqual(got, []string{
		`1:40: listeners[0].tls: "tsl" is not one of implicit, starttls, none`,
		`1:50: listeners[0].compress: "gzip" is not one of terminate, strip`,
	}) {
		t.Errorf("listener enums: %q", got)
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"31m", 31 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"250ms", 250 * time.Millisecond, true},
		{"0", 0, true},
		{"0s", 0, true},
		{"30", 0, false},
		{"-1s", 0, false},
		{"1d", 0, false},
		{"", 0, false},
		{"30 s", 0, false},
		{"s", 0, false},
	}
	for _, tt := range tests {
		got, msg := parseDuration(tt.in)
		if (msg == "") != tt.ok || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %q; want %v, ok=%v", tt.in, got, msg, tt.want, tt.ok)
		}
	}
}

func TestSizes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512", 512, true},
		{"0", 0, true},
		{"4096B", 4096, true},
		{"16KiB", 16 << 10, true},
		{"8KiB", 8 << 10, true},
		{"1MiB", 1 << 20, true},
		{"2GiB", 2 << 30, true},
		{"16KB", 0, false},
		{"16kB", 0, false},
		{"16K", 0, false},
		{"1MB", 0, false},
		{"16kib", 0, false},
		{"16 KiB", 0, false},
		{"KiB", 0, false},
		{"B", 0, false},
		{"", 0, false},
		{"-1", 0, false},
		{"-1KiB", 0, false},
		{"1.5KiB", 0, false},
		{"0x10", 0, false},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false},
		{"9999999999GiB", 0, false},
	}
	for _, tt := range tests {
		got, msg := parseSize(tt.in)
		if (msg == "") != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %v, %q; want %v, ok=%v", tt.in, got, msg, tt.want, tt.ok)
		}
	}
}

func TestNetworks(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"192.0.2.1", "192.0.2.1/32"},
		{"192.0.2.1/32", "192.0.2.1/32"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"::1", "::1/128"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"10.0.0.1/8", ""},
		{"10.0.0.0/33", ""},
		{"fe80::1%eth0", ""},
		{"localhost", ""},
		{"", ""},
		{"10.0.0.0/", ""},
	}
	for _, tt := range tests {
		got, msg := parsePrefix(tt.in)
		if tt.want == "" {
			if msg == "" {
				t.Errorf("parsePrefix(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if msg != "" || got.String() != tt.want {
			t.Errorf("parsePrefix(%q) = %v, %q; want %s", tt.in, got, msg, tt.want)
		}
	}

	c := parseOK(t, minimal+"policy:\n  plaintext_auth_networks: [127.0.0.1, \"::1\", 10.0.0.0/8]\n")
	nets := c.Policy.PlaintextAuthNetworks
	for ip, want := range map[string]bool{"127.0.0.1": true, "::1": true, "10.1.2.3": true,
		"::ffff:10.1.2.3": true, "127.0.0.2": false, "192.0.2.1": false} {
		if got := nets.Contains(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", ip, got, want)
		}
	}
	if s, ok := c.Source("policy.plaintext_auth_networks[1]"); !ok || s.Raw != "::1" || s.Line != 9 {
		t.Errorf("Source = %+v, %v", s, ok)
	}
}

func TestNotEnforced(t *testing.T) {
	c := parseOK(t, minimal+`    forward_client: id
    weight: 2
policy:
  trusted_proxies: [10.0.0.1]
  preauth: {timeout: 30s}
  auth_failures: {max_delay: 1s, per_ip: 5}
routing:
  routes: []
  lookup: {http: {url: "http://127.0.0.1/auth", headers: {X-A: b}}}
log: {level: debug}
drain: {}
`)
	want := []string{
		"backends[0].forward_client",
		"policy.trusted_proxies",
		"policy.auth_failures.per_ip",
		"routing.lookup.http.url",
		"routing.lookup.http.headers",
	}
	if got := c.NotEnforced(); !reflect.DeepEqual(got, want) {
		t.Errorf("NotEnforced() = %q\nwant %q", got, want)
	}
	if s, ok := c.Source("routing.lookup.http.url"); !ok || s.Line != 16 {
		t.Errorf("Source(url) = %+v, %v", s, ok)
	}
}

func TestIsEnforcedPrefixes(t *testing.T) {
	for path, want := range map[string]bool{
		"listeners[3].name":               true,
		"listeners[3].names":              false,
		"listeners[0].proxy_protocol":     false,
		"tls.certificates[1].cert_file":   true,
		"policy.preauth.max_line":         true,
		"policy.auth_failures.max_delay":  true,
		"policy.auth_failures.window":     false,
		"log.output":                      true,
		"routing.routes[0].user":          true,
		"routing.routes_file":             false,
		"backends[12].forward_client":     false,
		"backends[12].connect_timeout":    true,
		"policy.plaintext_auth_networks":  true,
		"policy.plaintext_auth_networks2": false,
	} {
		if got := isEnforced(path); got != want {
			t.Errorf("isEnforced(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.key")
	src := `listeners: [{name: a, address: ":993", tls: implicit}]
backends:
  - name: b
    address: "h:1"
    ca_file: ` + dir + `
    master_user: m
    master_password_file: ` + cert + `
tls:
  certificates:
    - cert_file: ` + cert + `
      key_file: ` + missing + `
admin:
  address: "127.0.0.1:9143"
  token_file: ` + missing + `
`
	c := parseOK(t, src)
	got := c.CheckFiles()
	want := []Problem{
		{Line: 11, Column: 7, Path: "tls.certificates[0].key_file", Msg: "cannot read " + missing + ": no such file or directory"},
		{Line: 5, Column: 5, Path: "backends[0].ca_file", Msg: dir + " is a directory, not a file"},
		{Line: 14, Column: 3, Path: "admin.token_file", Msg: "cannot read " + missing + ": no such file or directory"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CheckFiles():\n got %+v\nwant %+v", got, want)
	}
	if got := parseOK(t, minimal).CheckFiles(); len(got) != 0 {
		t.Errorf("minimal CheckFiles() = %+v", got)
	}
}

func TestLoad(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil || c.File() != examplePath {
		t.Fatalf("Load(example): %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte(minimal+"bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if err == nil || err.Error() != path+`:8:1: bogus: unknown key "bogus"` {
		t.Errorf("Load(bad) = %v", err)
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"listeners", "tls", "backends", "routing", "policy", "log", "audit", "admin", "drain", "migration"}
	for in, want := range map[string]string{
		"listener": "listeners", "tsl": "tls", "backend": "backends", "polciy": "policy",
		"lgo": "log", "xyz": "", "routes": "", "Admin": "admin", "migrations": "migration",
	} {
		if got := suggest(in, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}
