// Command enqueue submits a domain list as one job, and reports on jobs.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/linkharvest/linkharvest/domains"
	"github.com/linkharvest/linkharvest/internal/redact"
	"github.com/linkharvest/linkharvest/internal/runner"
	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/tasks"
)

// Exit statuses (docs/contract.md, "Exit statuses").
const (
	exitOK      = 0
	exitFailed  = 1 // the job finished but some domain failed
	exitUsage   = 2 // bad usage or no valid domain
	exitRuntime = 3 // Redis unreachable and the like
	exitBudget  = 4 // the job stopped at its budget; `enqueue budget` goes on
)

type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type options struct {
	redisURL  string
	redisCA   string // REDIS_CA_FILE
	redisSet  bool
	providers []string
	endpoints []string
	params    paramFlags
	maxRows   int
	maxRetry  int
	feedAfter int
	job       string
	wait      bool
	asJSON    bool
	dryRun    bool
	estimate  bool
	dev       bool
	sinkURL   string
	budget    string
	files     []string
	// refresh is the base job of a refresh (refresh.go), since the day
	// its changes count from; specFlags the spec flags given.
	refresh   string
	since     string
	specFlags []string
}

// paramFlags collects --param provider.endpoint.key=value.
type paramFlags []string

func (p *paramFlags) String() string     { return strings.Join(*p, ",") }
func (p *paramFlags) Set(v string) error { *p = append(*p, v); return nil }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	telemetry.QuietRedisLogs(slog.Default())
	var o options
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: enqueue [flags] [FILE ...]   (no FILE or \"-\" reads standard input)")
		fmt.Fprintln(stderr, "       enqueue [--redis URL] status [--json] [JOB]")
		fmt.Fprintln(stderr, "       enqueue [--redis URL] resume PROVIDER   (unpause a provider's queue after fixing its account)")
		fmt.Fprintln(stderr, "       enqueue [--redis URL] budget JOB SPEC   (set a job's budget anew: AMOUNT, or provider=AMOUNT,...)")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.redisURL, "redis", "", redisUsage)
	prov := fs.String("provider", env("PROVIDERS", "dataforseo"), "providers: "+strings.Join(registry.Names(), ","))
	ep := fs.String("endpoint", env("ENDPOINTS", "backlinks"), "endpoints of the providers, e.g. backlinks,summary")
	fs.Var(&o.params, "param", "a vendor request option, provider.endpoint.key=value (value: JSON or a string); repeatable")
	fs.IntVar(&o.maxRows, "max-rows", 0, "at most N rows per domain and endpoint (0 = all)")
	fs.IntVar(&o.maxRetry, "max-retries", tasks.MaxRetry, "failures a page may have before it is listed as failed (throttles do not count)")
	fs.IntVar(&o.feedAfter, "feed-after", tasks.DefaultFeedAfter, "domains enqueued at once; the rest wait compactly in Redis and the workers enqueue them as the queues drain (N ≥ 1)")
	fs.StringVar(&o.job, "job", "", "job id (default: a new ULID); the same list under the same id adds no work")
	fs.BoolVar(&o.wait, "wait", false, "show progress until the job ends, then print the summary")
	fs.BoolVar(&o.asJSON, "json", false, "print the summary as one JSON object on the last line")
	fs.BoolVar(&o.dryRun, "dry-run", false, "validate the list, print counts and the estimated calls; enqueue nothing")
	fs.BoolVar(&o.estimate, "estimate", false, "with --dry-run: ask the vendors for counts where one call covers many domains and print the calls and spend per provider (uses the worker's vendor credentials)")
	fs.BoolVar(&o.dev, "dev", false, "all in one process: embedded Redis, built-in sandbox, in-process workers, sink ./out")
	fs.StringVar(&o.budget, "budget", "", "the most the job may spend: AMOUNT (one provider) or provider=AMOUNT,...; units: dataforseo USD, domdetailer credits, xovi and domaincrawler calls")
	fs.StringVar(&o.sinkURL, "sink", env("SINK_URL", ""), "with --dev: where output goes (default ./out)")
	fs.StringVar(&o.refresh, "refresh", "", "fetch only what changed since BASE_JOB ended (its providers, endpoints and options; without FILE, its domains)")
	fs.StringVar(&o.since, "since", "", "with --refresh: the day changes are counted from, YYYY-MM-DD (default: the base job's date)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if sub, ok := subcommands[fs.Arg(0)]; ok {
		var misplaced []string
		fs.Visit(func(f *flag.Flag) {
			if !subcommandFlags[f.Name] {
				misplaced = append(misplaced, "--"+f.Name)
			}
		})
		if len(misplaced) > 0 {
			fmt.Fprintf(stderr, "enqueue: %s: does not apply to %s\n", strings.Join(misplaced, ", "), fs.Arg(0))
			return exitUsage
		}
		return sub(ctx, globals{redisURL: o.redisURL, asJSON: o.asJSON}, fs.Args()[1:], stdout, stderr)
	}
	o.redisSet = o.redisURL != "" || os.Getenv("REDIS_URL") != ""
	rc, err := redisConfig(o.redisURL)
	if err != nil {
		fmt.Fprintln(stderr, "enqueue:", err)
		return exitUsage
	}
	o.redisURL, o.redisCA = rc.URL, rc.CAFile
	o.providers = splitList(*prov)
	o.endpoints = splitList(*ep)
	o.files = fs.Args()
	if o.feedAfter < 1 {
		fmt.Fprintln(stderr, "enqueue: --feed-after must be ≥ 1")
		return exitUsage
	}
	if o.maxRetry < 0 {
		fmt.Fprintln(stderr, "enqueue: --max-retries must be ≥ 0")
		return exitUsage
	}
	if o.estimate && !o.dryRun {
		fmt.Fprintln(stderr, "enqueue: --estimate works with --dry-run only")
		return exitUsage
	}
	if o.maxRows < 0 {
		fmt.Fprintln(stderr, "enqueue: --max-rows must be ≥ 0")
		return exitUsage
	}
	fs.Visit(func(f *flag.Flag) {
		if specFlag[f.Name] {
			o.specFlags = append(o.specFlags, f.Name)
		}
	})
	if code, ok := checkRefreshFlags(o, stderr); !ok { // refresh.go
		return code
	}
	var spec tasks.Spec
	if o.refresh == "" {
		if spec, err = buildSpec(o); err != nil {
			fmt.Fprintln(stderr, "enqueue:", err)
			return exitUsage
		}
	}
	var budget map[string]float64
	if o.budget != "" && o.refresh == "" {
		if budget, err = tasks.ParseBudget(o.budget, spec.Providers); err != nil {
			fmt.Fprintln(stderr, "enqueue:", err)
			return exitUsage
		}
	}
	jobSet := false
	fs.Visit(func(f *flag.Flag) { jobSet = jobSet || f.Name == "job" })
	if jobSet && o.job == "" {
		// A script whose $JOB is unset would pay for the whole list on every run.
		fmt.Fprintln(stderr, "enqueue: --job is empty; give a job id, or leave --job out for a new one")
		return exitUsage
	}
	if o.job == "" {
		o.job = ulid.Make().String()
	}
	if err := tasks.ValidJobID(o.job); err != nil {
		fmt.Fprintln(stderr, "enqueue:", err)
		return exitUsage
	}
	if o.dev {
		o.wait = true
	}
	shutdown, err := telemetry.Setup(ctx, "linkharvest-enqueue")
	if err != nil {
		fmt.Fprintln(stderr, "enqueue: telemetry:", err)
		return exitUsage
	}
	defer shutdown(context.WithoutCancel(ctx))
	ctx, span := telemetry.Tracer().Start(ctx, "enqueue", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("job", o.job)))
	code, err := submit(ctx, o, spec, budget, stdin, stdout, stderr)
	span.End()
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "enqueue:", runner.ExplainRedis(err))
			return exitUsage
		}
		fmt.Fprintln(stderr, "enqueue:", runner.ExplainRedis(err))
		return exitRuntime
	}
	return code
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(strings.ToLower(p)); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// buildSpec is the job's spec from the command line (tasks.NewSpec checks it).
func buildSpec(o options) (tasks.Spec, error) {
	return tasks.NewSpec(tasks.SpecRequest{Providers: o.providers, Endpoints: o.endpoints, Params: o.params,
		MaxRows: o.maxRows, MaxRetry: o.maxRetry})
}

