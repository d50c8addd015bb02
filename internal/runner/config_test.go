package runner

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/settings"
	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/tasks"
)

// TestConfigFromEnvRefuses: every mistyped value stops the worker with an
// error naming the variable and the value, and never its password.
func TestConfigFromEnvRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, value, says string }{
		{"WORKER_CONCURRENCY", "abc", "whole number"},
		{"WORKER_CONCURRENCY", "-5", "range"},
		{"WORKER_CONCURRENCY", "0", "range"},
		{"RETRY_BASE_DELAY", "abc", "unit"},
		{"RETRY_BASE_DELAY", "0", "range"},
		{"WORKER_SHUTDOWN_TIMEOUT", "30", "unit"},
		{"FEED_WINDOW", "2k", "whole number"},
		{"FEED_WINDOW", "0", "range"},
		{"JOB_RETENTION", "30x", "unit"},
		{"JOB_RETENTION", "-1h", "range"},
		{"PROVIDER_LIMITS", "dataforseo=2000/1m", ":30"},
		{"PROVIDER_LIMITS", "dataforsoe=2000/1m:30", "unknown provider"},
		{"PROVIDER_LIMITS", "dataforseo=2000", "period"},
		{"PROVIDER_PRICES", "dataforsoe=0.02", "unknown provider"},
		{"PROVIDER_PRICES", "dataforseo=0.02+0.00003", "/row"},
		{"PROVIDER_PRICES", "domdetailer=-3", "negative"},
		{"METRICS_ADDR", "9090", "host:port"},
		{"S3_FORCE_PATH_STYLE", "yes please", "true or false"},
		{"S3_SSE", "aes", "AES256"},
		{"LINKHARVEST_LIMITER", "local:0", "local:N"},
		{"REDIS_URL", "redis://:Pw-Secret-123@127.0.0.1:notaport/0", "invalid port"},
		{"REDIS_URL", "http://127.0.0.1:6379/0", "scheme"},
	}
	for _, c := range cases {
		_, err := ConfigFromEnv(func(k string) string {
			if k == c.name {
				return c.value
			}
			return ""
		})
		var se *settings.Error
		switch {
		case err == nil:
			t.Errorf("%s=%q accepted", c.name, c.value)
		case !errors.As(err, &se) || se.Name != c.name:
			t.Errorf("%s=%q: error %q does not name the setting", c.name, c.value, err)
		case !strings.Contains(err.Error(), c.says):
			t.Errorf("%s=%q: error %q does not say %q", c.name, c.value, err, c.says)
		case strings.Contains(err.Error(), "Pw-Secret-123"):
			t.Errorf("%s: error %q holds the password", c.name, err)
		case !strings.Contains(err.Error(), strings.ReplaceAll(c.value, "Pw-Secret-123", "REDACTED")):
			t.Errorf("%s=%q: error %q does not show the value", c.name, c.value, err)
		}
	}
}

func TestConfigFromEnvReads(t *testing.T) {
	t.Parallel()
	def := DefaultConfig()
	if def.Concurrency != 40 || def.FeedWindow != tasks.DefaultFeedWindow || def.RetryBase != time.Second || def.Retention != 30*24*time.Hour ||
		def.MetricsAddr != "127.0.0.1:9090" || def.MetricsExplicit {
		t.Errorf("defaults changed: %+v", def)
	}
	env := map[string]string{
		"WORKER_CONCURRENCY": "12", "RETRY_BASE_DELAY": "10ms", "JOB_RETENTION": "30d",
		"WORKER_SHUTDOWN_TIMEOUT": "5s", "PROVIDER_LIMITS": "dataforseo=100/1m:0,xovi=60/1m",
		"METRICS_ADDR": "127.0.0.1:0", "S3_FORCE_PATH_STYLE": "true", "REDIS_CA_FILE": "/ca.pem",
		"PROVIDER_PRICES": "domdetailer=2", "FEED_WINDOW": "500",
	}
	cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]limiter.Limit{"dataforseo": {Rate: 100, Period: time.Minute}, "xovi": {Rate: 60, Period: time.Minute}}
	if cfg.Concurrency != 12 || cfg.RetryBase != 10*time.Millisecond || cfg.Retention != 720*time.Hour ||
		cfg.ShutdownTimeout != 5*time.Second || cfg.Limits["dataforseo"] != want["dataforseo"] || cfg.Limits["xovi"] != want["xovi"] ||
		cfg.MetricsAddr != "127.0.0.1:0" || !cfg.MetricsExplicit || !cfg.S3.ForcePathStyle || cfg.RedisConn.CAFile != "/ca.pem" ||
		cfg.Prices.Price("domdetailer", "backlinks").Request != 2 || cfg.FeedWindow != 500 || cfg.Prices.Price("dataforseo", "backlinks").Row != 0.00003 {
		t.Errorf("read %+v", cfg)
	}
	cfg, err = ConfigFromEnv(func(k string) string { return map[string]string{"METRICS_ADDR": "off", "JOB_RETENTION": "0"}[k] })
	if err != nil || cfg.MetricsAddr != "" || cfg.Retention != 0 {
		t.Errorf("METRICS_ADDR=off, JOB_RETENTION=0: %+v, %v", cfg, err)
	}
}

func TestExplainRedis(t *testing.T) {
	t.Parallel()
	script := "OOM command not allowed when used memory > 'maxmemory'. script: 160fd31ff59581fe636de2190442bd1024726d59, on @user_script:2."
	cases := []struct{ in, want string }{
		{"creating job j: " + script, "creating job j: redis is out of memory (used memory > maxmemory): it refuses writes until memory is freed or maxmemory is raised"},
		{"OOM command not allowed when used memory > 'maxmemory'.", "redis is out of memory (used memory > maxmemory): it refuses writes until memory is freed or maxmemory is raised"},
		{"submitting job j: redis is out of memory (raise it, then resubmit with the same --job): " + script + " (rerun)",
			"submitting job j: redis is out of memory (raise it, then resubmit with the same --job) (rerun)"},
		{"dial tcp: connection refused", "dial tcp: connection refused"},
	}
	for _, c := range cases {
		if got := ExplainRedis(errors.New(c.in)).Error(); got != c.want {
			t.Errorf("ExplainRedis(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
	if ExplainRedis(nil) != nil {
		t.Error("ExplainRedis(nil) is not nil")
	}
}
