package runner

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/sink"
)

// Start's checks are bounded: a Redis that is still starting (a compose
// file, a pod beside it) gets a few attempts within startCheckBudget; a
// wrong password or a TLS mismatch is final at once.
const (
	startCheckBudget = 10 * time.Second
	checkAttempt     = 3 * time.Second
)

// CheckRedis pings Redis until it answers, for at most startCheckBudget,
// and names the reason when it does not (never the password). shown is
// how to name this Redis in the message (its redacted URL, or "").
func CheckRedis(ctx context.Context, rdb redis.UniversalClient, shown string) error {
	if shown == "" {
		shown = "redis"
	} else {
		shown = "redis at " + shown
	}
	ctx, cancel := context.WithTimeout(ctx, startCheckBudget)
	defer cancel()
	wait := 250 * time.Millisecond
	var err error
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, checkAttempt)
		err = rdb.Ping(actx).Err()
		acancel()
		if err == nil {
			return nil
		}
		reason, final := redisReason(err)
		if !final && attempt == 1 && speaksPlain(ctx, rdb) {
			// A plain Redis takes a TLS hello for an unfinished inline
			// command and waits: without this the check would only time out.
			reason, final = "the server does not speak TLS (rediss:// against a plain Redis? use redis://)", true
		}
		if final {
			return fmt.Errorf("%s: %s", shown, reason)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s (%d attempts in %s)", shown, reason, attempt, startCheckBudget)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// redisReason says why a ping failed, in an operator's words, and whether
// trying again could help. Redis's own replies never quote the password.
func redisReason(err error) (reason string, final bool) {
	msg := err.Error()
	var recordErr tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr *tls.CertificateVerificationError
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"),
		strings.Contains(msg, "invalid password"), strings.Contains(msg, "invalid username-password"):
		return "authentication failed, check the user and password in the URL (" + firstLine(msg) + ")", true
	case errors.As(err, &recordErr):
		return "TLS handshake failed: the server does not speak TLS (rediss:// against a plain Redis? use redis://)", true
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &certErr):
		return "TLS: the server's certificate is not trusted (" + firstLine(msg) + "; REDIS_CA_FILE names a private CA)", true
	case strings.Contains(msg, "tls:"):
		return "TLS: " + firstLine(msg), true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: is Redis running at this address?", false
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return "the server closed the connection (a TLS-only Redis reached with redis://? use rediss://)", false
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time", false
	default:
		return firstLine(msg), false
	}
}

// speaksPlain reports whether a client set up for TLS is in fact facing a
// Redis that answers a plain PING.
func speaksPlain(ctx context.Context, rdb redis.UniversalClient) bool {
	c, ok := rdb.(*redis.Client)
	if !ok || c.Options().TLSConfig == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Options().Addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	b := make([]byte, 1)
	n, _ := conn.Read(b)
	return n == 1 && (b[0] == '+' || b[0] == '-')
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// checkSink proves the sink takes writes, within startCheckBudget.
func checkSink(ctx context.Context, snk *sink.Sink) error {
	ctx, cancel := context.WithTimeout(ctx, startCheckBudget)
	defer cancel()
	return snk.Check(ctx)
}

// oomReply is Redis refusing a write at maxmemory, with the script
// location Redis adds when a script's write was refused.
var oomReply = regexp.MustCompile(`(ERR Error running script[^:]*: )?(@user_script:\s*\d+:\s*)*-?OOM command not allowed[^.]*\.( script: [0-9a-f]+, on @user_script:\d+\.)?`)

// ExplainRedis rewords the Redis reply an operator must act on, out of
// memory, keeping the context around it; other errors are returned as
// they are. Where the context already says so (tasks words it for a
// submission), the raw reply is only dropped. (The result no longer
// unwraps: classify before.)
func ExplainRedis(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	loc := oomReply.FindStringIndex(msg)
	if loc == nil {
		return err
	}
	const words = "redis is out of memory (used memory > maxmemory): it refuses writes until memory is freed or maxmemory is raised"
	if strings.Contains(msg[:loc[0]], "out of memory") {
		return errors.New(strings.TrimSuffix(strings.TrimRight(msg[:loc[0]], " "), ":") + msg[loc[1]:])
	}
	return errors.New(msg[:loc[0]] + words + msg[loc[1]:])
}
