package auth_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/internal/mariadbtest"
	"github.com/kplane/kplane/internal/sqldb"
)

// clock is a settable time source for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	svc   *auth.Service
	clock *clock
	logs  *bytes.Buffer
	dump  func() string // every stored column as text, to look for secrets
}

// fixtureTests run on every engine of the store: SQLite always, MariaDB
// when it is installed (and always in CI).
var fixtureTests = []struct {
	name string
	run  func(*testing.T, fixture)
}{
	{"CreateUserValidation", testCreateUserValidation},
	{"PasswordLoginSessionLogout", testPasswordLoginSessionLogout},
	{"SessionExpires", testSessionExpires},
	{"Tokens", testTokens},
	{"EnsureAdmin", testEnsureAdmin},
	{"LoginToken", testLoginToken},
}

func TestSQLite(t *testing.T) {
	for _, tc := range fixtureTests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sqldb.Open(t.Context(), filepath.Join(t.TempDir(), "auth.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			tc.run(t, newFixture(t, db))
		})
	}
}

func TestMariaDB(t *testing.T) {
	srv := mariadbtest.Start(t)
	for _, tc := range fixtureTests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sqldb.OpenMySQL(t.Context(), srv.NewDatabase(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			tc.run(t, newFixture(t, db))
		})
	}
}

// newFixture migrates db and runs a Service on it.
func newFixture(t *testing.T, db *sql.DB) fixture {
	t.Helper()
	ctx := t.Context()
	if err := sqldb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	var logs bytes.Buffer
	svc, err := auth.New(db, auth.Config{
		Logger:     slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        clk.Now,
		SessionTTL: time.Hour,
		BcryptCost: bcrypt.MinCost,
	})
	if err != nil {
		t.Fatal(err)
	}
	dump := func() string {
		var b strings.Builder
		queries := []string{
			`SELECT name || password_hash || role FROM users`,
			`SELECT hex(token_hash) || token_hash || user_name || description FROM api_tokens`,
			`SELECT hex(id_hash) || id_hash || user_name || csrf_token FROM sessions`,
		}
		if sqldb.Engine(db) == sqldb.MySQL {
			queries = []string{
				`SELECT CONCAT(name, password_hash, role) FROM users`,
				`SELECT CONCAT(hex(token_hash), token_hash, user_name, description) FROM api_tokens`,
				`SELECT CONCAT(hex(id_hash), id_hash, user_name, csrf_token) FROM sessions`,
			}
		}
		for _, q := range queries {
			rows, err := db.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				b.WriteString(s + "\n")
			}
			rows.Close()
		}
		return b.String()
	}
	return fixture{svc: svc, clock: clk, logs: &logs, dump: dump}
}

func TestParseRoleAndAllows(t *testing.T) {
	for _, name := range []string{"viewer", "developer", "releaser", "admin", " Admin "} {
		r, err := auth.ParseRole(name)
		if err != nil || !strings.EqualFold(r.String(), strings.TrimSpace(name)) {
			t.Errorf("ParseRole(%q) = %v, %v", name, r, err)
		}
	}
	for _, bad := range []string{"", "root", "owner"} {
		if _, err := auth.ParseRole(bad); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("ParseRole(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	roles := auth.Roles()
	for i, have := range roles {
		for j, need := range roles {
			if got, want := have.Allows(need), i >= j; got != want {
				t.Errorf("%s.Allows(%s) = %v, want %v", have, need, got, want)
			}
		}
		if have.Allows(0) {
			t.Errorf("%s allows the zero role: a route without a role must fail closed", have)
		}
	}
	var zero auth.Role
	if zero.Allows(auth.Viewer) {
		t.Error("the zero role allows viewer")
	}
}

func TestRoleJSON(t *testing.T) {
	b, err := json.Marshal(struct{ Role auth.Role }{auth.Releaser})
	if err != nil || string(b) != `{"Role":"releaser"}` {
		t.Fatalf("marshal = %s, %v", b, err)
	}
	var v struct{ Role auth.Role }
	if err := json.Unmarshal([]byte(`{"Role":"developer"}`), &v); err != nil || v.Role != auth.Developer {
		t.Fatalf("unmarshal = %v, %v", v.Role, err)
	}
	if err := json.Unmarshal([]byte(`{"Role":"god"}`), &v); !errors.Is(err, auth.ErrInvalid) {
		t.Fatalf("unmarshal unknown role = %v, want ErrInvalid", err)
	}
}

func testCreateUserValidation(t *testing.T, f fixture) {
	ctx := t.Context()
	if err := f.svc.CreateUser(ctx, "alice", "correct horse", auth.Developer); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		user, password string
		role           auth.Role
		want           error
	}{
		{"taken", "alice", "another password", auth.Viewer, auth.ErrExists},
		{"empty name", "", "long enough", auth.Viewer, auth.ErrInvalid},
		{"slash in name", "a/b", "long enough", auth.Viewer, auth.ErrInvalid},
		{"short password", "bob", "short", auth.Viewer, auth.ErrInvalid},
		{"password past bcrypt limit", "bob", strings.Repeat("x", 73), auth.Viewer, auth.ErrInvalid},
		{"no role", "bob", "long enough", 0, auth.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.svc.CreateUser(ctx, tt.user, tt.password, tt.role)
			if !errors.Is(err, tt.want) {
				t.Fatalf("CreateUser = %v, want %v", err, tt.want)
			}
			if tt.password != "" && strings.Contains(err.Error(), tt.password) {
				t.Fatalf("error %q contains the password", err)
			}
		})
	}
	users, err := f.svc.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].Name != "alice" || users[0].Role != auth.Developer || !users[0].HasPassword {
		t.Fatalf("ListUsers = %+v, want only alice the developer", users)
	}
}

