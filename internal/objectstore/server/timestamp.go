package server

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Timestamp is Swift's timestamp: wall time in units of 10 µs plus an offset
// that orders internal updates made "at the same time". Timestamps compare by
// ticks, then offset.
type Timestamp struct {
	Ticks  int64 // 1e-5 s since the epoch
	Offset int64
}

// parseTimestamp reads "1400000000.12345", "1400000000.1", "1400000000" or
// the internal form "1400000000.12345_000000000000000a".
func parseTimestamp(s string) (Timestamp, error) {
	var ts Timestamp
	if s == "" {
		return ts, fmt.Errorf("empty timestamp")
	}
	main, off, hasOff := strings.Cut(s, "_")
	if hasOff {
		o, err := strconv.ParseInt(off, 16, 64)
		if err != nil || o < 0 {
			return ts, fmt.Errorf("invalid timestamp offset %q", s)
		}
		ts.Offset = o
	}
	f, err := strconv.ParseFloat(main, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f >= 1e13 {
		return ts, fmt.Errorf("invalid timestamp %q", s)
	}
	ts.Ticks = int64(math.Round(f * 1e5))
	return ts, nil
}

// timestampNow is the current time as a Timestamp.
func timestampNow() Timestamp {
	return Timestamp{Ticks: time.Now().UnixNano() / 10000}
}

// Normal is the 16.5 form Swift sends in X-Timestamp ("0001400000000.12345"
// is padded to 16 characters before the point plus five decimals).
func (t Timestamp) Normal() string {
	return fmt.Sprintf("%010d.%05d", t.Ticks/100000, t.Ticks%100000)
}

// Internal is Normal plus "_<16 hex offset>" when the offset is non-zero; it
// names files on disk.
func (t Timestamp) Internal() string {
	if t.Offset == 0 {
		return t.Normal()
	}
	return fmt.Sprintf("%s_%016x", t.Normal(), t.Offset)
}

// Time is the wall time.
func (t Timestamp) Time() time.Time {
	return time.Unix(t.Ticks/100000, (t.Ticks%100000)*10000).UTC()
}

// Compare orders timestamps: -1, 0 or +1.
func (t Timestamp) Compare(o Timestamp) int {
	switch {
	case t.Ticks < o.Ticks:
		return -1
	case t.Ticks > o.Ticks:
		return 1
	case t.Offset < o.Offset:
		return -1
	case t.Offset > o.Offset:
		return 1
	}
	return 0
}

// IsZero reports whether t is unset.
func (t Timestamp) IsZero() bool { return t.Ticks == 0 && t.Offset == 0 }

// lastModified is the HTTP Last-Modified of t: rounded up to the second, as
// Swift does, so If-Modified-Since with the returned value matches.
func (t Timestamp) lastModified() time.Time {
	sec := t.Ticks / 100000
	if t.Ticks%100000 != 0 {
		sec++
	}
	return time.Unix(sec, 0).UTC()
}

// isoListing is the listing form "2006-01-02T15:04:05.000000".
func (t Timestamp) isoListing() string {
	return t.Time().Format("2006-01-02T15:04:05.000000")
}

// requestTimestamp reads the required X-Timestamp header.
func requestTimestamp(r *http.Request, header string) (Timestamp, error) {
	v := r.Header.Get(header)
	if v == "" {
		return Timestamp{}, httpErr(http.StatusBadRequest, "Missing timestamp")
	}
	ts, err := parseTimestamp(v)
	if err != nil {
		return Timestamp{}, httpErr(http.StatusBadRequest, "Invalid "+header)
	}
	return ts, nil
}
