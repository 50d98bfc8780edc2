package web

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/registry"
)

type sseEvent struct {
	name, data string
	comment    bool
}

// readEvents parses a text/event-stream body into a channel of events.
func readEvents(t *testing.T, resp *http.Response) <-chan sseEvent {
	out := make(chan sseEvent, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || ev.comment {
					ev.data = strings.Join(data, "\n")
					out <- ev
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, ":"):
				ev.comment = true
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			}
		}
	}()
	return out
}

func nextEvent(t *testing.T, events <-chan sseEvent, what string) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatalf("stream ended while waiting for %s", what)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("no event while waiting for %s", what)
	}
	panic("unreachable")
}

func openStream(t *testing.T, e *env, client *http.Client) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/ui/events/services", nil)
	if err != nil {
		t.Fatal(err)
	}
	client.Timeout = 0 // streams are long-lived; the test's context bounds them
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, cancel
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServiceEventsStreamUpdates(t *testing.T) {
	e := newEnv(t)
	e.srv.heartbeat = 50 * time.Millisecond
	browser := e.signIn(e.tokens[auth.Viewer])
	resp, cancel := openStream(t, e, browser)
	defer cancel()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readEvents(t, resp)

	first := nextEvent(t, events, "the initial snapshot")
	if first.name != "services" || !strings.Contains(first.data, "inventory-2") || !strings.Contains(first.data, "checkpoint-1") {
		t.Fatalf("first event %q does not carry the current services", first.name)
	}

	svcs := demoServices()
	svcs[1].Instances = append(svcs[1].Instances, registry.Instance{
		ID: "checkpoint-2", Name: "checkpoint", Addr: "127.0.0.1:42002", Version: "0.9.1", Started: started,
	})
	e.source.Set(svcs...)
	sawHeartbeat := false
	for {
		ev := nextEvent(t, events, "the update with checkpoint-2")
		if ev.comment {
			sawHeartbeat = true
			continue
		}
		if ev.name == "services" && strings.Contains(ev.data, "checkpoint-2") && strings.Contains(ev.data, "0.9.1") {
			break
		}
	}
	// Heartbeats keep an idle stream alive through proxies.
	for !sawHeartbeat {
		sawHeartbeat = nextEvent(t, events, "a heartbeat").comment
	}

	// Closing the browser's connection must release the subscription.
	cancel()
	waitFor(t, "the subscription to be released after disconnect", func() bool { return e.source.subscribers() == 0 })
}

func TestServiceEventsEndOnCloseStreams(t *testing.T) {
	e := newEnv(t)
	browser := e.signIn(e.tokens[auth.Viewer])
	resp, cancel := openStream(t, e, browser)
	defer cancel()
	events := readEvents(t, resp)
	nextEvent(t, events, "the initial snapshot")
	e.srv.CloseStreams()
	for range events {
		// Drain until the server ends the stream.
	}
	waitFor(t, "the subscription to be released on shutdown", func() bool { return e.source.subscribers() == 0 })
}

func TestServiceEventsNeedSession(t *testing.T) {
	e := newEnv(t)
	r := e.do(nil, "GET", "/ui/events/services", "", nil)
	// An EventSource cannot follow a redirect to the login page: it needs a
	// plain refusal so the page can say it was signed out.
	if r.status != http.StatusUnauthorized {
		t.Fatalf("stream without session: %d, want 401", r.status)
	}
}

// closingSource is a source whose subscription channel is closed, as a
// stopping watcher may do.
type closingSource struct{ *memSource }

func (c closingSource) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{})
	close(ch)
	return ch, func() {}
}

func TestServiceEventsEndWhenSourceCloses(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Services = closingSource{newMemSource(demoServices()...)} })
	browser := e.signIn(e.tokens[auth.Viewer])
	resp, cancel := openStream(t, e, browser)
	defer cancel()
	n := 0
	for range readEvents(t, resp) {
		if n++; n > 1 {
			t.Fatal("stream kept sending after the source closed its channel; want it to end after the initial snapshot")
		}
	}
	if n != 1 {
		t.Fatalf("stream sent %d events, want the initial snapshot", n)
	}
}
