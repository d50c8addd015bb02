// Package redact keeps the password of a URL's user info out of what
// people and logs see: messages, errors, -help. Every program shows its
// Redis URL (and any other URL that may carry credentials) through it.
//
// It works on the string as written, not on a parsed URL, so that a URL
// that does not parse (a bad port, a password with an unencoded '/' or
// '@') is redacted as well as one that does.
package redact

import (
	"errors"
	"net/url"
	"strings"
)

// Mark replaces a password.
const Mark = "REDACTED"

// URL returns raw with the password of its user info replaced by Mark:
// "redis://user:REDACTED@host:6379/0". A URL without a password is
// returned unchanged. The user info ends at the last '@' (as net/url
// reads it), so a password holding an unencoded '@', '/' or ':' is
// replaced whole.
func URL(raw string) string {
	head, user, pass, tail, ok := split(raw)
	if !ok || pass == "" {
		return raw
	}
	return head + user + ":" + Mark + "@" + tail
}

// split cuts raw into what precedes the user info ("redis://"), the user,
// the password as written, and what follows the '@'. ok is false when raw
// holds no password.
func split(raw string) (head, user, pass, tail string, ok bool) {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndex(raw[start:], "@")
	if at < 0 {
		return "", "", "", "", false
	}
	info := raw[start : start+at]
	user, pass, ok = strings.Cut(info, ":")
	if !ok {
		return "", "", "", "", false
	}
	return raw[:start], user, pass, raw[start+at+1:], true
}

// secrets are the forms in which raw's password could appear in a
// message: as written and percent-decoded. Empty when raw has none.
func secrets(raw string) []string {
	_, _, pass, _, ok := split(raw)
	if !ok || pass == "" {
		return nil
	}
	out := []string{pass}
	if dec, err := url.PathUnescape(pass); err == nil && dec != pass {
		out = append(out, dec)
	}
	return out
}

// String replaces raw (whole) and every form of its password in msg.
func String(msg, raw string) string {
	if raw != "" {
		msg = strings.ReplaceAll(msg, raw, URL(raw))
	}
	for _, s := range secrets(raw) {
		msg = strings.ReplaceAll(msg, s, Mark)
	}
	return msg
}

// Error returns err's message with raw's password removed, as a new error
// that does not unwrap (the wrapped chain would still hold the password):
// classify err before redacting it. A parse error of raw itself (a
// *url.Error) is given without the URL it quotes, so show URL(raw) next
// to it; and where its own text would quote part of the password (a
// character that ends the user info early), it says what is wrong instead.
func Error(err error, raw string) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		return errors.New(String(err.Error(), raw))
	}
	if _, _, pass, _, ok := split(raw); ok {
		switch {
		case strings.ContainsAny(pass, "/?#"):
			return errors.New("the password holds a '/', '?' or '#': percent-encode it (%2F, %3F, %23)")
		case !validEscapes(pass):
			return errors.New("the password holds a '%' not followed by two hex digits: write it as %25")
		}
	}
	return errors.New(String(ue.Err.Error(), raw))
}

func validEscapes(s string) bool {
	_, err := url.PathUnescape(s)
	return err == nil
}
