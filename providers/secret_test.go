package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverFormats(t *testing.T) {
	t.Parallel()
	type cfg struct {
		User string
		Key  Secret
	}
	const v = "s3cr3t-Value"
	c := cfg{User: "u", Key: v}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s"} {
		out = append(out, fmt.Sprintf(verb, c.Key), fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c))
	}
	var logged bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logged, nil), slog.NewJSONHandler(&logged, nil)} {
		slog.New(h).Info("x", "key", c.Key, "cfg", c)
	}
	b, _ := json.Marshal(c)
	out = append(out, logged.String(), string(b), c.Key.String(), c.Key.GoString())
	for _, s := range out {
		if strings.Contains(s, v) || strings.Contains(s, fmt.Sprintf("%x", v)) {
			t.Errorf("secret shown: %s", s)
		}
	}
	if !strings.Contains(fmt.Sprint(c), Redacted) {
		t.Errorf("%v = %s, want %s in it", c, fmt.Sprint(c), Redacted)
	}
	if c.Key.Reveal() != v {
		t.Error("Reveal lost the value")
	}
	if fmt.Sprint(Secret("")) != `""` {
		t.Errorf("empty Secret = %s, want \"\"", Secret(""))
	}
}

func TestParseBaseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw      string
		userInfo bool
		want     string // "" when an error is expected
	}{
		{"https://api.example.com/", false, "https://api.example.com"},
		{" https://api.example.com/v3// ", false, "https://api.example.com/v3"},
		{"https://u:pw@api.example.com/", true, "https://api.example.com"},
		{"https://u:pw@api.example.com/", false, ""},
		{"api.example.com", false, ""},
		{"ftp://api.example.com", false, ""},
		{"https://api.example.com/?k=1", true, ""},
		{"https://api.example.com/#f", true, ""},
		{"", true, ""},
	} {
		u, err := ParseBaseURL("v", "V_BASE_URL", tc.raw, tc.userInfo)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%q: got %s, want an error", tc.raw, u)
		case tc.want != "" && (err != nil || u.String() != tc.want):
			t.Errorf("%q: got %v, %v; want %s", tc.raw, u, err, tc.want)
		case err != nil && (strings.Contains(err.Error(), "pw") || !strings.Contains(err.Error(), "V_BASE_URL")):
			t.Errorf("%q: error %q must name the variable and hide the URL", tc.raw, err)
		}
	}
}
