package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/kplane/kplane/ktrace"
)

// The details column holds everything about a span that no index needs:
// kind, status, tags, annotations and process, in one blob per span rather
// than a row per tag (Zipkin's MySQL schema did that, and lookups paid a
// join per tag). The encoding is a version byte followed by uvarint
// lengths and counts: several times faster than JSON to write and read,
// which the ingest goal needs. The MySQL store uses the same format, so a
// span's bytes mean the same in both.
const detailsVersion = 1

// AppendDetails appends the encoded details of s to buf.
func AppendDetails(buf []byte, s *ktrace.Span) []byte {
	buf = append(buf, detailsVersion)
	buf = appendString(buf, string(s.Kind))
	buf = appendString(buf, string(s.Status))
	buf = appendString(buf, s.StatusMessage)
	buf = appendMap(buf, s.Tags)
	buf = binary.AppendUvarint(buf, uint64(len(s.Annotations)))
	for i := range s.Annotations {
		a := &s.Annotations[i]
		buf = binary.AppendVarint(buf, a.Time.UnixNano())
		buf = appendString(buf, a.Value)
		buf = appendMap(buf, a.Tags)
	}
	return appendMap(buf, s.Process)
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendMap(buf []byte, m map[string]string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(m)))
	for k, v := range m {
		buf = appendString(buf, k)
		buf = appendString(buf, v)
	}
	return buf
}

var errCorrupt = errors.New("corrupt span details")

// DecodeDetails fills the fields of s that AppendDetails encoded. Empty
// maps and slices decode as nil.
func DecodeDetails(b []byte, s *ktrace.Span) error {
	if len(b) == 0 || b[0] != detailsVersion {
		return fmt.Errorf("%w: unknown version", errCorrupt)
	}
	d := decoder{b: b[1:]}
	s.Kind = ktrace.Kind(d.string())
	s.Status = ktrace.StatusCode(d.string())
	s.StatusMessage = d.string()
	s.Tags = d.stringMap()
	if n := d.count(); n > 0 {
		s.Annotations = make([]ktrace.Annotation, n)
		for i := range s.Annotations {
			a := &s.Annotations[i]
			a.Time = time.Unix(0, d.varint()).UTC()
			a.Value = d.string()
			a.Tags = d.stringMap()
		}
	} else {
		s.Annotations = nil
	}
	s.Process = d.stringMap()
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return nil
}

// decoder reads until the first error and then returns zero values, so
// callers check once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err, d.b = fmt.Errorf("%w: truncated", errCorrupt), nil }

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in what is left, so a corrupt count
// cannot make the decoder allocate gigabytes.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) stringMap() map[string]string {
	n := d.count()
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.string()
		m[k] = d.string()
	}
	return m
}
