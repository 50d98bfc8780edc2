package sqlite

import (
	"encoding/binary"
	"fmt"
	"maps"
	"reflect"
	"time"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
)

// A chunk is the spans of one trace that one WriteSpans stored, encoded as
// one blob: one row per trace per batch instead of one per span (plus its
// index entries) is what makes ingest cheap. The encoding shares what the
// spans of a trace repeat:
//
//	version byte (chunkVersion)
//	base    varint: Unix ns that span and event times are relative to
//	strings uvarint n, n × string: services, names, kinds, statuses,
//	        tag keys and event names, referred to by index
//	procs   uvarint n, n × (uvarint pairs, pairs × (key index, value string)):
//	        the distinct Process maps (spans of one resource share one)
//	spans   uvarint n, n × span
//
//	span    span ID [8], parent ID [8], service, name, kind, status (string
//	        indexes), start − base (varint), duration (varint), process
//	        (uvarint: 0 none, i+1 procs[i]), then the length-prefixed rest:
//	        status message, tags (uvarint n, n × (key index, value)),
//	        events (uvarint n, n × (time − base, name index, tags))
//
// A string is a uvarint length and its bytes. Everything edge counting
// needs comes before the rest, so reading the nodes of stored chunks skips
// the tags without decoding them.
const chunkVersion = 1

// chunkEncoder encodes chunks, reusing its buffers from one to the next.
// Not safe for concurrent use.
type chunkEncoder struct {
	strs   []string
	strIdx map[string]uint64
	procs  []map[string]string
	body   []byte
	rest   []byte
}

// encode appends the chunk of spans (all of one trace, at least one) to
// buf. base must be the earliest span start.
func (e *chunkEncoder) encode(buf []byte, spans []*ktrace.Span, base int64) []byte {
	if e.strIdx == nil {
		e.strIdx = make(map[string]uint64, 64)
	}
	e.strs = e.strs[:0]
	clear(e.strIdx)
	e.procs = e.procs[:0]
	b := e.body[:0]
	b = binary.AppendUvarint(b, uint64(len(spans)))
	rest := e.rest[:0]
	for _, sp := range spans {
		b = append(b, sp.SpanID[:]...)
		b = append(b, sp.ParentSpanID[:]...)
		b = binary.AppendUvarint(b, e.str(sp.Service))
		b = binary.AppendUvarint(b, e.str(sp.Name))
		b = binary.AppendUvarint(b, e.str(string(sp.Kind)))
		b = binary.AppendUvarint(b, e.str(string(sp.Status)))
		b = binary.AppendVarint(b, sp.Start.UnixNano()-base)
		b = binary.AppendVarint(b, int64(sp.Duration))
		b = binary.AppendUvarint(b, e.proc(sp.Process))
		rest = e.appendRest(rest[:0], sp, base)
		b = binary.AppendUvarint(b, uint64(len(rest)))
		b = append(b, rest...)
	}
	e.body = b

	buf = append(buf, chunkVersion)
	buf = binary.AppendVarint(buf, base)
	// The process maps' keys go into the string table too, so it is
	// complete only now; encode the procs first into rest.
	rest = rest[:0]
	rest = binary.AppendUvarint(rest, uint64(len(e.procs)))
	for _, m := range e.procs {
		rest = e.appendMap(rest, m)
	}
	buf = binary.AppendUvarint(buf, uint64(len(e.strs)))
	for _, s := range e.strs {
		buf = appendString(buf, s)
	}
	buf = append(buf, rest...)
	e.rest = rest
	return append(buf, b...)
}

func (e *chunkEncoder) appendRest(b []byte, sp *ktrace.Span, base int64) []byte {
	b = appendString(b, sp.StatusMessage)
	b = e.appendMap(b, sp.Tags)
	b = binary.AppendUvarint(b, uint64(len(sp.Annotations)))
	for i := range sp.Annotations {
		a := &sp.Annotations[i]
		b = binary.AppendVarint(b, a.Time.UnixNano()-base)
		b = binary.AppendUvarint(b, e.str(a.Value))
		b = e.appendMap(b, a.Tags)
	}
	return b
}

func (e *chunkEncoder) appendMap(b []byte, m map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	for k, v := range m {
		b = binary.AppendUvarint(b, e.str(k))
		b = appendString(b, v)
	}
	return b
}

func (e *chunkEncoder) str(s string) uint64 {
	if i, ok := e.strIdx[s]; ok {
		return i
	}
	i := uint64(len(e.strs))
	e.strs = append(e.strs, s)
	e.strIdx[s] = i
	return i
}

