package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/report"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/fleet"
	"github.com/certvault/certvault/vault/front"
)

// The evidence report page: a form with a period (from and to dates, UTC,
// both days included) and a format, and the download it asks for — the
// report the API's GET /v1/report answers (fleet.EvidenceReport), as one
// self-contained HTML file, JSON or CSV, the renderings the CLI offers.
// It needs audit/read at the vault scope, as the API's route does.

// reportFormat is one way to download the report.
type reportFormat struct {
	Name, Label, ext, contentType string
	write                         func(*bytes.Buffer, *report.Report) error
}

// reportFormats are the formats offered, the default first.
var reportFormats = []reportFormat{
	{Name: "html", Label: "HTML (one self-contained page)", ext: "html", contentType: "text/html; charset=utf-8",
		write: func(b *bytes.Buffer, r *report.Report) error { return report.WriteHTML(b, r) }},
	{Name: "json", Label: "JSON (as the API answers it)", ext: "json", contentType: "application/json",
		write: func(b *bytes.Buffer, r *report.Report) error {
			enc := json.NewEncoder(b)
			enc.SetIndent("", "  ")
			return enc.Encode(r)
		}},
	{Name: "csv", Label: "CSV (for a spreadsheet)", ext: "csv", contentType: "text/csv; charset=utf-8",
		write: func(b *bytes.Buffer, r *report.Report) error { return report.WriteCSV(b, r) }},
}

// dateLayout is how the form's dates are written (an HTML date field's
// value).
const dateLayout = "2006-01-02"

// reportPage is the form's data.
type reportPage struct {
	page
	From, To, Format string
	Formats          []reportFormat
}

// reportPeriod is the period the form asks for: since the start of From
// until the end of To (UTC); a zero From means from the beginning.
type reportPeriod struct {
	from, to time.Time
}

// parseReportPeriod reads from and to (YYYY-MM-DD; from may be empty,
// to defaults to today) and checks that the period is not reversed.
func parseReportPeriod(from, to string, now time.Time) (reportPeriod, error) {
	var p reportPeriod
	if from = strings.TrimSpace(from); from != "" {
		t, err := time.ParseInLocation(dateLayout, from, time.UTC)
		if err != nil {
			return p, fmt.Errorf("From: give a date such as %s", now.UTC().Format(dateLayout))
		}
		p.from = t
	}
	p.to = now.UTC().Truncate(24 * time.Hour)
	if to = strings.TrimSpace(to); to != "" {
		t, err := time.ParseInLocation(dateLayout, to, time.UTC)
		if err != nil {
			return p, fmt.Errorf("To: give a date such as %s", now.UTC().Format(dateLayout))
		}
		p.to = t
	}
	if !p.from.IsZero() && p.to.Before(p.from) {
		return p, fmt.Errorf("the period ends (%s) before it starts (%s)", p.to.Format(dateLayout), p.from.Format(dateLayout))
	}
	return p, nil
}

// request is the domain's request for the period.
func (p reportPeriod) request() fleet.EvidenceReportRequest {
	return fleet.EvidenceReportRequest{Since: p.from, Until: p.to.Add(24 * time.Hour)}
}

// fileName names the download: certvault-evidence-FROM-to-TO.EXT
// ("beginning" when the period has no start).
func (p reportPeriod) fileName(ext string) string {
	from := "beginning"
	if !p.from.IsZero() {
		from = p.from.Format(dateLayout)
	}
	return fmt.Sprintf("certvault-evidence-%s-to-%s.%s", from, p.to.Format(dateLayout), ext)
}

// mayReport checks audit/read at the vault scope (the API's report
// route's action), answering 403 when the caller lacks it.
func (f *Front) mayReport(w http.ResponseWriter, r *http.Request) bool {
	s, _ := sessionOf(r)
	return f.permit(w, r, s.caller, access.Resource{}, access.AuditRead)
}

// handleReportForm shows the form: the last 90 days by default.
func (f *Front) handleReportForm(w http.ResponseWriter, r *http.Request) {
	if !f.mayReport(w, r) {
		return
	}
	s, _ := sessionOf(r)
	now := time.Now().UTC()
	f.render(w, http.StatusOK, "report", reportPage{page: f.pageFor(s, "Evidence report", "report"),
		From: now.AddDate(0, 0, -90).Format(dateLayout), To: now.Format(dateLayout), Format: reportFormats[0].Name, Formats: reportFormats})
}

// handleReportDownload builds the report for the period and answers it
// as an attachment.
func (f *Front) handleReportDownload(w http.ResponseWriter, r *http.Request) {
	if !f.mayReport(w, r) {
		return
	}
	s, _ := sessionOf(r)
	q := r.URL.Query()
	period, err := parseReportPeriod(q.Get("from"), q.Get("to"), time.Now())
	if err != nil {
		f.renderError(w, r, http.StatusBadRequest, "Bad period", err.Error()+".")
		return
	}
	name := q.Get("format")
	if name == "" {
		name = reportFormats[0].Name
	}
	i := slices.IndexFunc(reportFormats, func(rf reportFormat) bool { return rf.Name == name })
	if i < 0 {
		f.renderError(w, r, http.StatusBadRequest, "Bad format", "Format: choose html, json or csv.")
		return
	}
	format := reportFormats[i]
	// signedIn has linearized this GET, as the API's report route does.
	rep, err := f.EvidenceReport(r.Context(), s.caller, period.request())
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	rep.Vault = front.BaseURL(r)
	var buf bytes.Buffer
	if err := format.write(&buf, rep); err != nil {
		f.Fail(w, r, fmt.Errorf("render evidence report: %w", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", format.contentType)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": period.fileName(format.ext)}))
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}
