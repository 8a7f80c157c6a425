package proxy

import (
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestSessionIDEncoding(t *testing.T) {
	b := []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0xfe, 0xff}
	want := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	if got := sessionIDEncoding.EncodeToString(b); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	shape := regexp.MustCompile(`^[a-z2-7]{16}$`)
	seen := map[string]bool{}
	for range 100 {
		id := newSessionID()
		if !shape.MatchString(id) || seen[id] {
			t.Fatalf("session id %q: bad shape or repeated", id)
		}
		seen[id] = true
	}
}

type timeoutErr struct{ timeout bool }

func (e timeoutErr) Error() string   { return "t" }
func (e timeoutErr) Timeout() bool   { return e.timeout }
func (e timeoutErr) Temporary() bool { return false }

func TestIsTimeout(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{io.EOF, false},
		{errors.New("x"), false},
		{os.ErrDeadlineExceeded, true},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, true},
		{fmt.Errorf("wrapped: %w", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}), true},
		{timeoutErr{true}, true},
		{timeoutErr{false}, false},
		{fmt.Errorf("w: %w", timeoutErr{true}), true},
		{errParked, false},
	} {
		if got := isTimeout(c.err); got != c.want {
			t.Errorf("isTimeout(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
