package main

import (
	"strings"
	"testing"
)

func TestBuildsConfigSecrets(t *testing.T) {
	good := BuildsConfig{WebhookSecrets: []string{"jenkins:whsec_dGVzdC1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZg==", "github:a plain secret of enough bytes"}}
	secs, err := good.secrets()
	if err != nil || len(secs) != 2 || secs[0].Name != "jenkins" || secs[1].Name != "github" {
		t.Fatalf("secrets = %+v, %v", secs, err)
	}
	for name, entry := range map[string]string{
		"no name":   "whsec_c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw==",
		"too short": "ci:short-secret",
		"bad whsec": "ci:whsec_secret-value-that-must-not-leak!!",
	} {
		_, err := BuildsConfig{WebhookSecrets: []string{entry}}.secrets()
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "secret-value") || strings.Contains(err.Error(), "short-secret") || strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("%s: error %q shows the secret", name, err)
		}
	}
}
