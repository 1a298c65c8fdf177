package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsPresenceTellsCountFramesFromPublish(t *testing.T) {
	cases := map[string]bool{
		`{"type":"presence","mode":"count","count":700}`:    true,
		`{"type":"presence","mode":"events","users":["a"]}`: true,
		`{"type":"publish","group":"g","data":"x|1|2"}`:     false,
		`{"type":"join","user":"a"}`:                        false,
	}
	for f, want := range cases {
		if got := isPresence([]byte(f)); got != want {
			t.Errorf("isPresence(%s) = %v, want %v", f, got, want)
		}
	}
}

func TestUsersFlagSharesUsersBetweenSockets(t *testing.T) {
	cfg, err := parseFlags([]string{"idle", "-n", "10", "-users", "3"}, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	l := placeMembers(cfg)
	var names []string
	for _, m := range l.members {
		names = append(names, m.Name)
	}
	want := "b000001 b000002 b000003 b000001 b000002 b000003 b000001 b000002 b000003 b000001"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("names %s, want %s", got, want)
	}
	for _, bad := range [][]string{
		{"fanout", "-n", "10", "-users", "3"},
		{"idle", "-n", "10", "-users", "11"},
		{"idle", "-n", "10", "-groups", "2", "-users", "3"},
	} {
		if _, err := parseFlags(bad, func(string) string { return "" }, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

func TestCompareMediansOverOkRuns(t *testing.T) {
	dir := t.TempDir()
	write := func(name, result string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("RESULT "+result+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a1 := write("a1", `{"scenario":"idle","sockets":10,"connected":10,"connects_per_s":100,"server_kib_per_socket":10,"ok":true}`)
	a2 := write("a2", `{"scenario":"idle","sockets":10,"connected":10,"connects_per_s":300,"server_kib_per_socket":12,"ok":true}`)
	a3 := write("a3", `{"scenario":"idle","sockets":10,"connected":10,"connects_per_s":200,"server_kib_per_socket":11,"ok":true}`)
	b1 := write("b1", `{"scenario":"idle","sockets":10,"connected":10,"connects_per_s":400,"server_kib_per_socket":20,"ok":true}`)
	b2 := write("b2", `{"scenario":"idle","sockets":10,"connected":9,"connects_per_s":900,"server_kib_per_socket":20,"ok":false}`)
	var out bytes.Buffer
	if err := compare([]string{"a=" + a1 + "," + a2 + "," + a3, "b=" + b1 + "," + b2}, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"| a | 10 / 10 | 3 of 3 | 200 | 100, 300, 200 | 1.00 | 11.0 |", "| b | 10 / 10 | 1 of 2 | 400 | 400, 900 (not ok) | 2.00 | 20.0 |"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
}
