// Command muster is a multiserver job scheduler: one binary for the master,
// its targets, and the operator commands that drive them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries a process exit code other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// run executes the command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr, args)
	root.SetArgs(args)
	err := unknownSubcommand(root, args)
	if err == nil {
		err = root.Execute()
	}
	if err == nil {
		return 0
	}
	// An error may carry text from the master or a target (a refusal, a
	// run's message): on a terminal its control characters are escaped.
	stderr = forTerminal(stderr, false)
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "muster:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "muster:", err)
	return 1
}

// commands are muster's subcommands, each by the name it is called by.
// TestCommandNames holds each name to its command's.
var commands = []struct {
	name string
	new  func() *cobra.Command
}{
	{"master", newMasterCmd},
	{"target", newTargetCmd},
	{"enlist", newEnlistCmd},
	{"defect", newDefectCmd},
	{"token", newTokenCmd},
	{"apikey", newAPIKeyCmd},
	{"audit", newAuditCmd},
	{"login-link", newLoginLinkCmd},
	{"apply", newApplyCmd},
	{"export", newExportCmd},
	{"import", newImportCmd},
	{"job", newJobCmd},
	{"rollout", newRolloutCmd},
	{"downloadlist", newDownloadListCmd},
	{"group", newGroupCmd},
	{"post", newPostCmd},
	{"history", newHistoryCmd},
	{"operator", newOperatorCmd},
	{"alert", newAlertCmd},
	{"event", newEventCmd},
	{"dev", newDevCmd},
	{"bench", newBenchCmd},
	{"store", newStoreCmd},
}

// newRoot returns the root command for the command line args.
func newRoot(stdout, stderr io.Writer, args []string) *cobra.Command {
	root := &cobra.Command{
		Use:   "muster",
		Short: "A multiserver job scheduler",
		Long: `muster runs jobs across a fleet of servers. A master holds job definitions;
targets enlist with it, download their jobs, run them on their own schedules
(even while the master is down), and report every run back.

Start with "muster dev" to try a master and two targets on this machine.`,
		Version:       muster.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate(versionText())
	root.SetOut(stdout)
	root.SetErr(stderr)
	// A command line that begins with a subcommand's name gets that
	// subcommand alone: the target daemon, for one, then builds none of
	// the others (their flags, their help), and reads none of their code.
	// Anything else (help, completion, a mistyped name cobra suggests a
	// fix for, a flag of the root) gets them all.
	for _, c := range commands {
		if len(args) > 0 && args[0] == c.name {
			root.AddCommand(c.new())
			explainArgs(root)
			addCompletions(root)
			return root
		}
	}
	for _, c := range commands {
		root.AddCommand(c.new())
	}
	explainArgs(root)
	addCompletions(root)
	return root
}

// unknownSubcommand returns the error for a command line that names a group
// of commands (muster job, muster group, …) and then a word that is none of
// its subcommands, as cobra returns for a mistyped command: cobra itself
// prints the group's help and succeeds, so that "muster job strat backup" in
// a script would pass for a start.
func unknownSubcommand(root *cobra.Command, args []string) error {
	for _, a := range args {
		if a == "-h" || a == "--help" {
			return nil // help, as asked
		}
	}
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root || cmd.Runnable() || !cmd.HasSubCommands() {
		return nil
	}
	for _, a := range rest {
		if a == "--" {
			return nil
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		return unknownCommand(cmd, a)
	}
	return nil
}

// unknownCommand is the error for a word given where cmd wants one of its
// subcommands, with the subcommands it may be a mistyping of.
func unknownCommand(cmd *cobra.Command, word string) error {
	msg := fmt.Sprintf("unknown command %q for %q", word, cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(word); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return errors.New(msg)
}

// signalContext is canceled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// daemonContext is signalContext for a daemon: it is also canceled by
// SIGHUP, whose default action would end the process at once, leaving the
// runs of the steps it runs recorded running and their processes behind,
// and a master's polls unanswered (a daemon started with SIGHUP ignored,
// under nohup, keeps ignoring it). For a daemon that runs steps (again
// not nil) every signal after the first calls again, which hurries the
// stop. Each is logged. stop releases the signals and waits for the
// goroutine that watches them.
func daemonContext(log *slog.Logger, again func()) (ctx context.Context, stop func()) {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	got := make(chan os.Signal, 4)
	signal.Notify(got, sigs...)
	ctx, cancel := context.WithCancel(context.Background())
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for first := true; ; first = false {
			select {
			case <-quit:
				return
			case sig := <-got:
				switch {
				case first && again == nil:
					log.Info("stopping", "signal", sig.String())
					cancel()
				case first:
					log.Info("stopping: runs in progress are stopped and recorded canceled; signal again to kill their steps at once", "signal", sig.String())
					cancel()
				case again != nil:
					log.Warn("stopping at once: killing the steps of the runs in progress", "signal", sig.String())
					again()
				}
			}
		}
	}()
	return ctx, func() {
		signal.Stop(got)
		close(quit)
		<-done
		cancel()
	}
}

// newLogger returns a text logger on w at the named level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// envOr returns the environment variable's value, or def.
func envOr(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}
