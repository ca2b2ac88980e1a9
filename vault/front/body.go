package front

import (
	"errors"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/internal/strictjson"
)

// checkJSONContentType refuses a body that is not declared as JSON:
// application/json, with no charset or charset utf-8. The Azure SDKs, the
// CLI and the agent all send exactly application/json.
func checkJSONContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return BadParameter("the request has no Content-Type; send the JSON body with Content-Type: application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return BadParameter("Content-Type %q is not JSON; send the body as application/json", clip(ct))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return BadParameter("Content-Type charset %q is not supported; send UTF-8 (application/json; charset=utf-8)", clip(cs))
	}
	return nil
}

// bodyJSONError turns a strictjson error into the answer that says what
// to fix.
func bodyJSONError(err error) error {
	var se *strictjson.Error
	switch {
	case errors.As(err, &se) && errors.Is(err, strictjson.ErrDuplicate):
		return BadParameter("the request body is refused: %v; give each member once", se)
	case errors.As(err, &se) && errors.Is(err, strictjson.ErrInvalidUnicode):
		return BadParameter("the request body is refused: %v; send valid UTF-8 text", se)
	case errors.As(err, &se):
		return BadParameter("the request body is not valid JSON: %v", se)
	default:
		return BadParameter("the request body is not valid JSON: %v", errors.Unwrap(err))
	}
}

var (
	tagsType       = reflect.TypeFor[map[string]string]()
	attributesType = reflect.TypeFor[*keyvault.Attributes]()
)

// checkObjectFields applies the limits that every object body shares to
// a decoded request: a field named Tags of type map[string]string gets
// keyvault.CheckTags and a field named Attributes of type
// *keyvault.Attributes gets keyvault.CheckAttributes. Finding them by
// name means every body that carries tags or attributes is checked,
// including request types added later.
func checkObjectFields(v any) error {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil
	}
	if f := rv.FieldByName("Tags"); f.IsValid() && f.Type() == tagsType {
		if err := keyvault.CheckTags(f.Interface().(map[string]string)); err != nil {
			return BadParameter("tags: %s", strings.TrimPrefix(err.Error(), keyvault.ErrInvalidInput.Error()+": "))
		}
	}
	if f := rv.FieldByName("Attributes"); f.IsValid() && f.Type() == attributesType {
		if err := keyvault.CheckAttributes(f.Interface().(*keyvault.Attributes)); err != nil {
			return BadParameter("%s", strings.TrimPrefix(err.Error(), keyvault.ErrInvalidInput.Error()+": "))
		}
	}
	return nil
}

// clip cuts a caller's header value for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
