package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"switchboard/models"
)

// maxBodyBytes bounds every JSON request body.
const maxBodyBytes = 1 << 20

// decode reads a JSON body into a T. A wrong content type is 415, a body
// over maxBodyBytes 413, and malformed JSON, a non-object or trailing data
// 400: never a 500.
func decode[T any](c *gin.Context) (T, error) {
	var v T
	if err := requireContentType(c, "application/json"); err != nil {
		return v, err
	}
	body, err := readBody(c)
	if err != nil {
		return v, err
	}
	return unmarshal[T](body)
}

// unmarshal is decode's JSON step: a field of the wrong type is a 400
// naming the field, anything else malformed a plain 400.
func unmarshal[T any](body []byte) (T, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return v, models.FieldError(models.EINVALID, te.Field, "wrong type, expected "+te.Type.String())
		}
		return v, models.Errorf(models.EINVALID, "malformed JSON body")
	}
	return v, nil
}

// decodeOrForm is decode for the Django-shaped POST /api/users/: it also
// takes the url-encoded and multipart forms decodeFields takes, whose
// fields become the object's string fields.
func decodeOrForm[T any](c *gin.Context) (T, error) {
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if mt != "application/x-www-form-urlencoded" && mt != "multipart/form-data" {
		return decode[T](c)
	}
	fields, err := decodeFields(c)
	if err != nil {
		var v T
		return v, err
	}
	b, err := json.Marshal(fields)
	if err != nil {
		var v T
		return v, err
	}
	return unmarshal[T](b)
}

func requireContentType(c *gin.Context, want ...string) error {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err == nil {
		for _, w := range want {
			if mt == w {
				return nil
			}
		}
	}
	return models.Errorf(models.EUNSUPPORTED, "content type must be %s", want[0])
}

func readBody(c *gin.Context) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, models.Errorf(models.ETOOLARGE, "request body is larger than 1 MiB")
	} else if err != nil {
		return nil, models.Errorf(models.EINVALID, "could not read request body")
	}
	return body, nil
}

// decodeFields reads a flat object of string fields from JSON or, as
// Django REST framework's default parsers also accept, a url-encoded or
// multipart form (a browser's FormData). It is used by the
// rest_framework_jwt endpoints so Django-era clients keep working. Every
// type is bounded by readBody's 1 MiB.
func decodeFields(c *gin.Context) (map[string]string, error) {
	if err := requireContentType(c, "application/json", "application/x-www-form-urlencoded", "multipart/form-data"); err != nil {
		return nil, err
	}
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	mt, params, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, models.Errorf(models.EINVALID, "malformed form body")
		}
		for k := range form {
			out[k] = form.Get(k)
		}
		return out, nil
	case "multipart/form-data":
		return multipartFields(body, params["boundary"])
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, models.Errorf(models.EINVALID, "malformed JSON body")
	}
	for k, v := range raw {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out, nil
}

// multipartFields reads the fields of a multipart/form-data body. As with
// url-encoded forms the first value of a repeated field wins; file parts
// are not fields and are skipped.
func multipartFields(body []byte, boundary string) (map[string]string, error) {
	malformed := models.Errorf(models.EINVALID, "malformed multipart body")
	if boundary == "" {
		return nil, malformed
	}
	out := map[string]string{}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, malformed
		}
		name := p.FormName()
		if name == "" || p.FileName() != "" {
			continue
		}
		v, err := io.ReadAll(p)
		if err != nil {
			return nil, malformed
		}
		if _, dup := out[name]; !dup {
			out[name] = string(v)
		}
	}
}
