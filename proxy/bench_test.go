package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// fetchBackend answers every FETCH with n messages of size bytes each, as
// Dovecot would: one untagged FETCH with a BODY[] literal per message.
func fetchBackend(b *testing.B, n, size int) *fakeBackend {
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", size/64+1)[:size]
	var resp strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&resp, "* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n", i, i, size, body)
	}
	payload := []byte(resp.String())
	return startFakeBackend(b, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, _, _ := strings.Cut(l, " ")
			if strings.Contains(l, "LOGOUT") {
				c.Write([]byte("* BYE bye\r\n" + tag + " OK bye\r\n"))
				return
			}
			c.Write(payload)
			c.Write([]byte(tag + " OK Fetch completed.\r\n"))
		}
	})
}

// fetchOnce sends one FETCH on an established session and reads the whole
// answer.
func fetchOnce(b *testing.B, c net.Conn, br *bufio.Reader, tag string) int64 {
	if _, err := io.WriteString(c, tag+" FETCH 1:* BODY.PEEK[]\r\n"); err != nil {
		b.Fatal(err)
	}
	var total int64
	for {
		l, err := br.ReadSlice('\n')
		total += int64(len(l))
		if err != nil {
			b.Fatal(err)
		}
		if strings.HasPrefix(string(l), tag+" ") {
			return total
		}
		if i := strings.LastIndexByte(string(l), '{'); i > 0 && strings.HasSuffix(string(l), "}\r\n") {
			var n int64
			fmt.Sscanf(string(l[i:]), "{%d}", &n)
			m, err := br.Discard(int(n))
			total += int64(m)
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkLargeFetch measures FETCH of 1 MiB bodies (plaintext legs)
// directly from the backend, through imapedge with inspection on, and
// through imapedge with inspection off. Compare the sub-benchmarks'
// MB/s (benchstat); the target is on within 10% of off.
func BenchmarkLargeFetch(b *testing.B) {
	const msgs, size = 16, 1 << 20
	fb := fetchBackend(b, msgs, size)
	for _, mode := range []string{"direct", "inspect-on", "inspect-off"} {
		b.Run(mode, func(b *testing.B) {
			var c net.Conn
			var br *bufio.Reader
			switch mode {
			case "direct":
				var err error
				c, err = net.Dial("tcp", fb.ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				br = bufio.NewReaderSize(c, 64<<10)
				br.ReadString('\n')
				io.WriteString(c, "L AUTHENTICATE PLAIN "+b64("\x00u\x00pw")+"\r\n")
				br.ReadString('\n')
			default:
				p := startProxy(b, fakeBackends(fb), func(o *Options) {
					o.DisableInspection = mode == "inspect-off"
					o.Policy.PlaintextAuthNetworks = mustNetworks(b, "127.0.0.0/8")
				})
				var err error
				c, err = net.Dial("tcp", p.srv.Addr("plain").String())
				if err != nil {
					b.Fatal(err)
				}
				br = bufio.NewReaderSize(c, 64<<10)
				br.ReadString('\n')
				io.WriteString(c, "a LOGIN u pw\r\n")
				if l, _ := br.ReadString('\n'); !strings.HasPrefix(l, "a OK") {
					b.Fatal(l)
				}
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Minute))
			b.SetBytes(msgs * size)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				fetchOnce(b, c, br, fmt.Sprintf("f%d", i))
			}
		})
	}
}

// noopBackend answers every command with a tagged OK at once.
func noopBackend(b *testing.B) *fakeBackend {
	return startFakeBackend(b, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		for {
			l, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			tag, _, _ := strings.Cut(string(l), " ")
			c.Write([]byte(tag + " OK NOOP completed.\r\n"))
		}
	})
}

// BenchmarkNoopRoundTrip measures one NOOP round trip on a logged-in
// session: directly, through imapedge with inspection (and audit events)
// on, and with inspection off.
func BenchmarkNoopRoundTrip(b *testing.B) {
	fb := noopBackend(b)
	for _, mode := range []string{"direct", "inspect-on", "inspect-off"} {
		b.Run(mode, func(b *testing.B) {
			var c net.Conn
			var err error
			if mode == "direct" {
				c, err = net.Dial("tcp", fb.ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				br := bufio.NewReader(c)
				br.ReadString('\n')
				io.WriteString(c, "L AUTHENTICATE PLAIN "+b64("\x00u\x00pw")+"\r\n")
				br.ReadString('\n')
			} else {
				p := startProxy(b, fakeBackends(fb), func(o *Options) {
					o.DisableInspection = mode == "inspect-off"
					o.Policy.PlaintextAuthNetworks = mustNetworks(b, "127.0.0.0/8")
					o.Audit = benchAudit()
				})
				c, err = net.Dial("tcp", p.srv.Addr("plain").String())
				if err != nil {
					b.Fatal(err)
				}
				br := bufio.NewReader(c)
				br.ReadString('\n')
				io.WriteString(c, "a LOGIN u pw\r\n")
				br.ReadString('\n')
			}
			defer c.Close()
			br := bufio.NewReader(c)
			cmd := []byte("n NOOP\r\n")
			b.ResetTimer()
			for b.Loop() {
				c.Write(cmd)
				if _, err := br.ReadSlice('\n'); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLogin measures whole plaintext sessions through imapedge:
// connect, greeting, LOGIN (the proxy logs in to the backend), NOOP,
// LOGOUT.
func BenchmarkLogin(b *testing.B) {
	fb := startFakeBackend(b, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		for {
			l, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			tag, _, _ := strings.Cut(string(l), " ")
			if strings.Contains(string(l), "LOGOUT") {
				c.Write([]byte("* BYE bye\r\n" + tag + " OK bye\r\n"))
				return
			}
			c.Write([]byte(tag + " OK done\r\n"))
		}
	})
	p := startProxy(b, fakeBackends(fb), plainLogin, benchLogging)
	addr := p.srv.Addr("plain").String()
	b.ResetTimer()
	for b.Loop() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		br := bufio.NewReader(c)
		br.ReadSlice('\n')
		io.WriteString(c, "a LOGIN u pw\r\n")
		if l, _ := br.ReadSlice('\n'); !strings.HasPrefix(string(l), "a OK") {
			b.Fatalf("%q", l)
		}
		io.WriteString(c, "b NOOP\r\nc LOGOUT\r\n")
		for {
			l, err := br.ReadSlice('\n')
			if err != nil || strings.HasPrefix(string(l), "c ") {
				break
			}
		}
		c.Close()
	}
}

// BenchmarkIdleMemory opens sessions that sit in IDLE (plain legs) and
// reports the heap and goroutine stack they hold, per session, after a
// GC. Every iteration is one session; the backend side is in-process too,
// so its memory counts: compare runs, not absolute figures.
func BenchmarkIdleMemory(b *testing.B) {
	fb := startFakeBackend(b, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		tag, _, _ := strings.Cut(l, " ")
		c.Write([]byte("+ idling\r\n"))
		br.ReadString('\n')
		c.Write([]byte(tag + " OK done\r\n"))
	})
	p := startProxy(b, fakeBackends(fb), plainLogin, benchLogging)
	addr := p.srv.Addr("plain").String()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		br := bufio.NewReader(c)
		br.ReadSlice('\n')
		io.WriteString(c, "a LOGIN u pw\r\ni IDLE\r\n")
		for _, want := range []string{"a OK", "+ idling"} {
			if l, _ := br.ReadSlice('\n'); !strings.HasPrefix(string(l), want) {
				b.Fatalf("%q, want %s", l, want)
			}
		}
	}
	b.StopTimer()
	if p.srv.poller != nil {
		for deadline := time.Now().Add(10 * time.Second); p.srv.poller.parked.Load() < 2*int64(len(conns)); {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d directions parked", p.srv.poller.parked.Load(), 2*len(conns))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if f := os.Getenv("IDLE_HEAP_PROFILE"); f != "" {
		// What the idle sessions hold, before they are closed.
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		pprof.Lookup("heap").WriteTo(out, 0)
		out.Close()
	}
	n := float64(len(conns))
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heap-B/session")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-B/session")
	b.ReportMetric(0, "ns/op")
}
