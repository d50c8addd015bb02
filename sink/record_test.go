package sink

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func str(s string) *string { return &s }
func boolp(b bool) *bool   { return &b }

// nasty strings: every class of character the encoder treats specially.
var nasty = []string{
	"",
	"plain ascii",
	`quote " and backslash \ and slash /`,
	"controls \x00\x01\x07\b\f\n\r\t\x1b\x1f end",
	"del \x7f",
	"html <a href=\"x\">&amp;</a>",
	"line sep \u2028 para sep \u2029",
	"non-ascii: Ünïcödé 日本語 🎉 \U0010FFFF",
	"invalid utf-8: \xff\xfe \xc3 \xe2\x82 \xed\xa0\x80 end",
	"\ufffd literal replacement char",
	strings.Repeat("long ", 2000),
}

// TestEncodePageRoundTrip encodes records, checks each line is valid JSON
// on a line of its own with the documented keys in order, and decodes them
// back field for field.
func TestEncodePageRoundTrip(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))
	tests := []struct {
		name    string
		rec     Record
		want    Record // after a round trip
		keys    []string
		rawWant string
	}{
		{
			name: "backlink all set",
			rec: Record{JobID: "01J", Provider: "dataforseo", Endpoint: "backlinks", Domain: "example.com", Page: 1, FetchedAt: t0, Kind: "backlink",
				SourceURL: str("https://a.example/x?y=1&z=2"), TargetURL: str("https://example.com/"), Anchor: str("click \"here\""), Nofollow: boolp(true), SourceTitle: str("Title"),
				Raw: json.RawMessage(`{"a": 1,
  "b": [1, 2, {"c": "d e"}],
	"t": "tab\tinside"}`)},
			keys:    []string{"job_id", "provider", "endpoint", "domain", "page", "fetched_at", "kind", "source_url", "target_url", "anchor", "nofollow", "source_title", "raw"},
			rawWant: `{"a":1,"b":[1,2,{"c":"d e"}],"t":"tab\tinside"}`,
		},
		{
			name: "a refresh's lost row carries its change",
			rec: Record{JobID: "r", Provider: "dataforseo", Endpoint: "backlinks", Domain: "example.com", Page: 2, FetchedAt: t0, Kind: "backlink",
				SourceURL: str("https://a.example/"), TargetURL: str("https://example.com/"), Change: "lost", Raw: json.RawMessage(`{"is_lost":true}`)},
			keys:    []string{"job_id", "provider", "endpoint", "domain", "page", "fetched_at", "kind", "source_url", "target_url", "anchor", "nofollow", "source_title", "change", "raw"},
			rawWant: `{"is_lost":true}`,
		},
		{
			name: "backlink nils are null",
			rec:  Record{JobID: "j", Provider: "xovi", Endpoint: "backlinks", Domain: "d.example", Page: 7, FetchedAt: t0, Kind: "backlink", Nofollow: boolp(false), Raw: json.RawMessage(`[]`)},
			keys: []string{"job_id", "provider", "endpoint", "domain", "page", "fetched_at", "kind", "source_url", "target_url", "anchor", "nofollow", "source_title", "raw"},
		},
		{
			name: "summary has raw only",
			rec: Record{JobID: "j", Provider: "dataforseo", Endpoint: "summary", Domain: "d.example", Page: 1, FetchedAt: t0, Kind: "summary",
				SourceURL: str("ignored"), Nofollow: boolp(true), Raw: json.RawMessage(` { "total" : 12 } `)},
			want:    Record{JobID: "j", Provider: "dataforseo", Endpoint: "summary", Domain: "d.example", Page: 1, FetchedAt: t0, Kind: "summary"},
			keys:    []string{"job_id", "provider", "endpoint", "domain", "page", "fetched_at", "kind", "raw"},
			rawWant: `{"total":12}`,
		},
		{
			name:    "raw scalar and empty raw",
			rec:     Record{JobID: "j", Provider: "p", Endpoint: "e", Domain: "d", Page: 2, FetchedAt: t0, Kind: "referring_domain", Raw: json.RawMessage(`"x"`)},
			keys:    []string{"job_id", "provider", "endpoint", "domain", "page", "fetched_at", "kind", "raw"},
			rawWant: `"x"`,
		},
		{
			name:    "empty raw is null",
			rec:     Record{JobID: "j", Provider: "p", Endpoint: "e", Domain: "d", Page: 2, FetchedAt: t0, Kind: "referring_domain"},
			keys:    []string{"job_id", "provider", "endpoint", "domain", "page", "fetched_at", "kind", "raw"},
			rawWant: `null`,
		},
		{
			name:    "raw with invalid utf-8 and escaped newlines",
			rec:     Record{JobID: "j", Provider: "p", Endpoint: "e", Domain: "d", Page: 3, FetchedAt: t0, Kind: "backlink", Raw: json.RawMessage("{\"s\":\"a\xffb\\nc\u2028\"}")},
			keys:    []string{"job_id", "provider", "endpoint", "domain", "page", "fetched_at", "kind", "source_url", "target_url", "anchor", "nofollow", "source_title", "raw"},
			rawWant: "{\"s\":\"a\ufffdb\\nc\u2028\"}",
		},
	}
	for _, s := range nasty {
		tests = append(tests, struct {
			name    string
			rec     Record
			want    Record
			keys    []string
			rawWant string
		}{
			name: "nasty " + strings.ToValidUTF8(s[:min(len(s), 20)], "?"),
			rec: Record{JobID: s, Provider: s, Endpoint: s, Domain: s, Page: 99999, FetchedAt: t0, Kind: "backlink",
				SourceURL: str(s), TargetURL: str(s), Anchor: str(s), Nofollow: boolp(true), SourceTitle: str(s), Raw: json.RawMessage(`{}`)},
			keys: []string{"job_id", "provider", "endpoint", "domain", "page", "fetched_at", "kind", "source_url", "target_url", "anchor", "nofollow", "source_title", "raw"},
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := EncodePage([]Record{tt.rec, tt.rec})
			if err != nil {
				t.Fatal(err)
			}
			lines := gunzipLines(t, body)
			if len(lines) != 2 {
				t.Fatalf("%d lines, want 2", len(lines))
			}
			line := lines[0]
			if !json.Valid([]byte(line)) || !utf8.ValidString(line) {
				t.Fatalf("line is not valid JSON/UTF-8: %q", line)
			}
			if strings.ContainsAny(line, "\n\r") {
				t.Fatalf("line holds a newline: %q", line)
			}
			if got := topKeys(t, line); !reflect.DeepEqual(got, tt.keys) {
				t.Errorf("keys %v, want %v", got, tt.keys)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatal(err)
			}
			if got, want := string(m["fetched_at"]), `"`+tt.rec.FetchedAt.UTC().Format(time.RFC3339Nano)+`"`; got != want {
				t.Errorf("fetched_at %s, want %s", got, want)
			}
			if tt.rawWant != "" && string(m["raw"]) != tt.rawWant {
				t.Errorf("raw %s, want %s", m["raw"], tt.rawWant)
			}
			// Strings decode to what encoding/json makes of them.
			for _, k := range []string{"job_id", "source_url", "anchor"} {
				if _, ok := m[k]; !ok {
					continue
				}
				var got string
				json.Unmarshal(m[k], &got)
				want := viaEncodingJSON(t, fieldString(tt.rec, k))
				if got != want {
					t.Errorf("%s decodes to %q, encoding/json gives %q", k, got, want)
				}
			}
			if strings.Contains(fieldString(tt.rec, "job_id"), "\u2028") && !strings.Contains(line, `\u2028`) {
				t.Errorf("U+2028 not escaped: %q", line)
			}

			recs, err := DecodePage(body)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want.JobID == "" {
				want = tt.rec
				want.JobID = viaEncodingJSON(t, want.JobID)
				want.Provider, want.Endpoint, want.Domain = viaEncodingJSON(t, want.Provider), viaEncodingJSON(t, want.Endpoint), viaEncodingJSON(t, want.Domain)
				for _, p := range []**string{&want.SourceURL, &want.TargetURL, &want.Anchor, &want.SourceTitle} {
					if *p != nil {
						*p = str(viaEncodingJSON(t, **p))
					}
				}
			}
			want.Raw = m["raw"]
			got := recs[0]
			if !got.FetchedAt.Equal(want.FetchedAt) {
				t.Errorf("fetched_at %v, want %v", got.FetchedAt, want.FetchedAt)
			}
			got.FetchedAt, want.FetchedAt = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func fieldString(r Record, key string) string {
	switch key {
	case "job_id":
		return r.JobID
	case "source_url":
		if r.SourceURL != nil {
			return *r.SourceURL
		}
	case "anchor":
		if r.Anchor != nil {
			return *r.Anchor
		}
	}
	return ""
}

// viaEncodingJSON is s after a trip through encoding/json.
func viaEncodingJSON(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	inputs := append([]string{}, nasty...)
	for b := 0; b < 256; b++ {
		inputs = append(inputs, string([]byte{'a', byte(b), 'z'}))
	}
	for _, s := range inputs {
		checkAppendString(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range nasty {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkAppendString(t, s) })
}

func checkAppendString(t *testing.T, s string) {
	t.Helper()
	enc := appendString(nil, s)
	if !json.Valid(enc) || !utf8.Valid(enc) || bytes.ContainsAny(enc, "\n\r\u2028\u2029") {
		t.Fatalf("appendString(%q) = %q: not a valid single-line JSON string", s, enc)
	}
	var got string
	if err := json.Unmarshal(enc, &got); err != nil {
		t.Fatal(err)
	}
	if want := viaEncodingJSON(t, s); got != want {
		t.Fatalf("appendString(%q) decodes to %q, encoding/json gives %q", s, got, want)
	}
}

func TestEncodePageErrors(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{`{`, `{"a":1}{"b":2}`, `nul`, "{\"a\":\"x\ny\"}", `{'a':1}`, `[1,]`} {
		_, err := EncodePage([]Record{{Kind: "backlink", Raw: json.RawMessage(`{}`)}, {Kind: "backlink", Raw: json.RawMessage(raw)}})
		if err == nil || !strings.Contains(err.Error(), "record 1") {
			t.Errorf("raw %q: err %v, want an error naming record 1", raw, err)
		}
	}
	// The pool must not keep state from a failed page.
	body, err := EncodePage([]Record{{JobID: "ok", Kind: "x", Raw: json.RawMessage(`1`)}})
	if err != nil {
		t.Fatal(err)
	}
	if lines := gunzipLines(t, body); len(lines) != 1 || !strings.HasPrefix(lines[0], `{"job_id":"ok"`) {
		t.Errorf("after a failed page: %q", lines)
	}
}

func TestEncodePageEmpty(t *testing.T) {
	t.Parallel()
	body, err := EncodePage(nil)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := DecodePage(body)
	if err != nil || len(recs) != 0 {
		t.Fatalf("%v %v", recs, err)
	}
}

func TestEncodePageConcurrent(t *testing.T) {
	t.Parallel()
	recs := benchRecords(200)
	want, err := EncodePage(recs)
	if err != nil {
		t.Fatal(err)
	}
	wantLines := gunzipLines(t, want)
	done := make(chan error)
	for range 8 {
		go func() {
			for range 20 {
				body, err := EncodePage(recs)
				if err == nil && !reflect.DeepEqual(gunzipLines(t, body), wantLines) {
					err = io.ErrUnexpectedEOF
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestDecodePageErrors(t *testing.T) {
	t.Parallel()
	gz := func(s string) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.Bytes()
	}
	for name, body := range map[string][]byte{
		"not gzip":     []byte("plain"),
		"bad json":     gz("{\n"),
		"no final nl":  gz(`{"job_id":"x"}`),
		"truncated gz": gz(`{"job_id":"x"}` + "\n")[:15],
	} {
		if _, err := DecodePage(body); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	tests := []struct{ got, want string }{
		{PageKey("dataforseo", "backlinks", "2026-03-04", "01JABC", "example.com", 1), "provider=dataforseo/endpoint=backlinks/dt=2026-03-04/job=01JABC/example.com.00001.ndjson.gz"},
		{PageKey("xovi", "summary", "2026-12-31", "j", "xn--bcher-kva.example", 123456), "provider=xovi/endpoint=summary/dt=2026-12-31/job=j/xn--bcher-kva.example.123456.ndjson.gz"},
		{ManifestKey("01JABC"), "jobs/01JABC/manifest.json"},
		{SuccessKey("01JABC"), "jobs/01JABC/_SUCCESS"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
		if err := checkKey(tt.got); err != nil {
			t.Errorf("%s: %v", tt.got, err)
		}
	}
}

func gunzipLines(t testing.TB, body []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("body does not end with a newline")
	}
	return strings.Split(string(b[:len(b)-1]), "\n")
}

// topKeys lists the keys of a JSON object in order of appearance.
func topKeys(t testing.TB, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %q", line)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
