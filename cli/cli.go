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
	"slices"
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
	// flags is the command's flag set (the last newFlags made), so that an
	// API error naming a field can name the command's flag instead.
	flags *flag.FlagSet
}

// command is one `pomona <name>`. A command with subcommands lists them
// in subs: Main answers `pomona <name> --help` and refuses an unknown
// subcommand from this table, before run sees the arguments.
type command struct {
	summary string
	run     func(env *Env, args []string) error
	subs    []sub
}

// sub is a subcommand and what it does (shown by `pomona <command> --help`).
type sub struct{ name, summary string }

func commands() map[string]command {
	m := map[string]command{
		"serve": {summary: "run the server", run: runServe},
		"tenant": {summary: "manage tenants: add, list, show, update, branding, delete", run: runTenant, subs: []sub{
			{"add", "create a tenant with its company domains"},
			{"list", "list the tenants"},
			{"show", "show one tenant"},
			{"update", "rename a tenant, add or remove domains, change the second-factor rule"},
			{"branding", "the sign-in pages' logo, accent colour, contact line and privacy link"},
			{"delete", "delete a tenant (--cascade: with its users, unenrolling their devices; --yes confirms)"},
		}},
		"user": {summary: "manage users: add, list, show, update, enable, disable, set-password, reset-2fa, reauthenticate, delete, import", run: runUser, subs: []sub{
			{"add", "create a user"},
			{"list", "list users"},
			{"show", "show one user"},
			{"update", "change a user's name or Managed Apple Account"},
			{"enable", "let a user sign in again"},
			{"disable", "stop a user signing in"},
			{"set-password", "set a user's password"},
			{"reset-2fa", "remove a user's second factor (they set up a new one at the next sign-in)"},
			{"reauthenticate", "make the user's devices sign in again"},
			{"delete", "delete a user, unenrolling their devices (--yes confirms)"},
			{"import", "create or update users from a CSV file"},
		}},
		"apikey": {summary: "manage admin API keys: create, list, revoke", run: runAPIKey, subs: []sub{
			{"create", "create a key (printed once)"},
			{"list", "list the keys"},
			{"revoke", "revoke a key"},
		}},
		"admin": {summary: "web-console accounts: create (prints a one-time setup link), list, reset", run: runAdmin, subs: []sub{
			{"create", "create a console account and print its one-time setup link"},
			{"list", "list the console accounts"},
			{"reset", "reset an account's password and second factor (prints a new setup link)"},
		}},
		"discovery": {summary: "check a company domain's discovery redirect, print redirect snippets", run: runDiscovery, subs: []sub{
			{"check", "ask a company domain for its enrollment service, as a device does"},
			{"snippet", "print web-server snippets for the company domain's redirect"},
		}},
		"push-cert": {summary: "the APNs push certificate: csr, import, show", run: runPushCert, subs: []sub{
			{"csr", "create the certificate signing request for Apple's Push Certificates Portal"},
			{"import", "import the certificate Apple issued"},
			{"show", "show the current certificate"},
		}},
		"device": {summary: "enrolled devices: list, show, command, commands, push, unenroll", run: runDevice, subs: []sub{
			{"list", "list devices"},
			{"show", "show one device"},
			{"command", "queue an MDM command"},
			{"commands", "a device's command history"},
			{"push", "wake a device with a push notification"},
			{"unenroll", "remove the enrollment from a device"},
		}},
		"audit": {summary: "show the audit log of admin changes", run: runAudit},
		"store": {summary: "move a deployment between SQLite and PostgreSQL: migrate", run: runStore, subs: []sub{
			{"migrate", "copy every record from one database to another (empty) one"},
		}},
		"sim": {summary: "a simulated iPhone, iPad or Mac: enroll (checks a deployment from the outside)", run: runSim, subs: []sub{
			{"enroll", "enroll one simulated device against a deployment, step by step"},
			{"run", "a fleet of simulated devices against a deployment"},
		}},
		"bench": {summary: "load benchmark: simulated devices against a server it starts on loopback", run: runBench},
	}
	for name, c := range deployCommands() {
		m[name] = c
	}
	for name, c := range abmCommands() {
		m[name] = c
	}
	return m
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// printCommandUsage lists a command's subcommands.
func printCommandUsage(w io.Writer, name string, cmd command) {
	fmt.Fprintf(w, "pomona %s: %s\n\nUsage: pomona %s <subcommand> [arguments]\n\nSubcommands:\n", name, cmd.summary, name)
	for _, s := range cmd.subs {
		fmt.Fprintf(w, "  %-15s %s\n", s.name, s.summary)
	}
	fmt.Fprintf(w, "\nRun `pomona %s <subcommand> --help` for its flags.\n", name)
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
	if len(cmd.subs) > 0 {
		rest := args[1:]
		switch {
		case len(rest) > 0 && isHelp(rest[0]):
			printCommandUsage(env.Stdout, args[0], cmd)
			return 0
		case len(rest) == 0:
			fmt.Fprintf(env.Stderr, "pomona %s: missing subcommand\n\n", args[0])
			printCommandUsage(env.Stderr, args[0], cmd)
			return 2
		case !slices.ContainsFunc(cmd.subs, func(s sub) bool { return s.name == rest[0] }):
			fmt.Fprintf(env.Stderr, "pomona %s: unknown subcommand %q\n\n", args[0], rest[0])
			printCommandUsage(env.Stderr, args[0], cmd)
			return 2
		}
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
	fmt.Fprintf(env.Stderr, "pomona %s: %v\n", args[0], flagNamed(env.flags, err))
	return 1
}

// flagNamed rewrites an API validation error about a field (e.g.
// "managed_apple_id: …") to name the command's flag for it
// ("--managed-apple-id: …") when the command has that flag: people typed
// flags, not API fields.
func flagNamed(fs *flag.FlagSet, err error) error {
	var ae *apiclient.Error
	if fs == nil || !errors.As(err, &ae) || ae.Field == "" {
		return err
	}
	name := strings.ReplaceAll(ae.Field, "_", "-")
	if fs.Lookup(name) == nil {
		return err
	}
	return fmt.Errorf("--%s: %s", name, strings.TrimPrefix(ae.Message, ae.Field+": "))
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
	env.flags = fs
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pomona %s\n\nFlags (each also as POMONA_<FLAG>):\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags anywhere among the arguments (so
// `tenant add "Example" --domain example.com` works), then fills every flag
// not given on the command line from POMONA_<FLAG>.
func parse(env *Env, fs *flag.FlagSet, args []string) ([]string, error) {
	// Help that was asked for goes to stdout (pomona user add -h | less);
	// a usage error's hint stays on stderr.
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(env.Stdout)
		}
	}
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
	fs.StringVar(&c.data, "data", defaultData, "data directory of a local server, to trust its ca.pem; when not given, the nearest pomona-data in the working directory or a parent of it")
	fs.BoolVar(&c.json, "json", false, "print JSON instead of text")
}

func (c *clientFlags) client(env *Env) (*apiclient.Client, error) {
	ca := c.caFile
	if ca == "" && strings.HasPrefix(c.server, "https://") {
		ca = findCA(c.data)
	}
	cl, err := apiclient.New(c.server, c.apiKey, ca)
	if err == nil {
		env.cleanup = append(env.cleanup, cl.HTTP.CloseIdleConnections)
	}
	return cl, err
}

// defaultData is the data directory's default, for serve and the CLI alike.
const defaultData = "./pomona-data"

// findCA returns the development CA certificate the CLI trusts when no
// --ca-file is given, or "": <data>/ca.pem, where data is --data (or
// POMONA_DATA). With the default --data, the directories above the
// current one are searched too (the nearest ./pomona-data/ca.pem wins, as
// git finds .git), so the CLI works from any directory below the one
// where `pomona serve` runs with its default data directory.
func findCA(data string) string {
	if p := filepath.Join(data, "ca.pem"); fileExists(p) {
		return p
	}
	if data != defaultData {
		return ""
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if p := filepath.Join(dir, "pomona-data", "ca.pem"); fileExists(p) {
			return p
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
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
