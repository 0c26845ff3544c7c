package cli

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pomona-mdm/pomona/apiclient"
	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/directory"
)

type importRow struct {
	line int
	rec  []string
	in   apitypes.UserInput
	err  error // set when the row cannot even be sent
}

type importResult struct {
	row     importRow
	err     error
	skipped bool
}

// userImport is `pomona user import`: it creates one user per CSV row through the API. Each row is its
// own request and its own transaction on the server, so a bad row never
// stops the good ones and nothing is half-written. Failed rows are listed
// with their line number and can be written to a CSV for correction.
func userImport(fs *flag.FlagSet) func(*call) error {
	tenant := fs.String("tenant", "", "tenant (id or domain) for rows without a tenant column")
	workers := fs.Int("workers", 4, "requests in parallel")
	skipExisting := fs.Bool("skip-existing", false, "count users that already exist as skipped, not failed")
	errFile := fs.String("errors", "", "write the failed rows, with an error column, to this CSV file (import it again once corrected: the error column is ignored)")
	return func(c *call) error {
		file, err := c.one("give the CSV file: pomona user import users.csv (header: email,name,managed_apple_id,password,tenant,enabled)")
		if err != nil {
			return err
		}
		if *workers < 1 || *workers > 64 {
			return usagef("--workers must be from 1 to 64")
		}
		var r io.Reader
		if file == "-" {
			r = c.Stdin
		} else {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		header, rows, err := readImport(r, *tenant)
		if err != nil {
			return err
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		if _, err := api.ServerInfo(c.Ctx); err != nil {
			return err // unreachable server or bad key: say so once, not per row
		}

		jobs := make(chan importRow)
		results := make(chan importResult)
		var wg sync.WaitGroup
		for i := 0; i < *workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for row := range jobs {
					res := importResult{row: row, err: row.err}
					if res.err == nil {
						_, res.err = api.CreateUser(c.Ctx, row.in)
						var ae *apiclient.Error
						if *skipExisting && errors.As(res.err, &ae) && ae.Status == 409 {
							res.err, res.skipped = nil, true
						}
					}
					results <- res
				}
			}()
		}
		go func() {
			for _, row := range rows {
				select {
				case jobs <- row:
				case <-c.Ctx.Done():
				}
			}
			close(jobs)
			wg.Wait()
			close(results)
		}()

		bar := newProgress(c.Env, len(rows))
		var failed []importResult
		created, skipped := 0, 0
		for res := range results {
			switch {
			case res.err != nil:
				failed = append(failed, res)
			case res.skipped:
				skipped++
			default:
				created++
			}
			bar.step(res.err == nil)
		}
		bar.done()
		sortResults(failed)
		for _, f := range failed {
			fmt.Fprintf(c.Stdout, "line %d (%s): %s\n", f.row.line, orDash(f.row.in.Email), describe(f.err))
		}
		fmt.Fprintf(c.Stdout, "%d rows: %d created, %d skipped, %d failed\n", len(rows), created, skipped, len(failed))
		if *errFile != "" && len(failed) > 0 {
			if err := writeFailed(*errFile, header, failed); err != nil {
				return err
			}
			fmt.Fprintf(c.Stdout, "failed rows written to %s; fix them and import that file again\n", *errFile)
		}
		if c.Ctx.Err() != nil {
			return fmt.Errorf("interrupted: rows not yet sent were not imported")
		}
		if len(failed) > 0 {
			return errSilent
		}
		return nil
	}
}

func readImport(r io.Reader, defaultTenant string) ([]string, []importRow, error) {
	header, rows, err := directory.ReadUserCSV(r, defaultTenant)
	if err != nil {
		return nil, nil, err
	}
	out := make([]importRow, 0, len(rows))
	for _, row := range rows {
		out = append(out, importRow{line: row.Line, rec: row.Record, err: row.Err, in: apitypes.UserInput{Email: row.Input.Email,
			Name: row.Input.Name, ManagedAppleID: row.Input.ManagedAppleID, Password: row.Input.Password, Tenant: row.Input.Tenant, Enabled: row.Input.Enabled}})
	}
	return header, out, nil
}

func describe(err error) string {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		return ae.Message
	}
	return err.Error()
}

func sortResults(rs []importResult) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].row.line < rs[j-1].row.line; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// writeFailed writes the failed rows with the reason in an error column
// (replacing one the input had), as a CSV that imports again once
// corrected: ReadUserCSV ignores the error column. The rows may hold
// passwords, so the file is readable by its owner only.
func writeFailed(path string, header []string, failed []importResult) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	errCol := slices.IndexFunc(header, func(h string) bool {
		return strings.EqualFold(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")), directory.ErrorColumn)
	})
	out := append([]string{}, header...)
	if errCol < 0 {
		errCol = len(out)
		out = append(out, directory.ErrorColumn)
	}
	w := csv.NewWriter(f)
	w.Write(out)
	for _, r := range failed {
		rec := append([]string{}, r.row.rec...)
		for len(rec) < len(out) {
			rec = append(rec, "")
		}
		rec = rec[:len(out)]
		rec[errCol] = describe(r.err)
		w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// progress draws a bar on a terminal, or a line at every tenth otherwise,
// counting the rows done and how many of them failed.
type progress struct {
	env            *Env
	total, n, fail int
	lastDecile     int
	start          time.Time
}

func newProgress(env *Env, total int) *progress {
	return &progress{env: env, total: total, start: time.Now()}
}

func (p *progress) step(ok bool) {
	p.n++
	if !ok {
		p.fail++
	}
	if p.total == 0 {
		return
	}
	if p.env.StderrTerminal {
		const width = 30
		fill := p.n * width / p.total
		fmt.Fprintf(p.env.Stderr, "\r[%s%s] %d/%d rows, %d failed", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), p.n, p.total, p.fail)
		return
	}
	if d := p.n * 10 / p.total; d > p.lastDecile {
		p.lastDecile = d
		fmt.Fprintf(p.env.Stderr, "%d/%d rows done, %d failed\n", p.n, p.total, p.fail)
	}
}

func (p *progress) done() {
	if p.env.StderrTerminal && p.total > 0 {
		fmt.Fprintf(p.env.Stderr, "  %.1fs\n", time.Since(p.start).Seconds())
	}
}
