package domains

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf16"
	"unicode/utf8"
)

type got struct {
	domains []string // "line:domain"
	rejects []string // "line:reason"
	inputs  []string
}

func readAll(t testing.TB, r io.Reader) (got, Stats, error) {
	t.Helper()
	var g got
	st, err := Read(r, func(n int, d string) error {
		g.domains = append(g.domains, fmt.Sprintf("%d:%s", n, d))
		return nil
	}, func(rj Reject) {
		g.rejects = append(g.rejects, fmt.Sprintf("%d:%s", rj.Line, rj.Reason))
		g.inputs = append(g.inputs, rj.Input)
	})
	return g, st, err
}

func TestRead(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		domains []string
		rejects []string
		st      Stats
	}{
		{name: "empty", in: "", st: Stats{}},
		{name: "one line, no newline", in: "example.com", domains: []string{"1:example.com"}, st: Stats{Lines: 1, Valid: 1}},
		{name: "blank lines and comments",
			in:      "# a list\n\n   \n\t# indented comment\nexample.com # mine\nb.example.com\t#x\nhttps://c.example.com/#frag\n#\n",
			domains: []string{"5:example.com", "6:b.example.com", "7:c.example.com"},
			st:      Stats{Lines: 8, Valid: 3, Skipped: 5}},
		{name: "duplicates count once",
			in:      "Example.com\nwww.example.com\nhttps://example.com/x\nexample.com.\nEXAMPLE.COM:443\nother.com\n",
			domains: []string{"1:example.com", "6:other.com"},
			st:      Stats{Lines: 6, Valid: 2, Duplicates: 4}},
		{name: "CRLF and trailing spaces",
			in:      "a.com\r\n  b.com  \r\n\r\nc.com \t\r\n",
			domains: []string{"1:a.com", "2:b.com", "4:c.com"},
			st:      Stats{Lines: 4, Valid: 3, Skipped: 1}},
		{name: "BOM", in: "\xef\xbb\xbfexample.com\r\nb.com", domains: []string{"1:example.com", "2:b.com"}, st: Stats{Lines: 2, Valid: 2}},
		{name: "BOM then comment", in: "\xef\xbb\xbf# list\nb.com\n", domains: []string{"2:b.com"}, st: Stats{Lines: 2, Valid: 1, Skipped: 1}},
		{name: "BOM of a second concatenated file", in: "a.com\n\xef\xbb\xbfb.com\n", domains: []string{"1:a.com", "2:b.com"}, st: Stats{Lines: 2, Valid: 2}},
		{name: "rejects do not stop the list",
			in:      "co.uk\na.com\n192.168.0.1\na.com&apikey=x\nfoo\x00bar.com\nex\xffample.com\nb.com\n",
			domains: []string{"2:a.com", "7:b.com"},
			rejects: []string{"1:public suffix only", "3:IP address", "4:invalid character", "5:binary data", "6:invalid UTF-8"},
			st:      Stats{Lines: 7, Valid: 2, Rejected: 5}},
		{name: "lone CR is not a line break", in: "a.com\rb.com\n", rejects: []string{"1:invalid character"}, st: Stats{Lines: 1, Rejected: 1}},
		{name: "only newlines", in: "\n\n\n", st: Stats{Lines: 3, Skipped: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mk := range []struct {
				name string
				r    func(string) io.Reader
			}{
				{"plain", func(s string) io.Reader { return strings.NewReader(s) }},
				{"one byte", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
				{"data+EOF", func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) }},
			} {
				g, st, err := readAll(t, mk.r(tt.in))
				if err != nil {
					t.Fatalf("%s: %v", mk.name, err)
				}
				if st != tt.st || fmt.Sprint(g.domains) != fmt.Sprint(tt.domains) || fmt.Sprint(g.rejects) != fmt.Sprint(tt.rejects) {
					t.Errorf("%s: got %+v %q %q\nwant %+v %q %q", mk.name, st, g.domains, g.rejects, tt.st, tt.domains, tt.rejects)
				}
			}
		})
	}
}

