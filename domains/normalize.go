// Package domains reads and normalises the domain lists users submit to
// `enqueue` (docs/contract.md, "Input"): one domain or URL per line,
// turned into the bare host name the vendors take as a target.
package domains

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// The reasons an entry is rejected. Normalize and Read return these values
// unwrapped, so err.Error() is the text shown to users (and stored in the
// manifest) and errors.Is / == work.
var (
	ErrEmpty        = errors.New("empty")
	ErrLineTooLong  = errors.New("line too long") // Read only: more than MaxLine bytes
	ErrBinary       = errors.New("binary data")   // a NUL byte
	ErrInvalidUTF8  = errors.New("invalid UTF-8")
	ErrScheme       = errors.New("unsupported scheme") // mailto:, javascript:, file://, data:, ...
	ErrMalformedURL = errors.New("malformed URL")      // http:example.com, https:/example.com
	ErrNoHost       = errors.New("no host name")       // http://, //, user@, /path
	ErrPort         = errors.New("invalid port")
	ErrIP           = errors.New("IP address")
	ErrInvalidChar  = errors.New("invalid character") // anything but letters, digits, '-' and '.' in the host
	ErrEmptyLabel   = errors.New("empty label")       // example..com, .example.com
	ErrLabelTooLong = errors.New("label too long")    // > 63 bytes between dots (after punycode)
	ErrNameTooLong  = errors.New("name too long")     // > 253 bytes (after punycode)
	ErrHyphen       = errors.New("misplaced hyphen")  // -a.com, a-.com, ab--c.com (only xn-- may have -- there)
	ErrIDN          = errors.New("invalid international name")
	ErrNoDot        = errors.New("no dot") // localhost, foo
	ErrPublicSuffix = errors.New("public suffix only")
	ErrTLD          = errors.New("invalid top-level domain") // example.c0m, example.123
)

// Reasons lists every rejection reason, for documentation and tests.
func Reasons() []error {
	return []error{ErrEmpty, ErrLineTooLong, ErrBinary, ErrInvalidUTF8, ErrScheme, ErrMalformedURL, ErrNoHost,
		ErrPort, ErrIP, ErrInvalidChar, ErrEmptyLabel, ErrLabelTooLong, ErrNameTooLong, ErrHyphen, ErrIDN,
		ErrNoDot, ErrPublicSuffix, ErrTLD}
}

const (
	maxName  = 253 // RFC 1035 text form without the root dot
	maxLabel = 63
)

// Normalize turns one entry (a domain or a URL) into the host name the
// vendors want: lowercase ASCII (IDNs in punycode, UTS #46 lookup profile),
// without scheme, credentials, port, path, query, fragment, trailing dot or
// leading "www." (kept when dropping it would leave a public suffix, as in
// www.com). Subdomains are kept. The result is idempotent:
// Normalize(out) == out.
//
// An error is one of the Err* reasons above. IP addresses, public suffixes
// (ICANN section of the PSL: "com", "co.uk") and single labels are rejected;
// private PSL entries such as github.io are accepted, they are real sites.
func Normalize(entry string) (string, error) {
	s := strings.TrimSpace(entry)
	if s == "" {
		return "", ErrEmpty
	}
	if err := checkBytes(s); err != nil {
		return "", err
	}
	host, err := hostOf(s)
	if err != nil {
		return "", err
	}
	return normalizeHost(host)
}

// checkBytes rejects binary junk and control characters anywhere in the
// entry (even in a path that would be dropped: such a line is not a URL).
func checkBytes(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return ErrBinary
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return ErrInvalidChar
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	if !ascii && !utf8.ValidString(s) {
		return ErrInvalidUTF8
	}
	return nil
}

// hostOf extracts the host part of an entry: it drops the scheme, userinfo,
// port, path, query and fragment, and rejects IP literals.
func hostOf(s string) (string, error) {
	rest := s
	if n := schemeLen(s); n > 0 {
		scheme, after := s[:n], s[n+1:]
		switch {
		case strings.HasPrefix(after, "//"):
			if !webScheme(scheme) {
				return "", ErrScheme
			}
			rest = after[2:]
		case strings.IndexByte(scheme, '.') >= 0:
			// "example.com:443": a host and a port, not a scheme.
		case webScheme(scheme):
			return "", ErrMalformedURL
		default:
			// "localhost:8080" and "user:pass@example.com" are no scheme
			// either; "mailto:a@example.com", "javascript:..." are.
			auth := authority(after)
			if !isDigits(auth) && (strings.IndexByte(auth, '@') < 0 || strings.EqualFold(scheme, "mailto")) {
				return "", ErrScheme
			}
		}
	} else if strings.HasPrefix(s, "//") { // scheme-relative URL
		rest = s[2:]
	}
	host := authority(rest)
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:] // credentials
	}
	if host == "" {
		return "", ErrNoHost
	}
	if host[0] == '[' { // IPv6 literal, with an optional port
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", ErrInvalidChar
		}
		if tail := host[end+1:]; tail != "" && (tail[0] != ':' || !validPort(tail[1:])) {
			return "", ErrPort
		}
		if _, err := netip.ParseAddr(host[1:end]); err == nil {
			return "", ErrIP
		}
		return "", ErrInvalidChar
	}
	if strings.Count(host, ":") > 1 { // a bare IPv6 address
		if _, err := netip.ParseAddr(host); err == nil {
			return "", ErrIP
		}
		return "", ErrInvalidChar
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		if !validPort(host[i+1:]) {
			return "", ErrPort
		}
		host = host[:i]
	}
	if host == "" {
		return "", ErrNoHost
	}
	return host, nil
}