// openInputs returns the concatenated inputs; "-" or none is stdin.
func openInputs(files []string, stdin io.Reader) (io.Reader, func(), error) {
	if len(files) == 0 {
		return stdin, func() {}, nil
	}
	var rs []io.Reader
	var closers []io.Closer
	for _, f := range files {
		if f == "-" {
			rs = append(rs, stdin)
			continue
		}
		fh, err := os.Open(f)
		if err == nil {
			if fi, serr := fh.Stat(); serr == nil && fi.IsDir() {
				fh.Close()
				err = fmt.Errorf("%s is a directory, not a domain list", f)
			}
		}
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			return nil, nil, usageError{err}
		}
		// A file without a final newline must not glue its last line to
		// the next file's first.
		rs = append(rs, fh, strings.NewReader("\n"))
		closers = append(closers, fh)
	}
	return io.MultiReader(rs...), func() {
		for _, c := range closers {
			c.Close()
		}
	}, nil
}

// summary is the job summary (docs/contract.md, "The JSON summary": job_id, domains, rejected, tasks, records, failed).
type summary struct {
	JobID    string             `json:"job_id"`
	Domains  int64              `json:"domains"`
	Rejected int64              `json:"rejected"`
	Tasks    int64              `json:"tasks"`
	Records  int64              `json:"records"`
	Failed   int64              `json:"failed"`
	Objects  int64              `json:"objects"`
	Bytes    int64              `json:"bytes"`
	State    string             `json:"state"`
	Spend    map[string]float64 `json:"spend"`
	Budget   map[string]float64 `json:"budget,omitempty"`
	Paused   map[string]string  `json:"paused,omitempty"`
	DryRun   bool               `json:"dry_run,omitempty"`
	Calls    int64              `json:"estimated_calls,omitempty"`
	Sink     string             `json:"sink,omitempty"`
	// Interrupted: the generation of a submission that did not finish
	// reading its list, if none has closed since.
	Interrupted int64 `json:"interrupted,omitempty"`
	Stashed     int64 `json:"stashed,omitempty"`
	// A refresh's base job, and its (provider, endpoint, domain) outcomes
	// unchanged since it and fetched as a change (full: fetched whole).
	BaseJob   string `json:"base_job,omitempty"`
	Unchanged *int64 `json:"unchanged,omitempty"`
	Changed   *int64 `json:"changed,omitempty"`
	Full      *int64 `json:"full,omitempty"`
	waiting   string
	charged   map[string]float64

	// With --estimate: what the job will take, and what the estimate cost.
	EstimatedSpend map[string]float64 `json:"estimated_spend,omitempty"`
	EstimateSpend  map[string]float64 `json:"estimate_spend,omitempty"`
}

