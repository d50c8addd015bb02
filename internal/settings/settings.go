// Package settings reads our programs' settings strictly: from environment
// variables, each of which a command-line flag can override. A value that
// does not parse, or is out of range, is an *Error naming the setting and
// the value (the caller redacts a value that may hold a password); it is never replaced
// by a default. Unset (empty) means the default.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Getenv reads a setting by its environment name; "" means unset.
type Getenv func(string) string

// Error is a setting with a bad value.
type Error struct {
	Name   string // WORKER_CONCURRENCY, or --concurrency when the flag gave it
	Value  string // as given, already safe to show
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s=%q: %s", e.Name, e.Value, e.Reason) }

// Bad returns the *Error for name=value.
func Bad(name, value, reason string, args ...any) *Error {
	return &Error{Name: name, Value: value, Reason: fmt.Sprintf(reason, args...)}
}

// Int reads a whole number within [lo, hi]; unset gives def.
func Int(getenv Getenv, name string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, Bad(name, v, "not a whole number")
	}
	if n < lo || n > hi {
		return 0, Bad(name, v, "out of range %d..%d", lo, hi)
	}
	return n, nil
}

// Int64 reads any 64-bit whole number; unset gives def.
func Int64(getenv Getenv, name string, def int64) (int64, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, Bad(name, v, "not a whole number")
	}
	return n, nil
}

// Float reads a number within [lo, hi]; unset gives def.
func Float(getenv Getenv, name string, def, lo, hi float64) (float64, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f != f {
		return 0, Bad(name, v, "not a number")
	}
	if f < lo || f > hi {
		return 0, Bad(name, v, "out of range %g..%g", lo, hi)
	}
	return f, nil
}

// Bool reads true/false (and strconv.ParseBool's other spellings).
func Bool(getenv Getenv, name string, def bool) (bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, Bad(name, v, "want true or false")
	}
	return b, nil
}

// Duration reads a duration with its unit, within [lo, hi]: a Go duration
// (300ms, 30s, 5m, 720h), or whole days with d (30d, also 1d12h). A bare
// number is refused, 0 included only when lo allows it ("0" is the one
// number that needs no unit).
func Duration(getenv Getenv, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := ParseDuration(v)
	if err != nil {
		return 0, Bad(name, v, "%v", err)
	}
	if d < lo || d > hi {
		return 0, Bad(name, v, "out of range %s..%s", FormatDuration(lo), FormatDuration(hi))
	}
	return d, nil
}

// ParseDuration is time.ParseDuration plus a leading whole number of days.
func ParseDuration(s string) (time.Duration, error) {
	days, rest, hasDays := strings.Cut(s, "d")
	if !hasDays {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, errors.New("not a duration with a unit, such as 300ms, 30s, 5m, 720h or 30d")
		}
		return d, nil
	}
	n, err := strconv.Atoi(days)
	if err != nil || n < 0 || n > 100*365 {
		return 0, errors.New("not a duration with a unit, such as 300ms, 30s, 5m, 720h or 30d")
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, errors.New("not a duration with a unit, such as 300ms, 30s, 5m, 720h or 30d")
		}
		d += r
	}
	return d, nil
}

// FormatDuration writes d as ParseDuration reads it, briefly: 30d, 30s, 1m.
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return BriefDuration(d)
}

// BriefDuration writes d as time.ParseDuration reads it (no days), without
// the zero units time.Duration.String trails: 1m, 10s, 1h30m. It is
// FormatDuration's form for readers of plain Go durations (the limiter's
// PROVIDER_LIMITS periods), so both write durations alike.
func BriefDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ListenAddr checks a host:port to listen on (port 0..65535; an empty
// host means every interface).
func ListenAddr(name, v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return Bad(name, v, "want host:port, such as 127.0.0.1:9090")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return Bad(name, v, "the port must be a number 0..65535")
	}
	return nil
}

// Binder registers flags that stand for environment variables: a flag
// given on the command line overrides its variable, and both go through
// the same strict parser (the one reading Getenv). A flag's default, shown
// by -help, is the built-in default, never a value from the environment.
type Binder struct {
	fs     *flag.FlagSet
	flags  map[string]*value // by environment name
	offEnv map[string]string // set-but-empty means this value
}

// NewBinder binds flags on fs.
func NewBinder(fs *flag.FlagSet) *Binder {
	return &Binder{fs: fs, flags: map[string]*value{}, offEnv: map[string]string{}}
}

// Flag defines --name for the variable env. def is what -help shows as
// the default; usage may name the value in back quotes (`N`, `URL`).
func (b *Binder) Flag(name, env, def, usage string) {
	v := &value{name: name, def: def}
	if env != "" {
		usage += " (" + env + ")"
	}
	b.fs.Var(v, name, usage)
	b.flags[env] = v
}

// EmptyMeans makes a variable or flag that is present but empty read as
// off (for example METRICS_ADDR= to serve no metrics).
func (b *Binder) EmptyMeans(env, off string) { b.offEnv[env] = off }

// Getenv returns the settings after fs.Parse: the flags given on the
// command line, then lookup (os.LookupEnv).
func (b *Binder) Getenv(lookup func(string) (string, bool)) Getenv {
	return func(env string) string {
		v, ok := "", false
		if f := b.flags[env]; f != nil && f.set {
			v, ok = f.val, true
		} else {
			v, ok = lookup(env)
		}
		if off, has := b.offEnv[env]; has && ok && v == "" {
			return off
		}
		return v
	}
}

// Explain renames an *Error about a variable that a flag set into the
// flag's name, so the message names what the user typed.
func (b *Binder) Explain(err error) error {
	var se *Error
	if errors.As(err, &se) {
		if f := b.flags[se.Name]; f != nil && f.set {
			c := *se
			c.Name = "--" + f.name
			return &c
		}
	}
	return err
}

type value struct {
	name, def, val string
	set            bool
}

func (v *value) String() string {
	if v == nil {
		return ""
	}
	if v.set {
		return v.val
	}
	return v.def
}

func (v *value) Set(s string) error { v.val, v.set = s, true; return nil }
