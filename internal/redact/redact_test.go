package redact

import (
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestURL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw, want string
		secrets   []string // none of these may remain
	}{
		{"redis://:Pw-Secret-123@127.0.0.1:6379/0", "redis://:REDACTED@127.0.0.1:6379/0", []string{"Pw-Secret-123"}},
		{"redis://acl-user:Pw-Secret-123@127.0.0.1:6379/0", "redis://acl-user:REDACTED@127.0.0.1:6379/0", []string{"Pw-Secret-123"}},
		// Does not parse: still redacted.
		{"redis://:Pw-Secret-123@127.0.0.1:notaport/0", "redis://:REDACTED@127.0.0.1:notaport/0", []string{"Pw-Secret-123"}},
		{"redis://:Pw%2DSecret@127.0.0.1:6379/0", "redis://:REDACTED@127.0.0.1:6379/0", []string{"Pw%2DSecret", "Pw-Secret"}},
		// Characters that end or split the user info when not encoded.
		{"redis://:p@ss/w+rd%@127.0.0.1:6379/0", "redis://:REDACTED@127.0.0.1:6379/0", []string{"p@ss", "w+rd", "ss/w"}},
		{"rediss://u:a:b@h:6380/1", "rediss://u:REDACTED@h:6380/1", []string{"a:b"}},
		// Nothing to hide: unchanged, no stray mark.
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", nil},
		{"redis://only-user@127.0.0.1:6379/0", "redis://only-user@127.0.0.1:6379/0", nil},
		{"redis://127.0.0.1:notaport/0", "redis://127.0.0.1:notaport/0", nil},
		{"", "", nil},
	}
	for _, c := range cases {
		got := URL(c.raw)
		if got != c.want {
			t.Errorf("URL(%q) = %q, want %q", c.raw, got, c.want)
		}
		for _, s := range c.secrets {
			if strings.Contains(got, s) {
				t.Errorf("URL(%q) = %q still holds %q", c.raw, got, s)
			}
		}
	}
}

// TestErrorOfParsers runs the parsers our programs use on URLs they
// reject and checks that no form of the password survives in the message.
func TestErrorOfParsers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw     string
		secrets []string
		want    string // the message still says what is wrong
	}{
		{"redis://:Pw-Secret-123@127.0.0.1:notaport/0", []string{"Pw-Secret-123"}, "invalid port"},
		{"redis://:Pw%2DSecret@127.0.0.1:notaport/0", []string{"Pw%2DSecret", "Pw-Secret"}, "invalid port"},
		{"redis://:Pw/Secret@127.0.0.1:6379/0", []string{"Pw/Secret", "Pw", "Secret"}, "percent-encode"},
		{"redis://:Pw?Secret@127.0.0.1:6379/0", []string{"Pw?Secret", "Pw", "Secret"}, "percent-encode"},
		{"redis://:Pw%zzSecret@127.0.0.1:6379/0", []string{"Pw%zzSecret", "%zz"}, "%25"},
		{"redis://:Pw@Secret+1@127.0.0.1:notaport/0", []string{"Pw@Secret+1", "Secret"}, "invalid port"},
		{"redis://:Pw-Secret@127.0.0.1:6379/notadb", []string{"Pw-Secret"}, "database"},
	}
	for _, c := range cases {
		_, err := redis.ParseURL(c.raw)
		if err == nil {
			_, err = url.Parse(c.raw)
		}
		if err == nil {
			t.Fatalf("%q parses; the case tests nothing", c.raw)
		}
		msg := Error(err, c.raw).Error()
		for _, s := range c.secrets {
			if strings.Contains(msg, s) {
				t.Errorf("%q: message %q holds %q", c.raw, msg, s)
			}
		}
		if !strings.Contains(msg, c.want) {
			t.Errorf("%q: message %q does not say %q", c.raw, msg, c.want)
		}
	}
	if Error(nil, "redis://:x@h") != nil {
		t.Error("Error(nil) is not nil")
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	raw := "redis://u:Pw%2BSecret@h:1/0"
	msg := String("dial redis://u:Pw%2BSecret@h:1/0 failed; AUTH Pw+Secret refused", raw)
	if strings.Contains(msg, "Pw%2BSecret") || strings.Contains(msg, "Pw+Secret") {
		t.Errorf("String left the password: %q", msg)
	}
	if !strings.Contains(msg, "redis://u:REDACTED@h:1/0") {
		t.Errorf("String did not keep the URL's shape: %q", msg)
	}
	if got := String("no url here", "redis://h:1/0"); got != "no url here" {
		t.Errorf("String without a password changed the message: %q", got)
	}
}
