package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// auditProxy starts a proxy in front of fb with audit events observed.
func auditProxy(t *testing.T, fb *fakeBackend) (*testProxy, *observer.ObservedLogs) {
	core, audit := observer.New(zap.InfoLevel)
	p := startProxy(t, fakeBackends(fb), func(o *Options) { o.Audit = zap.New(core) })
	return p, audit
}

func TestInspectionLostKeepsBytesFlowing(t *testing.T) {
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		br.ReadString('\n') // n1 NOOP
		// A completion for a tag the client never used: the framers
		// cannot follow this stream any more.
		c.Write([]byte("zz9 OK what command?\r\n* 1 FETCH (BODY[] {5}\r\nhello)\r\nn1 OK still forwarded\r\n"))
		answerOK(c, br, "still forwarded")
	})
	p, audit := auditProxy(t, fb)
	c := loginFake(t, p)
	runTranscript(t, c, []step{send("n1 NOOP\r\n"), expect("zz9 OK what command?"), expect("* 1 FETCH"), expect("hello)"),
		expect("n1 OK still forwarded"),
		send("n2 NOOP\r\n"), expect("n2 OK still forwarded"),
		send("l LOGOUT\r\n"), expect("l OK still forwarded")})
	c.conn.Close()
	waitLog(t, p, "session_end", "inspection", "lost")
	if n := len(audit.FilterMessage("command").All()); n != 0 {
		t.Errorf("%d command events after inspection was lost", n)
	}
	if got := testutilCounter(t, p, "imapedge_inspection_lost_total"); got != 1 {
		t.Errorf("inspection_lost_total = %v", got)
	}
}

func TestSessionStateAndBoundary(t *testing.T) {
	release := make(chan struct{})
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		l, _ := br.ReadString('\n') // f FETCH
		tag, _, _ := strings.Cut(l, " ")
		c.Write([]byte("* 1 FETCH (BODY[] {9}\r\nhalf"))
		<-release
		c.Write([]byte(" done)\r\n" + tag + " OK\r\n"))
		l, _ = br.ReadString('\n') // i IDLE
		tag, _, _ = strings.Cut(l, " ")
		c.Write([]byte("+ idling\r\n"))
		br.ReadString('\n')
		c.Write([]byte(tag + " OK\r\n"))
		br.ReadString('\n')
	})
	p := startProxy(t, fakeBackends(fb))
	c := loginFake(t, p)
	sess := onlySession(t, p)
	waitState(t, sess, StateIdle, true)
	c.send("f FETCH 1 BODY[]\r\n")
	c.expect("* 1 FETCH (BODY[] {9}")
	waitState(t, sess, StateBusy, false) // inside a literal
	close(release)
	c.expect("half done)")
	c.expect("f OK")
	waitState(t, sess, StateIdle, true)
	c.send("i IDLE\r\n")
	c.expect("+ idling")
	waitState(t, sess, StateIdleCommand, true)
	c.send("DONE\r\n")
	c.expect("i OK")
	waitState(t, sess, StateIdle, true)
}

func onlySession(t *testing.T, p *testProxy) *session {
	t.Helper()
	p.srv.mu.Lock()
	defer p.srv.mu.Unlock()
	for s := range p.srv.conns {
		return s
	}
	t.Fatal("no session")
	return nil
}

// onlySplice waits for the only session's splice: the client may read
// the login answer before the session goroutine has set it up.
func onlySplice(t *testing.T, p *testProxy) *splice {
	t.Helper()
	s := onlySession(t, p)
	waitFor(t, "the session's splice", func() bool { return s.sp.Load() != nil })
	return s.sp.Load()
}