// proc returns the process's reference: spans of one resource share a
// map, and different maps with equal contents are stored once too.
func (e *chunkEncoder) proc(m map[string]string) uint64 {
	if len(m) == 0 {
		return 0
	}
	ptr := reflect.ValueOf(m).UnsafePointer()
	for i, p := range e.procs {
		if reflect.ValueOf(p).UnsafePointer() == ptr {
			return uint64(i + 1)
		}
	}
	for i, p := range e.procs {
		if maps.Equal(p, m) {
			return uint64(i + 1)
		}
	}
	e.procs = append(e.procs, m)
	return uint64(len(e.procs))
}

// chunkDecoder reads a chunk. With full unset it skips the tags, events and
// process of each span (what edge counting and deduplication do not need).
type chunkDecoder struct {
	decoder
	base  int64
	strs  []string
	procs []map[string]string
	n     int
}

func newChunkDecoder(b []byte) (*chunkDecoder, error) {
	if len(b) == 0 || b[0] != chunkVersion {
		return nil, fmt.Errorf("%w: unknown chunk version", errCorrupt)
	}
	d := &chunkDecoder{decoder: decoder{b: b[1:]}}
	d.base = d.varint()
	if n := d.count(); n > 0 {
		d.strs = make([]string, n)
		for i := range d.strs {
			d.strs[i] = d.string()
		}
	}
	if n := d.count(); n > 0 {
		d.procs = make([]map[string]string, n)
		for i := range d.procs {
			d.procs[i] = d.strMap()
		}
	}
	d.n = d.count()
	return d, d.err
}

func (d *chunkDecoder) ref() string {
	i := d.uvarint()
	if i >= uint64(len(d.strs)) {
		if d.err == nil {
			d.err = fmt.Errorf("%w: string index out of range", errCorrupt)
		}
		return ""
	}
	return d.strs[i]
}

// strMap decodes a map of indexed keys and inline values; empty is nil.
func (d *chunkDecoder) strMap() map[string]string {
	n := d.count()
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.ref()
		m[k] = d.string()
	}
	return m
}

func (d *chunkDecoder) id(dst []byte) {
	if len(d.b) < len(dst) {
		d.fail()
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

// span decodes the next span into sp. Without full, only the fields a
// Node has and the name and duration are filled, and the rest is skipped.
func (d *chunkDecoder) span(sp *ktrace.Span, full bool) {
	d.id(sp.SpanID[:])
	d.id(sp.ParentSpanID[:])
	sp.Service = d.ref()
	sp.Name = d.ref()
	sp.Kind = ktrace.Kind(d.ref())
	sp.Status = ktrace.StatusCode(d.ref())
	sp.Start = time.Unix(0, d.base+d.varint()).UTC()
	sp.Duration = time.Duration(d.varint())
	proc := d.uvarint()
	n := d.count()
	if d.err != nil {
		return
	}
	rest := d.b[:n]
	d.b = d.b[n:]
	if !full {
		return
	}
	if proc > uint64(len(d.procs)) {
		d.err = fmt.Errorf("%w: process index out of range", errCorrupt)
		return
	}
	if proc > 0 {
		// Each span owns its maps: callers may modify them.
		sp.Process = maps.Clone(d.procs[proc-1])
	}
	r := chunkDecoder{decoder: decoder{b: rest}, base: d.base, strs: d.strs}
	sp.StatusMessage = r.string()
	sp.Tags = r.strMap()
	if n := r.count(); n > 0 {
		sp.Annotations = make([]ktrace.Annotation, n)
		for i := range sp.Annotations {
			a := &sp.Annotations[i]
			a.Time = time.Unix(0, r.base+r.varint()).UTC()
			a.Value = r.ref()
			a.Tags = r.strMap()
		}
	}
	switch {
	case r.err != nil:
		d.err = r.err
	case len(r.b) != 0:
		d.err = fmt.Errorf("%w: %d trailing bytes in a span", errCorrupt, len(r.b))
	}
}

// decodeChunk appends the chunk's spans, of trace id, to out.
func decodeChunk(out []ktrace.Span, id ktrace.TraceID, b []byte, full bool) ([]ktrace.Span, error) {
	d, err := newChunkDecoder(b)
	if err != nil {
		return out, err
	}
	for range d.n {
		out = append(out, ktrace.Span{TraceID: id})
		d.span(&out[len(out)-1], full)
		if d.err != nil {
			return out, d.err
		}
	}
	if len(d.b) != 0 {
		return out, fmt.Errorf("%w: %d trailing bytes in a chunk", errCorrupt, len(d.b))
	}
	return out, nil
}

// decodeNodes appends what edge counting needs of the chunk's spans.
func decodeNodes(out []inmem.Node, b []byte) ([]inmem.Node, error) {
	d, err := newChunkDecoder(b)
	if err != nil {
		return out, err
	}
	var sp ktrace.Span
	for range d.n {
		d.span(&sp, false)
		if d.err != nil {
			return out, d.err
		}
		out = append(out, inmem.Node{SpanID: sp.SpanID, Parent: sp.ParentSpanID, Service: sp.Service, Error: sp.Error(), Start: sp.Start})
	}
	return out, nil
}
