package imapwire

// Tests for bugs found in the non-test code of this package. Each test
// names the bug; the comments and the report that came with this file
// describe input, expected and actual behaviour. Bugs 1-8 were fixed
// while these tests were written and now pass as regression tests; bug 9
// (a data race) still fails under -race.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bug 1: a non-fatal error on a command line that ends with a
// non-synchronizing literal header leaves the literal's octets (and the
// rest of the command) in the stream. The next ReadCommand parses the
// literal's content as a new command: the stream is out of sync and the
// client can smuggle a command inside a literal. The accepted-but-rejected
// path (skipCommand) already does the right thing; the error paths do not.
//
// Expected: the error is Fatal (the session sends BYE), or the literal and
// the rest of its command are skipped so that the next command read is the
// one after it ("b NOOP" below).
func TestBugNonSyncLiteralLeftInStreamAfterError(t *testing.T) {
	// After each bad first part comes a 10-octet literal "c LOGOUT\r\n",
	// the end of the command (CRLF), then the real next command.
	const tail = "c LOGOUT\r\n" + "\r\n" + "b NOOP\r\n"
	long := strings.Repeat("u", 100)
	cases := []struct{ name, first string }{
		{"invalid quoted string", `a LOGIN "a\q" {10+}` + "\r\n"},
		{"non-sync literal8", "a LOGIN user ~{10+}\r\n"},
		{"invalid tag", "a+ LOGIN {10+}\r\n"},
		{"missing command", "a  {10+}\r\n"},
		{"invalid command name", "a {10+}\r\n"},
		{"too many arguments", "a ID" + strings.Repeat(" x", 13) + " {10+}\r\n"},
		{"tab in an atom", "a LOGIN us\ter {10+}\r\n"},
		{"over-long first line", "a LOGIN " + long + " {10+}\r\n"},
		{"over-long line after a literal", "a LOGIN {1}\r\nx " + long + " {10+}\r\n"},
		{"command too long after a line", "a ID {1}\r\n" + strings.Repeat("x"+strings.Repeat("y", 57)+" {1}\r\n", 2) + "x" + strings.Repeat("y", 56) + " {10+}\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &Reader{R: bufio.NewReader(strings.NewReader(tc.first + tail)), Lim: testLimits}
			_, err := r.ReadCommand(nil)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("first ReadCommand: %v, want a ProtocolError", err)
			}
			if pe.Fatal || pe.Bye {
				return // the connection ends: acceptable
			}
			cmd, err := r.ReadCommand(nil)
			if err != nil || cmd.Tag != "b" {
				got := renderErr(err)
				if err == nil {
					got = renderCommand(cmd)
				}
				t.Errorf("after %q (non-fatal %q), the next command read is %q: the literal's content was parsed as a command; want b NOOP", tc.first, pe.Msg, got)
			}
		})
	}
}

// Bug 1b: a line that ends with "{n+}" right after other characters
// ("x{10+}") is read as one atom, so the literal's octets that follow are
// parsed as the next command. RFC 7888 §3: the receiver "MUST check the end
// of every received line" for "{n+}"; the framers (LiteralHeader on the
// line's tail) do, the pre-auth reader does not.
//
// Expected: either an error (Fatal, or with the literal skipped) or the
// literal read as such; in no case "c LOGOUT" as the next command.
func TestBugGluedNonSyncLiteralHeader(t *testing.T) {
	in := "a LOGIN user x{10+}\r\nc LOGOUT\r\n\r\nb NOOP\r\n"
	r := &Reader{R: bufio.NewReader(strings.NewReader(in)), Lim: testLimits}
	cmd, err := r.ReadCommand(nil)
	var pe *ProtocolError
	if errors.As(err, &pe) && (pe.Fatal || pe.Bye) {
		return
	}
	first := renderErr(err)
	if err == nil {
		first = renderCommand(cmd)
		if strings.HasSuffix(first, `l"c LOGOUT\r\n" #31`) {
			return // read as a literal
		}
	}
	cmd, err = r.ReadCommand(nil)
	if err != nil || cmd.Tag != "b" {
		got := renderErr(err)
		if err == nil {
			got = renderCommand(cmd)
		}
		t.Errorf("%q: first result %q, then %q: the literal's content was read as a command", in, first, got)
	}
}

