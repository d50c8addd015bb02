package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// QuietRedisLogs sends go-redis's own log lines (its connection pool's
// dial failures, printed on stderr by default) to log at debug level: our
// programs' checks, errors and /healthz already say what matters, once.
func QuietRedisLogs(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }

type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "from", "go-redis")
}
