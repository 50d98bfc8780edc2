package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/internal/mariadbtest"
	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/internal/testtls"
	ktracemysql "github.com/kplane/kplane/ktrace/mysql"
	"github.com/kplane/kplane/signalman"
)

func TestStoreConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string // "" means valid
	}{
		"sqlite default":    {func(*Config) {}, ""},
		"driver left empty": {func(c *Config) { c.Store.Driver = "" }, ""},
		"sqlite no path":    {func(c *Config) { c.Store.Path = "" }, "store path is empty"},
		"sqlite with dsn": {func(c *Config) { c.Store.DSN = "kplane:pw@tcp(db:3306)/kplane" },
			"set store.driver: mysql"},
		"unknown driver":   {func(c *Config) { c.Store.Driver = "postgres" }, `store driver "postgres": want sqlite`},
		"mysql no dsn":     {func(c *Config) { c.Store.Driver = "mysql" }, "needs store.dsn (or KPLANE_STORE_DSN)"},
		"mysql bad dsn":    {func(c *Config) { c.Store.Driver, c.Store.DSN = "mysql", "kplane:pw@db:3306/kplane" }, "want the form"},
		"mysql no db name": {func(c *Config) { c.Store.Driver, c.Store.DSN = "mysql", "kplane:pw@tcp(db:3306)/" }, "names no database"},
		"mysql":            {func(c *Config) { c.Store.Driver, c.Store.DSN = "mysql", "kplane:pw@tcp(db:3306)/kplane" }, ""},
		"mysql shared with spans": {func(c *Config) {
			c.Store.Driver, c.Store.DSN = "mysql", "kplane:pw@tcp(db:3306)/kplane"
			c.Traces.Store, c.Traces.MySQLDSN = "mysql", "spans:pw2@tcp(db:3306)/kplane"
		}, "database of their own"},
		"mysql beside spans": {func(c *Config) {
			c.Store.Driver, c.Store.DSN = "mysql", "kplane:pw@tcp(db:3306)/kplane"
			c.Traces.Store, c.Traces.MySQLDSN = "mysql", "kplane:pw@tcp(db:3306)/kplane_traces"
		}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if err != nil && (strings.Contains(err.Error(), ":pw@") || strings.Contains(err.Error(), "pw2")) {
				t.Fatalf("error %q shows a password", err)
			}
		})
	}
}

func TestStoreConfigFromEnvironment(t *testing.T) {
	c := DefaultConfig()
	env := map[string]string{"KPLANE_STORE_DRIVER": "mysql", "KPLANE_STORE_DSN": "kplane:s3cret@tcp(db:3306)/kplane"}
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Store.driver() != sqldb.MySQL || c.Store.DSN != env["KPLANE_STORE_DSN"] {
		t.Fatalf("store config %+v", c.Store)
	}
	if d := c.describeStore(); strings.Contains(d, "s3cret") || !strings.Contains(d, "kplane on db:3306") {
		t.Fatalf("describeStore = %q", d)
	}
}

// Two replicas on one MariaDB database: both start (migrating once), and
// what one stores the other reads — users and tokens, deploy records.
func TestReplicasShareMariaDBStore(t *testing.T) {
	srv := mariadbtest.Start(t)
	c := DefaultConfig()
	c.Store.Driver, c.Store.DSN = "mysql", srv.NewDatabase(t)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	a, err := openStore(ctx, c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := openStore(ctx, c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	authA, err := auth.New(a, auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	authB, err := auth.New(b, auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	token, err := authA.EnsureAdmin(ctx, "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := authB.Authenticate(ctx, token); err != nil || id.User != "admin" {
		t.Fatalf("replica b authenticates replica a's token: %+v, %v", id, err)
	}

	dep := signalman.Deploy{ID: "d-shared", Target: signalman.Target{Service: "inventory", Env: "prod"}, Version: "2.0",
		Instances: 2, MaxSurge: 1, State: signalman.DeployRunning, Started: time.Now(), Steps: []signalman.Step{}}
	if err := signalman.NewSQLDeployStore(a).Create(ctx, dep, replicaName(c)); err != nil {
		t.Fatal(err)
	}
	got, err := signalman.NewSQLDeployStore(b).Get(ctx, dep.ID)
	if err != nil || got.Version != "2.0" {
		t.Fatalf("replica b reads replica a's deploy: %+v, %v", got, err)
	}
}

// Against a MariaDB that offers TLS, the main store and the span store
// connect encrypted when given the CA that signed the server's
// certificate, and refuse a server whose certificate another CA signed.
func TestMySQLStoresOverTLS(t *testing.T) {
	files := testtls.Generate(t)
	srv := mariadbtest.StartTLS(t, mariadbtest.TLS{CA: files.CA, Cert: files.Cert, Key: files.Key})
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)

	c := DefaultConfig()
	c.Store.Driver, c.Store.DSN, c.Store.CAFile = "mysql", srv.NewDatabase(t), testtls.Generate(t).CA
	if db, err := openStore(ctx, c, log); err == nil {
		db.Close()
		t.Fatal("a server certificate signed by another CA was trusted")
	}
	c.Store.CAFile = files.CA
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	db, err := openStore(ctx, c, log)
	if err != nil {
		t.Fatalf("store over TLS: %v", err)
	}
	defer db.Close()
	var name, cipher string
	if err := db.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
		t.Fatalf("store connection is not encrypted: %q, %v", cipher, err)
	}

	dsn, err := mysqlDSN(TracesConfig{MySQLDSN: srv.NewDatabase(t), MySQLCAFile: files.CA})
	if err != nil {
		t.Fatal(err)
	}
	spans, err := ktracemysql.Open(ctx, ktracemysql.Config{DSN: dsn})
	if err != nil {
		t.Fatalf("span store over TLS: %v", err)
	}
	spans.Close()
}