func submit(ctx context.Context, o options, spec tasks.Spec, budget map[string]float64, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	in, closeIn, err := openInputs(o.files, stdin)
	if err != nil {
		return 0, err
	}
	defer closeIn()
	// Rejected lines are printed by the goroutine that reads the list.
	var rmu sync.Mutex
	rejectBuf := bufio.NewWriter(stderr)
	flushRejects := func() { rmu.Lock(); rejectBuf.Flush(); rmu.Unlock() }
	defer flushRejects()
	printReject := func(r domains.Reject) {
		rmu.Lock()
		fmt.Fprintf(rejectBuf, "line %d: %s: %q\n", r.Line, r.Reason, r.Input)
		rmu.Unlock()
	}

	var store *tasks.Store
	if o.dryRun && o.refresh != "" {
		// A refresh's spec and list are its base job's, in Redis.
		rdb, err := runner.OpenRedis(runner.RedisConfig{URL: o.redisURL, CAFile: o.redisCA})
		if err != nil {
			return 0, usageError{err}
		}
		defer rdb.Close()
		store = tasks.NewStore(rdb)
		var feed io.Reader
		if spec, budget, feed, err = refreshJob(ctx, store, o); err != nil {
			return 0, err
		}
		if feed != nil {
			in = feed
		}
	}
	if o.dryRun {
		add := func(int, string) error { return nil }
		var est *estimator // estimate.go
		if o.estimate {
			if est, err = newEstimator(ctx, o, spec, store, os.Getenv, stderr); err != nil {
				return 0, err
			}
			defer est.close()
			add = func(_ int, d string) error { return est.add(ctx, d) }
		}
		st, err := domains.Read(in, add, printReject)
		if err != nil {
			return 0, err
		}
		flushRejects()
		pairs := 0
		for _, p := range spec.Providers {
			pairs += len(spec.Endpoints[p])
		}
		s := summary{JobID: o.job, Domains: int64(st.Valid), Rejected: int64(st.Rejected), Tasks: int64(st.Valid * pairs), State: "dry-run", DryRun: true, Calls: int64(st.Valid * pairs), Spend: map[string]float64{}}
		fmt.Fprintf(stdout, "dry run: %d lines, %d domains (%d duplicates), %d rejected\n", st.Lines, st.Valid, st.Duplicates, st.Rejected)
		if est == nil && o.refresh != "" {
			s.Calls = 0
			fmt.Fprintf(stdout, "a refresh of %s: its calls depend on what changed; --estimate counts the changes (one call per 1000 domains)\n", o.refresh)
		} else if est == nil {
			fmt.Fprintf(stdout, "at least %d calls (one per domain, provider and endpoint; more for domains with more rows than a page)\n", s.Calls)
		} else if err := est.finish(ctx, &s); err != nil {
			return 0, err
		} else {
			est.print(stdout, budget)
		}
		if o.asJSON {
			printJSON(stdout, s)
		}
		if st.Valid == 0 {
			return exitUsage, nil
		}
		return exitOK, nil
	}

	var dev *devEnv
	if o.dev {
		dev, err = startDev(ctx, o, stderr)
		if err != nil {
			return 0, err
		}
		defer dev.Close()
		o.redisURL = dev.redisURL
	}
	rdb, err := runner.OpenRedis(runner.RedisConfig{URL: o.redisURL, CAFile: o.redisCA})
	if err != nil {
		return 0, usageError{err}
	}
	defer func() {
		// In-process workers stop before their Redis connection closes.
		if dev != nil {
			dev.stopWorkers()
		}
		rdb.Close()
	}()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return 0, fmt.Errorf("redis at %s: %w", redact.URL(o.redisURL), err)
	}
	if dev != nil {
		if err := dev.startWorkers(ctx, rdb); err != nil {
			return 0, err
		}
	}
	store = tasks.NewStore(rdb)
	if o.refresh != "" {
		var feed io.Reader
		if spec, budget, feed, err = refreshJob(ctx, store, o); err != nil { // refresh.go
			return 0, err
		}
		if feed != nil {
			in = feed
		}
	}
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	sub := &tasks.Submitter{Store: store, Client: client, FeedAfter: o.feedAfter}
	b, err := sub.Begin(ctx, o.job, spec, traceCarrier(ctx))
	if err != nil {
		return 0, usageError{err}
	}
	b.SetBudget(budget)
	// The list is read in its own goroutine so that Ctrl-C stops the
	// submission at once, even while a pipe's writer is silent.
	type readResult struct {
		st  domains.Stats
		err error
	}
	read := make(chan readResult, 1)
	go func() {
		st, err := domains.Read(in, func(_ int, d string) error { return b.Add(ctx, d) }, func(r domains.Reject) {
			printReject(r)
			_ = b.Reject(ctx, tasks.Reject{Line: r.Line, Input: r.Input, Reason: r.Reason})
		})
		read <- readResult{st, err}
	}()
	resume := fmt.Sprintf("rerun enqueue with --job %s and the same list to complete it", o.job)
	var st domains.Stats
	select {
	case <-ctx.Done():
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := b.Abort(bg); err != nil {
			fmt.Fprintln(stderr, "enqueue:", err)
		}
		n := b.Stats()
		flushRejects()
		return 0, fmt.Errorf("interrupted after %d domains of the list: job %s holds what was submitted; %s", n.Domains, o.job, resume)
	case r := <-read:
		st, err = r.st, r.err
	}
	if err != nil {
		if aerr := b.Abort(context.WithoutCancel(ctx)); aerr != nil {
			fmt.Fprintln(stderr, "enqueue:", aerr)
		}
		return 0, fmt.Errorf("submitting job %s: %w (%s)", o.job, err, resume)
	}
	stats, err := b.Close(ctx)
	flushRejects()
	if errors.Is(err, tasks.ErrNoDomain) {
		fmt.Fprintf(stdout, "%d lines, %d rejected\n", st.Lines, st.Rejected)
		return 0, usageError{errors.New("no valid domain in the input; nothing was submitted")}
	}
	if err != nil {
		_ = b.Abort(context.WithoutCancel(ctx))
		return 0, fmt.Errorf("submitting job %s: %w (%s)", o.job, err, resume)
	}
	fmt.Fprintf(stdout, "job %s: %d domains (%d new to the job, %d duplicates), %d rejected, %d tasks enqueued\n",
		o.job, st.Valid, stats.NewDomains, st.Duplicates, st.Rejected, stats.Tasks)
	if stats.Fed > 0 {
		fmt.Fprintf(stdout, "job %s: %d domains wait in the job's feed; the workers enqueue them as the queues drain\n", o.job, stats.Fed)
	}
	if stats.Refetched > 0 {
		fmt.Fprintf(stdout, "job %s: %d pages whose answers were lost are fetched again\n", o.job, stats.Refetched)
	}
	if !o.wait {
		if o.asJSON {
			s, err := store.Status(ctx, o.job)
			if err != nil {
				return 0, err
			}
			printJSON(stdout, toSummary(s))
		}
		return exitOK, nil
	}
	s, err := waitJob(ctx, store, o.job, stdout)
	if err != nil {
		return 0, err
	}
	sum := toSummary(s)
	if dev != nil {
		sum.Sink = dev.sinkURL
	}
	printSummary(stdout, sum)
	if o.asJSON {
		printJSON(stdout, sum)
	}
	if s.BudgetStopped() {
		return exitBudget, nil
	}
	if s.Failed > 0 {
		return exitFailed, nil
	}
	return exitOK, nil
}

