package sink

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
)

// KindBacklink is the kind of rows that carry the backlink columns.
const KindBacklink = "backlink"

// Record is one output row: one line of a data object.
type Record struct {
	JobID     string    `json:"job_id"`
	Provider  string    `json:"provider"`
	Endpoint  string    `json:"endpoint"`
	Domain    string    `json:"domain"`
	Page      int       `json:"page"`
	FetchedAt time.Time `json:"fetched_at"`
	Kind      string    `json:"kind"`
	// Backlink columns: written for kind "backlink" only, null where the
	// provider has no such field.
	SourceURL   *string `json:"source_url,omitempty"`
	TargetURL   *string `json:"target_url,omitempty"`
	Anchor      *string `json:"anchor,omitempty"`
	Nofollow    *bool   `json:"nofollow,omitempty"`
	SourceTitle *string `json:"source_title,omitempty"`
	// Change is set on a refresh's delta rows: "new" (live now, not in
	// the base job) or "lost" (in the base job, lost since); "" otherwise.
	Change string `json:"change,omitempty"`
	// Raw is the provider's item verbatim (compacted onto one line).
	Raw json.RawMessage `json:"raw"`
}

// gzipLevel: klauspost's default level is several times faster than
// compress/gzip's default at a similar size (the benchmark reports both).
const gzipLevel = gzip.DefaultCompression

// encoders reuse the line buffer and the gzip writer (whose compressor
// state is several hundred KB) across pages.
var encoders = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzipLevel)
	return &encoder{zw: zw}
}}

type encoder struct {
	line []byte       // one record, then handed to zw
	out  bytes.Buffer // the compressed page
	zw   *gzip.Writer
}

// EncodePage returns the gzip NDJSON body of a page: one JSON object per
// record and line, with the keys job_id, provider, endpoint, domain, page,
// fetched_at (RFC 3339, UTC, nanoseconds), kind, then for kind "backlink"
// source_url, target_url, anchor, nofollow, source_title (null when nil),
// then change when set (a refresh's delta rows), and last raw: the provider's item, compacted so it holds no newline
// (null when empty). Invalid raw JSON is an error; invalid UTF-8 in raw
// strings becomes U+FFFD, as encoding/json would read it anyway.
// The body is freshly allocated and owned by the caller.
func EncodePage(recs []Record) ([]byte, error) {
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.out.Reset()
	e.zw.Reset(&e.out)
	var (
		lastTime time.Time
		stamp    []byte // lastTime formatted: rows of a page usually share it
	)
	for i := range recs {
		r := &recs[i]
		if stamp == nil || !r.FetchedAt.Equal(lastTime) {
			lastTime = r.FetchedAt
			stamp = r.FetchedAt.UTC().AppendFormat(stamp[:0], time.RFC3339Nano)
		}
		var err error
		e.line, err = appendRecord(e.line[:0], r, stamp)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if _, err := e.zw.Write(e.line); err != nil {
			return nil, err
		}
	}
	if err := e.zw.Close(); err != nil {
		return nil, err
	}
	body := bytes.Clone(e.out.Bytes())
	// Do not pin a rare huge row or page in the pool.
	if cap(e.line) > 1<<20 {
		e.line = nil
	}
	if e.out.Cap() > 16<<20 {
		e.out = bytes.Buffer{}
	}
	return body, nil
}

// appendRecord appends r as one JSON line. The key order is fixed; see EncodePage.
func appendRecord(dst []byte, r *Record, stamp []byte) ([]byte, error) {
	dst = append(dst, `{"job_id":`...)
	dst = appendString(dst, r.JobID)
	dst = append(dst, `,"provider":`...)
	dst = appendString(dst, r.Provider)
	dst = append(dst, `,"endpoint":`...)
	dst = appendString(dst, r.Endpoint)
	dst = append(dst, `,"domain":`...)
	dst = appendString(dst, r.Domain)
	dst = append(dst, `,"page":`...)
	dst = strconv.AppendInt(dst, int64(r.Page), 10)
	dst = append(dst, `,"fetched_at":"`...)
	dst = append(dst, stamp...)
	dst = append(dst, `","kind":`...)
	dst = appendString(dst, r.Kind)
	if r.Kind == KindBacklink {
		dst = append(dst, `,"source_url":`...)
		dst = appendStringPtr(dst, r.SourceURL)
		dst = append(dst, `,"target_url":`...)
		dst = appendStringPtr(dst, r.TargetURL)
		dst = append(dst, `,"anchor":`...)
		dst = appendStringPtr(dst, r.Anchor)
		dst = append(dst, `,"nofollow":`...)
		dst = appendBoolPtr(dst, r.Nofollow)
		dst = append(dst, `,"source_title":`...)
		dst = appendStringPtr(dst, r.SourceTitle)
	}
	if r.Change != "" {
		dst = append(dst, `,"change":`...)
		dst = appendString(dst, r.Change)
	}
	dst = append(dst, `,"raw":`...)
	var err error
	if dst, err = appendRaw(dst, r.Raw); err != nil {
		return dst, err
	}
	return append(dst, '}', '\n'), nil
}

// appendRaw validates raw and appends it compacted (no insignificant
// whitespace, hence no newline: inside JSON strings newlines are escaped).
func appendRaw(dst []byte, raw json.RawMessage) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return append(dst, "null"...), nil
	}
	if !utf8.Valid(raw) {
		// Outside strings JSON is ASCII, so invalid bytes can only sit in
		// strings, where U+FFFD keeps the document valid.
		raw = bytes.ToValidUTF8(raw, []byte("\ufffd"))
	}
	dst, err := appendCompact(dst, raw)
	if err != nil {
		return dst, fmt.Errorf("raw item is not valid JSON: %w", err)
	}
	return dst, nil
}

// DecodePage reads a body written by EncodePage (for tests and tools).
func DecodePage(body []byte) ([]Record, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("page is not gzip: %w", err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 64<<10)
	var recs []Record
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				return recs, fmt.Errorf("line %d: not terminated by a newline", n)
			}
			var r Record
			if err := json.Unmarshal(line, &r); err != nil {
				return recs, fmt.Errorf("line %d: %w", n, err)
			}
			recs = append(recs, r)
		}
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return recs, fmt.Errorf("reading page: %w", err)
		}
	}
}