// Bug 2: an atom that starts with "~" (an ATOM-CHAR, RFC 9051 §9) is
// refused as "Invalid literal": tokenize treats every '~' as the start of
// a literal8.
//
// Input:    a LOGIN ~user pass
// Expected: LOGIN with atoms "~user" and "pass".
// Got:      BAD[a] Invalid literal.
func TestBugTildeAtom(t *testing.T) {
	for _, in := range []string{"a LOGIN ~user pass\r\n", "a LOGIN user ~\r\n", "a LOGIN user ~p~\r\n"} {
		r := &Reader{R: bufio.NewReader(strings.NewReader(in)), Lim: testLimits}
		cmd, err := r.ReadCommand(nil)
		if err != nil {
			t.Errorf("%q: %s, want a LOGIN command", in, renderErr(err))
			continue
		}
		if len(cmd.Args) != 2 || cmd.Args[0].Kind != TokAtom || cmd.Args[1].Kind != TokAtom {
			t.Errorf("%q: %s", in, renderCommand(cmd))
		}
	}
}

// Bug 3: when a rejected non-synchronizing literal is followed (in the
// same command) by a non-synchronizing literal larger than MaxNonSync,
// skipCommand returns the fatal TOOBIG error without the command's tag,
// so the session answers "* BAD [TOOBIG]" instead of "a BAD [TOOBIG]"
// before its BYE. The same input without the rejection gets the tag.
//
// Input:    a LOGIN {4+}\r\nuser {40+}\r\n… with LOGIN rejected
// Expected: ProtocolError{Tag: "a", Code: "TOOBIG", Fatal: true}
// Got:      Tag "".
func TestBugSkipCommandTooBigUntagged(t *testing.T) {
	in := "a LOGIN {4+}\r\nuser {40+}\r\n" + strings.Repeat("p", 40) + "\r\n"
	r := &Reader{R: bufio.NewReader(strings.NewReader(in)), Lim: testLimits}
	log := &literalLog{reject: rejectLoginNO}
	_, err := r.ReadCommand(log.onLiteral)
	if got := renderErr(err); got != "BAD[a] TOOBIG Literal too big FATAL" {
		t.Errorf("got %s, want BAD[a] TOOBIG Literal too big FATAL", got)
	}
}

// Bug 4: input that is not IMAP is only detected once a whole line has
// arrived. A TLS ClientHello on the plaintext port usually contains no LF,
// and the TLS client then waits for the ServerHello: ReadCommand blocks
// until the pre-auth deadline instead of answering BYE at once (DESIGN.md
// §2: "TLS on the plain port: BYE").
//
// Input:    a ClientHello (first octet 0x16) with no LF, connection open
// Expected: a ProtocolError with Bye set, promptly
// Got:      ReadCommand still blocked after 1 s
func TestBugTLSClientHelloWithoutLF(t *testing.T) {
	hello := clientHello(t)
	hello = bytes.ReplaceAll(hello, []byte{'\n'}, []byte{'N'})
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write(hello)
	r := &Reader{R: bufio.NewReaderSize(pr, 4096), Lim: DefaultLimits}
	done := make(chan error, 1)
	go func() {
		_, err := r.ReadCommand(nil)
		done <- err
	}()
	select {
	case err := <-done:
		var pe *ProtocolError
		if !errors.As(err, &pe) || !pe.Bye {
			t.Errorf("got %v, want a ProtocolError with Bye", err)
		}
	case <-time.After(time.Second):
		pw.Close()
		<-done
		t.Errorf("ReadCommand still blocked 1s after a %d-octet TLS ClientHello (first octet %#x)", len(hello), hello[0])
	}
}

