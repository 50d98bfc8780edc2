package hawaii

import (
	"encoding/base64"
	"errors"
	"net/http"
	"testing"
	"time"
)

func mustSecret(t *testing.T, name, s string) Secret {
	t.Helper()
	sec, err := ParseSecret(name, s)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func TestVerifySignature(t *testing.T) {
	now := time.Unix(1_770_000_000, 0)
	body := []byte(`{"service":"inventory","guid":"b-1"}`)
	old := mustSecret(t, "old", "whsec_"+base64.StdEncoding.EncodeToString([]byte("old-key-0123456789abcdef")))
	cur := mustSecret(t, "current", "whsec_"+base64.StdEncoding.EncodeToString([]byte("new-key-0123456789abcdef")))
	gh := mustSecret(t, "github", "a plain github secret")
	other := mustSecret(t, "other", "somebody else's secret")
	configured := []Secret{cur, gh}

	github := func(s Secret, b []byte) http.Header {
		h := http.Header{}
		h.Set(HeaderGitHubSignature, SignGitHub(s, b))
		h.Set(HeaderGitHubDelivery, "gh-delivery-1")
		return h
	}
	tampered := append([]byte{}, body...)
	tampered[5] = 'X'
	for name, tc := range map[string]struct {
		h       http.Header
		body    []byte
		want    error
		secret  string
		deliver string
	}{
		"github valid":                  {github(gh, body), body, nil, "github", "gh-delivery-1"},
		"github wrong secret":           {github(other, body), body, ErrBadSignature, "", ""},
		"github tampered body":          {github(gh, body), tampered, ErrBadSignature, "", ""},
		"github not sha256=":            {http.Header{HeaderGitHubSignature: {"sha1=abcd"}}, body, ErrBadSignature, "", ""},
		"github not hex":                {http.Header{HeaderGitHubSignature: {"sha256=zz"}}, body, ErrBadSignature, "", ""},
		"standard valid":                {SignStandard("msg_1", now, body, cur), body, nil, "current", "msg_1"},
		"standard wrong secret":         {SignStandard("msg_1", now, body, other), body, ErrBadSignature, "", ""},
		"standard tampered body":        {SignStandard("msg_1", now, body, cur), tampered, ErrBadSignature, "", ""},
		"standard rotated: old and new": {SignStandard("msg_2", now, body, old, cur), body, nil, "current", "msg_2"},
		"standard stale":                {SignStandard("msg_3", now.Add(-SignatureWindow-time.Second), body, cur), body, ErrStale, "", ""},
		"standard from the future":      {SignStandard("msg_4", now.Add(SignatureWindow+time.Second), body, cur), body, ErrStale, "", ""},
		"standard at the window edge":   {SignStandard("msg_5", now.Add(-SignatureWindow), body, cur), body, nil, "current", "msg_5"},
		"unsigned":                      {http.Header{}, body, ErrUnsigned, "", ""},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := VerifySignature(tc.h, tc.body, configured, now)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got.Secret != tc.secret || got.DeliveryID != tc.deliver {
				t.Errorf("signed = %+v, want secret %q delivery %q", got, tc.secret, tc.deliver)
			}
		})
	}
	t.Run("standard: id is part of the signed content", func(t *testing.T) {
		h := SignStandard("msg_1", now, body, cur)
		h.Set(HeaderWebhookID, "msg_other")
		if _, err := VerifySignature(h, body, configured, now); !errors.Is(err, ErrBadSignature) {
			t.Errorf("err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("only the old key configured: rotated sender still accepted", func(t *testing.T) {
		if _, err := VerifySignature(SignStandard("m", now, body, old, cur), body, []Secret{old}, now); err != nil {
			t.Error(err)
		}
	})
}

func TestParseSecret(t *testing.T) {
	for name, s := range map[string]string{"short": "tiny", "bad base64": "whsec_!!!notbase64!!!", "short whsec": "whsec_" + base64.StdEncoding.EncodeToString([]byte("x"))} {
		if _, err := ParseSecret("ci", s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}
