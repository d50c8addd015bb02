package domains

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	xunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// MaxLine is the longest line Read looks at, in bytes (a URL with a long
// query fits). A longer line is rejected as ErrLineTooLong and the rest of it
// is discarded without being held in memory.
const MaxLine = 8 << 10

// PreviewBytes is how much of a rejected line Reject.Input keeps.
const PreviewBytes = 120

// Reject is an input line that was not accepted.
type Reject struct {
	Line   int    `json:"line"`   // 1-based
	Input  string `json:"input"`  // printable preview: ≤ PreviewBytes bytes, then "…" when cut
	Reason string `json:"reason"` // one of the Err* texts
}

// Stats counts the lines of a list. Lines = Valid + Duplicates + Rejected + Skipped.
type Stats struct {
	Lines      int `json:"lines"`
	Valid      int `json:"valid"`      // distinct domains passed to fn
	Duplicates int `json:"duplicates"` // valid lines whose domain was seen before
	Rejected   int `json:"rejected"`
	Skipped    int `json:"skipped"` // blank lines and # comments
}

var bom = []byte("\xef\xbb\xbf")

// Read streams a domain list: one entry per line (LF or CRLF), surrounding
// white space ignored, blank lines and lines starting with '#' skipped, and
// " #" starts a comment at the end of a line. A UTF-8 byte order mark is
// dropped (at the start of any line: enqueue concatenates files); a list
// starting with a UTF-16 byte order mark (Windows "Unicode", PowerShell's
// `>`) is decoded.
//
// fn is called with each new valid domain in input order, reject with each
// rejected line; either may be nil. Duplicates after normalisation count
// once. An error from fn stops Read and is returned as is; an error reading
// r is returned wrapped. The Stats returned count the lines read so far.
//
// Memory is constant apart from the duplicate set, which holds 8 bytes (an
// xxhash of the domain) per distinct domain. With 64-bit hashes two distinct
// domains collide with probability about n²/2⁶⁵ (3·10⁻⁸ for a million), in
// which case the second is counted as a duplicate.
func Read(r io.Reader, fn func(lineNo int, domain string) error, reject func(Reject)) (Stats, error) {
	br := bufio.NewReaderSize(r, MaxLine+2) // room for MaxLine bytes and "\r\n"
	if p, _ := br.Peek(2); len(p) == 2 && (p[0] == 0xff && p[1] == 0xfe || p[0] == 0xfe && p[1] == 0xff) {
		dec := xunicode.UTF16(xunicode.LittleEndian, xunicode.ExpectBOM).NewDecoder()
		br = bufio.NewReaderSize(transform.NewReader(br, dec), MaxLine+2)
	}
	var st Stats
	seen := make(map[uint64]struct{})
	rejectLine := func(n int, in []byte, why error, cut bool) {
		st.Rejected++
		if reject != nil {
			reject(Reject{Line: n, Input: preview(in, cut), Reason: why.Error()})
		}
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) || len(line) == 0 && err == io.EOF {
			if err == io.EOF {
				return st, nil
			}
			return st, fmt.Errorf("reading the domain list after line %d: %w", st.Lines, err)
		}
		st.Lines++
		n := st.Lines
		if errors.Is(err, bufio.ErrBufferFull) {
			rejectLine(n, line, ErrLineTooLong, true) // preview before the buffer is reused
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err == io.EOF {
				return st, nil
			}
			if err != nil {
				return st, fmt.Errorf("reading the domain list at line %d: %w", n, err)
			}
			continue
		}
		atEOF := err == io.EOF
		line = bytes.TrimSuffix(line, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) > MaxLine {
			rejectLine(n, line, ErrLineTooLong, true)
		} else if err := readLine(n, line, seen, &st, fn, rejectLine); err != nil {
			return st, err
		}
		if atEOF {
			return st, nil
		}
	}
}

// readLine handles one line without its terminator.
func readLine(n int, line []byte, seen map[uint64]struct{}, st *Stats, fn func(int, string) error,
	rejectLine func(int, []byte, error, bool)) error {
	line = bytes.TrimSpace(bytes.TrimPrefix(line, bom))
	if len(line) == 0 || line[0] == '#' {
		st.Skipped++
		return nil
	}
	entry := line
	if i := bytes.IndexByte(entry, '#'); i > 0 {
		entry = stripComment(entry, i)
	}
	d, err := Normalize(string(entry))
	if err != nil {
		rejectLine(n, line, err, false)
		return nil
	}
	h := xxhash.Sum64String(d)
	if _, dup := seen[h]; dup {
		st.Duplicates++
		return nil
	}
	seen[h] = struct{}{}
	st.Valid++
	if fn != nil {
		return fn(n, d)
	}
	return nil
}

// stripComment cuts a line at the first '#' preceded by white space ("a.com
// # mine"); a '#' inside a URL (a fragment) is not a comment. i is the index
// of the first '#'.
func stripComment(line []byte, i int) []byte {
	for i > 0 {
		if c := line[i-1]; c == ' ' || c == '\t' {
			return bytes.TrimRight(line[:i], " \t")
		}
		j := bytes.IndexByte(line[i+1:], '#')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return line
}

// preview makes a rejected line safe to print, log and store: at most
// PreviewBytes bytes, control characters shown as their Unicode control
// pictures (␀, ␉), invalid UTF-8 and other invisible or bidi-control runes
// as U+FFFD. cut says the line was already truncated.
func preview(b []byte, cut bool) string {
	var sb strings.Builder
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			r = utf8.RuneError
		case r < 0x20:
			r += 0x2400
		case r == 0x7f:
			r = 0x2421
		case !unicode.IsGraphic(r):
			r = utf8.RuneError
		}
		if sb.Len()+utf8.RuneLen(r) > PreviewBytes {
			cut = true
			break
		}
		sb.WriteRune(r)
		i += size
	}
	if cut {
		sb.WriteString("…")
	}
	return sb.String()
}
