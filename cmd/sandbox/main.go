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
	"syscall"
	"time"

	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(2)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// envInt reads a whole number from the environment; unset gives def.
func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a whole number", name, v)
	}
	return n, nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	addr := fs.String("addr", env("SANDBOX_ADDR", "127.0.0.1:8089"), "listen address (SANDBOX_ADDR)")
	latency := fs.Duration("latency", 0, "added to every call")
	rate := fs.String("rate", env("SANDBOX_RATE", "2000/1m"), "calls allowed in any sliding window, e.g. 2000/1m; 0 = unlimited (SANDBOX_RATE)")
	conc := fs.Int("concurrency", 30, "calls allowed at once; 0 = unlimited")
	fail := fs.Float64("fail", 0, "probability of an injected transient failure")
	seed := fs.Int64("seed", 1, "data seed")
	links, err := envInt("SANDBOX_LINKS_PER_PAGE", sandbox.DefaultLinksPerPage)
	if err != nil {
		return err
	}
	unfinished, err := envInt("SANDBOX_UNFINISHED", 0)
	if err != nil {
		return err
	}
	fs.IntVar(&links, "links-per-page", links, "links on each page DomainCrawler's exportpages returns (SANDBOX_LINKS_PER_PAGE)")
	fs.IntVar(&unfinished, "unfinished", unfinished, "DomainCrawler: the first N answers per endpoint and domain say exportFinished: false, with part of the data (SANDBOX_UNFINISHED)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if links < 1 || unfinished < 0 {
		return errors.New("--links-per-page must be at least 1 and --unfinished at least 0")
	}
	n, period, err := sandbox.ParseRate(*rate)
	if err != nil {
		return err
	}
	if *fail < 0 || *fail > 1 {
		return errors.New("--fail must be within 0..1")
	}
	srv := registry.Sandbox(sandbox.Options{Latency: *latency, Rate: n, Period: period, Concurrency: *conc, Fail: *fail, Seed: *seed,
		LinksPerPage: links, Unfinished: unfinished})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	log.Info("sandbox listening", "addr", ln.Addr().String(), "rate", *rate, "concurrency", *conc, "latency", *latency, "fail", *fail, "seed", *seed, "links_per_page", links, "unfinished", unfinished)
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
