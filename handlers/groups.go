package handlers

import (
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"strconv"
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
		err = hub.PublishGroup(c.Request.Context(), ws.GroupMessage{Group: group, Encode: func(off uint64) []byte {
			return ws.Encode(ws.Publish{Type: "publish", Group: group, Data: in.Data, TS: ts, Offset: off})
		}}, true)
		if err != nil {
			middleware.WriteError(c, err) // not stored, so not sent: 500
			return
		}
		c.JSON(http.StatusAccepted, gin.H{"group": group, "ts": ts})
	}
}

// handlePresence is GET /api/groups/{group}/presence?limit=&offset=: the
// users online in group on every process, sorted, for its members (users
// whose chat group it is), staff and services → {"group", "users": [one
// page], "count": all of them, "limit", "offset"}. limit defaults to (and
// is at most) 1000, so a group of many thousands is read page by page.
func handlePresence(logger *slog.Logger, presence ws.Presence) gin.HandlerFunc {
	return func(c *gin.Context) {
		group, ok := readableGroup(c)
		if !ok {
			return
		}
		limit, err := queryInt(c, "limit", maxPresencePage, 1, maxPresencePage)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		offset, err := queryInt(c, "offset", 0, 0, math.MaxInt32)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		users, err := presence.List(c.Request.Context(), group)
		if err != nil {
			logger.Warn("presence list from this process only", "group", group, "err", err)
		}
		page := users[min(offset, len(users)):min(offset+limit, len(users))]
		if page == nil {
			page = []string{}
		}
		c.JSON(http.StatusOK, gin.H{"group": group, "users": page, "count": len(users), "limit": limit, "offset": offset})
	}
}

// maxPresencePage is the presence endpoint's default and largest page.
const maxPresencePage = 1000

var errMembersOnly = models.Errorf(models.EFORBIDDEN, "members of the group and staff only")

// readableGroup returns the request's group when it is a valid name the
// caller may read (mayRead); otherwise it has answered 400 or 403.
func readableGroup(c *gin.Context) (string, bool) {
	group := c.Param("group")
	if !ws.ValidName(group) {
		middleware.WriteError(c, errBadGroup)
		return "", false
	}
	if !mayRead(c, group) {
		middleware.WriteError(c, errMembersOnly)
		return "", false
	}
	return group, true
}

// mayRead is who may read a group's presence and history: its members
// (users whose chat group it is), staff and services.
func mayRead(c *gin.Context, group string) bool {
	u := middleware.User(c)
	return middleware.IsService(c) || u.IsStaff || ws.ChatGroup(u.Username) == group
}

// handleHistory is GET /api/groups/{group}/history?since=<offset>&limit=<n>
// (the group's members, staff, services) → {"group", "epoch", "offset",
// "messages": [<the frames members received>]}: the messages after since,
// oldest first, at most limit (default 50, max 1000); without since the
// newest limit. offset is the group's latest. 404 when history is off.
func handleHistory(history *models.HistoryStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		group, ok := readableGroup(c)
		if !ok {
			return
		}
		if history == nil {
			middleware.WriteError(c, models.Errorf(models.ENOTFOUND, "history is off (HISTORY_SIZE=0)"))
			return
		}
		limit, err := queryInt(c, "limit", 50, 1, 1000)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		ctx := c.Request.Context()
		epoch, last, err := history.Position(ctx, group)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		var entries []models.HistoryEntry
		if s, ok := c.GetQuery("since"); ok {
			// Offsets are BIGINT columns: a since above 2^63-1 is no offset.
			since, perr := strconv.ParseUint(s, 10, 63)
			if perr != nil {
				middleware.WriteError(c, models.Errorf(models.EINVALID, "bad since: want an offset from 0 to 9223372036854775807"))
				return
			}
			entries, err = history.Range(ctx, group, since, last, limit)
		} else {
			entries, err = history.Latest(ctx, group, last, limit)
		}
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		msgs := make([]json.RawMessage, len(entries))
		for i, e := range entries {
			msgs[i] = e.Payload
		}
		c.JSON(http.StatusOK, gin.H{"group": group, "epoch": epoch, "offset": last, "messages": msgs})
	}
}
