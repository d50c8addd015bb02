package runner

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/redact"
	"github.com/linkharvest/linkharvest/internal/settings"
	"github.com/linkharvest/linkharvest/internal/spend"
	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// RedisConfig is how every program reaches Redis.
type RedisConfig struct {
	URL string // redis:// or rediss://; may hold a password: show it with String
	// CAFile is a PEM bundle to trust for rediss:// (a private CA).
	CAFile string
}

// String is the URL with its password redacted.
func (r RedisConfig) String() string { return redact.URL(r.URL) }

// DefaultRedisURL is the Redis every program uses unless told otherwise.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// RedisFromEnv reads REDIS_URL and REDIS_CA_FILE, checking that the URL
// parses (the error never holds its password).
func RedisFromEnv(getenv settings.Getenv) (RedisConfig, error) {
	r := RedisConfig{URL: DefaultRedisURL, CAFile: strings.TrimSpace(getenv("REDIS_CA_FILE"))}
	if v := strings.TrimSpace(getenv("REDIS_URL")); v != "" {
		r.URL = v
	}
	if _, _, err := parseRedisURL(r.URL); err != nil {
		return r, err
	}
	return r, nil
}

// parseRedisURL reads redis://, rediss:// (one server) and
// redis+sentinel:// or rediss+sentinel:// (a primary found through Redis
// Sentinel, followed across failovers):
//
//	redis+sentinel://[[user]:password@]host:port[,host:port...]/MASTER[/DB][?sentinel_password=...]
//
// The password is the Redis servers'; sentinel_password the sentinels'.
// go-redis parses no sentinel URL, hence this.
func parseRedisURL(raw string) (*redis.Options, *redis.FailoverOptions, error) {
	bad := func(format string, args ...any) error {
		return settings.Bad("REDIS_URL", redact.URL(raw), format, args...)
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (scheme != "redis+sentinel" && scheme != "rediss+sentinel") {
		opt, err := redis.ParseURL(raw)
		if err != nil {
			return nil, nil, bad("%v", redact.Error(err, raw))
		}
		return opt, nil, nil
	}
	// The host list holds commas, which url.Parse accepts in a host only
	// when it parses one: parse with a placeholder host, keep the list.
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	userinfo, hosts := "", rest
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		userinfo, hosts = rest[:at], rest[at+1:]
	}
	hosts, path, _ := strings.Cut(hosts, "/")
	path, query, _ := strings.Cut(path, "?")
	if userinfo != "" {
		userinfo += "@"
	}
	u, err := url.Parse("redis://" + userinfo + "x/?" + query)
	if err != nil {
		return nil, nil, bad("%v", redact.Error(err, raw))
	}
	fo := &redis.FailoverOptions{PoolSize: 64}
	if u.User != nil {
		fo.Username = u.User.Username()
		fo.Password, _ = u.User.Password()
	}
	fo.SentinelPassword = u.Query().Get("sentinel_password")
	for _, h := range strings.Split(hosts, ",") {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return nil, nil, bad("sentinel address %q: want host:port", h)
		}
		fo.SentinelAddrs = append(fo.SentinelAddrs, h)
	}
	master, db, _ := strings.Cut(path, "/")
	if master == "" {
		return nil, nil, bad("name the primary: redis+sentinel://host:port/MASTER[/DB]")
	}
	fo.MasterName = master
	if db != "" {
		if fo.DB, err = strconv.Atoi(db); err != nil || fo.DB < 0 {
			return nil, nil, bad("database %q: want a number", db)
		}
	}
	if scheme == "rediss+sentinel" {
		fo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return nil, fo, nil
}

