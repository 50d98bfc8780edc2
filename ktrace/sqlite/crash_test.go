package sqlite_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/sqlite"
)

// crashHelperEnv, when set to a database path, makes TestIngestCrashHelper
// the ingesting process that TestIngestSurvivesKill kills.
const crashHelperEnv = "KPLANE_SQLITE_CRASH_HELPER"

// TestIngestSurvivesKill: spans that the ingester acknowledged are in the
// SQLite span store after the process is killed with SIGKILL mid-ingest
// and the file is opened again (the store's promise: durable against a
// crash of the process). A child process (this test binary) ingests from
// several goroutines and prints each acknowledged trace; the test kills it
// once a few thousand are out, then counts.
func TestIngestSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "traces.db")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestIngestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	// Each line is written with one write(2) after Ingest returned nil:
	// whatever reached the pipe before the kill was acknowledged.
	acked := map[ktrace.TraceID]int{}
	sc := bufio.NewScanner(out)
	var start time.Time
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue
		}
		if start.IsZero() {
			start = time.Now()
		}
		id, err := ktrace.ParseTraceID(f[1])
		if err != nil {
			t.Fatalf("helper printed %q: %v", sc.Text(), err)
		}
		n, _ := strconv.Atoi(f[2])
		acked[id] += n
		if !killed && len(acked) >= 2000 {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	werr := cmd.Wait()
	if !killed {
		t.Fatalf("the helper ended before it was killed (%v) after %d acknowledged traces", werr, len(acked))
	}
	ingestFor := time.Since(start)

	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("reopen after the kill: %v", err)
	}
	defer s.Close()
	total, missing := 0, 0
	for id, n := range acked {
		total += n
		tr, err := s.Trace(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Spans) != n {
			missing += n - len(tr.Spans)
			if missing < 50 {
				t.Errorf("trace %s: %d spans acknowledged, %d stored", id, n, len(tr.Spans))
			}
		}
	}
	t.Logf("killed after %s of ingest: %d of %d acknowledged spans (%d traces) stored after reopening", ingestFor.Round(time.Millisecond), total-missing, total, len(acked))
	if missing != 0 {
		t.Errorf("%d acknowledged spans lost in the kill", missing)
	}
}

// TestIngestCrashHelper is the child of TestIngestSurvivesKill: it ingests
// until killed.
func TestIngestCrashHelper(t *testing.T) {
	path := os.Getenv(crashHelperEnv)
	if path == "" {
		t.Skip("the child process of TestIngestSurvivesKill")
	}
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ktrace.NewIngester(ktrace.IngesterConfig{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	go in.Run(context.Background())
	var mu sync.Mutex
	var wg sync.WaitGroup
	// Bounded in case the parent never kills it.
	deadline := time.Now().Add(30 * time.Second)
	for c := range 4 {
		wg.Go(func() {
			for seq := 0; time.Now().Before(deadline); seq++ {
				var id ktrace.TraceID
				binary.BigEndian.PutUint64(id[0:8], uint64(c)+1)
				binary.BigEndian.PutUint64(id[8:16], uint64(seq)+1)
				now := time.Now()
				spans := make([]ktrace.Span, 10)
				for i := range spans {
					var sid ktrace.SpanID
					binary.BigEndian.PutUint64(sid[:], uint64(i)+1)
					spans[i] = ktrace.Span{TraceID: id, SpanID: sid, Service: "inventory", Name: "get /stock",
						Start: now.Add(time.Duration(i) * time.Microsecond), Duration: time.Millisecond}
					if i > 0 {
						binary.BigEndian.PutUint64(spans[i].ParentSpanID[:], 1)
					}
				}
				if err := in.Ingest(context.Background(), spans); err != nil {
					fmt.Fprintln(os.Stderr, "ingest:", err)
					continue
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %d\n", hex.EncodeToString(id[:]), len(spans))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
