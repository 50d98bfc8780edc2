package sdk

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
)

// GinMiddleware is Middleware for gin: one server span per request, named
// by gin's route (c.FullPath()), with c.Errors recorded on the span.
// Install it before the handlers (r.Use); handlers find the span with
// SpanFromContext(c.Request.Context()).
func GinMiddleware(t *Tracer) gin.HandlerFunc {
	return func(c *gin.Context) {
		opts := []StartOption{WithKind(KindServer)}
		if parent, ok := Extract(c.Request.Header); ok {
			opts = append(opts, WithParent(parent))
		}
		ctx, span := t.Start(c.Request.Context(), c.Request.Method, opts...)
		c.Request = c.Request.WithContext(ctx)
		if !span.IsRecording() {
			c.Next()
			return
		}
		defer func() {
			p := recover()
			status := c.Writer.Status()
			if p != nil && !c.Writer.Written() {
				status = http.StatusInternalServerError
			}
			endServerSpan(span, c.Request, c.FullPath(), status)
			if len(c.Errors) > 0 {
				span.SetError(c.Errors.Last())
			}
			if p != nil {
				span.SetError(fmt.Errorf("panic: %v", p))
				span.End()
				panic(p)
			}
			span.End()
		}()
		c.Next()
	}
}
