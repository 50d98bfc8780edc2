package etcdtest

import (
	"errors"
	"testing"

	"github.com/kplane/kplane/internal/etcdserver"
)

// TLS names the PEM files of an etcd serving TLS to its clients. CA, when
// set, makes etcd require client certificates signed by it.
type TLS struct {
	CertFile, KeyFile, CA string
}

// StartTLS starts an etcd member whose client listener serves TLS, and
// returns its https endpoints. It has no relay (a TLS member is for
// testing clients' TLS, not outages) and stops when t ends.
func StartTLS(t testing.TB, files TLS) []string {
	t.Helper()
	dir := t.TempDir()
	var lastErr error
	for range 5 {
		srv, err := start(t, etcdserver.Config{
			DataDir:        dir,
			ClientURL:      "https://" + freeAddr(t),
			PeerURL:        "http://" + freeAddr(t),
			Name:           "etcdtest",
			UnsafeNoFsync:  true,
			ClientCertFile: files.CertFile,
			ClientKeyFile:  files.KeyFile,
			ClientCAFile:   files.CA,
		})
		if errors.Is(err, etcdserver.ErrAddrInUse) {
			lastErr = err
			continue
		}
		if err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
		t.Cleanup(func() { srv.Close() })
		return srv.Endpoints()
	}
	t.Fatalf("etcdtest: %v", lastErr)
	return nil
}