// authority is s up to the first path, query or fragment delimiter. A
// backslash counts as '/', as in browsers (a.com\@b.com is a.com).
func authority(s string) string {
	if i := strings.IndexAny(s, "/?#\\"); i >= 0 {
		return s[:i]
	}
	return s
}

// schemeLen returns the length of a leading RFC 3986 scheme followed by ':',
// or 0.
func schemeLen(s string) int {
	if s == "" || !isAlpha(s[0]) {
		return 0
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ':':
			return i
		case isAlpha(c) || isDigit(c) || c == '+' || c == '-' || c == '.':
		default:
			return 0
		}
	}
	return 0
}

func webScheme(s string) bool {
	for _, w := range [...]string{"http", "https", "ftp", "ftps", "ws", "wss"} {
		if strings.EqualFold(s, w) {
			return true
		}
	}
	return false
}

// validPort accepts "" (as URLs do: "example.com:") and 0..65535.
func validPort(p string) bool {
	if len(p) > 5 || !isDigits(p) {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

// normalizeHost turns a host (any case, maybe Unicode, maybe with a trailing
// dot) into its final form or a reason.
func normalizeHost(h string) (string, error) {
	if !isASCII(h) {
		// Unicode labels need the UTS #46 mapping. ASCII junk in them gets
		// the same reason as in an ASCII name rather than a vague IDN one.
		for i := 0; i < len(h); i++ {
			if c := h[i]; c < 0x80 && !isLDH(c) && c != '.' {
				return "", ErrInvalidChar
			}
		}
		// Every input rune yields at least one output byte, so a longer
		// host cannot fit; this also bounds the work done below.
		if len(h) > 4*(maxName+1) {
			return "", ErrNameTooLong
		}
		a, err := idna.Lookup.ToASCII(h)
		if err != nil {
			return "", ErrIDN
		}
		h = a
	}
	h = strings.TrimSuffix(h, ".") // the absolute form "example.com."
	if h == "" {
		return "", ErrNoHost
	}
	if len(h) > maxName {
		return "", ErrNameTooLong
	}
	upper := false
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
		case isLDH(c) || c == '.':
		default:
			return "", ErrInvalidChar
		}
	}
	if upper {
		h = strings.ToLower(h)
	}
	if looksIPv4(h) {
		return "", ErrIP
	}
	ace := false
	last := ""
	for rest := h; ; {
		label := rest
		i := strings.IndexByte(rest, '.')
		if i >= 0 {
			label, rest = rest[:i], rest[i+1:]
		}
		switch {
		case label == "":
			return "", ErrEmptyLabel
		case len(label) > maxLabel:
			return "", ErrLabelTooLong
		case label[0] == '-' || label[len(label)-1] == '-':
			return "", ErrHyphen
		case len(label) > 4 && label[2] == '-' && label[3] == '-':
			// Reserved for IDNA A-labels (RFC 5891 4.2.3.1); idna.Lookup
			// rejects the others, so do the same for ASCII input.
			if !strings.HasPrefix(label, "xn--") {
				return "", ErrHyphen
			}
			ace = true
		}
		if i < 0 {
			last = label
			break
		}
	}
	if err := registrable(h); err != nil {
		return "", err
	}
	if !strings.HasPrefix(last, "xn--") {
		for i := 0; i < len(last); i++ {
			if !isAlpha(last[i]) {
				return "", ErrTLD
			}
		}
	}
	for strings.HasPrefix(h, "www.") && registrable(h[4:]) == nil {
		h = h[4:]
	}
	if ace {
		// Validate the punycode (decodes, is allowed Unicode, bidi rule)
		// and insist on its canonical form. Done on the final name even
		// when it came out of ToASCII: the bidi rule is applied to the
		// input before mapping (ℷ maps to Hebrew ג), so an output can fail
		// its own check, and Normalize(out) would then reject out.
		if a, err := idna.Lookup.ToASCII(h); err != nil || a != h {
			return "", ErrIDN
		}
	}
	return h, nil
}

// registrable rejects a name that is a public suffix (ICANN section) or a
// single label. Private-section suffixes (github.io, blogspot.com) are sites
// of their own and pass.
func registrable(h string) error {
	suffix, icann := publicsuffix.PublicSuffix(h)
	if suffix != h {
		return nil
	}
	if icann {
		return ErrPublicSuffix
	}
	if strings.IndexByte(h, '.') < 0 {
		return ErrNoDot
	}
	return nil
}

// looksIPv4 reports whether every label is a number as the WHATWG URL IPv4
// parser reads them (decimal, 0x hex, octal): 10.0.0.1, 127.1, 0x7f.1 and
// 2130706433 are all IP addresses to a browser.
func looksIPv4(h string) bool {
	for rest := h; ; {
		label := rest
		i := strings.IndexByte(rest, '.')
		if i >= 0 {
			label, rest = rest[:i], rest[i+1:]
		}
		if !ipv4Part(label) {
			return false
		}
		if i < 0 {
			return true
		}
	}
}

func ipv4Part(label string) bool {
	if label == "" {
		return false
	}
	if len(label) >= 2 && label[0] == '0' && label[1]|0x20 == 'x' {
		for i := 2; i < len(label); i++ {
			if c := label[i] | 0x20; !isDigit(label[i]) && (c < 'a' || c > 'f') {
				return false
			}
		}
		return true
	}
	return isDigits(label)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isLDH(c byte) bool   { return isAlpha(c) || isDigit(c) || c == '-' }
