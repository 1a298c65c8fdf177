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
