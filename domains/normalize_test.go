package domains

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	name253 := strings.Repeat(long63+".", 3) + strings.Repeat("b", 61) // 4*64-3 = 253
	tests := []struct {
		in   string
		want string // "" when rejected
		err  error
	}{
		// URLs and their parts
		{"https://User:Pass@WWW.Example.COM:8080/path?q=1#f", "example.com", nil},
		{"http://example.com", "example.com", nil},
		{"HTTPS://EXAMPLE.COM/", "example.com", nil},
		{"https://www.example.com/path?q=1", "example.com", nil},
		{"//example.com/path", "example.com", nil},
		{"example.com/path/to?x=1#frag", "example.com", nil},
		{"example.com?q", "example.com", nil},
		{"example.com#top", "example.com", nil},
		{"example.com:443", "example.com", nil},
		{"example.com:", "example.com", nil},
		{"https://example.com:8443/x", "example.com", nil},
		{"user:pass@example.com", "example.com", nil},
		{"user@example.com", "example.com", nil},
		{"ftp://files.example.com/pub", "files.example.com", nil},
		{`a.com\@b.com`, "a.com", nil}, // backslash is a path separator, as in browsers
		{"http://a.com@b.com/", "b.com", nil},
		{"  example.com  ", "example.com", nil},
		{"\u00a0example.com\u3000", "example.com", nil},
		// case, dots, www
		{"Example.COM", "example.com", nil},
		{"example.com.", "example.com", nil},
		{"www.example.com", "example.com", nil},
		{"WWW.example.com", "example.com", nil},
		{"www.www.example.com", "example.com", nil},
		{"www.example.co.uk", "example.co.uk", nil},
		{"www2.example.com", "www2.example.com", nil},
		{"www.com", "www.com", nil},     // dropping www. would leave a public suffix
		{"www.co.uk", "www.co.uk", nil}, // likewise
		{"blog.example.com", "blog.example.com", nil},
		{"a.b.c.example.com", "a.b.c.example.com", nil},
		{"rows-25000.example", "rows-25000.example", nil},
		{"github.io", "github.io", nil}, // private PSL entry: a site of its own
		{"www.github.io", "github.io", nil},
		{"user.github.io", "user.github.io", nil},
		{"www.ck", "www.ck", nil}, // PSL exception to *.ck
		{"3com.com", "3com.com", nil},
		{"123.example.com", "123.example.com", nil},
		{"a-b.example.com", "a-b.example.com", nil},
		{long63 + ".com", long63 + ".com", nil},
		{name253, name253, nil},
		{name253 + ".", name253, nil},
		// international names
		{"Bücher.de", "xn--bcher-kva.de", nil},
		{"BÜCHER.DE", "xn--bcher-kva.de", nil},
		{"https://www.Bücher.de/x", "xn--bcher-kva.de", nil},
		{"xn--bcher-kva.de", "xn--bcher-kva.de", nil},
		{"XN--BCHER-KVA.DE", "xn--bcher-kva.de", nil},
		{"straße.de", "xn--strae-oqa.de", nil}, // non-transitional (IDNA2008)
		{"пример.рф", "xn--e1afmkfd.xn--p1ai", nil},
		{"www.пример.рф", "xn--e1afmkfd.xn--p1ai", nil},
		{"例え.テスト", "xn--r8jz45g.xn--zckzah", nil},
		{"ＥＸＡＭＰＬＥ．ＣＯＭ", "example.com", nil}, // full-width
		{"example。com", "example.com", nil}, // ideographic full stop
		{"example.com。", "example.com", nil},
		// rejected
		{"", "", ErrEmpty},
		{"   \t ", "", ErrEmpty},
		{"co.uk", "", ErrPublicSuffix},
		{"com", "", ErrPublicSuffix},
		{"COM.", "", ErrPublicSuffix},
		{"www.co.uk.", "www.co.uk", nil},
		{"foo.ck", "", ErrPublicSuffix}, // *.ck
		{"xn--p1ai", "", ErrPublicSuffix},
		{"https://co.uk/", "", ErrPublicSuffix},
		{"foo", "", ErrPublicSuffix}, // .foo is a gTLD
		{"localhost", "", ErrNoDot},
		{"http://localhost:8080/", "", ErrNoDot},
		{"localhost:8080", "", ErrNoDot},
		{"intranet", "", ErrNoDot},
		{"192.168.0.1", "", ErrIP},
		{"10.0.0.1:8080", "", ErrIP},
		{"http://10.0.0.1/", "", ErrIP},
		{"[::1]", "", ErrIP},
		{"http://[::1]/x", "", ErrIP},
		{"http://[::1]:80/", "", ErrIP},
		{"[fe80::1%25eth0]", "", ErrIP},
		{"::1", "", ErrIP},
		{"2001:db8::1", "", ErrIP},
		{"127.1", "", ErrIP},
		{"0x7f.0.0.1", "", ErrIP},
		{"2130706433", "", ErrIP},
		{"１２７.０.０.１", "", ErrIP},
		{"a.com&apikey=x", "", ErrInvalidChar},
		{"a.com;x", "", ErrInvalidChar},
		{"a.com,b.com", "", ErrInvalidChar},
		{"exa mple.com", "", ErrInvalidChar},
		{"not a domain", "", ErrInvalidChar},
		{"ex\tample.com", "", ErrInvalidChar},
		{"a_b!.com", "", ErrInvalidChar},
		{"a_b.com", "", ErrInvalidChar},
		{"*.example.com", "", ErrInvalidChar},
		{"%%.com", "", ErrInvalidChar},
		{"%65xample.com", "", ErrInvalidChar},
		{"[example.com]", "", ErrInvalidChar},
		{"[::1", "", ErrInvalidChar},
		{"a:b:c", "", ErrScheme},
		{"a.b:c:d", "", ErrInvalidChar},
		{"exa mple.cöm", "", ErrInvalidChar},
		{"example.com\r", "example.com", nil}, // trailing white space
		{"exa\rmple.com", "", ErrInvalidChar},
		{"exa\x7fmple.com", "", ErrInvalidChar},
		{"exa\x00mple.com", "", ErrBinary},
		{"https://example.com/\x00", "", ErrBinary},
		{"exa\xffmple.com", "", ErrInvalidUTF8},
		{"\xc3\x28.com", "", ErrInvalidUTF8},
		{"../etc/passwd", "", ErrEmptyLabel},
		{"example..com", "", ErrEmptyLabel},
		{".example.com", "", ErrEmptyLabel},
		{"example.com..", "", ErrEmptyLabel},
		{"-bad-.com", "", ErrHyphen},
		{"bad-.com", "", ErrHyphen},
		{"ab--cd.com", "", ErrHyphen},
		{"xn--.com", "", ErrHyphen},
		{strings.Repeat("a", 64) + ".com", "", ErrLabelTooLong},
		{"a." + strings.Repeat("a", 64) + ".com", "", ErrLabelTooLong},
		{strings.Repeat("ü", 60) + ".de", "", ErrLabelTooLong}, // too long once in punycode
		{name253 + "b", "", ErrNameTooLong},
		{strings.Repeat("a.", 127) + "com", "", ErrNameTooLong},
		{strings.Repeat("ü.", 600) + "de", "", ErrNameTooLong},
		{"xn--a.com", "", ErrIDN},
		{"〰.〰ℷ", "", ErrIDN},               // found by FuzzRead: ℷ maps to Hebrew ג, and the bidi rule then fails on the output
		{"xn--abc.com", "", ErrIDN},        // decodes to ASCII only
		{"xn--zz.bücher.de", "", ErrIDN},   // bad punycode next to a Unicode label
		{"ex\u200dample.com", "", ErrIDN},  // ZWJ outside its context
		{"exa\u202emple.com", "", ErrIDN},  // bidi override
		{"a\u0661\u06f1.com", "", ErrIDN},  // mixed Arabic digit sets
		{"\u2764.com", "xn--qei.com", nil}, // emoji-ish: allowed by UTS #46 lookup
		{"mailto:x@example.com", "", ErrScheme},
		{"MAILTO:x@example.com", "", ErrScheme},
		{"javascript:alert(1)", "", ErrScheme},
		{"data:text/html,x", "", ErrScheme},
		{"file:///etc/passwd", "", ErrScheme},
		{"tel:+1234", "", ErrScheme},
		{"gopher://example.com/", "", ErrScheme},
		{"http:example.com", "", ErrMalformedURL},
		{"https:/example.com", "", ErrMalformedURL},
		{"http://", "", ErrNoHost},
		{"https:///path", "", ErrNoHost},
		{"//", "", ErrNoHost},
		{"/path", "", ErrNoHost},
		{"?q=1", "", ErrNoHost},
		{"@@@", "", ErrNoHost},
		{"user@", "", ErrNoHost},
		{":80", "", ErrNoHost},
		{"http://./", "", ErrNoHost},
		{"example.com:abc", "", ErrPort},
		{"example.com:99999", "", ErrPort},
		{"example.com:-1", "", ErrPort},
		{"[::1]x", "", ErrPort},
		{"example.c0m", "", ErrTLD},
		{"example.123", "", ErrTLD},
		{"example.a-b", "", ErrTLD},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
			t.Errorf("Normalize(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
			continue
		}
		if err == nil {
			if again, err := Normalize(got); again != got || err != nil {
				t.Errorf("Normalize(Normalize(%q)) = %q, %v; want %q", tt.in, again, err, got)
			}
		}
	}
}

