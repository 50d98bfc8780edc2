package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/hawaii"
)

func TestBuildPagesHTTP(t *testing.T) {
	e, green, red := newReviewEnv(t)
	dev := e.signIn(e.tokens[auth.Developer])
	rel := e.signIn(e.tokens[auth.Releaser])

	cases := []struct {
		name   string
		path   string
		status int
		want   []string
	}{
		{"list", "/builds?service=inventory", http.StatusOK, []string{"1.2.0", "1.1.0", "1.0.0", `data-env="prod"`}},
		{"older page", fmt.Sprintf("/builds?service=inventory&before=%d", red), http.StatusOK, []string{"1.1.0", "Newest"}},
		{"bad before", "/builds?before=x", http.StatusBadRequest, []string{"not a build ID"}},
		{"build", fmt.Sprintf("/builds/%d", green), http.StatusOK, []string{"api-tests", "1.2s", "TestReserve"}},
		{"unknown build", "/builds/999", http.StatusNotFound, nil},
		{"review", fmt.Sprintf("/builds/%d/review", red), http.StatusOK, []string{hawaii.BlockAlpha, "Newly failing", "got 409, want 201"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(dev, http.MethodGet, tc.path, "", nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d:\n%s", r.status, tc.status, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
		})
	}
	older := e.do(dev, http.MethodGet, fmt.Sprintf("/builds?service=inventory&before=%d", red), "", nil)
	if strings.Contains(older.body, ">1.2.0<") {
		t.Errorf("the page before build %d lists it", red)
	}

	review := e.do(dev, http.MethodGet, fmt.Sprintf("/builds/%d/review", green), "", nil)
	path := fmt.Sprintf("/builds/%d/promote", green)
	if r := e.postForm(dev, path, url.Values{"csrf": {"forged"}}); r.status != http.StatusForbidden {
		t.Fatalf("promote without the session's CSRF token: %d, want 403", r.status)
	}
	r := e.postForm(dev, path, url.Values{"csrf": {formCSRF(t, review.body)}, "confirm": {"on"}})
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "needs the releaser role") {
		t.Fatalf("developer promote: %d, want 403 saying why:\n%s", r.status, r.body)
	}
	review = e.do(rel, http.MethodGet, fmt.Sprintf("/builds/%d/review", green), "", nil)
	r = e.postForm(rel, path, url.Values{"csrf": {formCSRF(t, review.body)}, "confirm": {"on"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != fmt.Sprintf("/builds/%d/review", green) {
		t.Fatalf("releaser promote: %d to %q, want 303 back to the review", r.status, r.header.Get("Location"))
	}
	after := e.do(rel, http.MethodGet, fmt.Sprintf("/builds/%d/review", green), "", nil)
	if !strings.Contains(after.body, `id="rollout"`) || !strings.Contains(after.body, "/api/v1/deploys/") {
		t.Fatalf("review after promoting shows no rollout to follow:\n%s", after.body)
	}
}
