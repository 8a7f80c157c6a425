package main

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap/zapcore"
)

// Time encoders for the logs, byte for byte what zapcore's
// ISO8601TimeEncoder (operational log) and RFC3339NanoTimeEncoder (audit)
// print, without parsing a layout on every line: a login writes about
// seven lines, and time.Format was a sixth of their encoding.

const (
	layoutISO8601     = "2006-01-02T15:04:05.000Z0700"
	layoutRFC3339Nano = time.RFC3339Nano
)

func iso8601Encoder(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	var b [40]byte
	enc.AppendByteString(isoCache.append(b[:0], t))
}

func rfc3339NanoEncoder(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	var b [40]byte
	enc.AppendByteString(nanoCache.append(b[:0], t))
}

// secondCache remembers how the last second seen was printed: lines
// within one second share the date, the time of day and the zone, and
// working those out (a zone lookup for each of Date, Clock and Zone) cost
// more than the rest of the encoder.
type secondCache struct {
	nano bool
	last atomic.Pointer[printedSecond]
}

type printedSecond struct {
	unix int64
	loc  *time.Location
	date []byte // "2006-01-02T15:04:05"
	zone []byte // "Z", "+01:00" (nano) or "+0100"
}

var (
	isoCache  = secondCache{nano: false}
	nanoCache = secondCache{nano: true}
)

func (c *secondCache) append(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	p := c.last.Load()
	if p == nil || p.unix != sec || p.loc != loc {
		year, _, _ := t.Date()
		if year < 0 || year > 9999 {
			return appendLogTime(b, t, c.nano)
		}
		whole := appendLogTime(nil, t.Truncate(time.Second), c.nano)
		date := whole[:len("2006-01-02T15:04:05")]
		zone := whole[len(date):]
		if !c.nano {
			zone = zone[len(".000"):]
		}
		p = &printedSecond{unix: sec, loc: loc, date: date, zone: zone}
		c.last.Store(p)
	}
	b = append(b, p.date...)
	b = appendFraction(b, t.Nanosecond(), c.nano)
	return append(b, p.zone...)
}

// appendFraction appends ".999999999" (nano: trailing zeros and a zero
// fraction left out) or ".000" (milliseconds).
func appendFraction(b []byte, ns int, nano bool) []byte {
	if !nano {
		b = append(b, '.')
		return appendDigits(b, ns/1e6, 3)
	}
	if ns == 0 {
		return b
	}
	digits := 9
	for ns%10 == 0 {
		ns /= 10
		digits--
	}
	b = append(b, '.')
	return appendDigits(b, ns, digits)
}

// appendLogTime appends t as layoutRFC3339Nano (nano) or layoutISO8601.
func appendLogTime(b []byte, t time.Time, nano bool) []byte {
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		if nano {
			return t.AppendFormat(b, layoutRFC3339Nano)
		}
		return t.AppendFormat(b, layoutISO8601)
	}
	hour, min, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, min, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = appendFraction(b, t.Nanosecond(), nano)
	_, offset := t.Zone()
	if offset == 0 {
		return append(b, 'Z')
	}
	zone := offset / 60 // minutes; seconds of the offset are not printed
	if zone < 0 {
		b = append(b, '-')
		zone = -zone
	} else {
		b = append(b, '+')
	}
	b = appendDigits(b, zone/60, 2)
	if nano {
		b = append(b, ':')
	}
	return appendDigits(b, zone%60, 2)
}

// appendDigits appends v (>= 0) zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var d [10]byte
	i := len(d)
	for v > 0 || width > 0 {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	return append(b, d[i:]...)
}
