package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
)

// devJobs is the example written for `muster dev`.
const devJobs = `# Example jobs for muster dev. Edit, then: %[3]s apply -f %[1]s
jobs:
  - name: hello
    description: say hello from every target
    targets: [%[2]s]
    steps:
      - name: greet
        shell: echo "hello from $MUSTER_TARGET (run $MUSTER_RUN_ID)"
      - name: uptime
        command: [uptime]

  - name: heartbeat
    description: runs every 10 seconds on its own, even with the master stopped
    targets: [%[2]s]
    schedules:
      - cron: "*/10 * * * * *"
    steps:
      - name: stamp
        shell: date
`

func newDevCmd() *cobra.Command {
	var n int
	var listen, dataDir, logLevel string
	cmd := &cobra.Command{
		Use:   "dev [--targets 2]",
		Short: "Run a master and targets in one process, to try muster",
		Long: `Run a master and N enlisted targets in this one process, with their data in a
temporary directory that is removed when you stop it (or in --data, kept).
It prints the environment to use and what to try next.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 || n > 100 {
				return errors.New("--targets: from 1 to 100")
			}
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			dir := dataDir
			if dir == "" {
				if dir, err = os.MkdirTemp("", "muster-dev-"); err != nil {
					return err
				}
				defer os.RemoveAll(dir)
			}
			var local lateTargets
			ctx, stop := daemonContext(log, local.hurry)
			defer stop()
			return runDev(ctx, cmd.OutOrStdout(), log, dir, listen, n, &local)
		},
	}
	f := cmd.Flags()
	f.IntVar(&n, "targets", 2, "how many targets to run")
	f.StringVar(&listen, "listen", "127.0.0.1:7070", "address of the master's listener")
	f.StringVar(&dataDir, "data", "", "keep the data in this directory instead of a temporary one")
	f.StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	return cmd
}

func runDev(ctx context.Context, out io.Writer, log *slog.Logger, dir, listen string, n int, local *lateTargets) error {
	cfg := master.DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.Logger = filepath.Join(dir, "master"), listen, log.With("process", "master")
	m, err := master.New(cfg)
	if err != nil {
		return err
	}
	if err := m.Open(ctx); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w; is another muster running? Pick another address with --listen 127.0.0.1:7171", err)
		}
		return err
	}
	defer m.Close()
	var wg sync.WaitGroup
	masterCtx, stopMaster := context.WithCancel(context.Background())
	defer func() { stopMaster(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := m.Run(masterCtx); err != nil {
			log.Error("master stopped", muster.LogErr, err)
		}
	}()

	token, err := readToken(filepath.Join(cfg.DataDir, master.AdminTokenFile))
	if err != nil {
		return err
	}
	targets := newLocalTargets(m, log)
	local.set(targets)
	defer targets.close()
	var names []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("dev-%d", i)
		if err := targets.start(ctx, name, filepath.Join(dir, name), false); err != nil {
			return err
		}
		names = append(names, name)
	}

	jobsFile := filepath.Join(dir, "jobs.yaml")
	bin := cliName()
	if err := os.WriteFile(jobsFile, fmt.Appendf(nil, devJobs, jobsFile, strings.Join(names, ", "), bin), 0o644); err != nil {
		return err
	}
	caFile := filepath.Join(cfg.DataDir, pki.CACertFile)
	envFile := filepath.Join(dir, "env")
	env := fmt.Sprintf("export MUSTER_ADDR=%s\nexport MUSTER_TOKEN=%s\nexport MUSTER_CACERT=%s\n", m.URL, token, caFile)
	if err := os.WriteFile(envFile, []byte(env), 0o600); err != nil {
		return err
	}
	noun := "targets"
	if n == 1 {
		noun = "target"
	}
	fmt.Fprintf(out, `muster dev: a master and %[1]d %[8]s (%[2]s) are running; data in %[3]s

In another terminal, point the CLI at this master:

  . %[4]s

then try:

  %[6]s target list
  %[6]s apply -f %[5]s --wait
  %[6]s job start hello --wait
  %[6]s job history hello --steps
  %[6]s downloadlist

and open the web console with the link this prints (the browser warns about
the master's own CA, %[7]s, unless you trust it):

  %[6]s login-link

Press Ctrl-C to stop.
`, n, strings.Join(names, ", "), dir, envFile, jobsFile, bin, caFile, noun)
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping")
	return nil
}

// cliName is how to run this binary from another terminal, as the
// commands dev prints say: "muster" when that is what PATH finds, else its
// absolute path (a binary just built with go build -o muster is not on
// PATH).
func cliName() string {
	self, err := os.Executable()
	if err != nil {
		return "muster"
	}
	if found, err := exec.LookPath("muster"); err == nil {
		a, errA := os.Stat(found)
		b, errB := os.Stat(self)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return "muster"
		}
	}
	if strings.ContainsAny(self, " '\"$\\") {
		return strconv.Quote(self)
	}
	return self
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
