package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kplane/kplane/headquarter"
)

func newHQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hq",
		Short: "Autoscaler (headquarter) tools",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newHQReplayCmd())
	return cmd
}

func newHQReplayCmd() *cobra.Command {
	var policyPath, samplesPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "replay --policy P.yaml --samples S.csv",
		Short: "Print the decisions headquarter would have made over recorded samples",
		Long: `replay runs the autoscaler's decision rules, the same code the leader runs,
over a recorded sample file and prints every decision that would have acted
or been held back by a guard. Nothing is scaled or stored.

The policy file holds one policy or a YAML list of them (the same fields as
GET /api/v1/policies/{service}). The sample file is CSV:

  time,service,instances,qps,cpu,memory
  2026-03-01T12:00:00Z,inventory,2,120,0.35,0.5
  2026-03-01T12:00:10Z,inventory,2,1200,,0.6

time is RFC 3339, rows in time order; qps is the service's total requests per
second; cpu and memory are fractions of the instances' limits; an empty cell
is a missing metric. Lines starting with # are comments. Each acting decision
is taken as done, so cooldowns and windows run; instance counts stay those
recorded.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if policyPath == "" || samplesPath == "" {
				return fmt.Errorf("hq replay needs --policy and --samples")
			}
			pb, err := os.ReadFile(policyPath)
			if err != nil {
				return fmt.Errorf("read policy: %w", err)
			}
			policies, err := headquarter.ParsePolicies(pb)
			if err != nil {
				return fmt.Errorf("%s: %w", policyPath, err)
			}
			f, err := os.Open(samplesPath)
			if err != nil {
				return fmt.Errorf("read samples: %w", err)
			}
			defer f.Close()
			obs, err := headquarter.ReadSamples(f)
			if err != nil {
				return fmt.Errorf("%s: %w", samplesPath, err)
			}
			decisions := headquarter.Replay(policies, obs)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				for _, d := range decisions {
					if err := enc.Encode(d); err != nil {
						return err
					}
				}
				return nil
			}
			if len(decisions) == 0 {
				fmt.Fprintf(out, "no decisions: %d samples stayed within every policy\n", len(obs))
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tSERVICE\tACTION\tFROM\tTO\tGUARD\tREASON")
			for _, d := range decisions {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", d.Time.Format("2006-01-02T15:04:05Z07:00"), d.Service,
					d.Action, d.From, d.To, dash(string(d.Guard)), d.Reason)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&policyPath, "policy", "", "policy YAML file (one policy or a list)")
	cmd.Flags().StringVar(&samplesPath, "samples", "", "recorded samples, CSV (see above)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each decision as a JSON line, with votes and inputs")
	return cmd
}
