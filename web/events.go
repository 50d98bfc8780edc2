package web

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// serviceEvents streams the rendered services fragment as server-sent
// events: once on connect (so a reconnecting browser catches up) and again
// after every change the source signals. console.js swaps it into the page.
// The stream ends when the client goes away or CloseStreams is called.
func (s *Server) serviceEvents(c *gin.Context) {
	changes, cancel := s.services.Subscribe()
	defer cancel()

	rc := s.openStream(c)

	log := requestLogger(c, s.log)
	// send reports whether the stream can go on. A failed write means the
	// client left, which is routine and not logged.
	send := func() bool {
		html, err := s.renderFragment("services", "services-live", s.servicesView())
		if err != nil {
			log.Error("render services event", "err", err)
			return false
		}
		return writeEvent(c.Writer, "services", html) == nil && rc.Flush() == nil
	}
	pump(s, c, rc, changes, send)
}

// openStream starts a server-sent-event response.
func (s *Server) openStream(c *gin.Context) *http.ResponseController {
	c.Set(keyStreaming, true)
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	// Tell buffering proxies (nginx) to pass events through at once.
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(c.Writer)
	// A server WriteTimeout would cut every stream after that long; the
	// stream has its own liveness (heartbeats, client disconnect).
	_ = rc.SetWriteDeadline(time.Time{})
	c.Status(http.StatusOK)
	return rc
}

// pump runs an open stream: send once at once (so a reconnecting browser
// catches up), then after every signal on changes, with a heartbeat
// comment when idle so proxies do not drop it. It ends when send reports
// the stream is over, the client leaves, changes closes (the source
// stopped: end rather than spin; the browser reconnects later) or
// CloseStreams is called. A nil changes channel never signals.
func pump[T any](s *Server, c *gin.Context, rc *http.ResponseController, changes <-chan T, send func() bool) {
	if !send() {
		return
	}
	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	ctx := c.Request.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.streamsDone:
			return
		case _, ok := <-changes:
			if !ok || !send() {
				return
			}
		case <-heartbeat.C:
			if _, err := io.WriteString(c.Writer, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// writeEvent writes one SSE event; a multi-line payload becomes several
// data lines, which the browser joins with newlines.
func writeEvent(w io.Writer, event, data string) error {
	var b strings.Builder
	b.WriteString("event: " + event + "\n")
	for _, line := range strings.Split(data, "\n") {
		b.WriteString("data: " + strings.TrimSuffix(line, "\r") + "\n")
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