func waitState(t *testing.T, s *session, want string, boundary bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, b := s.State()
		if st == want && b == boundary {
			return
		}
		if time.Now().After(deadline) {
			sp := s.sp.Load()
			t.Fatalf("state %s boundary %v, want %s %v (pending %d idle %v)", st, b, want, boundary, sp.tracker.Pending(), sp.inIdle.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockingCore holds every audit command event until released.
type blockingCore struct {
	zapcore.Core
	release <-chan struct{}
	held    chan<- struct{}
}

func (c blockingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}

func (c blockingCore) Write(e zapcore.Entry, f []zapcore.Field) error {
	if e.Message == "command" {
		c.held <- struct{}{}
		<-c.release
	}
	return c.Core.Write(e, f)
}

// A response reaches the client before its audit event is written: a slow
// audit sink never delays commands. Events keep their order, and the
// session's commands come before its session_end.
func TestAuditAfterResponse(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{}, 8)
	obs, audit := observer.New(zap.InfoLevel)
	p := startProxy(t, fakeBackends(quietBackend(t)), plainLogin, func(o *Options) {
		o.Audit = zap.New(blockingCore{Core: obs, release: release, held: held})
	})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the proxy's own cleanup closes it
	c := loginFakePlain(t, p)
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	runTranscript(t, c, []step{send("b NOOP\r\n"), expect("* 1 EXISTS"), expect("b OK")})
	<-held // the event for b is being written, and waits
	unblock()
	runTranscript(t, c, []step{send("c NOOP\r\n"), expect("* 1 EXISTS"), expect("c OK")})
	c.conn.Close()
	waitLog(t, p, "session_end", "reason", "client_eof")
	waitFor(t, "the audit session_end", func() bool { return audit.FilterMessage("session_end").Len() == 1 })
	var got []string
	for _, e := range audit.All() {
		tag, _ := e.ContextMap()["tag"].(string)
		got = append(got, e.Message+" "+tag)
	}
	if want := "session_start ,command b,command c,session_end "; strings.Join(got, ",") != want {
		t.Fatalf("audit events %q, want %q", strings.Join(got, ","), want)
	}
}

// TestAnswerWaitsForClientParse: command lines are forwarded before they
// are parsed, and the backend may answer before the client copier has
// parsed them (here held up by a hook for 20 ms after each forward): the
// answer must wait, so every command is still tracked and audited, with
// the right mailbox and status.
func TestAnswerWaitsForClientParse(t *testing.T) {
	testHookClientForwarded = func() { time.Sleep(20 * time.Millisecond) }
	t.Cleanup(func() { testHookClientForwarded = nil })
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, rest, _ := strings.Cut(strings.TrimSpace(l), " ")
			if strings.HasPrefix(rest, "SELECT") {
				c.Write([]byte("* 3 EXISTS\r\n" + tag + " OK [READ-WRITE] selected\r\n"))
				continue
			}
			c.Write([]byte(tag + " OK done\r\n"))
		}
	})
	p, audit := auditProxy(t, fb)
	c := loginFake(t, p)
	runTranscript(t, c, []step{send("s SELECT Work\r\n"), expect("* 3 EXISTS"), expect("s OK [READ-WRITE]"),
		send("n1 NOOP\r\n"), expect("n1 OK done"),
		send("f UID FETCH 1:* (FLAGS)\r\nn2 NOOP\r\n"), expect("f OK done"), expect("n2 OK done")})
	waitFor(t, "four command events", func() bool { return audit.FilterMessage("command").Len() == 4 })
	if sp := onlySplice(t, p); sp.tracker.Lost() {
		t.Fatal("inspection lost")
	}
	want := []string{"SELECT Work  OK READ-WRITE", "NOOP  Work OK ", "UID FETCH  Work OK ", "NOOP  Work OK "}
	for i, e := range audit.FilterMessage("command").All() {
		m := e.ContextMap()
		got := fmt.Sprintf("%s %s %s %s %s", m["command"], m["mailbox"], m["selected"], m["status"], m["code"])
		if got != want[i] {
			t.Errorf("event %d: %q, want %q", i, got, want[i])
		}
	}
}
