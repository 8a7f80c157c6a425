package main

import (
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/imapedge/imapedge/cmd/imapedge/config"
)

// encoderConfigs are the operational log's and the audit stream's
// configurations (the JSON ones buildLogger and buildAudit use).
func encoderConfigs() map[string]struct {
	cfg   zapcore.EncoderConfig
	times *secondCache
} {
	return map[string]struct {
		cfg   zapcore.EncoderConfig
		times *secondCache
	}{
		"log":   {logEncoderConfig(), &isoCache},
		"audit": {auditEncoderConfig(), &nanoCache},
	}
}

// randomString mixes the bytes a JSON encoder treats differently:
// quotes, backslashes, control bytes, DEL, multi-byte runes, invalid
// UTF-8, truncated runes.
func randomString(r *rand.Rand) string {
	pieces := []string{"a", "Z", " ", "INBOX", "\"", "\\", "\n", "\r", "\t", "\x00", "\x01", "\x1f", "\x7f",
		"é", "日本", "😀", "\xff", "\xc3", "\xe6\x97", "\xed\xa0\x80", "/", "<", "\u2028", "\ufffd"}
	n := r.IntN(12)
	s := ""
	for range n {
		s += pieces[r.IntN(len(pieces))]
	}
	return s
}

func randomField(r *rand.Rand, key string) zap.Field {
	switch r.IntN(12) {
	case 0:
		return zap.Bool(key, r.IntN(2) == 1)
	case 1:
		return zap.Int64(key, int64(r.Uint64()))
	case 2:
		return zap.Int(key, r.IntN(1000)-500)
	case 3:
		return zap.Int32(key, int32(r.Uint32()))
	case 4:
		return zap.Uint64(key, r.Uint64())
	case 5:
		return zap.Uint8(key, uint8(r.Uint32()))
	case 6:
		fs := []float64{0, -0.0, 1.5, 0.001, 1e21, 1e-7, 123456.789, math.NaN(), math.Inf(1), math.Inf(-1), r.Float64() * 1e6, float64(r.IntN(100000)) / 1000}
		return zap.Float64(key, fs[r.IntN(len(fs))])
	case 7:
		return zap.Int16(key, int16(r.Uint32()))
	default:
		return zap.String(key, randomString(r))
	}
}

// TestFastJSONMatchesZap encodes random entries with both encoders: the
// fast path must write exactly what zap writes.
func TestFastJSONMatchesZap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	keys := []string{"event", "session", "user", "client_ip", "duration_ms", "k\"ey", "ключ", "a\x01b"}
	levels := []zapcore.Level{zapcore.DebugLevel, zapcore.InfoLevel, zapcore.WarnLevel, zapcore.ErrorLevel}
	locs := []*time.Location{time.UTC, time.FixedZone("X", 5*3600+30*60), time.FixedZone("Y", -8*3600)}
	for name, c := range encoderConfigs() {
		zapEnc := zapcore.NewJSONEncoder(c.cfg)
		fast := newFastJSON(c.cfg, c.times)
		for i := range 5000 {
			ent := zapcore.Entry{
				Level:   levels[r.IntN(len(levels))],
				Time:    time.Unix(1_700_000_000+r.Int64N(100), r.Int64N(1e9)).In(locs[r.IntN(len(locs))]),
				Message: randomString(r),
			}
			if i%50 == 0 {
				ent.Time = time.Time{}
			}
			var fields []zap.Field
			for range r.IntN(20) {
				fields = append(fields, randomField(r, keys[r.IntN(len(keys))]))
			}
			want, err := zapEnc.EncodeEntry(ent, fields)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fast.EncodeEntry(ent, fields)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Fatalf("%s: entry %d:\nfast %q\nzap  %q", name, i, got.String(), want.String())
			}
			got.Free()
			want.Free()
		}
	}
}

