package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// apiClient is the CLI's client of the kplane HTTP API.
type apiClient struct {
	addr  string
	token string
	http  *http.Client
}

type clientFlags struct{ addr, token, caFile string }

func (f *clientFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.addr, "addr", "", "kplane address (env KPLANE_ADDR, default http://127.0.0.1:8080; https://... when kplane serves TLS)")
	fs.StringVar(&f.token, "token", "", "API token (env KPLANE_TOKEN)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM CA bundle that signed kplane's certificate, for an https address (env KPLANE_CA_FILE; default: the system roots)")
}

func (f *clientFlags) client() *apiClient {
	c := &apiClient{addr: f.addr, token: f.token, http: &http.Client{Timeout: 30 * time.Second}}
	caFile := f.caFile
	if caFile == "" {
		caFile = os.Getenv("KPLANE_CA_FILE")
	}
	if caFile != "" {
		c.http.Transport = caTransport(caFile)
	}
	if c.addr == "" {
		c.addr = os.Getenv("KPLANE_ADDR")
	}
	if c.addr == "" {
		c.addr = "http://127.0.0.1:8080"
	}
	if !strings.Contains(c.addr, "://") {
		c.addr = "http://" + c.addr
	}
	c.addr = strings.TrimRight(c.addr, "/")
	if c.token == "" {
		c.token = os.Getenv("KPLANE_TOKEN")
	}
	return c
}

// apiError is the API's error body.
type apiError struct {
	Status  int
	Message string `json:"error"`
	Code    string `json:"code"`
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("server answered %d", e.Status)
	}
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (c *apiClient) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.addr+path, body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("kplane at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(e)
		if resp.StatusCode == http.StatusUnauthorized && c.token == "" {
			e.Message += "; set KPLANE_TOKEN or --token"
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding answer of %s %s: %w", method, path, err)
	}
	return nil
}

// caTransport is an HTTP transport trusting the CA bundle at path. A
// bundle that cannot be read fails every request with the reason.
func caTransport(path string) http.RoundTripper {
	pool, err := loadCAFile(path)
	if err != nil {
		return failingTransport{fmt.Errorf("--ca-file: %w", err)}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t
}

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }
