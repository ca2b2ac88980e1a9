package report

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The CSV header rows, one per section kind; the first column is always
// "section". The rotation header is the widest: every row is padded to
// its length.
var (
	rotationHeader = []string{"section", "certificate", "issuer", "subject", "auto_renew",
		"version", "serial", "thumbprint", "created", "not_before", "expires", "created_by", "how", "current", "enabled", "purged"}
	deliveryHeader   = []string{"section", "agent", "agent_name", "group", "certificate", "version", "time", "result", "detail"}
	accessHeader     = []string{"section", "object", "principal", "role", "scope", "reads_secret", "writes"}
	secretReadHeader = []string{"section", "object", "principal", "count", "first", "last"}
)

// WriteCSV writes r as one CSV stream (RFC 4180, as encoding/csv writes
// it) that opens in a spreadsheet. It holds four blocks, always in this
// order and always with their header row, even when empty. A header row
// starts with "section"; every data row starts with its section's name and
// fills the columns its header names. Every row has 16 fields, the width
// of the rotation block, so that strict CSV readers accept the file; rows
// of narrower blocks end in empty fields.
//
//	rotation:    section, certificate, issuer, subject, auto_renew, version,
//	             serial, thumbprint, created, not_before, expires,
//	             created_by, how, current, enabled, purged
//	             (one row per version, newest first per certificate,
//	             purged when version retention purged it; a
//	             certificate without versions gets one row with the
//	             version columns empty)
//	delivery:    section, agent, agent_name, group, certificate, version,
//	             time, result, detail
//	access:      section, object, principal, role, scope, reads_secret,
//	             writes
//	secret_read: section, object, principal, count, first, last
//
// Times are RFC 3339 in UTC (empty when unset), booleans true or false.
// Rows are sorted as in WriteHTML. Names come from users, so a cell that
// starts with =, +, -, @, a tab or a carriage return gets a leading single
// quote, which keeps a spreadsheet from running it as a formula. r is not
// modified.
func WriteCSV(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("report: write CSV: nil report")
	}
	s := sorted(r)
	cw := csv.NewWriter(w)
	var err error
	write := func(cells ...string) {
		if err != nil {
			return
		}
		row := make([]string, len(rotationHeader))
		for i, c := range cells {
			row[i] = defuse(c)
		}
		err = cw.Write(row)
	}

	write(rotationHeader...)
	for _, c := range s.Certificates {
		cert := []string{"rotation", c.Name, c.Issuer, c.Subject, strconv.FormatBool(c.AutoRenew)}
		if len(c.Versions) == 0 {
			write(cert...) // the version columns stay empty
		}
		for _, v := range c.Versions {
			write(slices.Concat(cert, []string{
				v.Version, v.Serial, v.Thumbprint, formatTime(v.Created), formatTime(v.NotBefore),
				formatTime(v.Expires), v.CreatedBy, v.How, strconv.FormatBool(v.Current), strconv.FormatBool(v.Enabled), formatPurged(v.Purged),
			})...)
		}
	}

	write(deliveryHeader...)
	for _, d := range s.Deliveries {
		write("delivery", d.Agent, d.AgentName, d.Group, d.Certificate, d.Version, formatTime(d.Time), d.Result, d.Detail)
	}

	write(accessHeader...)
	for _, a := range s.Access {
		write("access", a.Object, a.Principal, a.Role, a.Scope, strconv.FormatBool(a.ReadsSecret), strconv.FormatBool(a.Writes))
	}

	write(secretReadHeader...)
	for _, sr := range s.SecretReads {
		write("secret_read", sr.Object, sr.Principal, strconv.Itoa(sr.Count), formatTime(sr.First), formatTime(sr.Last))
	}

	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	if err != nil {
		return fmt.Errorf("report: write CSV: %w", err)
	}
	return nil
}

// formatPurged is the purged column: the time, or nothing.
func formatPurged(t *time.Time) string {
	if t == nil {
		return ""
	}
	return formatTime(*t)
}

// defuse prefixes a cell a spreadsheet would read as a formula with a
// single quote (the OWASP advice against CSV injection).
func defuse(cell string) string {
	if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
		return "'" + cell
	}
	return cell
}