func testPasswordLoginSessionLogout(t *testing.T, f fixture) {
	ctx := t.Context()
	const pw = "s3cret-passw0rd"
	if err := f.svc.CreateUser(ctx, "alice", pw, auth.Releaser); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ user, pw string }{{"alice", "wrong-password"}, {"mallory", pw}, {"", ""}} {
		if _, err := f.svc.Login(ctx, tc.user, tc.pw); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("Login(%q) = %v, want ErrUnauthenticated", tc.user, err)
		}
	}
	sess, err := f.svc.Login(ctx, "alice", pw)
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.ID) < 43 || len(sess.CSRF) < 43 || sess.ID == sess.CSRF {
		t.Fatalf("session id/csrf too weak: %d/%d bytes", len(sess.ID), len(sess.CSRF))
	}
	id, got, err := f.svc.Session(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if id != (auth.Identity{User: "alice", Role: auth.Releaser}) || got.CSRF != sess.CSRF {
		t.Fatalf("Session = %+v %+v", id, got)
	}
	if _, _, err := f.svc.Session(ctx, sess.ID+"x"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("tampered session id = %v, want ErrUnauthenticated", err)
	}
	if strings.Contains(f.dump(), sess.ID) || strings.Contains(f.dump(), pw) {
		t.Fatal("database holds a session id or password in plaintext")
	}

	if err := f.svc.Logout(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Session(ctx, sess.ID); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("session after logout = %v, want ErrUnauthenticated", err)
	}
	if err := f.svc.Logout(ctx, sess.ID); err != nil {
		t.Fatalf("second logout = %v, want nil", err)
	}
	if strings.Contains(f.logs.String(), pw) || strings.Contains(f.logs.String(), sess.ID) {
		t.Fatalf("logs contain a secret:\n%s", f.logs)
	}
}

func testSessionExpires(t *testing.T, f fixture) {
	ctx := t.Context()
	if err := f.svc.CreateUser(ctx, "alice", "long enough", auth.Viewer); err != nil {
		t.Fatal(err)
	}
	sess, err := f.svc.Login(ctx, "alice", "long enough")
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(59 * time.Minute)
	if _, _, err := f.svc.Session(ctx, sess.ID); err != nil {
		t.Fatalf("session before TTL: %v", err)
	}
	f.clock.Advance(time.Minute)
	if _, _, err := f.svc.Session(ctx, sess.ID); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("session at TTL = %v, want ErrUnauthenticated", err)
	}
}

func testTokens(t *testing.T, f fixture) {
	ctx := t.Context()
	if err := f.svc.CreateUser(ctx, "ci", "long enough", auth.Developer); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateToken(ctx, "nobody", "x", 0); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("token for unknown user = %v, want ErrNotFound", err)
	}
	if _, err := f.svc.CreateToken(ctx, "ci", "x", -time.Second); !errors.Is(err, auth.ErrInvalid) {
		t.Fatalf("negative ttl = %v, want ErrInvalid", err)
	}
	forever, err := f.svc.CreateToken(ctx, "ci", "jenkins", 0)
	if err != nil {
		t.Fatal(err)
	}
	daily, err := f.svc.CreateToken(ctx, "ci", "nightly", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(forever, auth.TokenPrefix) || len(forever) < len(auth.TokenPrefix)+43 || forever == daily {
		t.Fatalf("token %q: want a unique %s-prefixed token with 32 random bytes", forever, auth.TokenPrefix)
	}
	if d := f.dump(); strings.Contains(d, forever) || strings.Contains(d, daily) {
		t.Fatal("database holds a token in plaintext")
	}
	if strings.Contains(f.logs.String(), forever) {
		t.Fatal("logs contain a token")
	}

	id, err := f.svc.Authenticate(ctx, forever)
	if err != nil || id != (auth.Identity{User: "ci", Role: auth.Developer}) {
		t.Fatalf("Authenticate = %+v, %v", id, err)
	}
	for _, bad := range []string{"", "kp_nope", forever[:len(forever)-1]} {
		if _, err := f.svc.Authenticate(ctx, bad); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("Authenticate(bad) = %v, want ErrUnauthenticated", err)
		}
	}

	f.clock.Advance(24 * time.Hour)
	if _, err := f.svc.Authenticate(ctx, daily); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("expired token = %v, want ErrUnauthenticated", err)
	}
	if _, err := f.svc.Authenticate(ctx, forever); err != nil {
		t.Fatalf("token without expiry after a day: %v", err)
	}

	toks, err := f.svc.ListTokens(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 2 {
		t.Fatalf("ListTokens = %+v, want 2", toks)
	}
	byDesc := map[string]auth.Token{}
	for _, tk := range toks {
		byDesc[tk.Description] = tk
	}
	if j := byDesc["jenkins"]; !j.LastUsed.Equal(f.clock.Now()) || !j.Expires.IsZero() {
		t.Fatalf("jenkins token = %+v, want last used now and no expiry", j)
	}
	if n := byDesc["nightly"]; !n.LastUsed.IsZero() || n.Expires.IsZero() {
		t.Fatalf("nightly token = %+v, want never used (it expired first) with an expiry", n)
	}
}

