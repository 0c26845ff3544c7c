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
// checksums).
func storeMigrate(fs *flag.FlagSet) func(*call) error {
	from := fs.String("from", "", "source database URL")
	to := fs.String("to", "", "target database URL (must be empty)")
	return func(c *call) error {
		if *from == "" || *to == "" {
			return usagef("give --from and --to")
		}
		src, sdesc, err := open.DB(c.Ctx, *from)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, ddesc, err := open.DB(c.Ctx, *to)
		if err != nil {
			return err
		}
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