// OpenRedis connects to r (no I/O yet: CheckRedis proves the connection).
// A sentinel URL gives a client that follows the primary across failovers.
func OpenRedis(r RedisConfig) (*redis.Client, error) {
	opt, fo, err := parseRedisURL(r.URL)
	if err != nil {
		return nil, err
	}
	var tlsConf *tls.Config
	if opt != nil {
		opt.PoolSize = max(opt.PoolSize, 64)
		tlsConf = opt.TLSConfig
	} else {
		tlsConf = fo.TLSConfig
	}
	if r.CAFile != "" && tlsConf != nil {
		pem, err := os.ReadFile(r.CAFile)
		if err != nil {
			return nil, settings.Bad("REDIS_CA_FILE", r.CAFile, "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, settings.Bad("REDIS_CA_FILE", r.CAFile, "no PEM certificate in the file")
		}
		tlsConf.RootCAs = pool
	}
	if fo != nil {
		return redis.NewFailoverClient(fo), nil
	}
	return redis.NewClient(opt), nil
}

// DefaultConfig is a worker's configuration when nothing is set. Every
// default of the worker (and of `enqueue --dev`, which runs one) lives
// here.
func DefaultConfig() Config {
	return Config{
		RedisConn:       RedisConfig{URL: DefaultRedisURL},
		SinkURL:         "./out",
		Concurrency:     40,
		MetricsAddr:     DefaultMetricsAddr,
		ShutdownTimeout: 30 * time.Second,
		RetryBase:       time.Second,
		CallTimeout:     150 * time.Second,
		Retention:       30 * 24 * time.Hour,
		FeedWindow:      tasks.DefaultFeedWindow,
	}
}

// DefaultMetricsAddr is loopback: several workers run on one host, and
// the metrics need no exposure beyond it unless an address is given.
const DefaultMetricsAddr = "127.0.0.1:9090"

// maxConcurrency bounds WORKER_CONCURRENCY: beyond it a value is a typo.
const maxConcurrency = 10_000

// ConfigFromEnv is DefaultConfig with the worker's environment variables
// applied (README, Configuration). Every value is checked: a bad one is a
// *settings.Error naming the variable and the value; none becomes a
// default. getenv is also kept for the vendors' credentials.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	cfg.Getenv = getenv
	var err error
	if cfg.RedisConn, err = RedisFromEnv(getenv); err != nil {
		return cfg, err
	}
	if v := strings.TrimSpace(getenv("SINK_URL")); v != "" {
		cfg.SinkURL = v
	}
	if cfg.S3, err = sink.S3OptionsFromEnv(getenv); err != nil {
		return cfg, err
	}
	if cfg.Concurrency, err = settings.Int(getenv, "WORKER_CONCURRENCY", cfg.Concurrency, 1, maxConcurrency); err != nil {
		return cfg, err
	}
	if cfg.Limits, err = parseLimits(getenv("PROVIDER_LIMITS")); err != nil {
		return cfg, err
	}
	if v := getenv("PROVIDER_PRICES"); strings.TrimSpace(v) != "" {
		if cfg.Prices, err = spend.Parse(v); err != nil {
			return cfg, settings.Bad("PROVIDER_PRICES", v, "%v", err)
		}
	}
	switch v := strings.TrimSpace(getenv("METRICS_ADDR")); v {
	case "":
	case "off":
		cfg.MetricsAddr = ""
	default:
		if err := settings.ListenAddr("METRICS_ADDR", v); err != nil {
			return cfg, err
		}
		cfg.MetricsAddr, cfg.MetricsExplicit = v, true
	}
	if cfg.ShutdownTimeout, err = settings.Duration(getenv, "WORKER_SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout, 0, 24*time.Hour); err != nil {
		return cfg, err
	}
	if cfg.RetryBase, err = settings.Duration(getenv, "RETRY_BASE_DELAY", cfg.RetryBase, time.Millisecond, 5*time.Minute); err != nil {
		return cfg, err
	}
	if cfg.FeedWindow, err = settings.Int(getenv, "FEED_WINDOW", cfg.FeedWindow, 1, 10_000_000); err != nil {
		return cfg, err
	}
	if cfg.Retention, err = settings.Duration(getenv, "JOB_RETENTION", cfg.Retention, 0, 10*365*24*time.Hour); err != nil {
		return cfg, err
	}
	if cfg.LocalLimiter, err = localShare(getenv("LINKHARVEST_LIMITER")); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// parseLimits reads PROVIDER_LIMITS: names must be known providers, and a
// provider whose vendor documents an in-flight limit (DataForSEO's 30)
// must say it, or write :0 to lift it on purpose: leaving it out would
// quietly mean "no limit" against a vendor that throttles past it.
func parseLimits(v string) (map[string]limiter.Limit, error) {
	lim, err := limiter.ParseLimits(v)
	if err != nil {
		return nil, settings.Bad("PROVIDER_LIMITS", v, "%v", err)
	}
	known := map[string]bool{}
	for _, n := range registry.Names() {
		known[n] = true
	}
	defaults := defaultLimits()
	for _, entry := range strings.Split(v, ",") {
		name, spec, _ := strings.Cut(strings.TrimSpace(entry), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		if !known[name] {
			// A typo would leave the real account on its default limits.
			return nil, settings.Bad("PROVIDER_LIMITS", v, "unknown provider %q (known: %s)", name, strings.Join(registry.Names(), ", "))
		}
		if d, ok := defaults[name]; ok && d.InFlight > 0 && !strings.Contains(spec, ":") {
			return nil, settings.Bad("PROVIDER_LIMITS", v, "%s allows %d calls in flight: write %s=%s:%d, or :0 to lift the in-flight limit on purpose",
				name, d.InFlight, name, strings.TrimSpace(spec), d.InFlight)
		}
	}
	return lim, nil
}
