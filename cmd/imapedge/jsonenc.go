package main

import (
	"math"
	"strconv"
	"unicode/utf8"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// fastJSON is zap's JSON encoder with a fast path for the lines imapedge
// writes on every session and command (session_start, login, command,
// session_end): flat objects of string, integer, float and bool fields.
// Those are written here directly, byte for byte what zap's encoder
// writes; everything else (context fields from With, errors, arrays,
// durations, callers, stack traces, logger names) goes to zap's encoder
// unchanged. perf put zap's field-by-field encoding at 4-5 % of the CPU
// of a plaintext login and of a NOOP round trip.
type fastJSON struct {
	zapcore.Encoder // zap's JSON encoder, for everything off the fast path

	timeKey, levelKey, messageKey string
	times                         *secondCache // how the time is printed
	lineEnding                    string
	// context is set on clones, which carry fields added with With:
	// their lines always take zap's path.
	context bool
}

// newFastJSON returns the encoder for cfg. times prints cfg's time
// encoder (iso8601Encoder: &isoCache, rfc3339NanoEncoder: &nanoCache); the
// level, when cfg has a level key, must be encoded in lower case
// (zapcore.LowercaseLevelEncoder), as in zap's production config.
func newFastJSON(cfg zapcore.EncoderConfig, times *secondCache) *fastJSON {
	le := cfg.LineEnding
	if le == "" {
		le = zapcore.DefaultLineEnding
	}
	return &fastJSON{
		Encoder:    zapcore.NewJSONEncoder(cfg),
		timeKey:    cfg.TimeKey,
		levelKey:   cfg.LevelKey,
		messageKey: cfg.MessageKey,
		times:      times,
		lineEnding: le,
	}
}

// Clone is how zapcore adds context fields (Core.With): they land in the
// clone's zap encoder, so a clone always takes zap's path.
func (e *fastJSON) Clone() zapcore.Encoder {
	return &fastJSON{Encoder: e.Encoder.Clone(), context: true}
}

var fastBuffers = buffer.NewPool()

// EncodeEntry writes one line.
func (e *fastJSON) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	if e.context || ent.LoggerName != "" || ent.Caller.Defined || ent.Stack != "" || !fastFields(fields) {
		return e.Encoder.EncodeEntry(ent, fields)
	}
	buf := fastBuffers.Get()
	b := append(buf.Bytes(), '{')
	first := true
	key := func(b []byte, k string) []byte {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		return append(b, ':')
	}
	if e.levelKey != "" {
		b = key(b, e.levelKey)
		b = appendJSONString(b, ent.Level.String())
	}
	if e.timeKey != "" && !ent.Time.IsZero() {
		b = key(b, e.timeKey)
		b = append(b, '"')
		b = e.times.append(b, ent.Time)
		b = append(b, '"')
	}
	if e.messageKey != "" {
		b = key(b, e.messageKey)
		b = appendJSONString(b, ent.Message)
	}
	for i := range fields {
		f := &fields[i]
		b = key(b, f.Key)
		switch f.Type {
		case zapcore.StringType:
			b = appendJSONString(b, f.String)
		case zapcore.BoolType:
			b = strconv.AppendBool(b, f.Integer == 1)
		case zapcore.Float64Type:
			b = appendJSONFloat(b, math.Float64frombits(uint64(f.Integer)))
		case zapcore.Uint64Type, zapcore.Uint32Type, zapcore.Uint16Type, zapcore.Uint8Type:
			b = strconv.AppendUint(b, uint64(f.Integer), 10)
		default: // signed integers (fastFields)
			b = strconv.AppendInt(b, f.Integer, 10)
		}
	}
	b = append(b, '}')
	b = append(b, e.lineEnding...)
	buf.Reset()
	buf.Write(b)
	return buf, nil
}

// fastFields reports whether EncodeEntry writes fields itself.
func fastFields(fields []zapcore.Field) bool {
	for i := range fields {
		switch fields[i].Type {
		case zapcore.StringType, zapcore.BoolType, zapcore.Float64Type,
			zapcore.Int64Type, zapcore.Int32Type, zapcore.Int16Type, zapcore.Int8Type,
			zapcore.Uint64Type, zapcore.Uint32Type, zapcore.Uint16Type, zapcore.Uint8Type:
		default:
			return false
		}
	}
	return true
}

// appendJSONFloat appends f as zap does: NaN and infinities as strings.
func appendJSONFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// plainJSON marks the bytes a JSON string holds as they are: printable
// ASCII (and DEL) except the quote and the backslash.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONString appends s quoted and escaped as zap escapes it: ", \,
// \n, \r and \t with a backslash, other bytes below 0x20 as \u00XX,
// invalid UTF-8 as \ufffd; everything else (including DEL and valid
// multi-byte runes) as it is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	i := 0
	for i < len(s) && plainJSON[s[i]] {
		i++
	}
	if i == len(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	last := 0
	for i < len(s) {
		c := s[i]
		if plainJSON[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[last:i]...)
			b = append(b, `\ufffd`...)
			i++
			last = i
			continue
		}
		b = append(b, s[last:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		last = i
	}
	b = append(b, s[last:]...)
	return append(b, '"')
}