func testEnsureAdmin(t *testing.T, f fixture) {
	ctx := t.Context()

	const fixed = "dev-root-token"
	tok, err := f.svc.EnsureAdmin(ctx, "admin", fixed)
	if err != nil || tok != fixed {
		t.Fatalf("EnsureAdmin = %q, %v", tok, err)
	}
	// A restart of `kplane dev` with the same --dev-token on the same data dir.
	if tok, err = f.svc.EnsureAdmin(ctx, "admin", fixed); err != nil || tok != fixed {
		t.Fatalf("second EnsureAdmin = %q, %v", tok, err)
	}
	random, err := f.svc.EnsureAdmin(ctx, "admin", "")
	if err != nil || !strings.HasPrefix(random, auth.TokenPrefix) {
		t.Fatalf("EnsureAdmin with random token = %q, %v", random, err)
	}
	for _, tk := range []string{fixed, random} {
		if id, err := f.svc.Authenticate(ctx, tk); err != nil || id.Role != auth.Admin || id.User != "admin" {
			t.Fatalf("Authenticate(admin token) = %+v, %v", id, err)
		}
	}
	// The dev admin has no password: only the token signs in.
	if _, err := f.svc.Login(ctx, "admin", ""); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("password login of token-only admin = %v, want ErrUnauthenticated", err)
	}

	if err := f.svc.CreateUser(ctx, "dev", "long enough", auth.Developer); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.EnsureAdmin(ctx, "dev", ""); !errors.Is(err, auth.ErrExists) {
		t.Fatalf("EnsureAdmin over a developer = %v, want ErrExists (no silent promotion)", err)
	}
	if _, err := f.svc.EnsureAdmin(ctx, "root", fixed); !errors.Is(err, auth.ErrExists) {
		t.Fatalf("EnsureAdmin reusing another user's token = %v, want ErrExists", err)
	}
	if _, err := f.svc.EnsureAdmin(ctx, "admin", "has space"); !errors.Is(err, auth.ErrInvalid) {
		t.Fatalf("token with a space = %v, want ErrInvalid", err)
	}
	if strings.Contains(f.logs.String(), fixed) {
		t.Fatal("logs contain the admin token")
	}
}

func testLoginToken(t *testing.T, f fixture) {
	ctx := t.Context()
	if err := f.svc.CreateUser(ctx, "ops", "long enough", auth.Releaser); err != nil {
		t.Fatal(err)
	}
	short, err := f.svc.CreateToken(ctx, "ops", "ten minutes", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.LoginToken(ctx, "kp_wrong"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("LoginToken(wrong) = %v, want ErrUnauthenticated", err)
	}
	sess, err := f.svc.LoginToken(ctx, short)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := f.svc.Session(ctx, sess.ID)
	if err != nil || id != (auth.Identity{User: "ops", Role: auth.Releaser}) {
		t.Fatalf("Session = %+v, %v", id, err)
	}
	// The session (TTL one hour) must not outlive the ten-minute token.
	f.clock.Advance(10 * time.Minute)
	if _, _, err := f.svc.Session(ctx, sess.ID); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("session after its token expired = %v, want ErrUnauthenticated", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := auth.New(nil, auth.Config{}); err == nil {
		t.Fatal("New(nil db) succeeded")
	}
	db, err := sqldb.Open(t.Context(), filepath.Join(t.TempDir(), "x.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := auth.New(db, auth.Config{SessionTTL: -time.Second}); !errors.Is(err, auth.ErrInvalid) {
		t.Fatalf("negative TTL = %v, want ErrInvalid", err)
	}
}
