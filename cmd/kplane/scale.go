package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// scaleTimeout bounds a manual scale: new instances must register, stopped
// ones drain first, both of which take seconds.
const scaleTimeout = 2 * time.Minute

// scaleAnswer is the answer of POST /api/v1/services/{service}/scale.
type scaleAnswer struct {
	Service string   `json:"service"`
	From    int      `json:"from"`
	To      int      `json:"to"`
	Started []string `json:"started"`
	Stopped []string `json:"stopped"`
	Outcome string   `json:"outcome"`
}

func newScaleCmd() *cobra.Command {
	var cf clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "scale <service> <instances>",
		Short: "Scale a service to a number of instances now",
		Long: `Scale a service to N instances through the orchestrator, as a developer.
New instances count once they are registered; instances removed are drained
first (deregistered, in-flight requests finished). The autoscaler records the
change as a "manual" decision and may scale again later according to the
service's policy; set its min and max to pin a count.`,
		Example: `  kplane scale inventory 4`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return fmt.Errorf("instances %q: want a whole number, 0 or more", args[1])
			}
			body, _ := json.Marshal(map[string]int{"instances": n})
			c := cf.client()
			c.http.Timeout = scaleTimeout
			var ans scaleAnswer
			if err := c.do(cmd.Context(), "POST", "/api/v1/services/"+url.PathEscape(args[0])+"/scale", bytes.NewReader(body), &ans); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(ans)
			}
			if ans.From == ans.To {
				fmt.Fprintf(out, "%s already has %d instance%s: nothing to do\n", ans.Service, ans.To, plural(ans.To))
				return nil
			}
			fmt.Fprintf(out, "%s scaled %d → %d", ans.Service, ans.From, ans.To)
			if len(ans.Started) > 0 {
				fmt.Fprintf(out, " (started %s)", strings.Join(ans.Started, ", "))
			}
			if len(ans.Stopped) > 0 {
				fmt.Fprintf(out, " (drained and stopped %s)", strings.Join(ans.Stopped, ", "))
			}
			fmt.Fprintln(out)
			return nil
		},
	}
	cf.bind(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
