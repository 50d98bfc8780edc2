package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/signalman"
)

func newPromoteCmd() *cobra.Command {
	var (
		cf       clientFlags
		to       string
		override bool
		detach   bool
	)
	cmd := &cobra.Command{
		Use:   "promote <build-id> --to prod",
		Short: "Promote a build to prod and follow its rollout",
		Long: `Promote a build that passed alpha and QA to prod, then follow the rolling
deploy's steps until it ends. Needs the releaser role. The build's committer
cannot promote their own build unless an admin passes --override, which is
audited. A refused promotion prints every reason it is blocked (a red stage,
a lock or pin on prod, a running deploy, separation of duties).`,
		Example: `  kplane promote 42 --to prod
  kplane promote 42 --to prod --override   # an admin promoting their own build`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, _ := json.Marshal(map[string]any{"to": to, "override": override})
			c := cf.client()
			var pr hawaii.Promotion
			if err := c.do(cmd.Context(), "POST", "/api/v1/builds/"+args[0]+"/promote", bytes.NewReader(b), &pr); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "promoting build %d: %s %s to %s (deploy %s)", pr.BuildID, pr.Service, pr.Version, pr.Env, pr.DeployID)
			if pr.Override {
				fmt.Fprint(out, ", with an admin override")
			}
			fmt.Fprintln(out)
			if detach {
				return nil
			}
			final, err := followDeploy(cmd, c, pr.DeployID, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s after %s\n", final.State, final.Ended.Sub(final.Started).Round(time.Millisecond))
			if final.State != signalman.DeploySucceeded {
				return fmt.Errorf("rollout %s %s: %s", final.ID, final.State, final.Error)
			}
			return nil
		},
	}
	cf.bind(cmd.Flags())
	cmd.Flags().StringVar(&to, "to", "prod", "environment to promote to (only prod is promoted by a person)")
	cmd.Flags().BoolVar(&override, "override", false, "as an admin, promote past separation of duties (audited)")
	cmd.Flags().BoolVar(&detach, "detach", false, "return once the rollout started")
	return cmd
}
