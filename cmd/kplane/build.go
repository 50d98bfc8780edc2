package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/web"
)

// BuildsConfig configures HAWAII's build reports.
type BuildsConfig struct {
	// WebhookSecrets verify signed build reports and test results, as
	// "name:secret" entries (comma-separated in the environment). A secret
	// is "whsec_<base64>" (Standard Webhooks) or any string of 16 bytes or
	// more (GitHub). Two entries at once rotate a key. kplane never logs
	// them and keeps them only in memory.
	WebhookSecrets []string `yaml:"webhook_secrets" env:"KPLANE_BUILDS_WEBHOOK_SECRETS"`
}

// secrets parses WebhookSecrets. Errors name the entry, never its secret.
func (b BuildsConfig) secrets() ([]hawaii.Secret, error) {
	var out []hawaii.Secret
	for i, entry := range b.WebhookSecrets {
		name, secret, ok := strings.Cut(entry, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("builds.webhook_secrets entry %d: want name:secret", i+1)
		}
		s, err := hawaii.ParseSecret(name, secret)
		if err != nil {
			return nil, fmt.Errorf("builds.webhook_secrets entry %d (%s): %w", i+1, name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// buildAPI wires the build API: the SQL store, the webhook secrets, and
// the known services (every service the registry lists).
func buildAPI(cfg Config, db *sql.DB, services interface{ Services() []registry.Service }) (web.BuildAPI, error) {
	secrets, err := cfg.Builds.secrets()
	if err != nil {
		return web.BuildAPI{}, err
	}
	return web.BuildAPI{
		Store:   hawaii.NewSQLStore(db, nil),
		Secrets: secrets,
		Known: func(context.Context) ([]string, error) {
			var names []string
			for _, s := range services.Services() {
				names = append(names, s.Name)
			}
			return names, nil
		},
	}, nil
}

func newBuildCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Report builds from CI and list them",
	}
	cmd.AddCommand(newBuildReportCmd(), newBuildListCmd(), newBuildResultsCmd())
	return cmd
}

// signingFlags choose between a token and a webhook signature.
type signingFlags struct {
	secretEnv string
}

func (f *signingFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.secretEnv, "secret-env", "", "sign the request (Standard Webhooks) with the webhook secret in this environment variable instead of sending a token")
}

// post sends body, signed when --secret-env is set, and decodes the answer.
func (f *signingFlags) post(ctx context.Context, c *apiClient, path, contentType string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", c.addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if f.secretEnv != "" {
		raw := os.Getenv(f.secretEnv)
		if raw == "" {
			return 0, fmt.Errorf("--secret-env %s: the variable is empty", f.secretEnv)
		}
		sec, err := hawaii.ParseSecret("cli", raw)
		if err != nil {
			return 0, fmt.Errorf("--secret-env %s: %w", f.secretEnv, err)
		}
		var id [12]byte
		_, _ = rand.Read(id[:])
		for k, v := range hawaii.SignStandard("msg_"+hex.EncodeToString(id[:]), time.Now(), body, sec) {
			req.Header[k] = v
		}
	} else if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("kplane at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(e)
		if resp.StatusCode == http.StatusUnauthorized && c.token == "" && f.secretEnv == "" {
			e.Message += "; set KPLANE_TOKEN or --token, or sign with --secret-env"
		}
		return resp.StatusCode, e
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
}

func newBuildReportCmd() *cobra.Command {
	var (
		cf        clientFlags
		sf        signingFlags
		b         hawaii.Build
		timestamp string
		changelog string
	)
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Report a build to HAWAII (for CI scripts)",
		Long: `Report an image build. The report is idempotent on --guid: running it again
prints the build already stored. Authenticate with a developer token
(KPLANE_TOKEN) or sign the body with a webhook secret (--secret-env).
--changelog names a JSON file with [{"id","author","message","time"}].`,
		Example: `  kplane build report --service inventory --version 1.5.0 --image inventory:1.5.0 \
    --revision "$GIT_COMMIT" --committer "$GIT_AUTHOR_EMAIL" --guid "$BUILD_TAG" \
    --changelog changelog.json --secret-env KPLANE_WEBHOOK_SECRET`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var body struct {
				hawaii.Build
				// The server assigns these.
				ID         *int64  `json:"id,omitempty"`
				ReportedAt *string `json:"reportedAt,omitempty"`
				ReportedBy *string `json:"reportedBy,omitempty"`
			}
			body.Build = b
			body.Timestamp = time.Now().UTC()
			if timestamp != "" {
				t, err := time.Parse(time.RFC3339, timestamp)
				if err != nil {
					return fmt.Errorf("--timestamp %q: want RFC 3339, e.g. 2026-03-01T12:00:00Z", timestamp)
				}
				body.Timestamp = t
			}
			if changelog != "" {
				data, err := os.ReadFile(changelog)
				if err != nil {
					return fmt.Errorf("--changelog: %w", err)
				}
				if err := json.Unmarshal(data, &body.Changelog); err != nil {
					return fmt.Errorf("--changelog %s: want a JSON array of {id, author, message, time}: %w", changelog, err)
				}
			}
			data, err := json.Marshal(body)
			if err != nil {
				return err
			}
			var v hawaii.BuildView
			status, err := sf.post(cmd.Context(), cf.client(), "/api/v1/builds", "application/json", data, &v)
			if err != nil {
				return err
			}
			what := "reported"
			if status == http.StatusOK {
				what = "already reported"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "build %d %s: %s %s (%s)\n", v.ID, what, v.Service, v.Version, v.Image)
			return nil
		},
	}
	cf.bind(cmd.Flags())
	sf.bind(cmd)
	fl := cmd.Flags()
	fl.StringVar(&b.Service, "service", "", "service name (required)")
	fl.StringVar(&b.Version, "version", "", "version (required)")
	fl.StringVar(&b.Image, "image", "", "image reference (required)")
	fl.StringVar(&b.SCMRevision, "revision", "", "SCM revision (required)")
	fl.StringVar(&b.Committer, "committer", "", "committer (required)")
	fl.StringVar(&b.GUID, "guid", "", "CI's unique build ID, e.g. Jenkins' BUILD_TAG (required)")
	fl.StringVar(&timestamp, "timestamp", "", "build time, RFC 3339 (default now)")
	fl.StringVar(&changelog, "changelog", "", "JSON file with the commits of this build")
	for _, f := range []string{"service", "version", "image", "revision", "committer", "guid"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func newBuildResultsCmd() *cobra.Command {
	var (
		cf    clientFlags
		sf    signingFlags
		stage string
	)
	cmd := &cobra.Command{
		Use:     "results <build-id> <junit.xml>",
		Short:   "Upload a JUnit XML report for a build's alpha or qa stage",
		Example: `  kplane build results 42 target/surefire-reports/TEST-all.xml --stage qa`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := strconv.ParseInt(args[0], 10, 64); err != nil {
				return fmt.Errorf("build ID %q is not a number", args[0])
			}
			data, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			var rep struct {
				Tests     hawaii.TestCounts `json:"tests"`
				Duplicate bool              `json:"duplicate"`
			}
			path := "/api/v1/builds/" + args[0] + "/results?stage=" + url.QueryEscape(stage)
			if _, err := sf.post(cmd.Context(), cf.client(), path, "application/xml", data, &rep); err != nil {
				return err
			}
			t := rep.Tests
			fmt.Fprintf(cmd.OutOrStdout(), "build %s %s: %d passed, %d failed, %d errors, %d skipped\n", args[0], stage, t.Passed, t.Failed, t.Errored, t.Skipped)
			return nil
		},
	}
	cf.bind(cmd.Flags())
	sf.bind(cmd)
	cmd.Flags().StringVar(&stage, "stage", "qa", "stage the tests ran in: alpha or qa")
	return cmd
}

