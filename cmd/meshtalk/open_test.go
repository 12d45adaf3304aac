package main

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
)

// TestOpenLink: `meshtalk open --print` prints a one-time link to the
// node's web UI, whose code the page trades for a session once; no
// browser is started and the token is nowhere in it.
func TestOpenLink(t *testing.T) {
	home := t.TempDir()
	env := cleanEnv()
	n := startNode(t, env, append([]string{"--home", home}, testListen...)...)
	out, errOut, code := meshtalk(t, env, "open", "--print", "--home", home)
	if code != 0 {
		t.Fatalf("open --print: exit %d: %s", code, errOut)
	}
	link := regexp.MustCompile(`http://127\.0\.0\.1:\d+/#login=([0-9a-f]+)`).FindStringSubmatch(out)
	if link == nil || !strings.HasPrefix(link[0], n.ready["api"]) {
		t.Fatalf("open --print printed no login link for %s:\n%s", n.ready["api"], out)
	}
	login := func() int {
		jar, _ := cookiejar.New(nil)
		resp, err := (&http.Client{Jar: jar}).Post(n.ready["api"]+"/api/v1/session", "application/json", strings.NewReader(`{"code":"`+link[1]+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s struct{ CSRF string }
		json.NewDecoder(resp.Body).Decode(&s)
		if resp.StatusCode == 200 && s.CSRF == "" {
			t.Fatal("a login without a CSRF value")
		}
		return resp.StatusCode
	}
	if status := login(); status != 200 {
		t.Fatalf("login with the printed code: %d", status)
	}
	if status := login(); status != 401 {
		t.Fatalf("second login with the same code: %d, want 401", status)
	}
	resp, err := http.Get(n.ready["api"] + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the UI page: %v %v", resp, err)
	}
	resp.Body.Close()
}
