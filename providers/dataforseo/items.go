package dataforseo

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// A page of 1000 backlinks is about 2 MB of rows with some 45 members
// each, of which the pipeline normalises five. Decoding every row into a
// struct (or twice: once raw, once typed) costs several times a plain
// decode; instead encoding/json validates the body once and hands over the
// items array as bytes, and the functions below split it into rows and
// pick the five members out with a hand scan. They run only on bytes that
// encoding/json has already accepted as valid JSON, but never index past
// the end of their input, so a bug here cannot panic on odd input.

// splitItems splits a JSON array into its elements (slices of raw, not
// copies). null or absent is no items.
func splitItems(raw json.RawMessage) ([]json.RawMessage, error) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] == 'n' {
		return nil, nil
	}
	if raw[i] != '[' {
		return nil, errors.New("items is not an array")
	}
	// Rows are ~2 KB; guess the count to avoid regrowing the slice.
	out := make([]json.RawMessage, 0, len(raw)/1500+1)
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return out, nil
	}
	for i < len(raw) {
		start := i
		end := skipValue(raw, i)
		if end <= start {
			return nil, errors.New("items: unreadable element")
		}
		out = append(out, raw[start:end:end])
		i = skipSpace(raw, end)
		if i >= len(raw) {
			break
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case ']':
			return out, nil
		default:
			return nil, errors.New("items: expected , or ]")
		}
	}
	return nil, errors.New("items: unterminated array")
}

const (
	hasSource = 1 << iota
	hasTarget
	hasAnchor
	hasTitle
	hasNofollow
)

// itemFields are the normalised members of one row. A member that is
// absent, null or of another type is not set in has.
type itemFields struct {
	has                           int
	source, target, anchor, title string
	nofollow                      bool // the vendor's dofollow, negated
}

// scanItem reads url_from, url_to, anchor, page_from_title and dofollow
// from one row. Later duplicates win, as with encoding/json.
func scanItem(b []byte) itemFields {
	var f itemFields
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return f
	}
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] == '"' {
		kEnd := skipString(b, i)
		if kEnd <= i {
			return f
		}
		key := b[i+1 : kEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 { // "url\u005ffrom" is url_from too; the vendor never writes it
			var k string
			if json.Unmarshal(b[i:kEnd], &k) == nil {
				key = []byte(k)
			}
		}
		i = skipSpace(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return f
		}
		i = skipSpace(b, i+1)
		vEnd := skipValue(b, i)
		if vEnd <= i {
			return f
		}
		val := b[i:vEnd]
		switch string(key) { // no allocation: the compiler compares in place
		case "url_from":
			f.source, f.has = str(val, f.source, f.has, hasSource)
		case "url_to":
			f.target, f.has = str(val, f.target, f.has, hasTarget)
		case "anchor":
			f.anchor, f.has = str(val, f.anchor, f.has, hasAnchor)
		case "page_from_title":
			f.title, f.has = str(val, f.title, f.has, hasTitle)
		case "dofollow":
			switch string(val) {
			case "true":
				f.nofollow, f.has = false, f.has|hasNofollow
			case "false":
				f.nofollow, f.has = true, f.has|hasNofollow
			default:
				f.has &^= hasNofollow
			}
		}
		i = skipSpace(b, vEnd)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		break
	}
	return f
}

// str decodes a JSON string value; anything else (null, a number) unsets
// the field's bit.
func str(val []byte, old string, has, bit int) (string, int) {
	if len(val) < 2 || val[0] != '"' {
		return "", has &^ bit
	}
	inner := val[1 : len(val)-1]
	plain, ascii := true, true
	for _, c := range inner {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	// Invalid UTF-8 goes the slow way too, so that it reads as encoding/json
	// reads it (U+FFFD).
	if plain && (ascii || utf8.Valid(inner)) {
		return string(inner), has | bit
	}
	var s string
	if json.Unmarshal(val, &s) != nil {
		return old, has &^ bit
	}
	return s, has | bit
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"',
// or i if it does not end.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return i
}

// skipValue returns the index after the value starting at b[i], or i if
// it does not end.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := skipString(b, j)
				if e <= j {
					return i
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return i
	}
	// number, true, false, null
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}
