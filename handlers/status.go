package handlers

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"switchboard/middleware"
	"switchboard/models"
	"switchboard/ws"
)

var errBadKey = models.Errorf(models.EINVALID, "bad status key")

// statusJSON is a status value over REST.
type statusJSON struct {
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value"`
	Version uint64          `json:"version"`
	TS      *string         `json:"ts"` // null until first set
}

func toStatusJSON(s models.Status) statusJSON {
	out := statusJSON{Key: s.Key, Value: s.Value, Version: s.Version}
	if s.Version > 0 {
		ts := ws.FormatTS(s.UpdatedAt)
		out.TS = &ts
	}
	return out
}

// statusFrame is the frame subscribers get for s.
func statusFrame(s models.Status) []byte {
	ts := ""
	if s.Version > 0 {
		ts = ws.FormatTS(s.UpdatedAt)
	}
	return ws.Encode(ws.Status{Type: "status", Key: s.Key, Value: s.Value, Version: s.Version, TS: ts})
}

// handlePutStatus is PUT /api/status/{key} {"value": <any JSON>} (staff or
// service): stores the value durably with the next version and pushes it
// to every subscriber on every process.
func handlePutStatus(logger *slog.Logger, store *models.StatusStore, hub *ws.Hub, metrics *Metrics) gin.HandlerFunc {
	type request struct {
		Value json.RawMessage `json:"value"`
	}
	return func(c *gin.Context) {
		key := c.Param("key")
		if !ws.ValidName(key) {
			middleware.WriteError(c, errBadKey)
			return
		}
		in, err := decode[request](c)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		if in.Value == nil {
			middleware.WriteError(c, models.FieldError(models.EINVALID, "value", "this field is required"))
			return
		}
		metrics.published("status")
		// The store publishes each stored version in version order (then
		// runs on its committing goroutine), so subscribers skip none.
		s, err := store.Put(c.Request.Context(), key, in.Value, func(s models.Status) {
			msg := ws.Message{Payload: statusFrame(s), Seq: s.Version}
			if err := hub.Publish(context.Background(), ws.StatusChannel(key), msg); err != nil {
				logger.Warn("status pushed to this process only", "key", key, "err", err)
			}
		})
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, toStatusJSON(s))
	}
}

// handleGetStatus is GET /api/status/{key} (any user or service).
func handleGetStatus(logger *slog.Logger, store *models.StatusStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		key := c.Param("key")
		if !ws.ValidName(key) {
			middleware.WriteError(c, errBadKey)
			return
		}
		s, err := store.Get(c.Request.Context(), key)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, toStatusJSON(s))
	}
}

// handleStatusSocket is GET /ws/status/{key}/?token=<JWT> (any active
// user): the current value at once, then every change as it happens. The
// socket subscribes before reading the current value and drops any
// version it has passed, so it never shows an older value after a newer.
func handleStatusSocket(d *wsDeps, store *models.StatusStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, ok := d.handshakeToken(c)
		if !ok {
			return
		}
		client := d.accept(c)
		if client == nil {
			return
		}
		key := c.Param("key")
		if !ws.ValidName(key) {
			client.Reject(ws.CloseBadGroup)
			return
		}
		// Subscribers only listen: legacy text frames are read and ignored
		// (still size-, UTF-8- and rate-checked); switchboard.v1 takes
		// auth and refresh frames.
		s := &session{d: d, client: client, join: func(s *session, _ middleware.Claims) bool {
			if err := d.hub.Join(ws.StatusChannel(key), client); err != nil {
				s.close(ws.CloseShutdown)
				return false
			}
			v, err := store.Get(context.Background(), key)
			if err != nil {
				d.logger.Error("read status", "key", key, "err", err)
				s.close(ws.CloseInternal)
				return false
			}
			client.SendSeq(statusFrame(v), v.Version)
			return true
		}}
		s.serve(c, token)
	}
}
