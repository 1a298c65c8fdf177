package handlers

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
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
	if err := json.Unmarshal(body, &v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return v, models.FieldError(models.EINVALID, te.Field, "wrong type, expected "+te.Type.String())
		}
		return v, models.Errorf(models.EINVALID, "malformed JSON body")
	}
	return v, nil
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
// Django REST framework also accepts, a url-encoded form. It is used by the
// rest_framework_jwt endpoints so Django-era clients keep working.
func decodeFields(c *gin.Context) (map[string]string, error) {
	if err := requireContentType(c, "application/json", "application/x-www-form-urlencoded"); err != nil {
		return nil, err
	}
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, models.Errorf(models.EINVALID, "malformed form body")
		}
		for k := range form {
			out[k] = form.Get(k)
		}
		return out, nil
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
