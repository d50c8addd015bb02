package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// TestAppendIsEncodingJSON: the output reads back as what encoding/json
// writes without HTML escaping (invalid bytes become U+FFFD), and is
// valid UTF-8.
func TestAppendIsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `q"b\s`, "\n\r\t\b\f\x00\x1f", "<a&b>", "é€😀", "\u2028\u2029", "bad\xffutf8\xc3", "x\u007fy"} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		got := Append(nil, s)
		var g, w string
		if err := json.Unmarshal(got, &g); err != nil || json.Unmarshal(want.Bytes(), &w) != nil || g != w || !utf8.Valid(got) {
			t.Errorf("Append(%q) = %s (%v), want %s", s, got, err, want.Bytes())
		}
		if got, inner := string(AppendEscaped([]byte("x"), s)), string(Append(nil, s)); got != "x"+inner[1:len(inner)-1] {
			t.Errorf("AppendEscaped(%q) = %s", s, got)
		}
	}
}