// clientHello returns the first record a crypto/tls client sends.
func clientHello(t *testing.T) []byte {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	go tls.Client(c1, &tls.Config{ServerName: "imap.example.com"}).Handshake()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c2, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(c2, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// Bug 5: IDLE refused with a tagged NO or BAD. The client sends no DONE;
// its next line is a new command (RFC 2177; PROTOCOL.md §2.4). The
// ClientFramer stays in IDLE for good: every later line is taken for a
// would-be DONE, no event is ever returned again and InIdle stays true,
// so the splice never sees another command (COMPRESS/STARTTLS are not
// intercepted, LOGOUT is not noticed, command counts stop).
//
// Input (C/S interleaved): C "a IDLE\r\n" / S "a NO [LIMIT] too many idlers\r\n" / C "b NOOP\r\n" "c COMPRESS DEFLATE\r\n"
// Expected events: start@0, line@8 a IDLE, start@8, line@16 b NOOP, start@16, line@36 c COMPRESS; InIdle false.
// Got: start@0, line@8 a IDLE only; InIdle true.
func TestBugClientFramerIdleRefused(t *testing.T) {
	for _, status := range []string{"NO [LIMIT] too many idlers", "BAD IDLE not supported"} {
		steps := []step{
			{'C', "a IDLE\r\n"},
			{'S', "a " + status + "\r\n"},
			{'C', "b NOOP\r\n"},
			{'S', "b OK\r\n"},
			{'C', "c COMPRESS DEFLATE\r\n"},
		}
		tr := &Tracker{}
		sf := &ServerFramer{T: tr}
		cf := &ClientFramer{T: tr}
		var evs []clientEvent
		off := 0
		for _, s := range steps {
			if s.dir == 'S' {
				sf.Feed([]byte(s.data))
				continue
			}
			evs = feedClient(t, cf, []byte(s.data), off, evs)
			off += len(s.data)
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.String())
		}
		want := []string{"start@0", "line@8 a IDLE", "start@8", "line@16 b NOOP", "start@16", "line@36 c COMPRESS"}
		if strings.Join(got, ",") != strings.Join(want, ",") || cf.InIdle() {
			t.Errorf("IDLE refused with %q: events %q, InIdle %v; want %q, InIdle false", status, got, cf.InIdle(), want)
		}
	}
}

// Bug 6: ClientFramer keeps at most 64 octets of a tag. Tags have no
// length limit in RFC 9051 (Dovecot accepts 126). With a longer tag:
//   - Tag() returns a truncated tag, so a line imapedge answers itself
//     (COMPRESS, STARTTLS) is answered with the wrong tag and the client
//     never sees its completion;
//   - the pending literal was matched with the truncated tag while the ServerFramer
//     reports the full one, so a refused synchronizing literal is never
//     recognized: the framer takes the client's next command for the
//     literal's octets and is out of sync from then on.
//
// Input:    C "<70×t> APPEND box {10}\r\n" / S "<70×t> NO [TRYCREATE] no\r\n" / C "b NOOP\r\n"
// Expected: Tag() = the 70-octet tag; then start@…, line@… b NOOP.
// Got:      Tag() has 64 octets; no event for "b NOOP" (its 8 octets are
//
//	counted as literal octets).
func TestBugClientFramerLongTag(t *testing.T) {
	tag := strings.Repeat("t", 70)
	tr := &Tracker{}
	sf := &ServerFramer{T: tr}
	cf := &ClientFramer{T: tr}
	first := tag + " APPEND box {10}\r\n"
	evs := feedClient(t, cf, []byte(first), 0, nil)
	if len(evs) != 2 || evs[1].tag != tag {
		t.Errorf("Tag() after a %d-octet tag: %q (%d octets)", len(tag), evs[len(evs)-1].tag, len(evs[len(evs)-1].tag))
	}
	sf.Feed([]byte(tag + " NO [TRYCREATE] no such mailbox\r\n"))
	evs = feedClient(t, cf, []byte("b NOOP\r\n"), len(first), nil)
	if len(evs) != 2 || evs[1].tag != "b" {
		t.Errorf("after the refused literal: events %v, want start and line for b NOOP", evs)
	}
}

// Bug 7 (lower priority): the refusal of a pending sync literal was matched by tag alone. Tags
// may repeat (RFC 9051 §2.2.1: a server MUST accept tag reuse; DESIGN.md
// §2: FIFO per tag). When an earlier command with the same tag completes
// while a synchronizing literal waits for its "+", that completion is
// taken for the refusal: the literal's octets, sent after the "+", are
// parsed as a new command.
//
// Input:    C "a NOOP\r\na APPEND box {10}\r\n" / S "a OK NOOP completed\r\n+ go\r\n" / C "c LOGOUT\r\n\r\nb NOOP\r\n"
// Expected: events for b NOOP only after the APPEND; no command "c".
// Got:      start@27, line@37 c LOGOUT … (the literal read as a command).
func TestBugSyncLiteralTagReuse(t *testing.T) {
	tr := &Tracker{}
	sf := &ServerFramer{T: tr}
	cf := &ClientFramer{T: tr}
	c1 := "a NOOP\r\na APPEND box {10}\r\n"
	evs := feedClient(t, cf, []byte(c1), 0, nil)
	sf.Feed([]byte("a OK NOOP completed\r\n+ go\r\n"))
	evs = feedClient(t, cf, []byte("c LOGOUT\r\n\r\nb NOOP\r\n"), len(c1), evs)
	var got []string
	for _, e := range evs {
		got = append(got, e.String())
	}
	want := []string{"start@0", "line@8 a NOOP", "start@8", "line@27 a APPEND", "start@39", "line@47 b NOOP"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events %q\nwant   %q", got, want)
	}
}

// Bug 8 (in the fix for bug 1): readLine keeps the tail of an over-long
// line from the fragment that crossed the limit onwards only. When the
// literal header at the end of the line straddles the fragment that
// crossed the limit and the bytes already in r.buf, r.tail holds only the
// part of the header after the boundary ("0+}\r\n"), the header is not
// seen and the literal's octets are parsed as the next command. With a
// 4096-octet bufio.Reader and MaxLine 16 KiB this happens for lines whose
// last 4 KiB fragment starts inside the header.
//
// Fix idea: when the limit is crossed, seed r.tail with r.buf before
// adding frag (lineBuf.add copies only the last tailCap octets).
//
// Input:    "a LOGIN " + k×"u" + " {10+}\r\nc LOGOUT\r\n\r\nb NOOP\r\n" for every k
//
//	around MaxLine, read through bufio.Readers of 16, 23, 64 and 4096
//	octets
//
// Expected: a non-fatal "Line too long", then b NOOP
// Got:      for some (k, size): c LOGOUT as the next command
func TestBugOverlongLineHeaderAcrossFragments(t *testing.T) {
	const tail = "c LOGOUT\r\n" + "\r\n" + "b NOOP\r\n"
	for _, size := range []int{16, 23, 64, 4096} {
		for k := 51; k < 200; k++ {
			in := "a LOGIN " + strings.Repeat("u", k) + " {10+}\r\n" + tail
			r := &Reader{R: bufio.NewReaderSize(strings.NewReader(in), size), Lim: testLimits}
			_, err := r.ReadCommand(nil)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("size %d k %d: first ReadCommand: %v", size, k, err)
			}
			if pe.Fatal || pe.Bye {
				continue
			}
			cmd, err := r.ReadCommand(nil)
			if err != nil || cmd.Tag != "b" {
				got := renderErr(err)
				if err == nil {
					got = renderCommand(cmd)
				}
				t.Errorf("bufio %d, %d-octet line (%q): next command %q, want b NOOP", size, len(in)-len(tail), pe.Msg, got)
			}
		}
	}
	// The same with the production sizes: a 4096-octet bufio.Reader and
	// the default 16 KiB line limit.
	for k := 16370; k < 16400; k++ {
		in := "a LOGIN " + strings.Repeat("u", k) + " {10+}\r\n" + tail
		r := &Reader{R: bufio.NewReaderSize(strings.NewReader(in), 4096), Lim: DefaultLimits}
		_, err := r.ReadCommand(nil)
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Fatal || pe.Bye {
			continue
		}
		if cmd, err := r.ReadCommand(nil); err != nil || cmd.Tag != "b" {
			t.Errorf("default limits, %d-octet line: the literal's content was read as a command", len(in)-len(tail))
		}
	}
}