func newBuildListCmd() *cobra.Command {
	var (
		cf      clientFlags
		service string
		limit   int
		before  int64
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List builds, newest first, with each stage's status and test counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if service != "" {
				q.Set("service", service)
			}
			q.Set("limit", strconv.Itoa(limit))
			if before > 0 {
				q.Set("before", strconv.FormatInt(before, 10))
			}
			var page struct {
				Builds []hawaii.BuildView `json:"builds"`
				Next   string             `json:"next"`
			}
			if err := cf.client().do(cmd.Context(), "GET", "/api/v1/builds?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSERVICE\tVERSION\tCOMMITTER\tREPORTED\tALPHA\tQA\tPROD")
			for _, v := range page.Builds {
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s", v.ID, v.Service, v.Version, v.Committer, v.ReportedAt.Local().Format(time.DateTime))
				for _, st := range hawaii.Stages {
					fmt.Fprintf(w, "\t%s", stageCell(v.Stage(st)))
				}
				fmt.Fprintln(w)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "more: --before %s\n", page.Next)
			}
			return nil
		},
	}
	cf.bind(cmd.Flags())
	cmd.Flags().StringVar(&service, "service", "", "only this service's builds")
	cmd.Flags().IntVar(&limit, "limit", 20, "builds per page")
	cmd.Flags().Int64Var(&before, "before", 0, "list builds older than this build ID (the next page)")
	return cmd
}

// stageCell is a stage's status with its test counts, e.g. "failed 41/42".
func stageCell(r hawaii.StageRecord) string {
	if r.Tests.Total() == 0 {
		return string(r.Status)
	}
	return fmt.Sprintf("%s %d/%d", r.Status, r.Tests.Passed, r.Tests.Total()-r.Tests.Skipped)
}
