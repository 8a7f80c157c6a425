package config

import (
	"os"
	"testing"
)

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(examplePath); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		minimal,
		"",
		"# comment\n",
		"listeners: 3\nlisteners: []\n",
		minimal + "policy: {preauth: {max_line: 16KiB, max_literal: 1MiB}, trusted_proxies: [10.0.0.0/8, \"::1\"]}\n",
		minimal + "routing: {routes: [{user: a, backend: store1}, {domain: b, pool: default}]}\n",
		minimal + "x: &a 1\ny: *a\n",
		minimal + "---\na: 1\n",
		minimal + "routing: {lookup: {http: {url: \"http://h/\", headers: {X-A: b}}}}\n",
		"listeners: [{name: a, address: \":993\", tls: implicit, proxy_protocol: true}]\nadmin: {address: \"0.0.0.0:1\"}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", c != nil, err)
		}
		if err != nil {
			_ = err.Error()
			return
		}
		_ = c.NotEnforced()
		if len(c.Listeners) == 0 || len(c.Backends) == 0 {
			t.Fatalf("valid config without listeners or backends")
		}
	})
}
