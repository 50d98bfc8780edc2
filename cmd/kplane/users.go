package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kplane/kplane/auth"
)

// storeFlags locate the SQL store for commands that work on it directly
// (bootstrap: there is no admin to call the API as yet).
type storeFlags struct{ file, dataDir string }

func (f *storeFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "config", "c", "", "YAML configuration file of the kplane server")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "kplane data directory (default ./.kplane)")
}

func (f *storeFlags) open(ctx context.Context) (*auth.Service, *sql.DB, error) {
	cfg := DefaultConfig()
	if f.file != "" {
		if err := cfg.LoadFile(f.file); err != nil {
			return nil, nil, err
		}
	}
	if err := cfg.LoadEnv(os.LookupEnv); err != nil {
		return nil, nil, err
	}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	}
	db, err := openStore(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, err
	}
	svc, err := auth.New(db, auth.Config{})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return svc, db, nil
}

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users (works on the store directly)"}
	cmd.AddCommand(newUserCreateCmd(), newUserListCmd())
	return cmd
}

func newUserCreateCmd() *cobra.Command {
	var sf storeFlags
	var name, role string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a user with a role (viewer, developer, releaser, admin)",
		Example: `  printf '%s' "$PASSWORD" | kplane user create --name alice --role releaser --password-stdin
  kplane token create --user alice --description "CI build reports"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return err
			}
			if !passwordStdin {
				return errors.New("a password is required: pass it on standard input with --password-stdin (never as an argument)")
			}
			password, err := readSecret(cmd.InOrStdin())
			if err != nil {
				return err
			}
			svc, db, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			if err := svc.CreateUser(cmd.Context(), name, password, r); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created user %s with role %s\n", name, r)
			return nil
		},
	}
	sf.bind(cmd)
	cmd.Flags().StringVar(&name, "name", "", "user name (required)")
	cmd.Flags().StringVar(&role, "role", "viewer", "viewer, developer, releaser or admin")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (required)")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func newUserListCmd() *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users and their roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, db, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			users, err := svc.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tROLE\tCREATED")
			for _, u := range users {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, u.Created.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	sf.bind(cmd)
	return cmd
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens (works on the store directly)"}
	cmd.AddCommand(newTokenCreateCmd())
	return cmd
}

func newTokenCreateCmd() *cobra.Command {
	var sf storeFlags
	var user, desc string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:     "create",
		Short:   "Create an API token for a user; it is printed once and stored only hashed",
		Example: `  kplane token create --user ci --description "jenkins build reports" --ttl 2160h`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, db, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			tok, err := svc.CreateToken(cmd.Context(), user, desc, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	sf.bind(cmd)
	cmd.Flags().StringVar(&user, "user", "", "owner of the token (required)")
	cmd.Flags().StringVar(&desc, "description", "", "what the token is for")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime, e.g. 720h (default: no expiry)")
	_ = cmd.MarkFlagRequired("user")
	return cmd
}

// readSecret reads one line from r without its line ending.
func readSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}
