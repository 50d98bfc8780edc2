package hawaii

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SignatureWindow is how far a Standard Webhooks timestamp may be from the
// server's clock, either way: older messages are replays.
const SignatureWindow = 5 * time.Minute

// deliveryMemory is how long a claimed delivery ID is remembered: past it,
// the timestamp check already refuses the message.
const deliveryMemory = 2 * SignatureWindow

// Header names of the two signature schemes.
const (
	HeaderGitHubSignature = "X-Hub-Signature-256"
	HeaderGitHubDelivery  = "X-GitHub-Delivery"
	HeaderWebhookID       = "Webhook-Id"
	HeaderWebhookTime     = "Webhook-Timestamp"
	HeaderWebhookSig      = "Webhook-Signature"
)

// secretPrefix marks a Standard Webhooks secret: the rest is base64.
const secretPrefix = "whsec_"

// Secret is one webhook signing key. Several may be configured at once so
// that a key can be rotated without refusing CI's requests in between.
type Secret struct {
	// Name identifies the key in the audit log ("webhook:<name>"); it is
	// not secret.
	Name string
	key  []byte
}

// ParseSecret reads a configured secret: "whsec_<base64>" as Standard
// Webhooks writes it, or any other string, used as is (GitHub's form).
func ParseSecret(name, s string) (Secret, error) {
	if name == "" {
		return Secret{}, fmt.Errorf("webhook secret: %w", &FieldsError{What: "webhook secret", Fields: map[string]string{"name": "required"}})
	}
	key := []byte(s)
	if rest, ok := strings.CutPrefix(s, secretPrefix); ok {
		var err error
		if key, err = base64.StdEncoding.DecodeString(rest); err != nil {
			return Secret{}, &FieldsError{What: "webhook secret " + name, Fields: map[string]string{"secret": "whsec_ secret is not valid base64"}}
		}
	}
	if len(key) < 16 {
		return Secret{}, &FieldsError{What: "webhook secret " + name, Fields: map[string]string{"secret": "shorter than 16 bytes"}}
	}
	return Secret{Name: name, key: key}, nil
}

// Signed says who signed a verified request.
type Signed struct {
	// Secret is the Name of the key that matched.
	Secret string
	// Scheme is "github" or "standard-webhooks".
	Scheme string
	// DeliveryID is the sender's message ID (webhook-id or
	// X-GitHub-Delivery), empty if the sender gave none: a repeated ID is
	// a retry or a replay and must be applied once (Store.ClaimDelivery).
	DeliveryID string
}

// IsSigned reports whether h carries signature headers of either scheme.
func IsSigned(h http.Header) bool {
	return h.Get(HeaderWebhookSig) != "" || h.Get(HeaderGitHubSignature) != ""
}

// VerifySignature checks body against the signature headers in h under
// any of secrets, comparing in constant time. Standard Webhooks headers
// are preferred when both are present. Errors: ErrUnsigned (no signature
// headers), ErrBadSignature (none matches, or the headers are malformed),
// ErrStale (timestamp outside SignatureWindow of now).
func VerifySignature(h http.Header, body []byte, secrets []Secret, now time.Time) (Signed, error) {
	if sig := h.Get(HeaderWebhookSig); sig != "" {
		return verifyStandard(h.Get(HeaderWebhookID), h.Get(HeaderWebhookTime), sig, body, secrets, now)
	}
	if sig := h.Get(HeaderGitHubSignature); sig != "" {
		return verifyGitHub(sig, h.Get(HeaderGitHubDelivery), body, secrets)
	}
	return Signed{}, ErrUnsigned
}

func verifyGitHub(header, delivery string, body []byte, secrets []Secret) (Signed, error) {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return Signed{}, fmt.Errorf("%w: %s must be sha256=<hex>", ErrBadSignature, HeaderGitHubSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return Signed{}, fmt.Errorf("%w: %s is not hex", ErrBadSignature, HeaderGitHubSignature)
	}
	for _, s := range secrets {
		if hmac.Equal(got, mac(s.key, body)) {
			return Signed{Secret: s.Name, Scheme: "github", DeliveryID: delivery}, nil
		}
	}
	return Signed{}, ErrBadSignature
}

func verifyStandard(id, ts, header string, body []byte, secrets []Secret, now time.Time) (Signed, error) {
	if id == "" || ts == "" {
		return Signed{}, fmt.Errorf("%w: webhook-signature needs webhook-id and webhook-timestamp", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Signed{}, fmt.Errorf("%w: webhook-timestamp must be Unix seconds", ErrBadSignature)
	}
	at := time.Unix(sec, 0)
	if d := now.Sub(at); d > SignatureWindow || d < -SignatureWindow {
		return Signed{}, fmt.Errorf("%w: timestamp is %s from the server's clock, more than %s", ErrStale, d.Round(time.Second), SignatureWindow)
	}
	var sigs [][]byte
	for _, f := range strings.Fields(header) {
		v, b64, ok := strings.Cut(f, ",")
		if !ok || v != "v1" {
			// Other versions (v1a: asymmetric) are not ours to check.
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		sigs = append(sigs, raw)
	}
	if len(sigs) == 0 {
		return Signed{}, fmt.Errorf("%w: no v1,<base64> signature in webhook-signature", ErrBadSignature)
	}
	content := make([]byte, 0, len(id)+len(ts)+len(body)+2)
	content = append(append(append(append(append(content, id...), '.'), ts...), '.'), body...)
	for _, s := range secrets {
		want := mac(s.key, content)
		for _, got := range sigs {
			if hmac.Equal(got, want) {
				return Signed{Secret: s.Name, Scheme: "standard-webhooks", DeliveryID: id}, nil
			}
		}
	}
	return Signed{}, ErrBadSignature
}

func mac(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// SignGitHub returns the X-Hub-Signature-256 value for body.
func SignGitHub(s Secret, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(s.key, body))
}

// SignStandard returns the Standard Webhooks headers for body sent as
// message id at time at, signed with every secret given (a sender that
// rotates keys signs with the old and the new one).
func SignStandard(id string, at time.Time, body []byte, secrets ...Secret) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	content := []byte(id + "." + ts + "." + string(body))
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(mac(s.key, content))
	}
	h := http.Header{}
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTime, ts)
	h.Set(HeaderWebhookSig, strings.Join(sigs, " "))
	return h
}
