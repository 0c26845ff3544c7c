package cli

import (
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/pomona-mdm/pomona/store/open"
)

const storeMigrateUsage = "store migrate --from sqlite://path/pomona.db --to postgres://user:pw@host/db (or the other way)"

// storeMigrate is `pomona store migrate`: it moves a deployment between
// stores. Stop Pomona first: rows written during the copy would be missed
// (the target must be empty, and the copy is verified by row counts and
// checksums); a SQLite file a server still uses is refused (its lock).
func storeMigrate(fs *flag.FlagSet) func(*call) error {
	from := fs.String("from", "", "source database URL")
	to := fs.String("to", "", "target database URL (must be empty)")
	return func(c *call) error {
		if *from == "" || *to == "" {
			return usagef("give --from and --to")
		}
		// A SQLite file on either side is locked as `pomona serve` locks
		// it, so a running server is refused instead of missing rows
		// (source) or keeping what it remembers of a file the copy wrote
		// (target: the webhook list, Dialect.OneProcess).
		src, sdesc, unlockSrc, err := open.Serving(c.Ctx, *from, "")
		if err != nil {
			return err
		}
		defer unlockSrc()
		defer src.Close()
		dst, ddesc, unlockDst, err := open.Serving(c.Ctx, *to, "")
		if err != nil {
			return err
		}
		defer unlockDst()
		defer dst.Close()
		fmt.Fprintf(c.Stdout, "copying %s\n     to %s\n", sdesc, ddesc)
		rep, err := src.CopyTo(c.Ctx, dst, func(table string, rows int64) {
			fmt.Fprintf(c.Stderr, "  %-20s %d rows\n", table, rows)
		})
		if err != nil {
			return fmt.Errorf("migration failed: %w (the copy runs in one transaction; if only the verification failed, drop the target database before trying again)", err)
		}
		tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tROWS\tCHECKSUM")
		for _, r := range rep {
			fmt.Fprintf(tw, "%s\t%d\t%016x\n", r.Table, r.Rows, r.Checksum)
		}
		tw.Flush()
		fmt.Fprintln(c.Stdout, "verified: every table has the same rows on both sides. Start Pomona with --db on the target, with the same sealing key.")
		return nil
	}
}
