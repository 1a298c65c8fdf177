package ws

// CloseReason is a WebSocket close code with the reason sent beside it.
// Reasons stay under 123 bytes (a control frame holds 125, minus the code).
type CloseReason struct {
	Code   int
	Reason string
}

// The close codes switchboard sends. 4000–4999 are ours; the rest are RFC
// 6455's.
var (
	CloseShutdown     = CloseReason{1001, "server shutting down"}
	CloseUnsupported  = CloseReason{1003, "binary frames are not accepted here"}
	CloseInvalidUTF8  = CloseReason{1007, "text frame is not valid utf-8"}
	CloseFlooding     = CloseReason{1008, "too many messages"}
	CloseTooBig       = CloseReason{1009, "message too big"}
	CloseInternal     = CloseReason{1011, "internal error"}
	CloseSlowConsumer = CloseReason{1013, "slow consumer"}
	CloseBadGroup     = CloseReason{4000, "bad group"}
	CloseTokenExpired = CloseReason{CodeUnauthenticated, "token expired"}
	CloseTokenMissing = CloseReason{CodeUnauthenticated, "token missing"}
	CloseTokenRevoked = CloseReason{CodeRevoked, "token revoked"}
	// CloseInsufficientState: this process could not give the member a
	// group's messages in offset order (missing from history: trimmed, or
	// the database failed), so it closes the member rather than skip them;
	// reconnecting with since recovers them all or says recovered:false.
	// Centrifugo's "insufficient state" disconnect, for the same case.
	CloseInsufficientState = CloseReason{CodeInsufficientState, "insufficient state: reconnect with since"}
)

// Close codes for authentication failures; the reason is one of the
// middleware.Reason* strings.
const (
	CodeUnauthenticated = 4001 // token missing, expired or invalid
	CodeForbidden       = 4003 // user not found or inactive
	// CodeRevoked: the token was revoked ("log out everywhere", password
	// change): log in again; refreshing will not help (unlike 4001).
	CodeRevoked = 4004
)

// CodeInsufficientState closes a member that missed group messages this
// process cannot deliver in order (CloseInsufficientState).
const CodeInsufficientState = 4005
