// Package cli is the `pomona` command: `serve` runs the server, the other
// commands administer a running server through its admin API (the
// operator's version, healthcheck, backup, restore, store and bench work
// on the host). Every command is declared once, in the table of
// commands.go; command.go opens each of them the same way (flags,
// POMONA_<FLAG> variables, the API client); one file per command holds
// what it does.
package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
}

// printGroupUsage lists a group's subcommands, in the table's order.
func printGroupUsage(w io.Writer, path string, cmd *command) {
	fmt.Fprintf(w, "pomona %s: %s\n\nUsage: pomona %s <subcommand> [arguments]\n\nSubcommands:\n", path, cmd.synopsis, path)
	for _, s := range cmd.children {
		fmt.Fprintf(w, "  %-15s %s\n", s.name, s.synopsis)
	}
	fmt.Fprintf(w, "\nRun `pomona %s <subcommand> --help` for its flags.\n", path)
}

// isHelp: the argument after a group's name that asks for its usage.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// usageError is a mistake in the command line: it prints usage hints and
// exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// errSilent: the command already said what went wrong; exit 1.
var errSilent = errors.New("")

// Main runs the command line args (without the program name) and returns
// the exit status: 0 on success and for help that was asked for, 2 for a
// mistake in the command line (unknown command or subcommand, bad flag,
// missing argument), 1 when the command failed.
func Main(env *Env, args []string) int {
	if len(args) == 0 {
		// A mistake like an unknown command: the list goes to stderr.
		fmt.Fprintf(env.Stderr, "pomona: missing command\n\n")
		printUsage(env.Stderr)
		return 2
	}
	if isHelp(args[0]) {
		printUsage(env.Stdout)
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	cmd := find(commands(), args[0])
	if cmd == nil {
		fmt.Fprintf(env.Stderr, "pomona: unknown command %q\n\n", args[0])
		printUsage(env.Stderr)
		return 2
	}
	// Walk down the groups to the leaf the arguments name.
	path, rest := args[0], args[1:]
	for len(cmd.children) > 0 {
		var next *command
		if len(rest) > 0 {
			next = find(cmd.children, rest[0])
		}
		switch {
		case len(rest) > 0 && isHelp(rest[0]):
			printGroupUsage(env.Stdout, path, cmd)
			return 0
		case len(rest) == 0:
			fmt.Fprintf(env.Stderr, "pomona %s: missing subcommand\n\n", path)
			printGroupUsage(env.Stderr, path, cmd)
			return 2
		case next == nil:
			fmt.Fprintf(env.Stderr, "pomona %s: unknown subcommand %q\n\n", path, rest[0])
			printGroupUsage(env.Stderr, path, cmd)
			return 2
		}
		cmd, path, rest = next, path+" "+rest[0], rest[1:]
	}
	c, err := cmd.start(env, path, rest)
	// Close pooled connections so a server shutting down does not wait on
	// connections this command dialed but no longer needs.
	for _, f := range c.cleanup {
		f()
	}
	// Messages name the command as typed ("pomona tenant add: …").
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		printUsageError(env.Stderr, path, cmd.usage, ue.msg)
		return 2
	case errors.Is(err, errSilent):
		return 1
	}
	fmt.Fprintf(env.Stderr, "pomona %s: %v\n", path, flagNamed(c.flags, err))
	return 1
}

// printUsageError is how every mistake in a leaf's command line is told
// (exit 2): "pomona <command> <subcommand>: <what is wrong>", then the
// command's usage line and where its flags are listed.
func printUsageError(w io.Writer, path, usage, msg string) {
	fmt.Fprintf(w, "pomona %s: %s\nUsage: pomona %s\nRun `pomona %s --help` for its flags.\n", path, msg, usage, path)
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

// printUsage lists the commands, by name.
func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Pomona: an MDM server for Apple account-driven user enrollment.")
	fmt.Fprintln(w, "\nUsage: pomona <command> [arguments]\n\nCommands:")
	cmds := slices.Clone(commands())
	slices.SortFunc(cmds, func(a, b *command) int { return strings.Compare(a.name, b.name) })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.synopsis)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set as POMONA_<FLAG> (for example --public-url as POMONA_PUBLIC_URL).")
	fmt.Fprintln(w, "Run `pomona <command> -h` for a command's subcommands or flags, `pomona <command> <subcommand> -h` for a subcommand's flags.")
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

// trustPool is the system's roots plus the PEM certificates in file (none
// when file is ""); added reports whether file held any.
func trustPool(file string) (pool *x509.CertPool, added bool, err error) {
	var pem []byte
	if file != "" {
		if pem, err = os.ReadFile(file); err != nil {
			return nil, false, err
		}
	}
	pool, err = x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	return pool, pool.AppendCertsFromPEM(pem), nil
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

// orDash is s, or "-" for nothing in a table's cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// str is v as text, "" for nil (a JSON null).
func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
