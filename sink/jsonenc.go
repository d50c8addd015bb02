package sink

import (
	"unicode/utf8"
)

// The record encoder is hand-written (append-style, no reflection) because
// encoding every row is the workers' hottest loop after the vendor call:
// encoding/json spends most of a row's time in reflection, HTML escaping
// and per-value allocations, for a fixed, flat record whose shape is known
// here. The helpers below follow RFC 8259 and encoding/json's choices so the
// output is what json.Marshal would accept and produce, minus HTML escaping.

const hexDigits = "0123456789abcdef"

// safe[b] is true for the ASCII bytes that go into a JSON string as they are.
var safe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// appendString appends s as a JSON string. Control characters are escaped,
// U+2028 and U+2029 too (JavaScript line terminators, as encoding/json
// does), and each byte of invalid UTF-8 becomes U+FFFD, as encoding/json
// does, so every line is valid UTF-8 whatever the vendor sent.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if safe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendStringPtr appends *s, or null for nil.
func appendStringPtr(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return appendString(dst, *s)
}

// appendBoolPtr appends *b, or null for nil.
func appendBoolPtr(dst []byte, b *bool) []byte {
	switch {
	case b == nil:
		return append(dst, "null"...)
	case *b:
		return append(dst, "true"...)
	default:
		return append(dst, "false"...)
	}
}
