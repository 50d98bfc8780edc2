package etcdcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/kplane/kplane/internal/testenv"
)

// Binary is the etcd executable looked up in PATH.
const Binary = "etcd"

// DefaultSize is the number of members when Config.Size is zero.
const DefaultSize = 3

// startTimeout bounds how long a cluster, or one restarted member, may take
// to be ready.
const startTimeout = 30 * time.Second

// Config configures a test cluster. The zero value is three members with
// etcd's default timing (heartbeat 100 ms, election timeout 1 s), the
// timing a production cluster runs with.
type Config struct {
	// Size is the number of members; 0 means DefaultSize.
	Size int
}

// Cluster is an etcd cluster started for one test. Its methods may be
// called from several goroutines.
type Cluster struct {
	bin     string
	dir     string
	members []*member
	token   string
	initial string // --initial-cluster
}

type member struct {
	name      string
	dataDir   string
	clientURL string
	peerURL   string
	logFile   string

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil while not running
	done chan struct{} // closed when cmd has exited
}

// Available reports whether the etcd binary is in PATH.
func Available() bool {
	_, err := exec.LookPath(Binary)
	return err == nil
}

// Start starts the cluster and waits until it has a leader and accepts
// writes. It ends the test through testenv.Missing when the binary is
// absent, and fails it if the cluster does not come up.
func Start(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		testenv.Missing(t, "%s not in PATH (apt-get install -y etcd-server, or scripts/install-test-deps.sh)", Binary)
	}
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	var lastErr error
	// Another process may take a port between probing and binding; fresh
	// ports almost always fix that.
	for attempt := range 3 {
		c := newCluster(t, bin, cfg.Size, attempt)
		if lastErr = c.startAll(t); lastErr == nil {
			return c
		}
		c.Close()
	}
	t.Fatalf("etcdcluster: %v", lastErr)
	return nil
}

func newCluster(t testing.TB, bin string, size, attempt int) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c := &Cluster{bin: bin, dir: dir, token: fmt.Sprintf("kplane-test-%d-%d", os.Getpid(), attempt)}
	var initial []string
	for i := range size {
		m := &member{
			name:      fmt.Sprintf("m%d", i),
			dataDir:   filepath.Join(dir, fmt.Sprintf("m%d", i)),
			clientURL: "http://" + freeAddr(t),
			peerURL:   "http://" + freeAddr(t),
			logFile:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
		}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL)
	}
	c.initial = strings.Join(initial, ",")
	return c
}

