package main

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// TestParkedIdleWithDovecot: a go-imap client in IDLE through imapedge
// leaves no copier goroutine running (both directions parked), sees a
// message another session delivers, and carries on after DONE.
func TestParkedIdleWithDovecot(t *testing.T) {
	env := startE2E(t, nil)
	dialers := env.goDialers()
	for _, name := range []string{"proxy-tls-go", "proxy-starttls-go"} {
		t.Run(name, func(t *testing.T) {
			var exists atomic.Uint32
			c := dialers[name](t, &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists.Store(*d.NumMessages)
				}
			}})
			user := e2eUsers[0].Name
			if err := c.Login(user, e2ePassword(user)).Wait(); err != nil {
				t.Fatal(err)
			}
			sel, err := c.Select("INBOX", nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			idle, err := c.Idle()
			if err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "both copiers parked", func() bool { return env.rt.srv.ParkedCopiers() == 2 })

			// Another session (straight to Dovecot) delivers a message.
			other := dialers["direct-go"](t, nil)
			if err := other.Login(user, e2ePassword(user)).Wait(); err != nil {
				t.Fatal(err)
			}
			m := smallMessage("while parked " + name)
			a := other.Append("INBOX", int64(len(m)), nil)
			a.Write(m)
			a.Close()
			if _, err := a.Wait(); err != nil {
				t.Fatal(err)
			}
			other.Logout().Wait()
			waitUntil(t, "EXISTS through the parked session", func() bool { return exists.Load() == sel.NumMessages+1 })
			waitUntil(t, "parked again", func() bool { return env.rt.srv.ParkedCopiers() == 2 })

			if err := idle.Close(); err != nil {
				t.Fatal(err)
			}
			if err := idle.Wait(); err != nil {
				t.Fatalf("IDLE: %v", err)
			}
			if err := c.Noop().Wait(); err != nil {
				t.Fatal(err)
			}
			if got := env.rt.srv.ParkedCopiers(); got != 0 {
				t.Errorf("%d copiers parked after IDLE", got)
			}
			if err := c.Logout().Wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
