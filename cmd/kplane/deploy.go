package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kplane/kplane/signalman"
)

func newDeployCmd() *cobra.Command {
	var (
		cf                                  clientFlags
		env                                 string
		instances, maxSurge, maxUnavailable int
		detach                              bool
	)
	cmd := &cobra.Command{
		Use:   "deploy <service> <version>",
		Short: "Roll a service in an environment out to a version, following its steps",
		Long: `Start a rolling deploy and follow its steps until it ends. New instances
start in steps bounded by --max-surge (instances above the count) and
--max-unavailable (instances below it); each must register and pass its
health check (GET /healthz), and each old one is drained before it stops.
If a new instance fails its health check the deploy rolls back to the
previous version by itself.

Deploying to prod needs the releaser role; other environments a developer.
The command exits non-zero unless the deploy succeeded.`,
		Example: `  kplane deploy inventory 1.5.0 --env qa
  kplane deploy inventory 1.5.0 --env prod --max-surge 2`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"service": args[0], "env": env, "version": args[1]}
			if instances > 0 {
				body["instances"] = instances
			}
			if cmd.Flags().Changed("max-surge") {
				body["maxSurge"] = maxSurge
			}
			if cmd.Flags().Changed("max-unavailable") {
				body["maxUnavailable"] = maxUnavailable
			}
			b, _ := json.Marshal(body)
			c := cf.client()
			var dep signalman.Deploy
			if err := c.do(cmd.Context(), "POST", "/api/v1/deploys", bytes.NewReader(b), &dep); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			from := dep.FromVersion
			if from == "" {
				from = "nothing"
			}
			fmt.Fprintf(out, "deploy %s: %s %s → %s, %d instance%s (max surge %d, max unavailable %d)\n",
				dep.ID, dep.Target, from, dep.Version, dep.Instances, plural(dep.Instances), dep.MaxSurge, dep.MaxUnavailable)
			if detach {
				return nil
			}
			final, err := followDeploy(cmd, c, dep.ID, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s after %s\n", final.State, final.Ended.Sub(final.Started).Round(time.Millisecond))
			if final.State != signalman.DeploySucceeded {
				return fmt.Errorf("deploy %s %s: %s", final.ID, final.State, final.Error)
			}
			return nil
		},
	}
	cf.bind(cmd.Flags())
	cmd.Flags().StringVar(&env, "env", "", "environment (alpha, qa, prod ...); required")
	cmd.Flags().IntVar(&instances, "instances", 0, "instance count (default: as many as run now, at least 1)")
	cmd.Flags().IntVar(&maxSurge, "max-surge", 1, "instances that may run above the count during the deploy")
	cmd.Flags().IntVar(&maxUnavailable, "max-unavailable", 0, "instances that may be missing from the count during the deploy")
	cmd.Flags().BoolVar(&detach, "detach", false, "start the deploy and return without following it")
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

// followDeploy prints the deploy's steps from its event stream until the
// "done" event, and returns the final deploy.
func followDeploy(cmd *cobra.Command, c *apiClient, id string, out io.Writer) (signalman.Deploy, error) {
	var final signalman.Deploy
	req, err := http.NewRequestWithContext(cmd.Context(), "GET", c.addr+"/api/v1/deploys/"+url.PathEscape(id)+"/events", nil)
	if err != nil {
		return final, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "text/event-stream")
	// The stream lasts as long as the deploy: no client timeout.
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return final, fmt.Errorf("kplane at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := &apiError{Status: resp.StatusCode}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(e)
		return final, e
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "step":
			var s signalman.Step
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &s); err != nil {
				return final, fmt.Errorf("decoding step: %w", err)
			}
			fmt.Fprintf(out, "  %s  %-8s %-22s %-10s %-6s %6s", s.Time.Local().Format("15:04:05.000"),
				s.Action, s.Instance, s.Version, s.Outcome, s.Took.Round(time.Millisecond))
			if s.Error != "" {
				fmt.Fprintf(out, "  %s", s.Error)
			}
			fmt.Fprintln(out)
		case strings.HasPrefix(line, "data: ") && event == "done":
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &final); err != nil {
				return final, fmt.Errorf("decoding deploy: %w", err)
			}
			return final, nil
		}
	}
	if err := sc.Err(); err != nil {
		return final, fmt.Errorf("following deploy %s: %w", id, err)
	}
	return final, errors.New("the event stream ended before the deploy did (kplane shutting down?): see kplane deploy status with GET /api/v1/deploys/" + id)
}

func newEnvCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "env", Short: "Manage environments"}
	var cf clientFlags
	destroy := &cobra.Command{
		Use:   "destroy <env>",
		Short: "Stop every instance of every service in an environment",
		Long: `Drain and stop every instance of every service in an environment, such
as a throwaway alpha environment. A developer may destroy any environment
but prod, which needs an admin; an environment with a deploy in progress
is refused.`,
		Example: `  kplane env destroy alpha-b42`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cf.client()
			c.http.Timeout = scaleTimeout
			if err := c.do(cmd.Context(), "DELETE", "/api/v1/envs/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "environment %s destroyed\n", args[0])
			return nil
		},
	}
	cf.bind(destroy.Flags())
	cmd.AddCommand(destroy)
	return cmd
}