// Bug 9 (data race; fails under -race only): the ClientFramer writes a
// command's mailbox (Exchange.mailbox / mailboxTo) without the Tracker's
// lock — in Next's csLiteral capture and in keepArg for lines after a
// literal — while the ServerFramer, in the other goroutine, may complete
// that command and read the same fields in Tracker.finishLocked (and hand
// the Exchange to OnComplete, "no longer touched by them"). A server may
// answer before the command's last octets arrive (a BAD for a literal it
// will not take, a hostile or broken backend).
//
// Input:    C "a SELECT {5+}\r\nIN" / then concurrently C "B", "OX\r\n" and
//
//	S "a OK [READ-WRITE] done\r\n"
//
// Expected: no data race
// Got:      DATA RACE between ClientFramer.Next (framer.go, capture append)
//
//	and Tracker.finishLocked
func TestBugMailboxCaptureRace(t *testing.T) {
	for range 200 {
		tr := &Tracker{}
		cf := &ClientFramer{T: tr}
		sf := &ServerFramer{T: tr}
		feedClient(t, cf, []byte("a SELECT {5+}\r\nIN"), 0, nil)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			feedClient(t, cf, []byte("B"), 0, nil)
			feedClient(t, cf, []byte("OX\r\n"), 0, nil)
		}()
		go func() {
			defer wg.Done()
			sf.Feed([]byte("a OK [READ-WRITE] done\r\n"))
		}()
		wg.Wait()
	}
}
