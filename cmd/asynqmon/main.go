// Command asynqmon serves the Asynq web UI (github.com/hibiken/asynqmon, UI embedded in
// the module) for linkharvest's Redis.
//
//	asynqmon [--redis URL] [--addr 127.0.0.1:8080] [--basic-auth user:pass] [--read-only] [--sink URL]
//
// Every flag also reads an environment variable (flags win): REDIS_URL, ASYNQMON_ADDR,
// ASYNQMON_BASIC_AUTH, ASYNQMON_READ_ONLY, SINK_URL. The UI can delete, run and archive tasks, so it
// refuses to listen on anything but a loopback address without basic auth.
//
// It also serves the Jobs view at /jobs (jobs.go): each linkharvest job's progress, spend,
// rate, ETA and failed pages, as HTML and JSON, behind the same auth; with --sink it also
// serves each job's manifest.
//
// GET /healthz answers 200 without authentication and without touching Redis, for
// container probes: the UI itself sits behind basic auth, and restarting the UI because
// Redis is away would not bring Redis back.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/redact"
	"github.com/linkharvest/linkharvest/internal/settings"
	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

const (
	defaultRedisURL = "redis://127.0.0.1:6379/0"
	defaultAddr     = "127.0.0.1:8080"
	healthPath      = "/healthz"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	telemetry.QuietRedisLogs(logger)
	if err := run(ctx, os.Args[1:], os.Getenv, logger); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		logger.Error("asynqmon: " + err.Error())
		os.Exit(2)
	}
}

// config is the parsed command line. BasicAuth holds the secret: it is never logged and
// never part of an error message.
type config struct {
	RedisURL  string
	Addr      string
	BasicAuth string // "user:pass", empty = no auth (allowed on loopback only)
	ReadOnly  bool
	// Sink is where the workers write ("" = none): the Jobs view reads manifests there.
	Sink string
	S3   sink.S3Options
}

// parseConfig reads flags, falling back to the environment (flags win). Environment values
// are applied after parsing rather than used as flag defaults, so -help never prints them
// (REDIS_URL may carry a password).
func parseConfig(args []string, getenv func(string) string, output io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("asynqmon", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.RedisURL, "redis", defaultRedisURL,
		"Redis URL, redis://[user:pass@]host:port/db or rediss://… for TLS (env REDIS_URL)")
	fs.StringVar(&cfg.Addr, "addr", defaultAddr,
		"listen address; anything but loopback requires --basic-auth (env ASYNQMON_ADDR)")
	fs.StringVar(&cfg.BasicAuth, "basic-auth", "",
		"user:password required for every request but "+healthPath+" (env ASYNQMON_BASIC_AUTH)")
	fs.BoolVar(&cfg.ReadOnly, "read-only", false,
		"view only: refuse every API request that would change a queue or task (env ASYNQMON_READ_ONLY)")
	fs.StringVar(&cfg.Sink, "sink", "",
		"where the workers write, as the worker takes it (s3://bucket/prefix, file:///dir or a directory): "+
			"the Jobs view then links each job's manifest (env SINK_URL)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fromEnv := func(flagName, envName string, dst *string) {
		if v := getenv(envName); !set[flagName] && v != "" {
			*dst = v
		}
	}
	fromEnv("redis", "REDIS_URL", &cfg.RedisURL)
	fromEnv("addr", "ASYNQMON_ADDR", &cfg.Addr)
	fromEnv("basic-auth", "ASYNQMON_BASIC_AUTH", &cfg.BasicAuth)
	fromEnv("sink", "SINK_URL", &cfg.Sink)
	if cfg.Sink != "" {
		o, err := sink.S3OptionsFromEnv(getenv)
		if err != nil {
			return config{}, err
		}
		cfg.S3 = o
	}
	if !set["read-only"] {
		b, err := settings.Bool(getenv, "ASYNQMON_READ_ONLY", cfg.ReadOnly)
		if err != nil {
			return config{}, err
		}
		cfg.ReadOnly = b
	}
	// Check what can be checked before serving, naming what the user set.
	name := func(flagName, envName string) string {
		if set[flagName] {
			return "--" + flagName
		}
		return envName
	}
	if err := settings.ListenAddr(name("addr", "ASYNQMON_ADDR"), cfg.Addr); err != nil {
		return config{}, err
	}
	if _, err := redisOpt(cfg.RedisURL); err != nil {
		var se *settings.Error
		if errors.As(err, &se) {
			se.Name = name("redis", "REDIS_URL")
		}
		return config{}, err
	}
	return cfg, nil
}

// credentials is a parsed "user:pass".
type credentials struct{ user, pass string }

func parseBasicAuth(s string) (credentials, error) {
	user, pass, ok := strings.Cut(s, ":")
	if !ok || user == "" || pass == "" {
		// Do not echo s: it may be a password typed without the user part.
		return credentials{}, errors.New("--basic-auth / ASYNQMON_BASIC_AUTH must be user:password with both parts non-empty")
	}
	return credentials{user: user, pass: pass}, nil
}

