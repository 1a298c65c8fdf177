// Command refhub is the reference server of the bench (issue 13): a
// minimal gorilla/websocket hub in the shape of gorilla's chat example
// (github.com/gorilla/websocket/examples/chat): upgrade, one room,
// broadcast. No authentication, no database, no presence, no history.
//
// It answers what wsbench needs and nothing more: every socket, on any
// path (wsbench dials /ws/chat/?token=…, the token is ignored), first gets
// {"type":"welcome","group":"<-group>"} and then every text any member
// sends, as {"type":"message","text":…}: the JSON wsbench reads (the
// type, and the text carrying sender, sequence and send time), where the
// example relays the raw text. Like the example's writePump, a write takes
// every message queued meanwhile into the same frame, one per line, so
// fanout runs (W5) work, paced or fast.
//
//	refhub -addr 127.0.0.1:8100 -group chat-b     (or ADDR=… refhub)
//
// PPROF_ADDR=127.0.0.1:6060 also serves net/http/pprof there (its own
// listener, as switchboard's), for side-by-side CPU profiles.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // on http.DefaultServeMux, served only at PPROF_ADDR
	"os"
	"time"

	"github.com/gorilla/websocket"
)

// The chat example's constants.
const (
	writeWait      = 10 * time.Second
	pongWait       = 60 * time.Second
	pingPeriod     = (pongWait * 9) / 10
	maxMessageSize = 65536
)

var newline = []byte{'\n'}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
}

// hub is the one room: it keeps the clients and broadcasts to them.
type hub struct {
	clients    map[*client]bool
	broadcast  chan []byte
	register   chan *client
	unregister chan *client
}

func (h *hub) run() {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = true
		case c := <-h.unregister:
			if h.clients[c] {
				delete(h.clients, c)
				close(c.send)
			}
		case msg := <-h.broadcast:
			for c := range h.clients {
				select {
				case c.send <- msg:
				default: // too slow: dropped, as in the chat example
					close(c.send)
					delete(h.clients, c)
				}
			}
		}
	}
}

// client is one socket: a read pump and a write pump, as in the example.
type client struct {
	hub  *hub
	conn *websocket.Conn
	send chan []byte
}

func (c *client) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessageSize)
	c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { c.conn.SetReadDeadline(time.Now().Add(pongWait)); return nil })
	for {
		_, text, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		q, _ := json.Marshal(string(text))
		frame := make([]byte, 0, len(q)+32)
		frame = append(frame, `{"type":"message","text":`...)
		frame = append(append(frame, q...), '}')
		c.hub.broadcast <- frame
	}
}

func (c *client) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case msg, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			w, err := c.conn.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			w.Write(msg)
			// As the example does: what queued up meanwhile goes into
			// the same frame, one message a line (wsbench splits them).
			n := len(c.send)
			for i := 0; i < n; i++ {
				w.Write(newline)
				w.Write(<-c.send)
			}
			if err := w.Close(); err != nil {
				return
			}
		case <-ticker.C:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

func main() {
	def := os.Getenv("ADDR")
	if def == "" {
		def = "127.0.0.1:8100"
	}
	addr := flag.String("addr", def, "listen address, loopback only (default $ADDR, else 127.0.0.1:8100)")
	group := flag.String("group", "chat-b", "the room's name, sent in the welcome (wsbench checks it)")
	flag.Parse()
	if host, _, err := net.SplitHostPort(*addr); err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("refhub: -addr %q: want a loopback host:port", *addr)
	}
	g, _ := json.Marshal(*group)
	welcome := []byte(`{"type":"welcome","group":` + string(g) + `}`) // type first, as wsbench reads it
	h := &hub{clients: map[*client]bool{}, broadcast: make(chan []byte),
		register: make(chan *client), unregister: make(chan *client)}
	go h.run()
	if pp := os.Getenv("PPROF_ADDR"); pp != "" {
		go func() { log.Printf("refhub: pprof: %v", http.ListenAndServe(pp, nil)) }()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &client{hub: h, conn: conn, send: make(chan []byte, 256)}
		c.send <- welcome // the first frame, before any broadcast can reach it
		h.register <- c
		go c.writePump()
		go c.readPump()
	})
	log.Printf("refhub: listening on %s, room %s", *addr, *group)
	log.Fatal(http.ListenAndServe(*addr, mux))
}
