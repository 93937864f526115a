package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
)

// clientFlags are the flags of every command that talks to the master's API.
type clientFlags struct {
	addr, token, cacert, output string
}

// defaultAddr is where operator commands look for the master.
const defaultAddr = "https://127.0.0.1:7070"

func (f *clientFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.Var(nonEmpty{&f.addr, "a value", "use $MUSTER_ADDR"}, "addr", "master address (default $MUSTER_ADDR, else "+defaultAddr+")")
	pf.Var(nonEmpty{&f.token, "a value", "use $MUSTER_TOKEN"}, "token", "API token, or @FILE to read it from a file (default $MUSTER_TOKEN)")
	pf.Var(nonEmpty{&f.cacert, "a value", "use $MUSTER_CACERT"}, "cacert", "the master's CA certificate, its ca.pem (default $MUSTER_CACERT)")
}

func (f *clientFlags) registerOutput(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.output, "output", "o", outputTable, outputHelp)
}

// address is the master's address, from the flags or the environment, and
// where it came from, to name in an error.
func (f *clientFlags) address() (addr, from string) {
	if f.addr != "" {
		return f.addr, "--addr"
	}
	if v := envOr("MUSTER_ADDR", ""); v != "" {
		return v, "MUSTER_ADDR"
	}
	return defaultAddr, "--addr"
}

// setting returns a flag's value, else its environment variable's, and
// which of the two it is, to name in an error.
func setting(flagValue, flag, env string) (value, from string) {
	if flagValue != "" {
		return flagValue, flag
	}
	return envOr(env, ""), env
}

// client builds an API client from the flags and the environment. A
// setting that is wrong is named as it was given: the flag, or the
// environment variable.
func (f *clientFlags) client() (*httpapi.Client, error) {
	addr, addrFrom := f.address()
	token, tokenFrom := setting(f.token, "--token", "MUSTER_TOKEN")
	if path, ok := strings.CutPrefix(token, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tokenFrom, err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return nil, errors.New("an API token is needed: set MUSTER_TOKEN (the master wrote one to admin.token in its data directory) or pass --token")
	}
	cacert, cacertFrom := setting(f.cacert, "--cacert", "MUSTER_CACERT")
	var roots *x509.CertPool
	if cacert != "" {
		var err error
		if roots, err = pki.LoadPool(cacert); err != nil {
			return nil, fmt.Errorf("%s: %w", cacertFrom, err)
		}
	}
	c, err := httpapi.NewClient(addr, token, roots)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addrFrom, err)
	}
	c.SetCASource(cacertFrom)
	return c, nil
}

// format returns the checked value of -o.
func (f *clientFlags) format() (string, error) {
	if f.output == "" {
		return outputTable, nil
	}
	return f.output, checkOutput(f.output)
}

// query makes one API call and prints its result: as JSON with -o json, as
// YAML with -o yaml, else with table, whose control characters are escaped
// on a terminal (forTerminal): what it prints besides a table's cells (a
// job's description, a step's script, a run's message) is text the master
// holds, written by others.
func query[T any](cmd *cobra.Command, f *clientFlags, call func(*httpapi.Client) (T, error), table func(io.Writer, T) error) error {
	format, err := f.format()
	if err != nil {
		return err
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	v, err := call(c)
	if err != nil {
		return err
	}
	return printAs(cmd.OutOrStdout(), format, v, func(w io.Writer) error { return table(forTerminal(w, false), v) })
}