// isLoopback reports whether a listen address only accepts connections from this host.
// An empty host (":8080") listens on every interface; host names other than "localhost"
// are not trusted, as they may resolve to anything.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	// Zone suffixes (fe80::1%eth0) never name a loopback address.
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redisOpt turns a Redis URL (docs/contract.md) into Asynq connection options. go-redis' parser is used
// rather than asynq.ParseRedisURI because the latter drops the ACL user name. Errors show
// the URL with its password redacted.
func redisOpt(raw string) (asynq.RedisClientOpt, error) {
	bad := func(reason string, args ...any) error {
		return settings.Bad("REDIS_URL", redact.URL(raw), "invalid Redis URL: "+reason, args...)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return asynq.RedisClientOpt{}, bad("%v", redact.Error(err, raw))
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return asynq.RedisClientOpt{}, bad("scheme must be redis:// or rediss://")
	}
	o, err := redis.ParseURL(raw)
	if err != nil {
		return asynq.RedisClientOpt{}, bad("%v", redact.Error(err, raw))
	}
	return asynq.RedisClientOpt{
		Network:      o.Network,
		Addr:         o.Addr,
		Username:     o.Username,
		Password:     o.Password,
		DB:           o.DB,
		DialTimeout:  o.DialTimeout,
		ReadTimeout:  o.ReadTimeout,
		WriteTimeout: o.WriteTimeout,
		PoolSize:     o.PoolSize,
		TLSConfig:    o.TLSConfig, // set for rediss://, with ServerName from the host
	}, nil
}

// server is a ready-to-serve asynqmon: the handler and what to close afterwards.
type server struct {
	Handler http.Handler
	Close   func() error
	Redis   asynq.RedisClientOpt
	Auth    bool
	Sink    string // the sink's URL, without credentials ("" = none)
}

// newServer validates cfg (auth required off loopback, well-formed credentials, Redis URL)
// and builds the handler. It opens no listener, so tests can serve it with httptest.
func newServer(cfg config, logger *slog.Logger) (*server, error) {
	var creds *credentials
	if cfg.BasicAuth != "" {
		c, err := parseBasicAuth(cfg.BasicAuth)
		if err != nil {
			return nil, err
		}
		creds = &c
	}
	if creds == nil && !isLoopback(cfg.Addr) {
		return nil, fmt.Errorf("refusing to serve on %q without authentication: the UI can delete and run tasks; "+
			"set --basic-auth user:password (or ASYNQMON_BASIC_AUTH), or listen on a loopback address such as %s",
			cfg.Addr, defaultAddr)
	}
	opt, err := redisOpt(cfg.RedisURL)
	if err != nil {
		return nil, err
	}
	var snk *sink.Sink
	if cfg.Sink != "" {
		// Opening dials nothing: a sink that is away shows on the manifest link, not here.
		if snk, err = sink.OpenWith(context.Background(), cfg.Sink, cfg.S3); err != nil {
			return nil, err
		}
	}
	mon := asynqmon.New(asynqmon.Options{RootPath: "/", RedisConnOpt: opt, ReadOnly: cfg.ReadOnly})
	rdb := opt.MakeRedisClient().(redis.UniversalClient)

	app := http.NewServeMux()
	app.Handle("/", mon)
	var manifests manifestReader
	if snk != nil {
		manifests = snk
	}
	newJobsView(tasks.NewStore(rdb), manifests, logger).register(app)

	var h http.Handler = app
	if creds != nil {
		h = basicAuth(*creds, h)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+healthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("/", h)
	closeAll := func() error { return errors.Join(mon.Close(), rdb.Close()) }
	srv := &server{Handler: mux, Close: closeAll, Redis: opt, Auth: creds != nil}
	if snk != nil {
		srv.Sink = snk.String()
	}
	return srv, nil
}

// basicAuth requires the given credentials. Both parts are compared as SHA-256 digests with
// subtle.ConstantTimeCompare, so neither the content nor the length of the secret leaks
// through timing, and both comparisons always run.
func basicAuth(c credentials, next http.Handler) http.Handler {
	wantUser := sha256.Sum256([]byte(c.user))
	wantPass := sha256.Sum256([]byte(c.pass))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		gotUser := sha256.Sum256([]byte(user))
		gotPass := sha256.Sum256([]byte(pass))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		if !ok || userOK&passOK != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="asynqmon", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// run parses the configuration, serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, logger *slog.Logger) error {
	cfg, err := parseConfig(args, getenv, os.Stderr)
	if err != nil {
		return err
	}
	srv, err := newServer(cfg, logger)
	if err != nil {
		return err
	}
	defer func() { _ = srv.Close() }()

	// Redis being away is not fatal (the UI shows the error and recovers), but say so early.
	pingCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	rc := srv.Redis.MakeRedisClient().(redis.UniversalClient)
	pingErr := rc.Ping(pingCtx).Err()
	cancel()
	_ = rc.Close()
	if pingErr != nil {
		logger.Warn("redis not reachable yet", "redis_addr", srv.Redis.Addr, "err", pingErr)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	// Never log cfg.BasicAuth or the Redis password: only whether auth is on and the Redis address.
	logger.Info("asynqmon listening", "addr", ln.Addr().String(), "redis_addr", srv.Redis.Addr,
		"redis_tls", srv.Redis.TLSConfig != nil, "basic_auth", srv.Auth, "read_only", cfg.ReadOnly, "sink", srv.Sink)

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil {
		return err
	}
	logger.Info("asynqmon stopped")
	return nil
}
