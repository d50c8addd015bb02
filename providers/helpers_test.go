package providers

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// Options with two faults report the same one every time, whatever the
// map's iteration order: the first by name.
func TestEachParamOrder(t *testing.T) {
	t.Parallel()
	params := map[string]json.RawMessage{"zeta": nil, "alpha": nil, "mid": nil}
	for range 20 {
		var seen []string
		err := EachParam(params, func(k string, _ json.RawMessage) error {
			seen = append(seen, k)
			if k != "alpha" {
				return errors.New("bad " + k)
			}
			return nil
		})
		if err == nil || err.Error() != "bad mid" || strings.Join(seen, ",") != "alpha,mid" {
			t.Fatalf("got %v after %v, want bad mid after alpha,mid", err, seen)
		}
	}
}

func TestEnvOr(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SET": " https://x.example ", "BLANK": "  "}
	for _, tc := range []struct{ name, want string }{
		{"SET", "https://x.example"},
		{"BLANK", "https://default.example"},
		{"UNSET", "https://default.example"},
	} {
		if got := EnvOr(func(k string) string { return env[k] }, tc.name, "https://default.example"); got != tc.want {
			t.Errorf("EnvOr(%s) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// An answer that quotes the key loses it from every part a caller may
// show: code, message and cause.
func TestScrubAnswer(t *testing.T) {
	t.Parallel()
	const key = "k3y/with space"
	err := ScrubAnswer(&Error{Provider: "p", Code: "c " + key, Message: "m " + url.QueryEscape(key),
		Err: errors.New("cause " + key)}, key)
	pe, _ := AsError(err)
	for _, s := range []string{pe.Code, pe.Message, pe.Err.Error(), err.Error()} {
		if strings.Contains(s, "k3y") {
			t.Errorf("%q still holds the key", s)
		}
	}
	plain := errors.New("not ours")
	if ScrubAnswer(plain, key) != plain {
		t.Error("an error that is not a *Error should come back as it was")
	}
}

func TestDecodeObject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{` {"a":1}`, true},
		{`[1]`, false},
		{`{"a":`, false},
		{``, false},
	} {
		var v map[string]int
		err := DecodeObject("p", []byte(tc.body), &v)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.body, err, tc.ok)
		}
		if err != nil && ClassOf(err) != Retryable {
			t.Errorf("%q: class %v, want retryable (a bad body)", tc.body, ClassOf(err))
		}
	}
}