func toSummary(s *tasks.Status) summary {
	if s.Spend == nil {
		s.Spend = map[string]float64{} // {} rather than null: nothing spent yet
	}
	sum := summary{JobID: s.JobID, Domains: s.Domains, Rejected: s.Rejected, Tasks: s.Tasks, Records: s.Records,
		Failed: s.Failed, Objects: s.Objects, Bytes: s.Bytes, State: s.State, Spend: s.Spend, Budget: s.Budget, Paused: s.Paused,
		Interrupted: s.Interrupted, Stashed: s.Stashed, waiting: s.WaitingFor(), charged: s.Charged}
	if s.BaseJob != "" {
		sum.BaseJob, sum.Unchanged, sum.Changed, sum.Full = s.BaseJob, &s.Unchanged, &s.Changed, &s.Full
	}
	return sum
}

func printSummary(w io.Writer, s summary) {
	fmt.Fprintf(w, "job %s %s: %d domains, %d rejected, %d tasks, %d records in %d objects (%d bytes), %d failed\n",
		s.JobID, s.State, s.Domains, s.Rejected, s.Tasks, s.Records, s.Objects, s.Bytes, s.Failed)
	if s.BaseJob != "" {
		fmt.Fprintf(w, "  refresh of %s: %d unchanged, %d changed (new and lost rows), %d fetched in full\n", s.BaseJob, *s.Unchanged, *s.Changed, *s.Full)
	}
	for _, p := range slices.Sorted(maps.Keys(s.Spend)) {
		fmt.Fprintf(w, "  spend %s: %s\n", p, tasks.FormatAmount(s.Spend[p], p))
	}
	for _, p := range slices.Sorted(maps.Keys(s.Budget)) {
		fmt.Fprintf(w, "  budget %s: %s of %s charged\n", p, tasks.FormatAmount(s.charged[p], p), tasks.FormatAmount(s.Budget[p], p))
	}
	for _, p := range slices.Sorted(maps.Keys(s.Paused)) {
		fmt.Fprintf(w, "  PAUSED %s: %s\n", p, s.Paused[p])
	}
	if s.waiting != "" {
		fmt.Fprintf(w, "  waiting for: %s\n", s.waiting)
	}
	if s.Interrupted > 0 {
		fmt.Fprintf(w, "  a submission of this job was interrupted before the end of its list: resubmit the same list with --job %s to complete it\n", s.JobID)
	}
	if s.Sink != "" {
		fmt.Fprintf(w, "output: %s (manifest: %s/jobs/%s/manifest.json)\n", s.Sink, s.Sink, s.JobID)
	}
}

func printJSON(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintln(w, string(b))
}
