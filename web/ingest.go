package web

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/otlp"
	"github.com/kplane/kplane/ktrace/zipkin"
)

// IngestMaxBodyBytes bounds a span batch, compressed and decompressed
// alike: an OTel SDK's default batch (512 spans) is well under 1 MiB, and
// the decompressed bound is what stops a gzip bomb. Within it, otlp.Decode
// bounds what a body may decode to (otlp.MaxSpans, otlp.MaxElements), since
// 20 MiB of empty protobuf spans is a few gigabytes of pdata.
const IngestMaxBodyBytes = 20 << 20

// SpanIngester is what web needs from the ingest pipeline
// (ktrace.Ingester).
//
// Ingest returns nil once spans are durable; it fails with
// ktrace.ErrOverloaded when the write path is saturated and
// ktrace.ErrUnavailable when the store is down. Reject counts spans a
// decoder refused, for the ingester's metrics.
type SpanIngester interface {
	Ingest(ctx context.Context, spans []ktrace.Span) error
	Reject(n int)
}

// ingestRoutes registers span ingest: OTLP/HTTP (POST /v1/traces) and
// Zipkin v2 (POST /api/v2/spans).
//
// Both are unauthenticated: an unmodified OpenTelemetry or Zipkin SDK
// sends no bearer token. kplane listens on loopback by default; a
// deployment that listens wider must keep these two paths behind its
// network boundary.
func (s *Server) ingestRoutes(e *gin.Engine) {
	if s.cfg.Ingester == nil {
		return
	}
	s.bodyLimits["/v1/traces"] = IngestMaxBodyBytes
	s.bodyLimits["/api/v2/spans"] = IngestMaxBodyBytes
	e.POST("/v1/traces", s.ingestOTLP)
	e.POST("/api/v2/spans", s.ingestZipkin)
}

// ingestOTLP answers as OTLP/HTTP specifies: 200 with an
// ExportTraceServiceResponse in the request's encoding, carrying a partial
// success when some spans were rejected.
func (s *Server) ingestOTLP(c *gin.Context) {
	var enc otlp.Encoding
	switch mt := mediaType(c); mt {
	case "application/x-protobuf", "application/protobuf":
		enc = otlp.Protobuf
	case "application/json":
		enc = otlp.JSON
	default:
		s.fail(c, fmt.Errorf("content type %q: OTLP/HTTP takes application/x-protobuf or application/json: %w", mt, errMediaType))
		return
	}
	body, err := readIngestBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	batch, err := otlp.Decode(body, enc)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.cfg.Ingester.Reject(batch.Rejected)
	if err := s.cfg.Ingester.Ingest(c.Request.Context(), batch.Spans); err != nil {
		s.failIngest(c, err)
		return
	}
	resp, err := otlp.EncodeResponse(enc, batch)
	if err != nil {
		s.fail(c, fmt.Errorf("encode OTLP response: %w", err))
		return
	}
	c.Data(http.StatusOK, enc.ContentType(), resp)
}

// ingestZipkin answers 202 with no body, as Zipkin's collector does.
func (s *Server) ingestZipkin(c *gin.Context) {
	// Zipkin's collector reads a body without a content type as JSON, and
	// so do we; its proto3 and Thrift encodings are not supported.
	if mt := mediaType(c); mt != "" && mt != "application/json" {
		s.fail(c, fmt.Errorf("content type %q: Zipkin spans are accepted as application/json (v2 JSON) only: %w", mt, errMediaType))
		return
	}
	body, err := readIngestBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	spans, err := zipkin.Decode(body)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.cfg.Ingester.Ingest(c.Request.Context(), spans); err != nil {
		s.failIngest(c, err)
		return
	}
	c.Status(http.StatusAccepted)
}

// failIngest is fail, except that a client that hung up gets nothing: its
// spans may still be written, and its retry is deduplicated.
func (s *Server) failIngest(c *gin.Context, err error) {
	if c.Request.Context().Err() != nil && errors.Is(err, c.Request.Context().Err()) {
		c.Abort()
		return
	}
	s.fail(c, err)
}

func mediaType(c *gin.Context) string {
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// readIngestBody reads the whole request body, decompressing gzip. The
// compressed size is bounded by limitBody; the decompressed size is
// bounded here, so a small gzip bomb gets 413 rather than memory.
func readIngestBody(c *gin.Context) ([]byte, error) {
	var r io.Reader = c.Request.Body
	switch enc := strings.ToLower(strings.TrimSpace(c.GetHeader("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, gzipError(err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("content encoding %q: want gzip or none: %w", enc, errMediaType)
	}
	var buf bytes.Buffer
	if n := c.Request.ContentLength; n > 0 && n <= IngestMaxBodyBytes {
		buf.Grow(int(n) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(r, IngestMaxBodyBytes+1))
	if err != nil {
		return nil, gzipError(err)
	}
	if n > IngestMaxBodyBytes {
		return nil, &http.MaxBytesError{Limit: IngestMaxBodyBytes}
	}
	return buf.Bytes(), nil
}

// gzipError names a corrupt or truncated body as the client's problem;
// other read errors (a body over the limit) pass through.
func gzipError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return err
	}
	var corrupt flate.CorruptInputError
	if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.As(err, &corrupt) {
		return fmt.Errorf("gzip body: %v: %w", err, errMalformed)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("body ends early (truncated upload or gzip stream): %w", errMalformed)
	}
	return fmt.Errorf("read body: %w", err)
}
