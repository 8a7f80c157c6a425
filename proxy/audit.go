package proxy

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/imapedge/imapedge/proxy/imapwire"
)

// onCommand records one completed command: an audit event (when audit is
// on) and the command metrics. It runs in the copier goroutine that saw
// the completion.
func (s *session) onCommand(ex *imapwire.Exchange) {
	m := s.srv.metrics
	label := commandLabel(ex.Name)
	m.commandCount.get([2]string{label, statusLabel(ex.Status)}).Inc()
	if ex.Name == "IDLE" {
		m.idleDuration.Observe(ex.Duration().Seconds())
	} else {
		m.commandTime.get(label).Observe(ex.Duration().Seconds())
	}
	a := s.srv.opts.Audit
	if a == nil {
		return
	}
	ce := a.Check(zap.InfoLevel, "command")
	if ce == nil {
		return
	}
	fp := fieldPool.Get().(*[]zap.Field)
	defer func() { clear(*fp); fieldPool.Put(fp) }()
	*fp = append((*fp)[:0],
		zap.String("event", "command"),
		zap.String("session", s.id),
		zap.String("user", s.user),
		zap.String("client_ip", s.clientIPStr),
		zap.String("backend", s.backend),
		zap.String("tag", ex.Tag),
		zap.String("command", ex.Name),
		zap.String("mailbox", ex.Mailbox),
		zap.String("mailbox_to", ex.MailboxTo),
		zap.String("selected", ex.Selected),
		zap.String("status", ex.Status),
		zap.String("code", ex.Code),
		zap.Float64("duration_ms", float64(ex.Duration().Microseconds())/1000),
		zap.Int64("bytes_in", ex.BytesIn),
		zap.Int64("bytes_out", ex.BytesOut),
		zap.Int64("literal_bytes", ex.LiteralBytes),
		zap.Int("untagged", ex.Untagged),
		zap.Bool("local", ex.Local),
	)
	ce.Write(*fp...)
}

// fieldPool recycles the field slices of command and session events: an
// event should not cost an allocation of its own.
var fieldPool = sync.Pool{New: func() any { f := make([]zap.Field, 0, 20); return &f }}

// startFields and endFields append the fields of the session_start and
// session_end events and log lines to f (a fieldPool slice).
func (s *session) startFields(f []zap.Field) []zap.Field {
	return append(f,
		zap.String("event", "session_start"),
		zap.String("session", s.id),
		zap.String("listener", s.ln.Name),
		zap.String("client_ip", s.clientIPStr),
		zap.Int("client_port", s.port),
		zap.String("tls", s.tlsVer),
		zap.String("sni", s.sni),
	)
}

func (s *session) endFields(f []zap.Field, reason string) []zap.Field {
	f = append(f,
		zap.String("event", "session_end"),
		zap.String("session", s.id),
		zap.String("listener", s.ln.Name),
		zap.String("client_ip", s.clientIPStr),
		zap.String("user", s.user),
		zap.String("backend", s.backend),
		zap.String("tls", s.tlsVer),
		zap.Int64("duration_ms", time.Since(s.start).Milliseconds()),
		zap.Int64("bytes_in", s.bytesIn.Load()),
		zap.Int64("bytes_out", s.bytesOut.Load()),
		zap.Int64("commands", s.commands.Load()),
		zap.String("reason", reason),
	)
	if len(s.clientID) > 0 {
		f = append(f, zap.Strings("client_id", s.clientID))
	}
	if sp := s.sp.Load(); sp != nil && sp.tracker.Lost() {
		f = append(f, zap.String("inspection", "lost"))
	}
	return f
}