func (c *Cluster) startAll(t testing.TB) error {
	t.Helper()
	for _, m := range c.members {
		if err := c.exec(m, "new"); err != nil {
			return err
		}
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cli, err := c.newClient(c.Endpoints())
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Put(pctx, "/etcdcluster/ready", "1")
		pcancel()
		if err == nil {
			break
		}
		for _, m := range c.members {
			if !m.running() {
				return fmt.Errorf("member %s exited while the cluster started:\n%s", m.name, m.log())
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cluster not writable within %s: %v\n%s", startTimeout, err, c.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Every member must know the leader, so that Leader and a first Kill
	// see a settled cluster.
	for i := range c.members {
		if err := c.waitMember(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// exec starts m's process. state is etcd's --initial-cluster-state; a
// member restarted on its data dir ignores it and rejoins from its WAL.
func (c *Cluster) exec(m *member, state string) error {
	logf, err := os.OpenFile(m.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("member %s: %w", m.name, err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(c.bin,
		"--name", m.name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.clientURL,
		"--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", m.peerURL,
		"--initial-advertise-peer-urls", m.peerURL,
		"--initial-cluster", c.initial,
		"--initial-cluster-state", state,
		"--initial-cluster-token", c.token,
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C of `go test` reaches the test, which
	// stops the members itself, instead of killing them mid-cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	return nil
}

// Size returns the number of members.
func (c *Cluster) Size() int { return len(c.members) }

// Endpoints returns every member's client URL, the list a client of the
// whole cluster is given.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.clientURL
	}
	return out
}

// Endpoint returns member i's client URL.
func (c *Cluster) Endpoint(i int) string { return c.members[i].clientURL }

// Client returns a client of the whole cluster, closed when t ends. Its
// logging is discarded and its reconnect backoff capped at 500 ms, as in
// internal/etcdtest.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := c.newClient(c.Endpoints())
	if err != nil {
		t.Fatalf("etcdcluster: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func (c *Cluster) newClient(endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return cli, nil
}

// ErrNoLeader is returned by Leader when no running member knows a leader.
var ErrNoLeader = errors.New("etcdcluster: no leader")

// Leader returns the index of the member that leads, as the running
// members report it. It returns ErrNoLeader during an election.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	cli, err := c.newClient(c.Endpoints())
	if err != nil {
		return -1, err
	}
	defer cli.Close()
	for i, m := range c.members {
		if !m.running() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, m.clientURL)
		cancel()
		if err != nil || st.Leader == 0 {
			continue
		}
		if st.Leader == st.Header.MemberId {
			return i, nil
		}
		// This member follows someone: find who by member ID.
		for j, o := range c.members {
			if j == i || !o.running() {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			ost, err := cli.Status(sctx, o.clientURL)
			cancel()
			if err == nil && ost.Header.MemberId == st.Leader {
				return j, nil
			}
		}
	}
	return -1, ErrNoLeader
}

// Kill sends SIGKILL to member i and waits for it to exit: a crash, with
// no chance to hand leadership over. Its data dir stays for Start.
func (c *Cluster) Kill(t testing.TB, i int) {
	t.Helper()
	if err := c.members[i].signal(syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatalf("etcdcluster: kill %s: %v", c.members[i].name, err)
	}
}

// Stop sends SIGTERM to member i and waits for it to exit (SIGKILL after
// 10 s): a graceful shutdown, in which a leader transfers leadership.
func (c *Cluster) Stop(t testing.TB, i int) {
	t.Helper()
	if err := c.members[i].signal(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatalf("etcdcluster: stop %s: %v", c.members[i].name, err)
	}
}

// Start starts member i again, after Kill or Stop, on its data dir and
// ports, and waits until it has rejoined: it answers and knows the
// cluster's leader.
func (c *Cluster) Start(t testing.TB, i int) {
	t.Helper()
	m := c.members[i]
	if m.running() {
		t.Fatalf("etcdcluster: Start: member %s is running", m.name)
	}
	if err := c.exec(m, "existing"); err != nil {
		t.Fatalf("etcdcluster: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	if err := c.waitMember(ctx, i); err != nil {
		t.Fatalf("etcdcluster: %v", err)
	}
}

// Running reports whether member i's process is running.
func (c *Cluster) Running(i int) bool { return c.members[i].running() }

// waitMember waits until member i answers a status request with a known
// leader.
func (c *Cluster) waitMember(ctx context.Context, i int) error {
	m := c.members[i]
	cli, err := c.newClient([]string{m.clientURL})
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, m.clientURL)
		cancel()
		if err == nil && st.Leader != 0 {
			return nil
		}
		if !m.running() {
			return fmt.Errorf("member %s exited:\n%s", m.name, m.log())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("member %s did not join within %s (last status error: %v):\n%s", m.name, startTimeout, err, m.log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops every member by its PID. The data dirs are removed by the
// testing package (t.TempDir). Safe to call more than once.
func (c *Cluster) Close() {
	for _, m := range c.members {
		_ = m.signal(syscall.SIGKILL, 10*time.Second)
	}
}

// Logs returns what every member wrote so far, for a failing test's
// output.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, m := range c.members {
		fmt.Fprintf(&b, "--- etcd member %s (%s):\n%s\n", m.name, m.clientURL, m.log())
	}
	return b.String()
}

func (m *member) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// errNotRunning is returned by signal for a member that was not started
// again after Kill or Stop.
var errNotRunning = errors.New("not running")

// signal sends sig to the member's process and waits for it to exit,
// killing it if it has not after wait.
func (m *member) signal(sig syscall.Signal, wait time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return errNotRunning
	}
	_ = m.cmd.Process.Signal(sig)
	select {
	case <-m.done:
	case <-time.After(wait):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
	return nil
}

func (m *member) log() string {
	b, _ := os.ReadFile(m.logFile)
	return strings.TrimSpace(string(b))
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdcluster: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