// TestFastJSONFallback: lines the fast path does not cover are zap's own,
// including context fields added with With.
func TestFastJSONFallback(t *testing.T) {
	c := encoderConfigs()["log"]
	zapEnc := zapcore.NewJSONEncoder(c.cfg)
	fast := newFastJSON(c.cfg, c.times)
	ent := zapcore.Entry{Level: zapcore.InfoLevel, Time: time.Unix(1_700_000_000, 5).UTC(), Message: "m"}
	cases := map[string][]zap.Field{
		"error":    {zap.Error(errors.New("boom"))},
		"strings":  {zap.Strings("client_id", []string{"name", "x"})},
		"duration": {zap.Duration("d", time.Second)},
		"any":      {zap.Any("m", map[string]int{"a": 1})},
		"mixed":    {zap.String("s", "x"), zap.Error(errors.New("e"))},
	}
	for name, fields := range cases {
		want, _ := zapEnc.EncodeEntry(ent, fields)
		got, _ := fast.EncodeEntry(ent, fields)
		if got.String() != want.String() {
			t.Errorf("%s:\nfast %q\nzap  %q", name, got.String(), want.String())
		}
	}
	// Context fields (logger.With).
	zc := zapEnc.Clone()
	zc.AddString("listener", "plain")
	fc := fast.Clone()
	fc.AddString("listener", "plain")
	fields := []zap.Field{zap.String("a", "b")}
	want, _ := zc.EncodeEntry(ent, fields)
	got, _ := fc.EncodeEntry(ent, fields)
	if got.String() != want.String() {
		t.Errorf("with context:\nfast %q\nzap  %q", got.String(), want.String())
	}
	// The original encoder stays on the fast path and without the field.
	plain, _ := fast.EncodeEntry(ent, fields)
	if want2, _ := zapEnc.EncodeEntry(ent, fields); plain.String() != want2.String() {
		t.Errorf("after Clone:\nfast %q\nzap  %q", plain.String(), want2.String())
	}
	// A logger built on the encoder, with and without With.
	sink := &lineSink{}
	log := zap.New(zapcore.NewCore(fast, sink, zapcore.DebugLevel))
	log.With(zap.String("listener", "tls")).Info("hello", zap.Int("n", 1))
	log.Info("plain", zap.Int("n", 2))
	if len(sink.lines) != 2 || !containsAll(sink.lines[0], `"listener":"tls"`, `"msg":"hello"`, `"n":1`) ||
		containsAll(sink.lines[1], `"listener"`) || !containsAll(sink.lines[1], `"msg":"plain"`, `"n":2`) {
		t.Errorf("logger lines: %q", sink.lines)
	}
}

type lineSink struct{ lines []string }

func (s *lineSink) Write(p []byte) (int, error) {
	s.lines = append(s.lines, string(p))
	return len(p), nil
}
func (s *lineSink) Sync() error { return nil }

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func BenchmarkAuditCommandLine(b *testing.B) {
	c := encoderConfigs()["audit"]
	fields := []zap.Field{
		zap.String("event", "command"), zap.String("session", "abcdefghijklmnop"), zap.String("user", "bench01"),
		zap.String("client_ip", "127.0.0.1"), zap.String("backend", "dovecot"), zap.String("tag", "a5"),
		zap.String("command", "SELECT"), zap.String("mailbox", "INBOX"), zap.String("mailbox_to", ""),
		zap.String("selected", ""), zap.String("status", "OK"), zap.String("code", "READ-WRITE"),
		zap.Float64("duration_ms", 0.412), zap.Int64("bytes_in", 17), zap.Int64("bytes_out", 420),
		zap.Int64("literal_bytes", 0), zap.Int("untagged", 7), zap.Bool("local", false),
	}
	ent := zapcore.Entry{Level: zapcore.InfoLevel, Time: time.Now(), Message: "command"}
	for name, enc := range map[string]zapcore.Encoder{"zap": zapcore.NewJSONEncoder(c.cfg), "fast": newFastJSON(c.cfg, c.times)} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				buf, _ := enc.EncodeEntry(ent, fields)
				buf.Free()
			}
		})
	}
}

// TestLogFiles: with file outputs, every line is in the files once the
// loggers are closed, in the fast path's format (the periodic flush
// writes without fsync; closing syncs).
func TestLogFiles(t *testing.T) {
	dir := t.TempDir()
	logPath, auditPath := dir+"/imapedge.log", dir+"/audit.log"
	log, closeLog, err := buildLogger(config.Log{Level: "info", Format: "json", Output: logPath}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	audit, closeAudit, err := buildAudit(config.Audit{Commands: true, Output: auditPath}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		log.Info("session_end", zap.Int("n", i), zap.String("user", "u\"1"))
		audit.Info("command", zap.String("event", "command"), zap.Int("n", i))
	}
	closeLog()
	closeAudit()
	for path, want := range map[string]string{logPath: `"msg":"session_end","n":99,"user":"u\"1"}`, auditPath: `"event":"command","n":99}`} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) != 100 || !strings.HasSuffix(lines[99], want) {
			t.Errorf("%s: %d lines, last %q; want 100, ending %s", path, len(lines), lines[len(lines)-1], want)
		}
	}
}
