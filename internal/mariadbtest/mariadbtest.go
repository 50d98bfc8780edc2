// Package mariadbtest starts a throwaway MariaDB server for tests: Debian's
// mariadb-server binaries, a data dir and socket in temp dirs, a free
// loopback port, stopped by PID when the test ends. When the binaries are
// missing it calls testenv.Missing (skip locally, fail in CI).
//
// One server per test binary is enough: start it once and give each test
// its own database with NewDatabase.
package mariadbtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql" // also registers the "mysql" driver

	"github.com/kplane/kplane/internal/testenv"
)

// Server is a running MariaDB.
type Server struct {
	// Addr is host:port on loopback.
	Addr  string
	admin *sql.DB

	mariadbd string
	args     []string
	dataDir  string
	proc     *process // nil while killed
}

// process is one run of mariadbd.
type process struct {
	cmd    *exec.Cmd
	exited chan error // receives Wait's result once
}

// binary finds a MariaDB program on PATH or in Debian's sbin, which is not
// on every user's PATH.
func binary(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// Start starts a server that lives until t's cleanup. Startup takes a few
// seconds (mariadb-install-db), so call it once per package.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil, "")
}

// TLS is the server side of StartTLS: PEM files of the CA, and of the
// server's certificate (valid for 127.0.0.1) and key.
type TLS struct {
	CA, Cert, Key string
}

// StartTLS starts a server that offers TLS with the certificate in c. It
// still accepts plain connections (the test server runs without grant
// tables, where require_secure_transport is not enforced): tests check a
// connection's Ssl_cipher. DSNs from NewDatabase name no TLS mode: the
// caller adds one, as kplane's configuration does.
func StartTLS(t testing.TB, c TLS) *Server {
	t.Helper()
	pem, err := os.ReadFile(c.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("mariadbtest: %s holds no PEM certificate", c.CA)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "mariadbtest-" + hex.EncodeToString(b)
	if err := mysql.RegisterTLSConfig(name, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mysql.DeregisterTLSConfig(name) })
	return start(t, []string{"--ssl-ca=" + c.CA, "--ssl-cert=" + c.Cert, "--ssl-key=" + c.Key}, name)
}

// start starts mariadbd with extra arguments; adminTLS names the driver's
// TLS configuration the admin connection uses ("" for none).
func start(t testing.TB, extra []string, adminTLS string) *Server {
	t.Helper()
	installDB, ok1 := binary("mariadb-install-db")
	mariadbd, ok2 := binary("mariadbd")
	if !ok1 || !ok2 {
		testenv.Missing(t, "mariadb-install-db and mariadbd (apt-get install mariadb-server)")
	}
	dataDir := t.TempDir()
	// Unix socket paths are limited to ~100 bytes; t.TempDir can be longer.
	sockDir, err := os.MkdirTemp("", "mdb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })

	var out bytes.Buffer
	install := exec.Command(installDB, "--no-defaults", "--user=root", "--datadir="+dataDir,
		"--auth-root-authentication-method=normal", "--skip-test-db")
	install.Stdout, install.Stderr = &out, &out
	if err := install.Run(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out.String())
	}

	port := freePort(t)
	s := &Server{
		Addr:     fmt.Sprintf("127.0.0.1:%d", port),
		mariadbd: mariadbd,
		dataDir:  dataDir,
		args: []string{"--no-defaults", "--user=root",
			"--datadir=" + dataDir, "--socket=" + filepath.Join(sockDir, "s"),
			fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1",
			"--skip-grant-tables", "--skip-name-resolve", "--log-error=" + filepath.Join(dataDir, "error.log"),
			// Test data need not survive a power loss; flushing the log
			// once a second instead of per commit makes the suite several
			// times faster. A killed mariadbd loses nothing: the log is
			// written to the OS at every commit.
			"--innodb-flush-log-at-trx-commit=2", "--innodb-buffer-pool-size=128M",
			"--innodb-log-file-size=48M"},
	}
	s.args = append(s.args, extra...)
	t.Cleanup(func() {
		// Stop this server by its PID, gracefully, then for sure.
		if p := s.proc; p != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(15 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
	})
	adminDSN := s.dsn("")
	if adminTLS != "" {
		adminDSN += "?tls=" + adminTLS
	}
	admin, err := sql.Open("mysql", adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	s.admin = admin
	s.run(t)
	return s
}

// run starts mariadbd and waits until it answers.
func (s *Server) run(t testing.TB) {
	t.Helper()
	cmd := exec.Command(s.mariadbd, s.args...)
	// If the test binary dies without its cleanups, the server follows.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mariadbd: %v", err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	s.proc = p
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		err := s.admin.PingContext(ctx)
		if err == nil {
			return
		}
		select {
		case e := <-p.exited:
			s.proc = nil
			log, _ := os.ReadFile(filepath.Join(s.dataDir, "error.log"))
			t.Fatalf("mariadbd exited: %v\n%s", e, log)
		case <-ctx.Done():
			log, _ := os.ReadFile(filepath.Join(s.dataDir, "error.log"))
			t.Fatalf("mariadbd not ready after 30 s: %v\n%s", err, log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill stops the server with SIGKILL, as a crash does, and waits until it
// has exited. Connections to it fail until Restart.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	p := s.proc
	if p == nil {
		t.Fatal("mariadbtest: Kill: the server is not running")
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	s.proc = nil
}

// Restart starts a killed server again on the same data dir and port (it
// recovers its data as after a crash) and returns once it answers. It
// returns how long that took.
func (s *Server) Restart(t testing.TB) time.Duration {
	t.Helper()
	if s.proc != nil {
		t.Fatal("mariadbtest: Restart: the server is running")
	}
	start := time.Now()
	s.run(t)
	return time.Since(start)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) dsn(database string) string {
	return "root@tcp(" + s.Addr + ")/" + database
}

// NewDatabase creates an empty database, dropped at t's cleanup, and
// returns a DSN for it.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	if _, err := s.admin.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := s.admin.ExecContext(context.Background(), "DROP DATABASE "+name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return s.dsn(name)
}
