// Package cli is the `pomona` command: `serve` runs the server, the other
// commands administer a running server through its admin API.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pomona-mdm/pomona/apiclient"
)

// Env is the process environment the CLI reads (tests replace it).
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// IsTerminal reports whether stdin (for prompts) or stderr (for
	// progress bars) is a terminal.
	StdinTerminal  bool
	StderrTerminal bool
	// Ctx is cancelled on SIGINT/SIGTERM.
	Ctx context.Context

	cleanup []func()
}

type command struct {
	summary string
	run     func(env *Env, args []string) error
}

func commands() map[string]command {
	m := map[string]command{
		"serve":     {"run the server", runServe},
		"tenant":    {"manage tenants: add, list, show, update, delete", runTenant},
		"user":      {"manage users: add, list, show, update, enable, disable, set-password, reset-2fa, reauthenticate, delete, import", runUser},
		"apikey":    {"manage admin API keys: create, list, revoke", runAPIKey},
		"admin":     {"web-console accounts: create (prints a one-time setup link), list, reset", runAdmin},
		"discovery": {"check a company domain's discovery redirect, print redirect snippets", runDiscovery},
		"push-cert": {"the APNs push certificate: csr, import, show", runPushCert},
		"device":    {"enrolled devices: list, show, command, commands, push, unenroll", runDevice},
		"audit":     {"show the audit log of admin changes", runAudit},
		"store":     {"move a deployment between SQLite and PostgreSQL: migrate", runStore},
		"sim":       {"a simulated iPhone, iPad or Mac: enroll (checks a deployment from the outside)", runSim},
		"bench":     {"load benchmark: simulated devices against a server it starts on loopback", runBench},
	}
	for name, c := range deployCommands() {
		m[name] = c
	}
	return m
}

// usageError is a mistake in the command line: it prints usage hints and
// exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// errSilent: the command already said what went wrong; exit 1.
var errSilent = errors.New("")

// Main runs the command line args (without the program name) and returns
// the exit status.
func Main(env *Env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(env.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "pomona: unknown command %q\n\n", args[0])
		printUsage(env.Stderr)
		return 2
	}
	err := cmd.run(env, args[1:])
	// Close pooled connections so a server shutting down does not wait on
	// connections this command dialed but no longer needs.
	for _, f := range env.cleanup {
		f()
	}
	env.cleanup = nil
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "pomona %s: %s\n", args[0], ue.msg)
		return 2
	case errors.Is(err, errSilent):
		return 1
	}
	fmt.Fprintf(env.Stderr, "pomona %s: %v\n", args[0], err)
	return 1
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Pomona: an MDM server for Apple account-driven user enrollment.")
	fmt.Fprintln(w, "\nUsage: pomona <command> [arguments]\n\nCommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set as POMONA_<FLAG> (for example --public-url as POMONA_PUBLIC_URL).")
	fmt.Fprintln(w, "Run `pomona <command> -h` for a command's flags.")
}

// newFlags makes a flag set whose errors go to stderr.
func newFlags(env *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: pomona %s\n\nFlags (each also as POMONA_<FLAG>):\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags anywhere among the arguments (so
// `tenant add "Example" --domain example.com` works), then fills every flag
// not given on the command line from POMONA_<FLAG>.
func parse(env *Env, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := "POMONA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env.Getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = usagef("%s=%q: %v", name, v, e)
			}
		}
	})
	return pos, err
}

// clientFlags are shared by every command that talks to the API.
type clientFlags struct {
	server, apiKey, caFile, data string
	json                         bool
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "https://localhost:8443", "Pomona server URL")
	fs.StringVar(&c.apiKey, "api-key", "", "admin API key")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM file of a CA to trust for the server's certificate (default: <data>/ca.pem when it exists)")
	fs.StringVar(&c.data, "data", "./pomona-data", "data directory of a local server (to find its ca.pem)")
	fs.BoolVar(&c.json, "json", false, "print JSON instead of text")
}

func (c *clientFlags) client(env *Env) (*apiclient.Client, error) {
	ca := c.caFile
	if ca == "" && strings.HasPrefix(c.server, "https://") {
		if p := filepath.Join(c.data, "ca.pem"); fileExists(p) {
			ca = p
		}
	}
	cl, err := apiclient.New(c.server, c.apiKey, ca)
	if err == nil {
		env.cleanup = append(env.cleanup, cl.HTTP.CloseIdleConnections)
	}
	return cl, err
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func subcommand(args []string, usage string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, usagef("missing subcommand\nUsage: pomona %s", usage)
	}
	return args[0], args[1:], nil
}