// TestReadE2EList feeds the list tests/e2e_test.go submits and expects its
// counts: 200 domains, 20 rejected, one duplicate.
func TestReadE2EList(t *testing.T) {
	var b strings.Builder
	b.WriteString("# e2e list\n\n")
	valid := []string{"rows-0.example", "rows-1.example", "rows-1000.example", "rows-1001.example", "rows-25000.example"}
	for i := 0; len(valid) < 200; i++ {
		valid = append(valid, fmt.Sprintf("site-%03d.example.com", i))
	}
	bad := []string{"not a domain", "co.uk", "com", "192.168.0.1", "http://[::1]/x", "a.com&apikey=x", "../etc/passwd",
		"-bad-.com", "exa mple.com", strings.Repeat("a", 64) + ".com", "foo", "http://", "@@@", "example..com",
		"xn--.com", "10.0.0.1:8080", "a_b!.com", "*.example.com", "ex\tample.com", "%%.com"}
	for i, d := range valid {
		switch i % 3 {
		case 0:
			b.WriteString(d + "\n")
		case 1:
			b.WriteString("https://www." + strings.ToUpper(d) + "/path?q=1\r\n")
		default:
			b.WriteString(d + ".\n")
		}
		if i < len(bad) {
			b.WriteString(bad[i] + "\n")
		}
	}
	b.WriteString("rows-1.example\n")
	g, st, err := readAll(t, strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if st.Valid != 200 || st.Rejected != 20 || st.Duplicates != 1 || st.Skipped != 2 || st.Lines != 223 {
		t.Fatalf("stats %+v; rejects %q", st, g.rejects)
	}
	for i, d := range g.domains {
		if _, after, _ := strings.Cut(d, ":"); after != valid[i] {
			t.Fatalf("domain %d = %s, want %s", i, d, valid[i])
		}
	}
}

func TestReadLineLength(t *testing.T) {
	url := func(n int) string { // a valid URL of exactly n bytes
		return "https://example.com/" + strings.Repeat("p", n-len("https://example.com/"))
	}
	in := url(MaxLine) + "\r\n" + url(MaxLine+1) + "\n" + url(MaxLine+2) + "\r\n" + url(3*MaxLine) + "\nb.com\n" + url(MaxLine)
	g, st, err := readAll(t, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Lines: 6, Valid: 2, Duplicates: 1, Rejected: 3}
	if st != want || fmt.Sprint(g.rejects) != "[2:line too long 3:line too long 4:line too long]" ||
		fmt.Sprint(g.domains) != "[1:example.com 5:b.com]" {
		t.Fatalf("got %+v %q %q", st, g.domains, g.rejects)
	}
	for _, in := range g.inputs {
		if in != "https://example.com/"+strings.Repeat("p", PreviewBytes-20)+"…" {
			t.Errorf("preview %q", in)
		}
	}
}

// endless yields n bytes of fill, then tail, without holding them.
type endless struct {
	fill byte
	n    int
	tail string
}

func (e *endless) Read(p []byte) (int, error) {
	if e.n > 0 {
		k := min(len(p), e.n)
		for i := range p[:k] {
			p[i] = e.fill
		}
		e.n -= k
		return k, nil
	}
	if e.tail == "" {
		return 0, io.EOF
	}
	k := copy(p, e.tail)
	e.tail = e.tail[k:]
	return k, nil
}

// TestReadHugeLineStreams: a 10 MB line (or a file without newlines) is
// rejected after MaxLine bytes and never held: Read allocates far less than
// the line.
func TestReadHugeLineStreams(t *testing.T) {
	const size = 10 << 20
	for _, fill := range []byte{'a', 0, 0xff} {
		r := io.MultiReader(strings.NewReader("a.com\n"), &endless{fill: fill, n: size, tail: "\nb.com\n"})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		g, st, err := readAll(t, r)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if st != (Stats{Lines: 3, Valid: 2, Rejected: 1}) || fmt.Sprint(g.rejects) != "[2:line too long]" {
			t.Fatalf("fill %#x: %+v %q", fill, st, g.rejects)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 256<<10 {
			t.Errorf("fill %#x: Read allocated %d bytes for a %d-byte line", fill, n, size)
		}
		if !utf8.ValidString(g.inputs[0]) || !strings.HasSuffix(g.inputs[0], "…") || len(g.inputs[0]) > PreviewBytes+len("…") {
			t.Errorf("fill %#x: preview %q", fill, g.inputs[0])
		}
	}
}

// TestReadBinary: a binary file is rejected line by line, never accepted,
// and every preview is short printable UTF-8.
func TestReadBinary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	blob := make([]byte, 1<<20)
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	g, st, err := readAll(t, bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	if st.Valid != 0 || st.Lines != bytes.Count(blob, []byte{'\n'})+1 || st.Lines != st.Rejected+st.Skipped {
		t.Fatalf("stats %+v", st)
	}
	for _, in := range g.inputs {
		checkPreview(t, in)
	}
}

func checkPreview(t *testing.T, s string) {
	t.Helper()
	if !utf8.ValidString(s) || len(strings.TrimSuffix(s, "…")) > PreviewBytes {
		t.Fatalf("preview %q: invalid or too long", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' || r == '\ufeff' {
			t.Fatalf("preview %q holds %U", s, r)
		}
	}
}

func TestPreview(t *testing.T) {
	tests := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"a\x00b\tc\x7f", "a␀b␉c␡"},
		{"a\xffb", "a\ufffdb"},
		{"evil\u202eexe.com", "evil\ufffdexe.com"}, // bidi override: never reaches a terminal
		{"Bücher.de", "Bücher.de"},
		{strings.Repeat("x", 200), strings.Repeat("x", PreviewBytes) + "…"},
		{strings.Repeat("x", 119) + "ü", strings.Repeat("x", 119) + "…"}, // never cut inside a rune
	}
	for _, tt := range tests {
		if got := preview([]byte(tt.in), false); got != tt.want {
			t.Errorf("preview(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReadUTF16(t *testing.T) {
	text := "# Windows list\r\nBücher.de\r\nexample.com\r\nco.uk\r\n"
	u := utf16.Encode([]rune(text))
	le := []byte{0xff, 0xfe}
	be := []byte{0xfe, 0xff}
	for _, c := range u {
		le = append(le, byte(c), byte(c>>8))
		be = append(be, byte(c>>8), byte(c))
	}
	for name, in := range map[string][]byte{"LE": le, "BE": be} {
		g, st, err := readAll(t, bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if st != (Stats{Lines: 4, Valid: 2, Rejected: 1, Skipped: 1}) ||
			fmt.Sprint(g.domains) != "[2:xn--bcher-kva.de 3:example.com]" {
			t.Errorf("%s: %+v %q %q", name, st, g.domains, g.rejects)
		}
	}
}

func TestReadCallbackError(t *testing.T) {
	stop := errors.New("queue full")
	calls := 0
	st, err := Read(strings.NewReader("a.com\nb.com\nc.com\n"), func(n int, d string) error {
		calls++
		if d == "b.com" {
			return stop
		}
		return nil
	}, nil)
	if err != stop || calls != 2 || st != (Stats{Lines: 2, Valid: 2}) {
		t.Fatalf("Read = %+v, %v after %d calls", st, err, calls)
	}
}

func TestReadIOError(t *testing.T) {
	boom := errors.New("disk on fire")
	st, err := Read(io.MultiReader(strings.NewReader("a.com\nb.c"), iotest.ErrReader(boom)), nil, nil)
	if !errors.Is(err, boom) || st != (Stats{Lines: 1, Valid: 1}) {
		t.Fatalf("Read = %+v, %v", st, err)
	}
	// In the middle of a too-long line.
	_, err = Read(io.MultiReader(&endless{fill: 'a', n: 3 * MaxLine}, iotest.ErrReader(boom)), nil, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("Read = %v", err)
	}
}

func TestReadNilCallbacks(t *testing.T) {
	st, err := Read(strings.NewReader("a.com\nbad\na.com\n"), nil, nil)
	if err != nil || st != (Stats{Lines: 3, Valid: 1, Duplicates: 1, Rejected: 1}) {
		t.Fatalf("Read = %+v, %v", st, err)
	}
}

// lines generates n list lines on the fly, as users write them: about 10%
// duplicates, 2% junk, the rest distinct domains in assorted forms.
type lines struct {
	i, n int
	buf  []byte
}

func (l *lines) Read(p []byte) (int, error) {
	for len(l.buf) < len(p) && l.i < l.n {
		l.buf = appendLine(l.buf, l.i)
		l.i++
	}
	if len(l.buf) == 0 {
		return 0, io.EOF
	}
	k := copy(p, l.buf)
	l.buf = l.buf[:copy(l.buf, l.buf[k:])]
	return k, nil
}

func appendLine(b []byte, i int) []byte {
	switch {
	case i%50 == 7:
		return fmt.Appendf(b, "not a domain %d\n", i)
	case i%10 == 3:
		return fmt.Appendf(b, "site-%d.example.com\n", i/2) // a duplicate of an earlier line (or new)
	}
	switch i % 4 {
	case 0:
		return fmt.Appendf(b, "site-%d.example.com\n", i)
	case 1:
		return fmt.Appendf(b, "https://www.Site-%d.Example.com/path?q=%d\r\n", i, i)
	case 2:
		return fmt.Appendf(b, "shop%d.example.co.uk.\n", i)
	case 3:
		if i%8 == 3 {
			return fmt.Appendf(b, "Bücher-%d.de\n", i) // through IDNA
		}
	}
	return fmt.Appendf(b, "blog.site-%d.example.org\n", i)
}

// TestReadMillionLinesMemory: a million lines stream through a small heap;
// only the 8-byte hashes of distinct domains are kept.
func TestReadMillionLinesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1M lines")
	}
	const n = 1_000_000
	var peak uint64
	var ms runtime.MemStats
	calls := 0
	st, err := Read(&lines{n: n}, func(int, string) error {
		if calls++; calls%100_000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != n || st.Valid+st.Duplicates+st.Rejected+st.Skipped != n || st.Valid < n/2 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("%+v; peak heap in use %d MB", st, peak>>20)
	if peak > 100<<20 {
		t.Fatalf("heap in use reached %d MB", peak>>20)
	}
}

func FuzzRead(f *testing.F) {
	for _, s := range []string{"a.com\nb.com\n", "\xef\xbb\xbfa.com\r\n# c\n\nwww.a.com", "\xff\xfea\x00.\x00c\x00o\x00m\x00",
		"x\x00y\n\xff\n" + strings.Repeat("z", MaxLine+5) + "\nq.com #c"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		valid, rejected, last := 0, 0, 0
		st, err := Read(bytes.NewReader(in), func(n int, d string) error {
			valid++
			if n <= last {
				t.Fatalf("line %d after %d", n, last)
			}
			last = n
			if out, err := Normalize(d); out != d || err != nil {
				t.Fatalf("domain %q does not normalise to itself: %q, %v", d, out, err)
			}
			return nil
		}, func(r Reject) {
			rejected++
			if r.Line <= last {
				t.Fatalf("reject line %d after %d", r.Line, last)
			}
			last = r.Line
			checkPreview(t, r.Input)
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Valid+st.Duplicates+st.Rejected+st.Skipped != st.Lines || st.Valid != valid || st.Rejected != rejected {
			t.Fatalf("stats %+v, %d valid and %d rejected seen", st, valid, rejected)
		}
		if len(in) >= 2 && (in[0] == 0xff && in[1] == 0xfe || in[0] == 0xfe && in[1] == 0xff) {
			return // UTF-16: lines are counted after decoding
		}
		want := bytes.Count(in, []byte{'\n'})
		if len(in) > 0 && in[len(in)-1] != '\n' {
			want++
		}
		if st.Lines != want {
			t.Fatalf("%d lines, want %d", st.Lines, want)
		}
	})
}

func BenchmarkRead(b *testing.B) {
	const n = 1_000_000
	data := (&lines{}).all(n)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	valid := 0
	for b.Loop() {
		st, err := Read(bytes.NewReader(data), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		valid = st.Valid
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(valid)*float64(b.N)/b.Elapsed().Seconds(), "domains/s")
}

func (l *lines) all(n int) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		b = appendLine(b, i)
	}
	return b
}

func BenchmarkNormalize(b *testing.B) {
	for _, in := range []string{"example.com", "https://www.Example.com/path?q=1", "Bücher.de", "xn--bcher-kva.de", "not a domain"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Normalize(in)
			}
		})
	}
}
