package handlers

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"switchboard/middleware"
	"switchboard/models"
	"switchboard/ws"
)

var errBadGroup = models.Errorf(models.EINVALID, "bad group")

// handlePublish is POST /api/groups/{group}/messages {"data": <any JSON>}
// (staff or service): every member of group, on every process, gets
// {"type":"publish","group":…,"data":…,"ts":…}. → 202.
func handlePublish(logger *slog.Logger, hub *ws.Hub, metrics *Metrics, now func() time.Time) gin.HandlerFunc {
	type request struct {
		Data json.RawMessage `json:"data"`
	}
	return func(c *gin.Context) {
		group := c.Param("group")
		if !ws.ValidName(group) {
			middleware.WriteError(c, errBadGroup)
			return
		}
		in, err := decode[request](c)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		if in.Data == nil {
			middleware.WriteError(c, models.FieldError(models.EINVALID, "data", "this field is required"))
			return
		}
		metrics.published("group")
		ts := ws.FormatTS(now())
		payload := ws.Encode(ws.Publish{Type: "publish", Group: group, Data: in.Data, TS: ts})
		if err := hub.Publish(c.Request.Context(), ws.GroupChannel(group), ws.Message{Payload: payload}); err != nil {
			// Local members have it; other processes may not.
			logger.Warn("publish reached this process only", "group", group, "err", err)
		}
		c.JSON(http.StatusAccepted, gin.H{"group": group, "ts": ts})
	}
}

// handlePresence is GET /api/groups/{group}/presence: the users online in
// group on every process, for its members (users whose chat group it is),
// staff and services.
func handlePresence(logger *slog.Logger, presence ws.Presence) gin.HandlerFunc {
	return func(c *gin.Context) {
		group := c.Param("group")
		if !ws.ValidName(group) {
			middleware.WriteError(c, errBadGroup)
			return
		}
		if u := middleware.User(c); !middleware.IsService(c) && !u.IsStaff && ws.ChatGroup(u.Username) != group {
			middleware.WriteError(c, models.Errorf(models.EFORBIDDEN, "members of the group and staff only"))
			return
		}
		users, err := presence.List(c.Request.Context(), group)
		if err != nil {
			logger.Warn("presence list from this process only", "group", group, "err", err)
		}
		c.JSON(http.StatusOK, gin.H{"group": group, "users": users})
	}
}
