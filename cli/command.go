package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/pomona-mdm/pomona/apiclient"
)

// command is one node of the command tree declared in commands.go:
// `pomona <name>` at the top, `pomona <group> <name>` below. A group has
// children, and Main picks the child the next argument names (answering
// --help, -h and unknown names itself); a leaf runs.
type command struct {
	name string
	// synopsis is one line, shown in the parent's list of commands.
	synopsis string
	// usage is a leaf's command line without "pomona ", shown after
	// "Usage: pomona " by --help and by flag errors.
	usage string
	// api: the leaf administers a server through its admin API. It gets
	// the API's flags (--server, --api-key, --ca-file, --data, --json)
	// and call.client.
	api bool
	// flags declares the leaf's own flags on fs and returns its run func,
	// which reads their values once they are parsed. run is the run func
	// of a leaf without flags of its own. A leaf has exactly one of them,
	// a group neither.
	flags    func(fs *flag.FlagSet) func(*call) error
	run      func(*call) error
	children []*command
	// noArgs: the leaf takes flags only; a positional argument is a
	// usage error (exit 2), not silently ignored.
	noArgs bool
}

// find returns the command named name among cmds, or nil.
func find(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

// call is one run of a leaf command: the process environment, the
// positional arguments left once the flags are parsed, and for an API
// command the API's flags and client.
type call struct {
	*Env
	// path is the command as typed ("tenant add"), usage its usage line
	// (without "pomona ").
	path, usage string
	// args are the positional arguments.
	args []string
	// flags is the command's flag set, so that Main can name the flag for
	// an API error about a field.
	flags   *flag.FlagSet
	api     *clientFlags
	cl      *apiclient.Client
	cleanup []func()
}

// start runs the leaf cmd (called as path: "tenant add") with args: it
// makes the flag set, declares the API's flags and the command's own,
// parses args into them and the positional arguments, and runs the
// command. Help that was asked for (--help, -h, or "help" as the only
// argument) prints the usage line and the flags to stdout and returns
// flag.ErrHelp; a flag error, or an argument to a noArgs command, is a
// usageError (Main prints it with the usage line). The call it returns
// holds the flag set and what to clean up.
func (cmd *command) start(env *Env, path string, args []string) (*call, error) {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	// The flag package's own messages are not printed: Main says what is
	// wrong in one format (printUsageError), and help goes to stdout.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c := &call{Env: env, path: path, usage: cmd.usage, flags: fs}
	if cmd.api {
		c.api = &clientFlags{}
		c.api.register(fs)
	}
	run := cmd.run
	if cmd.flags != nil {
		run = cmd.flags(fs)
	}
	if len(args) == 1 && args[0] == "help" {
		args = []string{"--help"}
	}
	pos, err := parse(env, fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(env.Stdout, "Usage: pomona %s\n\nFlags (each also as POMONA_<FLAG>):\n", cmd.usage)
		fs.SetOutput(env.Stdout)
		fs.PrintDefaults()
		return c, err
	}
	if err != nil {
		return c, err
	}
	if cmd.noArgs && len(pos) > 0 {
		return c, usagef("takes no arguments, got %q", strings.Join(pos, " "))
	}
	c.args = pos
	return c, run(c)
}

// client is the admin API client the API flags describe, made on first
// use (so a command checks its arguments before it needs a server).
func (c *call) client() (*apiclient.Client, error) {
	if c.cl != nil {
		return c.cl, nil
	}
	cl, err := c.api.client()
	if err != nil {
		return nil, err
	}
	c.cl = cl
	c.cleanup = append(c.cleanup, cl.HTTP.CloseIdleConnections)
	return cl, nil
}

// json: --json was given to an API command.
func (c *call) json() bool { return c.api != nil && c.api.json }

// one returns the single positional argument, or a usage error saying
// hint when there is not exactly one.
func (c *call) one(hint string) (string, error) {
	if len(c.args) != 1 {
		return "", usagef("%s", hint)
	}
	return c.args[0], nil
}

// oneClient is one, then client: the single positional argument and the
// admin API client, or the first of their errors (the usage error first,
// so a command checks its arguments before it needs a server).
func (c *call) oneClient(hint string) (string, *apiclient.Client, error) {
	arg, err := c.one(hint)
	if err != nil {
		return "", nil, err
	}
	cl, err := c.client()
	if err != nil {
		return "", nil, err
	}
	return arg, cl, nil
}

// print writes v as JSON with --json, else the text table writes (to a
// tabwriter: columns separated by tabs are aligned).
func (c *call) print(v any, table func(w io.Writer)) error {
	if c.json() {
		return printJSON(c.Stdout, v)
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	table(controlEscaper{tw})
	return tw.Flush()
}

// controlEscaper writes what it is given with every control character
// but the tab and the newline (which lay the table out) shown as an
// escape (\x1b, \u009b) instead of sent to the terminal. The text
// output prints values the administrator did not choose — a device's
// product, OS version and name (what it reports), a profile's name (its
// PayloadDisplayName, from whoever wrote the file), a group's name — and
// an escape sequence among them (ESC, or the one-character CSI U+009B that
// an XML property list may carry) drove the administrator's terminal: it
// could hide or rewrite lines, retitle the window or, where the terminal
// allows OSC 52, set the clipboard. A carriage return could overwrite a
// line. Each Write is one Fprintf's whole text, so a UTF-8 sequence is
// never split across calls.
type controlEscaper struct{ w io.Writer }

func (e controlEscaper) Write(p []byte) (int, error) {
	if !needsEscape(p) {
		return e.w.Write(p)
	}
	var b strings.Builder
	all := len(p)
	for len(p) > 0 {
		r, n := utf8.DecodeRune(p)
		switch {
		case r == utf8.RuneError && n == 1:
			// Not UTF-8: a lone byte such as 0x9b is CSI to a terminal
			// that is not in UTF-8 mode.
			fmt.Fprintf(&b, "\\x%02x", p[0])
		case r == '\t' || r == '\n' || !unicode.IsControl(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
		p = p[n:]
	}
	if _, err := io.WriteString(e.w, b.String()); err != nil {
		return 0, err
	}
	return all, nil
}

// needsEscape says whether p holds a byte controlEscaper changes.
func needsEscape(p []byte) bool {
	for len(p) > 0 {
		r, n := utf8.DecodeRune(p)
		if r == utf8.RuneError && n == 1 || r != '\t' && r != '\n' && unicode.IsControl(r) {
			return true
		}
		p = p[n:]
	}
	return false
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

// clientFlags are the flags of every command that talks to the API.
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

func (c *clientFlags) client() (*apiclient.Client, error) {
	return apiclient.New(c.server, c.apiKey, c.caPath())
}

// caPath is the CA file to trust for the server's certificate: --ca-file,
// else for an https server the local server's ca.pem that findCA finds
// (--data, or the nearest pomona-data), else "" (the system roots only).
// The API client and what else talks to the same server (sim run's
// simulated devices) resolve it here, so they trust the same CA.
func (c *clientFlags) caPath() string {
	if c.caFile != "" || !strings.HasPrefix(c.server, "https://") {
		return c.caFile
	}
	return findCA(c.data)
}

// actionResult is the --json answer of a command whose API call returns
// no resource (a deletion, a revocation): {"id": what it acted on (as
// given on the command line), "action": "deleted"|"revoked",
// "devices_unenrolled": devices told to remove their enrollment (deletions
// only)}.
type actionResult struct {
	ID                string `json:"id"`
	Action            string `json:"action"`
	DevicesUnenrolled *int   `json:"devices_unenrolled,omitempty"`
}
