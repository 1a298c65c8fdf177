package handlers

import "net/http"

// handshakeStack is how much stack a WebSocket handshake's goroutine is
// given up front (see growStackForUpgrades).
const handshakeStack = 16 << 10

// growStackForUpgrades gives the goroutine of every WebSocket handshake
// its stack in one step, while the stack is still shallow, before next
// runs. A goroutine starts with 2 KiB and doubles its stack each time a
// call does not fit, copying it and walking every frame on it; a
// handshake (gin's middleware, the upgrade, the token's JSON, the SQLite
// lookup) needs about 16 KiB and used to get there in several copies
// made 15 to 30 frames deep: 8-10% of a connect's CPU in the profiles of
// BENCHMARKS.md ("Connect CPU, this round"). Grown here, 3 frames deep,
// it is one copy of a few frames. No larger: a storm has thousands of
// handshakes in flight, each holding this much until its handler returns:
// after the hijack and, with ?token=, the authentication and the join
// (the welcome and any history replay). The read loop runs on a goroutine
// of its own, so the stack is not kept for the life of the socket.
func growStackForUpgrades(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			growStack(0)
		}
		next.ServeHTTP(w, r)
	})
}

// growStack has a frame of handshakeStack bytes, so calling it makes the
// runtime grow the caller's stack to fit (one copy). i keeps the compiler
// from dropping the array.
//
//go:noinline
func growStack(i int) byte {
	var b [handshakeStack - 4<<10]byte // room for the frames below it and the guard
	b[i] = 1
	return b[len(b)-1-i]
}
