package directory

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// CSVRow is one data row of a user CSV: its line, fields and the user it
// describes, or why it cannot be used.
type CSVRow struct {
	Line   int
	Record []string
	Input  UserInput
	Err    error
}

// CSVColumns are the columns a user CSV may have (email is required).
var CSVColumns = []string{"email", "name", "managed_apple_id", "password", "tenant", "enabled"}

// ErrorColumn is the column `pomona user import --errors` adds to the rows
// it could not import; ReadUserCSV accepts and ignores it.
const ErrorColumn = "error"

// ReadUserCSV parses a user CSV with a header row. A malformed row is
// returned with its Err set and does not stop the others; only an unusable
// header is an error.
func ReadUserCSV(r io.Reader, defaultTenant string) ([]string, []CSVRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the CSV header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if h == ErrorColumn {
			// The reason a row failed, as `pomona user import --errors`
			// writes it: the corrected file imports as it is.
			if _, dup := col[h]; dup {
				return nil, nil, fmt.Errorf("column %q appears twice in the header", h)
			}
			col[h] = i
			continue
		}
		if !slices.Contains(CSVColumns, h) {
			return nil, nil, fmt.Errorf("unknown column %q in the header (known: email, name, managed_apple_id, password, tenant, enabled; an error column is ignored)", header[i])
		}
		if _, dup := col[h]; dup {
			return nil, nil, fmt.Errorf("column %q appears twice in the header", h)
		}
		col[h] = i
	}
	if _, ok := col["email"]; !ok {
		return nil, nil, errors.New("the header needs an email column")
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var rows []CSVRow
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		row := CSVRow{Record: rec}
		if err == nil {
			row.Line, _ = cr.FieldPos(0)
		} else {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				row.Line = pe.Line
			}
			row.Err = fmt.Errorf("malformed CSV: %w", err)
			rows = append(rows, row)
			if errors.As(err, &pe) && pe.Err == csv.ErrQuote {
				// The reader cannot resynchronise after a broken quote.
				break
			}
			continue
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // blank line
		}
		if len(rec) != len(header) {
			row.Err = fmt.Errorf("has %d fields, the header has %d", len(rec), len(header))
		}
		row.Input = UserInput{Email: get(rec, "email"), Name: get(rec, "name"), ManagedAppleID: get(rec, "managed_apple_id"),
			Password: get(rec, "password"), Tenant: get(rec, "tenant")}
		if row.Input.Tenant == "" {
			row.Input.Tenant = defaultTenant
		}
		if v := get(rec, "enabled"); v != "" && row.Err == nil {
			b, err := strconv.ParseBool(v)
			if err != nil {
				row.Err = fmt.Errorf("enabled must be true or false, not %q", v)
			}
			row.Input.Enabled = &b
		}
		if row.Input.Email == "" && row.Err == nil {
			row.Err = errors.New("email is empty")
		}
		rows = append(rows, row)
	}
	return header, rows, nil
}
