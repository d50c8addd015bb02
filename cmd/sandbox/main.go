// Command sandbox serves faithful stand-ins for the four vendors' APIs on
// one port, for tests, demos and benchmarks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/linkharvest/linkharvest/internal/settings"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

func main() {
	if err := run(os.Args[1:], os.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(2)
	}
}

// opts reads the sandbox's settings strictly (flags over SANDBOX_*).
func opts(getenv settings.Getenv) (addr string, o sandbox.Options, err error) {
	addr = strings.TrimSpace(getenv("SANDBOX_ADDR"))
	if addr == "" {
		addr = defaultAddr
	}
	if err = settings.ListenAddr("SANDBOX_ADDR", addr); err != nil {
		return
	}
	if o.Latency, err = settings.Duration(getenv, "SANDBOX_LATENCY", 0, 0, time.Hour); err != nil {
		return
	}
	rate := strings.TrimSpace(getenv("SANDBOX_RATE"))
	if rate == "" {
		rate = defaultRate
	}
	if o.Rate, o.Period, err = sandbox.ParseRate(rate); err != nil {
		err = settings.Bad("SANDBOX_RATE", rate, "want calls/period such as 2000/1m, or 0 for unlimited")
		return
	}
	if o.Concurrency, err = settings.Int(getenv, "SANDBOX_CONCURRENCY", defaultConcurrency, 0, 1_000_000); err != nil {
		return
	}
	if o.Fail, err = settings.Float(getenv, "SANDBOX_FAIL", 0, 0, 1); err != nil {
		return
	}
	if o.Seed, err = settings.Int64(getenv, "SANDBOX_SEED", 1); err != nil {
		return
	}
	if o.LinksPerPage, err = settings.Int(getenv, "SANDBOX_LINKS_PER_PAGE", sandbox.DefaultLinksPerPage, 1, 1_000_000); err != nil {
		return
	}
	if o.Unfinished, err = settings.Int(getenv, "SANDBOX_UNFINISHED", 0, 0, 1_000_000); err != nil {
		return
	}
	if o.Churn, err = settings.Float(getenv, "SANDBOX_CHURN", 0, 0, 1); err != nil {
		return
	}
	if v := strings.TrimSpace(getenv("SANDBOX_TODAY")); v != "" {
		d, perr := sandbox.ParseDay(v)
		if perr == nil {
			perr = sandbox.CheckToday(d)
		}
		if perr != nil {
			err = settings.Bad("SANDBOX_TODAY", v, "want a day written YYYY-MM-DD from %s to %s",
				sandbox.ChurnStart.Format(time.DateOnly), sandbox.LastDay.Format(time.DateOnly))
			return
		}
		o.Today = d
	}
	return
}

const (
	defaultAddr        = "127.0.0.1:8089"
	defaultRate        = "2000/1m"
	defaultConcurrency = 30
)

// today is the --today the log states: the day, or that the clock decides.
func today(o sandbox.Options) string {
	if o.Today.IsZero() {
		return "current UTC date"
	}
	return o.Today.Format(time.DateOnly)
}

func run(args []string, lookup func(string) (string, bool)) error {
	addr, o, err := parse(args, lookup)
	if err != nil {
		return err
	}
	srv := registry.Sandbox(o)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	log.Info("sandbox listening", "addr", ln.Addr().String(), "rate", o.Rate, "period", o.Period.String(), "concurrency", o.Concurrency,
		"latency", o.Latency.String(), "fail", o.Fail, "seed", o.Seed, "links_per_page", o.LinksPerPage, "unfinished", o.Unfinished,
		"today", today(o), "churn", o.Churn)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// parse reads the flags over the environment.
func parse(args []string, lookup func(string) (string, bool)) (addr string, o sandbox.Options, err error) {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	b := settings.NewBinder(fs)
	b.Flag("addr", "SANDBOX_ADDR", defaultAddr, "listen address")
	b.Flag("latency", "SANDBOX_LATENCY", "0s", "added to every call")
	b.Flag("rate", "SANDBOX_RATE", defaultRate, "calls allowed in any sliding window, e.g. 2000/1m; 0 = unlimited")
	b.Flag("concurrency", "SANDBOX_CONCURRENCY", strconv.Itoa(defaultConcurrency), "calls allowed at once; 0 = unlimited")
	b.Flag("fail", "SANDBOX_FAIL", "0", "probability of an injected transient failure, 0..1")
	b.Flag("seed", "SANDBOX_SEED", "1", "data seed")
	b.Flag("links-per-page", "SANDBOX_LINKS_PER_PAGE", strconv.Itoa(sandbox.DefaultLinksPerPage), "links on each page DomainCrawler's exportpages returns")
	b.Flag("unfinished", "SANDBOX_UNFINISHED", "0", "DomainCrawler: the first N answers per endpoint and domain say exportFinished: false, with part of the data")
	b.Flag("today", "SANDBOX_TODAY", "", "the day the world is seen on, YYYY-MM-DD; empty: the current UTC date")
	b.Flag("churn", "SANDBOX_CHURN", "0", "chance, 0..1, that a domain's rows change in each 30-day epoch; 0: the world never changes")
	if err := fs.Parse(args); err != nil {
		return "", o, err
	}
	if fs.NArg() > 0 {
		return "", o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	addr, o, err = opts(b.Getenv(lookup))
	return addr, o, b.Explain(err)
}