// TestNormalizeReasonsAreKnown: every error Normalize returns is one of
// Reasons, unwrapped, so the CLI and the manifest show a fixed vocabulary.
func TestNormalizeReasonsAreKnown(t *testing.T) {
	known := map[error]bool{}
	for _, r := range Reasons() {
		if known[r] {
			t.Fatalf("duplicate reason %q", r)
		}
		known[r] = true
	}
	for _, in := range []string{"", "a..b", "x", "1.2.3.4", "http://", "mailto:a", "a.com:x", "ä..de"} {
		if _, err := Normalize(in); err == nil || !known[err] {
			t.Errorf("Normalize(%q) error %v is not a listed reason", in, err)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"example.com", "https://User:Pass@WWW.Example.COM:8080/path?q=1#f", "Bücher.de",
		"xn--bcher-kva.de", "www.www.com", "[::1]:80", "co.uk", "a.com&apikey=x", "пример.рф", "１２７.０.０.１"} {
		f.Add(s)
	}
	known := map[error]bool{}
	for _, r := range Reasons() {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Normalize(in)
		if err != nil {
			if !known[err] || out != "" {
				t.Fatalf("Normalize(%q) = %q, %v: not a listed reason", in, out, err)
			}
			return
		}
		if len(out) > maxName || len(out) == 0 || strings.IndexByte(out, '.') < 0 {
			t.Fatalf("Normalize(%q) = %q: bad length or no dot", in, out)
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
				t.Fatalf("Normalize(%q) = %q: byte %q", in, out, c)
			}
		}
		for _, l := range strings.Split(out, ".") {
			if l == "" || len(l) > maxLabel || l[0] == '-' || l[len(l)-1] == '-' {
				t.Fatalf("Normalize(%q) = %q: bad label %q", in, out, l)
			}
		}
		if again, err := Normalize(out); again != out || err != nil {
			t.Fatalf("not idempotent: Normalize(%q) = %q, Normalize(%q) = %q, %v", in, out, out, again, err)
		}
	})
}
