package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kplane/kplane/headquarter"
)

func newDecisionsCmd() *cobra.Command {
	var cf clientFlags
	var service string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "decisions",
		Short: "Show the autoscaler's decisions, newest first, with the reason for each",
		Long: `Show what the autoscaler decided and why: each decision's time, service,
instance counts, action, the guard that held it back (cooldown,
stabilization, max, min, missing data, flap, busy, dry run), the outcome
(in progress while the orchestrator works, then done, noop, busy,
failed, or interrupted when the leader changed during the action) and
the reason.
--json prints every decision in full, with each metric's value, age and vote.`,
		Example: `  kplane decisions --service inventory --limit 20`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if service != "" {
				q.Set("service", service)
			}
			q.Set("limit", strconv.Itoa(limit))
			var body struct {
				Decisions []headquarter.Decision `json:"decisions"`
			}
			if err := cf.client().do(cmd.Context(), "GET", "/api/v1/decisions?"+q.Encode(), nil, &body); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(body)
			}
			if len(body.Decisions) == 0 {
				fmt.Fprintln(out, "no decisions yet")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tSERVICE\tFROM→TO\tACTION\tGUARD\tOUTCOME\tREASON")
			for _, d := range body.Decisions {
				outcome := strings.ReplaceAll(string(d.Outcome), "_", " ")
				if d.Error != "" {
					outcome += ": " + d.Error
				}
				fmt.Fprintf(tw, "%s\t%s\t%d→%d\t%s\t%s\t%s\t%s\n", d.Time.Local().Format(time.DateTime), d.Service,
					d.From, d.To, d.Action, dash(strings.ReplaceAll(string(d.Guard), "_", " ")), dash(outcome), d.Reason)
			}
			return tw.Flush()
		},
	}
	cf.bind(cmd.Flags())
	cmd.Flags().StringVar(&service, "service", "", "only this service's decisions")
	cmd.Flags().IntVar(&limit, "limit", 20, "how many decisions, newest first (at most 1000)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the decisions in full as JSON")
	return cmd
}
