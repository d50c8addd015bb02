package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/runner"
	"github.com/linkharvest/linkharvest/internal/settings"
	"github.com/linkharvest/linkharvest/tasks"
)

// subcommands run after the global flags or before them: `enqueue status
// JOB`, `enqueue --redis URL status JOB` and `enqueue status --redis URL
// JOB` are the same.
var subcommands = map[string]func(ctx context.Context, g globals, args []string, stdout, stderr io.Writer) int{
	"status": runStatus,
	"resume": runResume,
	"budget": runBudget,
}

// globals are the flags a subcommand takes from before its name.
type globals struct {
	redisURL string // as given by --redis; "" means REDIS_URL or the default
	asJSON   bool
}

// subcommandFlags are the global flags that mean something to a
// subcommand; any other one before a subcommand is refused.
var subcommandFlags = map[string]bool{"redis": true, "json": true}

// redisUsage: the Redis URL may hold a password, so -help shows only the
// built-in default, never REDIS_URL's value.
const redisUsage = "Redis `URL`, redis:// or rediss:// (REDIS_URL; default " + runner.DefaultRedisURL + ")"

// openRedis reads the Redis settings (--redis over REDIS_URL, and
// REDIS_CA_FILE) strictly and connects; a bad setting is a usageError.
func openRedis(flagURL string) (*redis.Client, runner.RedisConfig, error) {
	rc, err := redisConfig(flagURL)
	if err != nil {
		return nil, rc, err
	}
	rdb, err := runner.OpenRedis(rc)
	if err != nil {
		return nil, rc, usageError{redisSettingError(flagURL, err)}
	}
	return rdb, rc, nil
}

func redisConfig(flagURL string) (runner.RedisConfig, error) {
	rc, err := runner.RedisFromEnv(func(k string) string {
		if k == "REDIS_URL" && flagURL != "" {
			return flagURL
		}
		return os.Getenv(k)
	})
	if err != nil {
		return rc, usageError{redisSettingError(flagURL, err)}
	}
	return rc, nil
}

// redisSettingError names --redis rather than REDIS_URL when the flag gave the URL.
func redisSettingError(flagURL string, err error) error {
	var se *settings.Error
	if flagURL != "" && errors.As(err, &se) && se.Name == "REDIS_URL" {
		c := *se
		c.Name = "--redis"
		return &c
	}
	return err
}

// withRedis parses a subcommand's arguments (fs gets --redis here), opens
// Redis and runs fn with it. usage is printed when the flags do not parse
// or nargs refuses the number of arguments.
func withRedis(fs *flag.FlagSet, g globals, args []string, nargs func(int) bool, usage string, stderr io.Writer, fn func(*redis.Client) int) int {
	fs.SetOutput(stderr)
	redisURL := fs.String("redis", g.redisURL, redisUsage)
	if err := fs.Parse(args); err != nil || !nargs(fs.NArg()) {
		fmt.Fprintln(stderr, "usage:", usage)
		return exitUsage
	}
	rdb, _, err := openRedis(*redisURL)
	if err != nil {
		fmt.Fprintln(stderr, "enqueue:", err)
		return exitUsage
	}
	defer rdb.Close()
	return fn(rdb)
}

// failed reports a subcommand's error: a job that does not exist is the
// caller's mistake, anything else a failure of Redis.
func failed(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "enqueue:", runner.ExplainRedis(err))
	if errors.Is(err, tasks.ErrNoJob) {
		return exitUsage
	}
	return exitRuntime
}

func exactly(n int) func(int) bool { return func(got int) bool { return got == n } }

func runStatus(ctx context.Context, g globals, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", g.asJSON, "print as JSON")
	return withRedis(fs, g, args, func(n int) bool { return n <= 1 }, "enqueue status [--json] [JOB]", stderr, func(rdb *redis.Client) int {
		store := tasks.NewStore(rdb)
		if fs.NArg() == 0 {
			ids, err := store.Jobs(ctx, 20)
			if err != nil {
				return failed(stderr, err)
			}
			for _, id := range ids {
				if s, err := store.Status(ctx, id); err == nil {
					printSummary(stdout, toSummary(s))
				}
			}
			return exitOK
		}
		s, err := store.Status(ctx, fs.Arg(0))
		if err != nil {
			return failed(stderr, err)
		}
		fed := ""
		if s.Unfed > 0 {
			fed = fmt.Sprintf(", %d domains still to feed", s.Unfed)
		}
		fmt.Fprintf(stdout, "job %s: %s; %d of %d pages ended, %d open%s; created %s, dt=%s\n",
			s.JobID, s.State, s.Ended, s.Tasks, s.Open, fed, s.CreatedAt, s.Date)
		printSummary(stdout, toSummary(s))
		if *asJSON {
			printJSON(stdout, s)
		}
		return exitOK
	})
}

func runResume(ctx context.Context, g globals, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resume", flag.ContinueOnError)
	return withRedis(fs, g, args, exactly(1), "enqueue resume PROVIDER", stderr, func(rdb *redis.Client) int {
		p := fs.Arg(0)
		if err := asynq.NewInspectorFromRedisClient(rdb).UnpauseQueue(p); err != nil {
			return failed(stderr, err)
		}
		if err := tasks.NewStore(rdb).ClearPause(ctx, p); err != nil {
			return failed(stderr, err)
		}
		fmt.Fprintf(stdout, "provider %s: queue resumed\n", p)
		return exitOK
	})
}

// runBudget sets a job's budget anew: raised, the pages waiting on it go on
// within seconds (they ask again); nothing fetched is fetched again.
func runBudget(ctx context.Context, g globals, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("budget", flag.ContinueOnError)
	usage := "enqueue budget JOB SPEC   (SPEC: AMOUNT for a one-provider job, or provider=AMOUNT,...)"
	return withRedis(fs, g, args, exactly(2), usage, stderr, func(rdb *redis.Client) int {
		store := tasks.NewStore(rdb)
		job, err := store.Job(ctx, fs.Arg(0))
		if err != nil {
			return failed(stderr, err)
		}
		limits, err := tasks.ParseBudget(fs.Arg(1), job.Spec.Providers)
		if err != nil {
			fmt.Fprintln(stderr, "enqueue:", err)
			return exitUsage
		}
		if err := store.SetBudget(ctx, job.ID, limits); err != nil {
			return failed(stderr, err)
		}
		s, err := store.Status(ctx, job.ID)
		if err != nil {
			return failed(stderr, err)
		}
		for _, p := range slices.Sorted(maps.Keys(s.Budget)) {
			fmt.Fprintf(stdout, "job %s: budget %s %s (%s charged so far)\n", job.ID, p, tasks.FormatAmount(s.Budget[p], p), tasks.FormatAmount(s.Charged[p], p))
		}
		if g.asJSON {
			printJSON(stdout, toSummary(s))
		}
		return exitOK
	})
}
