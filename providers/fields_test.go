package providers

import (
	"encoding/json"
	"testing"
)

func TestJSONFieldReaders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw  string
		text string // "<nil>" for nil
		flag string // "<nil>", "true", "false"
		n    int
		nOK  bool
	}{
		{`"a b"`, "a b", "<nil>", 0, false},
		{` 42 `, "42", "<nil>", 42, true},
		{`"42"`, "42", "<nil>", 42, true},
		{`2396.0`, "2396.0", "<nil>", 2396, true},
		{`2.5`, "2.5", "<nil>", 0, false},
		{`1e16`, "1e16", "<nil>", 0, false},
		{`1`, "1", "true", 1, true},
		{`"0"`, "0", "false", 0, true},
		{`" TRUE "`, " TRUE ", "true", 0, false},
		{`false`, "<nil>", "false", 0, false},
		{`null`, "<nil>", "<nil>", 0, false},
		{``, "<nil>", "<nil>", 0, false},
		{`{"x":1}`, "<nil>", "<nil>", 0, false},
	} {
		raw := json.RawMessage(tc.raw)
		text, flag := "<nil>", "<nil>"
		if s := JSONText(raw); s != nil {
			text = *s
		}
		if b := JSONFlag(raw); b != nil {
			flag = map[bool]string{true: "true", false: "false"}[*b]
		}
		n, ok := JSONInt(raw)
		if text != tc.text || flag != tc.flag || n != tc.n || ok != tc.nOK {
			t.Errorf("%s: text %q flag %s int %d,%v; want %q %s %d,%v", tc.raw, text, flag, n, ok, tc.text, tc.flag, tc.n, tc.nOK)
		}
	}
}
