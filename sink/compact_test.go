package sink

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var compactCases = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1`, `-1.5e+10`, `1E-2`, `12.0`, `true`, `false`, `null`,
	` { "a" : [ 1 , 2 , { "b" : null } ] , "c" : "x y\tz" } `,
	"{\n\t\"a\": \"line\\nbreak\",\r\n\t\"u\": \"\\u00e9\\uD83D\\uDE00\",\n\t\"esc\": \"\\\"\\\\\\/\\b\\f\\n\\r\\t\"\n}\n",
	`{"k":"ünïcödé 🎉 \u2028"}`, `[[[[[]]]]]`, `{"a":{"b":{"c":[1,[2,[3]]]}}}`,
	// invalid
	``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{'a':1}`, `01`, `1.`, `.5`, `+1`, `-`, `1e`, `1e+`,
	`tru`, `nul`, `nulll`, `"abc`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"a\nb\"", "\"\x01\"", `{"a":1}{"b":2}`, `[1 2]`,
	`{"a":1 "b":2}`, `"\`, `[`, `{"a"`, `{"a":`, `NaN`, `Infinity`, `-Infinity`, `[1,,2]`,
}

func TestAppendCompactMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	cases := append([]string{}, compactCases...)
	cases = append(cases, strings.Repeat("[", maxDepth)+strings.Repeat("]", maxDepth), strings.Repeat("[", maxDepth+1)+strings.Repeat("]", maxDepth+1))
	for _, raw := range benchRecords(20) {
		cases = append(cases, string(raw.Raw))
		var indented bytes.Buffer
		json.Indent(&indented, raw.Raw, "", "  ")
		cases = append(cases, indented.String())
	}
	for _, c := range cases {
		checkCompact(t, []byte(c))
	}
}

func FuzzAppendCompact(f *testing.F) {
	for _, c := range compactCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if !validUTF8(src) {
			return // EncodePage makes raw valid UTF-8 before compacting
		}
		checkCompact(t, src)
	})
}

func checkCompact(t *testing.T, src []byte) {
	t.Helper()
	prefix := []byte("keep:")
	got, err := appendCompact(append([]byte{}, prefix...), src)
	var want bytes.Buffer
	want.Write(prefix)
	wantErr := json.Compact(&want, src)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%.80q: appendCompact err %v, json.Compact err %v", src, err, wantErr)
	}
	if err != nil {
		if !bytes.Equal(got, prefix) {
			t.Fatalf("%.80q: on error dst = %q, want it unchanged", src, got)
		}
		return
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("%.80q:\n got %q\nwant %q", src, got, want.Bytes())
	}
}

func validUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "\ufffd") == string(b) }
