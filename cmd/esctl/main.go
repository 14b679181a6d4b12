package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line was wrong
)

// command is one subcommand: its flags are set up by flags, its body is
// run with the positional arguments.
type command struct {
	name    string
	args    string // the positional arguments, for usage
	summary string
	// flags adds the command's own flags to fs and returns the function
	// that runs it.
	flags func(fs *flag.FlagSet, c *cli) func(ctx context.Context, args []string) error
	// live commands run until interrupted and get no --timeout.
	live bool
}

// cli is one run of esctl: the common flags and where output goes.
type cli struct {
	conn    connFlags
	json    bool
	timeout time.Duration
	stdout  io.Writer
	stderr  io.Writer
	enc     *json.Encoder
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake in the command line: esctl prints it with a
// hint and exits with exitUsage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// run runs esctl with args and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			if cmd := lookup(args[1]); cmd != nil {
				fs, _ := newFlagSet(cmd, &cli{stdout: stdout, stderr: stderr})
				fs.SetOutput(stdout)
				fs.Usage()
				return exitOK
			}
		}
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd := lookup(args[0])
	if cmd == nil {
		fmt.Fprintf(stderr, "esctl: unknown command %q; run 'esctl help' for the list\n", args[0])
		return exitUsage
	}
	c := &cli{stdout: stdout, stderr: stderr}
	fs, body := newFlagSet(cmd, c)
	fs.SetOutput(io.Discard)
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "esctl %s: %v; run 'esctl help %s'\n", cmd.name, err, cmd.name)
		return exitUsage
	}
	c.enc = json.NewEncoder(stdout)
	c.enc.SetEscapeHTML(false)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !cmd.live && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	err = body(ctx, pos)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "esctl %s: %v; run 'esctl help %s'\n", cmd.name, err, cmd.name)
		return exitUsage
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		fmt.Fprintf(stderr, "esctl %s: timed out after %v (see --timeout): %v\n", cmd.name, c.timeout, err)
		return exitError
	default:
		fmt.Fprintf(stderr, "esctl %s: %v\n", cmd.name, err)
		return exitError
	}
}

// newFlagSet returns the flag set of cmd, with the common flags, and the
// function that runs it.
func newFlagSet(cmd *command, c *cli) (*flag.FlagSet, func(context.Context, []string) error) {
	fs := flag.NewFlagSet("esctl "+cmd.name, flag.ContinueOnError)
	c.conn.register(fs, "")
	fs.BoolVar(&c.json, "json", false, "print JSON, one object per line, for scripts")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up after this long (not for live commands)")
	body := cmd.flags(fs, c)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: esctl %s [flags] %s\n\n%s\n\nflags:\n", cmd.name, cmd.args, cmd.summary)
		fs.PrintDefaults()
	}
	return fs, body
}

// parseInterspersed parses flags anywhere among the positional arguments,
// which it returns; everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		before := len(args)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if before > len(rest) && args[before-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(args []string, n int, names string) error {
	if len(args) != n {
		return usagef("want %d argument(s), %s; got %d", n, names, len(args))
	}
	return nil
}

// position parses a Position or Seq argument.
func position(what, s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, usagef("%s %q is not a non-negative integer", what, s)
	}
	return n, nil
}

// strs is a repeatable string flag; each value may also be a
// comma-separated list.
type strs []string

func (s *strs) String() string { return strings.Join(*s, ",") }

func (s *strs) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// emit prints v as one line of JSON.
func (c *cli) emit(v any) error { return c.enc.Encode(v) }

// printf prints a line of text output.
func (c *cli) printf(format string, args ...any) {
	fmt.Fprintf(c.stdout, format, args...)
}

// word returns s as it is if it reads as one word in text output, else
// quoted as Go quotes strings.
func word(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '"' || r == '=' {
			return strconv.Quote(s)
		}
	}
	return s
}

// textTime renders t for text output: UTC, milliseconds.
func textTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
