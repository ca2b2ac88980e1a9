package v1api

import (
	"net/http"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/front"
)

// The /v1 front of an object's own version retention (core/retention.go
// decides): GET shows the object's settings and what applies, PUT
// replaces them ({} follows the vault's settings again). Reading needs
// the object's read action, changing it the object's write action.

func (f *Front) retentionRoutes(add func(front.Endpoint, http.Handler)) {
	for _, kind := range []string{core.KindCertificates, core.KindSecrets, core.KindKeys} {
		read, write := access.CertificatesRead, access.CertificatesWrite
		switch kind {
		case core.KindSecrets:
			read, write = access.SecretsMetadata, access.SecretsWrite
		case core.KindKeys:
			read, write = access.KeysRead, access.KeysWrite
		}
		res := front.ObjectResource(kind)
		path := "/v1/retention/" + kind + "/{name}"
		add(front.Endpoint{Method: "GET", Pattern: path, Actions: []access.Action{read}}, f.Guard(res, f.handleGetRetention(kind), read))
		add(front.Endpoint{Method: "PUT", Pattern: path, Actions: []access.Action{write}}, f.Guard(res, f.handleSetRetention(kind), write))
	}
}

func (f *Front) handleGetRetention(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !f.Linearized(w, r) {
			return
		}
		v, err := f.GetObjectRetention(r.Context(), front.CallerOf(r), core.ObjectRequest{Kind: kind, Name: r.PathValue("name")})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		front.WriteJSON(w, http.StatusOK, v)
	}
}

func (f *Front) handleSetRetention(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var o core.ObjectRetention
		if err := front.DecodeBody(r, &o); err != nil {
			f.Fail(w, r, err)
			return
		}
		v, err := f.SetObjectRetention(r.Context(), front.CallerOf(r), core.SetObjectRetentionRequest{Kind: kind, Name: r.PathValue("name"), Retention: o})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		front.SetIndexHeader(w, v.Index)
		front.WriteJSON(w, http.StatusOK, v)
	}
}
