package main

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/bench"
	"github.com/musterhq/muster/internal/master"
)

func newBenchCmd() *cobra.Command {
	var o bench.Options
	var output string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "bench SCENARIO [--targets N] [--runs N] [-o json|yaml]",
		Short: "Measure a fleet built on this machine against the performance budget",
		Long: `Build a fleet on this machine and measure it: a master in its own process and
targets that are real "muster target" processes or lightweight simulated
targets that speak the real agent protocol (enlistment with a token and a
CSR, mutual TLS, long-poll, acks, run uploads). Everything talks over TLS on
127.0.0.1. Each figure is printed beside its budget.

Scenarios (defaults in brackets):
  dispatch  start request → step process started on the target, and → run
            recorded on the master, beside the dispatch floor measured
            after each start [1 target process, 1000 starts]
  fanout    one START to every target: all running, all recorded
            [100 targets: processes; more: simulated; 5 fan-outs]
  schedule  jobs due every second, spread over --targets target processes:
            lateness beside the spawn floor measured in the same window,
            missed and duplicate fires [50 jobs, 1 target, 60 s]
  fleet     a master holding every target's long-poll (60 s heartbeat): its
            RSS, CPU, open files, and a fan-out at that size
            [10000 simulated targets, 60 s]
  ingest    finished runs a second the master accepts from uploads (SQLite)
            [8 simulated targets, 200000 runs]
  upload    the master's memory while targets send run uploads of the
            largest size it takes, all at once, each retried with backoff
            while refused [24 simulated targets, 48 uploads of 63 MiB]
  agent     an idle target's RSS and CPU [1 target process, 60 s]
  output    one run whose steps print a lot: its time, the target's peak
            RSS and data directory growth [1 target process, --runs 40
            steps of --size 5MiB]
  console   each page of the web console, signed in: p50 and p99 against
            the 200 ms budget [1000 simulated targets in 10 groups, --jobs
            100 aimed at them, a run of each on each target; --runs 30
            fetches a page]

The simulated targets of fleet and fanout run in child processes of up to
--sims-per-process each, since each holds a connection and a process may
hold no more than its open-file limit.

Where a budget is a multiple of what the machine allows at best (a floor
measured in the same run), the table gives the ratio; -o json lists every
bound under "budget", each with what was measured, the bound, the floor
and the ratio where one applies, and whether it was met; "met" is whether
all were. The command exits 0 once it has measured, met or not: check
"met" (muster bench dispatch -o json | jq -e .met).

The data directories live in a temporary directory removed at the end,
unless --dir names one.`,
		Example: `  muster bench dispatch
  muster bench dispatch --targets 100 -o json
  muster bench schedule --targets 3
  muster bench fanout --targets 1000
  muster bench output --runs 100 --size 10MiB
  muster bench console --targets 1000 --jobs 100
  muster bench fleet --targets 10000 --profile /tmp/prof
  muster bench fleet --targets 20000 --masters 2 --store postgres://root@127.0.0.1/test`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: bench.Scenarios,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if !quiet {
				o.Progress = cmd.ErrOrStderr()
			}
			ctx, stop := signalContext()
			defer stop()
			res, err := bench.Run(ctx, args[0], o)
			if err != nil {
				return err
			}
			return printAs(cmd.OutOrStdout(), output, res, res.Table)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Targets, "targets", 0, "targets in the fleet (default: the scenario's)")
	f.IntVar(&o.Runs, "runs", 0, "what is measured: starts (dispatch), fan-outs (fanout), uploaded runs (ingest), uploads (upload),\nfetches of each page (console), or the steps of the run (output) (default: the scenario's)")
	f.Var((*byteSizeFlag)(&o.Size), "size", "bytes each step prints (output), such as 5MiB")
	f.IntVar(&o.Jobs, "jobs", 0, "jobs: due every second (schedule), held and not due (agent), or aimed at the targets (console)\n(default: the scenario's)")
	f.DurationVar(&o.Duration, "duration", 0, "measuring window (schedule, fleet, agent; default 60s)")
	f.StringVar(&o.Mode, "mode", "", "targets: process (real muster target processes) or sim (simulated)")
	f.StringVar(&o.Dir, "dir", "", "keep the data directories and logs here (and, for schedule, every sample in schedule-samples.csv)")
	f.StringVar(&o.ProfileDir, "profile", "", "write the master's CPU and heap profiles to this directory (with --masters, the second master's to its subdirectory master2, and so on); fleet profiles the fan-out apart, in master.window.cpu.pprof")
	f.StringVar(&o.Store, "store", "", "put the catalog in this PostgreSQL database (postgres://…), in a new schema dropped at the end\n(dispatch, fanout, ingest, fleet; default: SQLite)")
	f.IntVar(&o.Masters, "masters", 0, "masters serving the catalog, with --store (fleet spreads its targets over them)")
	f.StringVarP(&output, "output", "o", outputTable, outputHelp)
	f.BoolVarP(&quiet, "quiet", "q", false, "print no progress on stderr")
	f.IntVar(&o.SimsPerProcess, "sims-per-process", 0, "simulated targets each sim process holds (fleet, fanout; default 10000, at most the open-file limit allows)")
	cmd.AddCommand(newBenchServeMasterCmd(), newBenchServeEchoCmd(), newBenchServeSimsCmd())
	return cmd
}

// newBenchServeEchoCmd is the far end of the TLS round trip that `muster
// bench dispatch` measures as part of its floor.
func newBenchServeEchoCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "serve-echo --dir DIR",
		Short:  "Answer TLS requests of a fixed size, for muster bench's dispatch floor",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext()
			defer stop()
			return bench.ServeEcho(ctx, cmd.OutOrStdout(), dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory of the CA and the server certificate")
	cmd.MarkFlagRequired("dir")
	return cmd
}

// newBenchServeSimsCmd is a process of simulated targets for `muster bench
// fleet` and `fanout`: it reads its targets from stdin, reports on stdout,
// and stops when stdin closes.
func newBenchServeSimsCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "serve-sims",
		Short:  "Hold a share of a simulated fleet, for muster bench",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext()
			defer stop()
			return bench.ServeSims(ctx, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
}

// newBenchServeMasterCmd is the master process of `muster bench --profile`:
// `muster master` with CPU and heap profiles.
func newBenchServeMasterCmd() *cobra.Command {
	cfg := master.DefaultConfig()
	var profileDir string
	cmd := &cobra.Command{
		Use:    "serve-master --data DIR --listen ADDR --profile DIR",
		Short:  "Run a master with profiling, for muster bench",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), "warn")
			if err != nil {
				return err
			}
			cfg.Logger = log
			ctx, stop := signalContext()
			defer stop()
			return bench.ServeMaster(ctx, cmd.OutOrStdout(), cfg, profileDir)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", "", "data directory")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address of the HTTPS listener")
	f.StringVar(&cfg.Store, "store", "", "the catalog (see muster master)")
	f.StringVar(&cfg.SecretFile, "secret-file", "", "the secret of a PostgreSQL catalog (see muster master)")
	f.StringVar(&profileDir, "profile", "", "directory for the profiles")
	cmd.MarkFlagRequired("data")
	cmd.MarkFlagRequired("profile")
	return cmd
}

// byteSizeFlag is a flag holding a size such as 5MiB.
type byteSizeFlag int64

func (b *byteSizeFlag) String() string {
	if *b == 0 {
		return ""
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSizeFlag) Set(s string) error {
	v, err := agent.ParseByteSize(s)
	*b = byteSizeFlag(v)
	return err
}

func (b *byteSizeFlag) Type() string { return "size" }
