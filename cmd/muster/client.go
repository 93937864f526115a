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
	pf.StringVar(&f.addr, "addr", "", "master address (default $MUSTER_ADDR, else "+defaultAddr+")")
	pf.StringVar(&f.token, "token", "", "API token, or @FILE to read it from a file (default $MUSTER_TOKEN)")
	pf.StringVar(&f.cacert, "cacert", "", "the master's CA certificate, its ca.pem (default $MUSTER_CACERT)")
}

func (f *clientFlags) registerOutput(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.output, "output", "o", outputTable, outputHelp)
}

// address is the master's address, from the flags or the environment.
func (f *clientFlags) address() string {
	if f.addr != "" {
		return f.addr
	}
	return envOr("MUSTER_ADDR", defaultAddr)
}

// client builds an API client from the flags and the environment.
func (f *clientFlags) client() (*httpapi.Client, error) {
	addr := f.address()
	token := f.token
	if token == "" {
		token = envOr("MUSTER_TOKEN", "")
	}
	if path, ok := strings.CutPrefix(token, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return nil, errors.New("an API token is needed: set MUSTER_TOKEN (the master wrote one to admin.token in its data directory) or pass --token")
	}
	cacert := f.cacert
	if cacert == "" {
		cacert = envOr("MUSTER_CACERT", "")
	}
	var roots *x509.CertPool
	if cacert != "" {
		var err error
		if roots, err = pki.LoadPool(cacert); err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
	}
	return httpapi.NewClient(addr, token, roots)
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
