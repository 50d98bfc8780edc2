package ticketing

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kplane/kplane/internal/testtls"
)

// The span exporter of a service started with --ktrace https://... and
// --ktrace-ca verifies the collector against that file: the CA that
// signed the collector's certificate, or the certificate itself (what
// kplane gives its demo: its tls.cert_file). Without it the system roots
// do not know a private CA and the spans are refused.
func TestKTraceClientTrustsTheGivenCA(t *testing.T) {
	files := testtls.Generate(t)
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	for name, tc := range map[string]struct {
		ca string
		ok bool
	}{
		"the CA":                    {files.CA, true},
		"the server's certificate":  {files.Cert, true},
		"a client certificate only": {files.ClientCert, false},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := ktraceClient(tc.ca)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Post(srv.URL+"/v1/traces", "application/json", nil)
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("POST with --ktrace-ca %s: %v, want ok %v", name, err, tc.ok)
			}
		})
	}
	if c, err := ktraceClient(""); err != nil || c != nil {
		t.Fatalf("no CA file: %v, %v; want the SDK's default client", c, err)
	}
	if _, err := ktraceClient(files.Key + ".missing"); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}
