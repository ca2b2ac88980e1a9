package console

import (
	"fmt"
	"html/template"
)

// auditorPages maps the auditor's pages (inventories of secrets and
// keys, the audit trail, the evidence report) to their template files.
var auditorPages = map[string]string{"secrets": "objects", "keys": "objects", "audit": "audit", "report": "report"}

// auditorRoutes parses the auditor's pages and registers their routes,
// all behind a session; each page checks the API's action for what it
// shows.
func (f *Front) auditorRoutes() error {
	for page, file := range auditorPages {
		t, err := template.New(page).ParseFS(templateFS, "templates/layout.html", "templates/"+file+".html")
		if err != nil {
			return fmt.Errorf("console template %s: %w", page, err)
		}
		f.pages[page] = t
	}
	f.mux.HandleFunc("GET /ui/secrets", f.signedIn(f.handleSecrets))
	f.mux.HandleFunc("GET /ui/keys", f.signedIn(f.handleKeys))
	f.mux.HandleFunc("GET /ui/audit", f.signedIn(f.handleAudit))
	f.mux.HandleFunc("GET /ui/report", f.signedIn(f.handleReportForm))
	f.mux.HandleFunc("GET /ui/report/download", f.signedIn(f.handleReportDownload))
	return nil
}
