package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kplane/kplane/ktrace"
)

func newTraceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Look up distributed traces",
	}
	cmd.AddCommand(newTraceGetCmd())
	return cmd
}

func newTraceGetCmd() *cobra.Command {
	var cf clientFlags
	var asJSON bool
	var width int
	cmd := &cobra.Command{
		Use:   "get <trace-id>",
		Short: "Print one trace as a tree: services, operations, durations and a timeline",
		Long: `Print one trace as a tree, the way the console's waterfall shows it:
each span with its service, operation, start offset, duration and a bar on
the trace's timeline. ! marks a failed span, * the critical path, ~ a span
shifted to correct clock skew, ^ a span whose parent is missing.

The exit status is 0 when the trace is found, 1 otherwise.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			path := "/api/v1/traces/" + url.PathEscape(strings.TrimSpace(args[0]))
			if err := cf.client().do(cmd.Context(), "GET", path, nil, &raw); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				var buf bytes.Buffer
				if err := json.Indent(&buf, raw, "", "  "); err != nil {
					return err
				}
				buf.WriteByte('\n')
				_, err := buf.WriteTo(out)
				return err
			}
			var tr apiTrace
			if err := json.Unmarshal(raw, &tr); err != nil {
				return fmt.Errorf("decoding the trace: %w", err)
			}
			switch tr.Status {
			case string(ktrace.Found):
			case string(ktrace.Expired):
				return fmt.Errorf("trace %s has expired: kplane had it, and retention removed its spans", tr.TraceID)
			default:
				return fmt.Errorf("trace %s is unknown: no span of it reached kplane (not sent yet, sampled out, or sent elsewhere)", tr.TraceID)
			}
			spans, err := tr.spans()
			if err != nil {
				return err
			}
			printTrace(out, tr.TraceID, ktrace.BuildView(spans), width)
			return nil
		},
	}
	cf.bind(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	cmd.Flags().IntVar(&width, "bar-width", 30, "width of the timeline bars in characters (0 hides them)")
	return cmd
}

// apiTrace is the API's trace (docs/api.md).
type apiTrace struct {
	TraceID string    `json:"traceID"`
	Status  string    `json:"status"`
	Spans   []apiSpan `json:"spans"`
}

type apiSpan struct {
	SpanID         string            `json:"spanID"`
	ParentSpanID   string            `json:"parentSpanID"`
	Service        string            `json:"service"`
	Name           string            `json:"name"`
	Kind           string            `json:"kind"`
	Start          time.Time         `json:"start"`
	DurationMicros int64             `json:"durationMicros"`
	Tags           map[string]string `json:"tags"`
	Error          bool              `json:"error"`
	StatusMessage  string            `json:"statusMessage"`
}

// spans turns the API's spans back into ktrace spans, so that the CLI lays
// the tree out with the same code as the console.
func (t apiTrace) spans() ([]ktrace.Span, error) {
	out := make([]ktrace.Span, 0, len(t.Spans))
	for _, s := range t.Spans {
		id, err := ktrace.ParseSpanID(s.SpanID)
		if err != nil {
			return nil, fmt.Errorf("server sent a bad span: %w", err)
		}
		sp := ktrace.Span{
			SpanID: id, Service: s.Service, Name: s.Name, Kind: ktrace.Kind(s.Kind),
			Start: s.Start, Duration: time.Duration(s.DurationMicros) * time.Microsecond,
			Tags: s.Tags, StatusMessage: s.StatusMessage,
		}
		if sp.Kind == "unspecified" {
			sp.Kind = ktrace.KindUnspecified
		}
		if s.Error {
			sp.Status = ktrace.StatusError
		}
		if s.ParentSpanID != "" {
			if sp.ParentSpanID, err = ktrace.ParseSpanID(s.ParentSpanID); err != nil {
				return nil, fmt.Errorf("server sent a bad span: %w", err)
			}
		}
		out = append(out, sp)
	}
	return out, nil
}

// maxGuides bounds the indentation: deeper spans print their depth
// instead, so that a 10,000-deep chain stays readable and cheap.
const maxGuides = 24

// printTrace writes the tree: a header line, then one line per span in
// depth-first order with tree guides, and a bar placed on the trace's
// timeline.
func printTrace(w io.Writer, id string, v ktrace.View, width int) {
	services := make([]string, 0, len(v.Services))
	for _, s := range v.Services {
		services = append(services, s.Service)
	}
	fmt.Fprintf(w, "Trace %s  %s  %d spans  %s", id, formatDur(v.Duration), len(v.Spans), strings.Join(services, ", "))
	if v.ErrorCount > 0 {
		fmt.Fprintf(w, "  %d failed", v.ErrorCount)
	}
	fmt.Fprintln(w)

	// Labels first, to align the columns after them. more[d] says whether
	// the span at depth d on the current path has siblings still to come,
	// which decides between "│" and blank in the guides below it.
	labels := make([]string, len(v.Spans))
	var more []bool
	longest := 0
	for i, s := range v.Spans {
		last := isLastChild(v, i)
		more = more[:min(s.Depth, len(more))]
		var b strings.Builder
		for d := 1; d < min(s.Depth, maxGuides) && d < len(more); d++ {
			if more[d] {
				b.WriteString("│  ")
			} else {
				b.WriteString("   ")
			}
		}
		if s.Depth >= maxGuides {
			fmt.Fprintf(&b, "…%d ", s.Depth)
		}
		if s.Depth > 0 {
			if last {
				b.WriteString("└─ ")
			} else {
				b.WriteString("├─ ")
			}
		}
		more = append(more, !last)
		b.WriteString(s.Service + " " + s.Name)
		labels[i] = b.String()
		longest = max(longest, len([]rune(labels[i])))
	}
	longest = min(longest, 90)
	for i, s := range v.Spans {
		label := []rune(labels[i])
		if len(label) > longest {
			label = append(label[:longest-1], '…')
		}
		marks := ""
		if s.Error() {
			marks += "!"
		}
		if s.Critical {
			marks += "*"
		}
		if s.Skew != 0 {
			marks += "~"
		}
		if s.Orphan {
			marks += "^"
		}
		fmt.Fprintf(w, "%-*s %-3s %9s %9s", longest, string(label), marks, "+"+formatDur(v.Offset(i)), formatDur(s.Duration))
		if width > 0 {
			fmt.Fprintf(w, "  %s", bar(v.Offset(i), s.Duration, v.Duration, width))
		}
		if s.Error() && s.StatusMessage != "" {
			fmt.Fprintf(w, "  %s", s.StatusMessage)
		}
		fmt.Fprintln(w)
	}
}

// isLastChild reports whether span i is the last child of its parent (or
// the last span at the root level).
func isLastChild(v ktrace.View, i int) bool {
	next := i + v.Spans[i].Descendants + 1
	return next >= len(v.Spans) || v.Spans[next].Parent != v.Spans[i].Parent
}

// bar draws a span on a timeline of width characters: at least one
// character, so that short spans stay visible.
func bar(off, dur, total time.Duration, width int) string {
	if total <= 0 {
		total = 1
	}
	from := int(int64(width) * int64(off) / int64(total))
	n := max(1, int((int64(width)*int64(dur)+int64(total)-1)/int64(total)))
	from = min(max(from, 0), width-1)
	n = min(n, width-from)
	return "|" + strings.Repeat(" ", from) + strings.Repeat("█", n) + strings.Repeat(" ", width-from-n) + "|"
}

// formatDur is web's formatSpanDuration: three significant digits in µs,
// ms or s.
func formatDur(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	us := float64(d) / float64(time.Microsecond)
	dec := func(x float64) int {
		switch {
		case x >= 100:
			return 0
		case x >= 10:
			return 1
		}
		return 2
	}
	switch {
	case us < 1000:
		return fmt.Sprintf("%.*fµs", dec(us), us)
	case us < 1e6:
		return fmt.Sprintf("%.*fms", dec(us/1000), us/1000)
	}
	return fmt.Sprintf("%.*fs", dec(us/1e6), us/1e6)
}
