package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/auth"
)

func TestAPIAuthorizationByRole(t *testing.T) {
	e := newEnv(t)
	newUser := func(name string) map[string]string {
		return map[string]string{"name": name, "password": "long enough", "role": "viewer"}
	}
	tests := []struct {
		name       string
		method     string
		path       string
		token      string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"services without token", "GET", "/api/v1/services", "", nil, 401, "unauthenticated"},
		{"services with unknown token", "GET", "/api/v1/services", "kp_not-a-token", nil, 401, "unauthenticated"},
		{"services as viewer", "GET", "/api/v1/services", e.tokens[auth.Viewer], nil, 200, ""},
		{"users without token", "GET", "/api/v1/users", "", nil, 401, "unauthenticated"},
		{"users as releaser", "GET", "/api/v1/users", e.tokens[auth.Releaser], nil, 403, "forbidden"},
		{"users as admin", "GET", "/api/v1/users", e.tokens[auth.Admin], nil, 200, ""},
		{"create user without token", "POST", "/api/v1/users", "", newUser("u1"), 401, "unauthenticated"},
		{"create user as viewer", "POST", "/api/v1/users", e.tokens[auth.Viewer], newUser("u2"), 403, "forbidden"},
		{"create user as developer", "POST", "/api/v1/users", e.tokens[auth.Developer], newUser("u3"), 403, "forbidden"},
		{"create user as releaser", "POST", "/api/v1/users", e.tokens[auth.Releaser], newUser("u4"), 403, "forbidden"},
		{"create user as admin", "POST", "/api/v1/users", e.tokens[auth.Admin], newUser("u5"), 201, ""},
		{"create existing user", "POST", "/api/v1/users", e.tokens[auth.Admin], newUser("u5"), 409, "conflict"},
		{"create user with unknown role", "POST", "/api/v1/users", e.tokens[auth.Admin], map[string]string{"name": "u6", "password": "long enough", "role": "root"}, 400, "invalid"},
		{"create user with short password", "POST", "/api/v1/users", e.tokens[auth.Admin], map[string]string{"name": "u7", "password": "short", "role": "viewer"}, 400, "invalid"},
		{"create user with misspelt field", "POST", "/api/v1/users", e.tokens[auth.Admin], map[string]string{"nmae": "u8", "password": "long enough", "role": "viewer"}, 400, "invalid"},
		{"token for unknown user", "POST", "/api/v1/tokens", e.tokens[auth.Admin], map[string]string{"user": "ghost"}, 404, "not_found"},
		{"token with bad ttl", "POST", "/api/v1/tokens", e.tokens[auth.Admin], map[string]string{"user": "viewer-user", "ttl": "a week"}, 400, "invalid"},
		{"token as developer", "POST", "/api/v1/tokens", e.tokens[auth.Developer], map[string]string{"user": "developer-user"}, 403, "forbidden"},
		{"wrong method", "DELETE", "/api/v1/services", e.tokens[auth.Admin], nil, 405, "method_not_allowed"},
		{"unknown API path", "GET", "/api/v1/nope", e.tokens[auth.Admin], nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if tt.body != nil {
				r = e.do(nil, tt.method, tt.path, tt.token, jsonBody(tt.body), "Content-Type", "application/json")
			} else {
				r = e.do(nil, tt.method, tt.path, tt.token, nil)
			}
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantCode == "" {
				return
			}
			if eb := decodeError(t, r); eb.Code != tt.wantCode || eb.Error == "" {
				t.Fatalf("error body %+v, want code %q and a message", eb, tt.wantCode)
			}
			if tt.wantStatus == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// The user the admin created can sign in with the password it was given.
	if _, err := e.auth.Login(t.Context(), "u5", "long enough"); err != nil {
		t.Fatalf("user created through the API cannot log in: %v", err)
	}
}

func TestAPIErrorMessagesAreForPeople(t *testing.T) {
	e := newEnv(t)
	r := e.do(nil, "POST", "/api/v1/users", e.tokens[auth.Admin],
		jsonBody(map[string]string{"name": "bob", "password": "short", "role": "viewer"}), "Content-Type", "application/json")
	eb := decodeError(t, r)
	if !strings.Contains(eb.Error, "password must be 8 to 72 bytes") || strings.HasSuffix(eb.Error, ": invalid") {
		t.Fatalf("error %q: want the password rule, without the sentinel suffix", eb.Error)
	}
	r = e.do(nil, "GET", "/api/v1/users", e.tokens[auth.Viewer], nil)
	if eb := decodeError(t, r); !strings.Contains(eb.Error, "needs admin") {
		t.Fatalf("403 message %q does not say which role is needed", eb.Error)
	}
}

func TestAPICreateTokenIsUsable(t *testing.T) {
	e := newEnv(t)
	r := e.do(nil, "POST", "/api/v1/tokens", e.tokens[auth.Admin],
		jsonBody(map[string]string{"user": "releaser-user", "description": "jenkins", "ttl": "720h"}), "Content-Type", "application/json")
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var got struct {
		Token   string    `json:"token"`
		User    string    `json:"user"`
		Expires time.Time `json:"expires"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.Token, auth.TokenPrefix) || got.User != "releaser-user" || got.Expires.IsZero() {
		t.Fatalf("response %+v", got)
	}
	id, err := e.auth.Authenticate(t.Context(), got.Token)
	if err != nil || id.Role != auth.Releaser {
		t.Fatalf("minted token authenticates as %+v, %v", id, err)
	}
	if strings.Contains(e.logs.String(), got.Token) {
		t.Fatal("the minted token appears in the logs")
	}
}

func TestMutatingAPIRejectsSessionCookie(t *testing.T) {
	e := newEnv(t)
	browser := e.signIn(e.tokens[auth.Admin])
	// A signed-in admin's browser must not be usable for API mutations
	// without a token: that is what a cross-site form post would exploit.
	r := e.do(browser, "POST", "/api/v1/users", "",
		jsonBody(map[string]string{"name": "csrf-victim", "password": "long enough", "role": "admin"}), "Content-Type", "application/json")
	if r.status != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401; body %s", r.status, r.body)
	}
	// Reads from the console's own session are fine.
	if r := e.do(browser, "GET", "/api/v1/services", "", nil); r.status != http.StatusOK {
		t.Fatalf("GET services with a session: %d", r.status)
	}
}

func TestServicesJSON(t *testing.T) {
	e := newEnv(t)
	r := e.do(nil, "GET", "/api/v1/services", e.tokens[auth.Viewer], nil)
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	var got struct {
		Services []struct {
			Name      string `json:"name"`
			Instances []struct {
				ID      string    `json:"id"`
				Addr    string    `json:"addr"`
				Version string    `json:"version"`
				Tags    []string  `json:"tags"`
				Env     string    `json:"env"`
				Started time.Time `json:"started"`
			} `json:"instances"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Services) != 2 || got.Services[0].Name != "checkpoint" || got.Services[1].Name != "inventory" {
		t.Fatalf("services %+v, want checkpoint then inventory", got.Services)
	}
	inv := got.Services[1].Instances
	if len(inv) != 2 || inv[0].ID != "inventory-1" || inv[0].Addr != "127.0.0.1:41001" || inv[0].Version != "1.4.2" ||
		inv[0].Env != "dev" || len(inv[0].Tags) != 1 || !inv[0].Started.Equal(started) {
		t.Fatalf("inventory instances %+v", inv)
	}
	if !strings.Contains(r.body, `"tags":[]`) {
		t.Fatalf("an instance without tags must have \"tags\":[] so clients need not handle null: %s", r.body)
	}

	e.source.Set()
	r = e.do(nil, "GET", "/api/v1/services", e.tokens[auth.Viewer], nil)
	if strings.TrimSpace(r.body) != `{"services":[]}` {
		t.Fatalf("no services: body %s, want an empty array", r.body)
	}
}

func TestServicesDoesNotReorderSourceSnapshot(t *testing.T) {
	e := newEnv(t)
	before := e.source.Services()
	e.do(nil, "GET", "/api/v1/services", e.tokens[auth.Viewer], nil)
	if after := e.source.Services(); after[0].Name != before[0].Name || after[0].Name != "inventory" {
		t.Fatal("web sorted the source's own slice; it must copy")
	}
}
