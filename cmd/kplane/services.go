package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kplane/kplane/registry"
)

func newServicesCmd() *cobra.Command {
	var cf clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "services",
		Short: "List registered services and their instances",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var body struct {
				Services []registry.Service `json:"services"`
			}
			if err := cf.client().do(cmd.Context(), "GET", "/api/v1/services", nil, &body); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(body)
			}
			if len(body.Services) == 0 {
				fmt.Fprintln(out, "no services registered")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVICE\tINSTANCE\tADDRESS\tVERSION\tENV\tTAGS\tUPTIME")
			now := time.Now()
			for _, s := range body.Services {
				for _, in := range s.Instances {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, in.ID, in.Addr, in.Version,
						dash(in.Env), dash(strings.Join(in.Tags, ",")), now.Sub(in.Started).Round(time.Second))
				}
			}
			return tw.Flush()
		},
	}
	cf.bind(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
