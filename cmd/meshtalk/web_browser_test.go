package main

// Browser tests: the web UI (web/) in Debian's chromium, driven by chromedp, over
// real nodes (internal/nodetest) and their local APIs, logged in through
// `meshtalk open`'s link. Without chromium
// they skip, saying why. Screenshots go to $MESHTALK_SCREENSHOTS when set
// (CI keeps them as artifacts), else to the test's temporary folder.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// chromiumPath finds the browser, or skips the test saying why.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MESHTALK_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on this machine (apt-get install chromium): the browser tests need it")
	return ""
}

// user is one person: a node, its API and a browser page logged in to it.
type user struct {
	t    testing.TB
	name string
	node *node.Node
	srv  *api.Server
	// conns are the connections to the API (conns.setDown cuts them).
	conns *cuttable
	ctx   context.Context
	// shots is where screenshots go.
	shots string
}

func startUser(t testing.TB, name, shots string) *user {
	t.Helper()
	return startUserWith(t, name, shots, nil)
}

// startUserWith starts a user whose node's configuration configure
// adjusts.
func startUserWith(t testing.TB, name, shots string, configure func(*node.Config)) *user {
	t.Helper()
	n := nodetest.Start(t, nodetest.Options{Configure: configure})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &cuttable{Listener: ln}
	srv, err := api.Serve(n, cl, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &user{t: t, name: name, node: n, srv: srv, conns: cl, shots: shots}
}

// cuttable is the API's listener in browser tests: it keeps the
// connections it accepted, so that a test can cut the page off its node
// as a network would (its requests and event stream fail, and so does
// every new connection until the network is back).
type cuttable struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
	down  bool
}

func (c *cuttable) Accept() (net.Conn, error) {
	for {
		conn, err := c.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		down := c.down
		if !down {
			c.conns = append(c.conns, conn)
		}
		c.mu.Unlock()
		if !down {
			return conn, nil
		}
		conn.Close()
	}
}

// setDown cuts every connection and refuses new ones (true), or lets
// them through again (false).
func (c *cuttable) setDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// open starts a browser of its own (a fresh profile) on the login link
// that `meshtalk open` would open, w×h pixels.
func (u *user) open(w, h int) {
	t := u.t
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(w, h),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		// Calls: a fake camera and microphone, granted without asking,
		// and WebRTC over 127.0.0.1 (every endpoint is on this machine).
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	u.ctx = ctx
	// The first action starts the browser and ties it to its context: run
	// it on the page's own, not on one that ends with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	u.do(chromedp.EmulateViewport(int64(w), int64(h)), chromedp.Navigate(u.openLink()))
}

// openLink runs `meshtalk open --json` against the node (through the
// api.json in its home) and answers the one-time login link it made.
func (u *user) openLink() string {
	u.t.Helper()
	out, errOut, code := meshtalk(u.t, cleanEnv(), "open", "--json", "--home", string(u.node.Home()))
	var lc api.LoginCode
	if code != 0 || json.Unmarshal([]byte(out), &lc) != nil || lc.URL == "" {
		u.t.Fatalf("meshtalk open --json: exit %d: %s%s", code, out, errOut)
	}
	return lc.URL
}

func (u *user) do(actions ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		u.shot("failed")
		u.t.Fatalf("%s's page: %v", u.name, err)
	}
}

// eval runs JavaScript in the page and decodes its value into out.
func (u *user) eval(js string, out any) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 60*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](js, chromedp.EvalAwaitPromise))
	if err != nil {
		u.shot("failed")
		u.t.Fatalf("%s's page: %s: %v", u.name, js, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			u.t.Fatalf("%s's page: %s answered %s: %v", u.name, js, raw, err)
		}
	}
}

// wait polls a JavaScript predicate until it holds.
func (u *user) wait(what, js string, timeout time.Duration) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, timeout+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		u.shot("failed")
		u.t.Fatalf("%s's page: waiting for %s: %v", u.name, what, err)
	}
}

// dark switches the page to the dark theme (prefers-color-scheme).
func (u *user) dark() {
	u.t.Helper()
	u.do(func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return chromedp.Void{}, err
	})
}

// grant grants the page's origin a permission ("notifications") as a
// person who clicked Allow would.
func (u *user) grant(name string) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted, Origin: u.srv.URL(),
	}); err != nil {
		u.t.Fatalf("%s's browser: grant %s: %v", u.name, name, err)
	}
}

// reload reloads the page (its session cookie logs it in again) and
// waits for the chat list.
func (u *user) reload() {
	u.t.Helper()
	u.do(chromedp.Reload())
	u.waitFor("[data-testid=open-add]")
}

// q is a JavaScript expression for the first element sel matches.
func q(sel string) string { return fmt.Sprintf("document.querySelector(%q)", sel) }

func (u *user) waitFor(sel string) { u.t.Helper(); u.wait(sel, q(sel)+" !== null", 20*time.Second) }

// click clicks what sel matches once it is there (by script: it also
// reaches the buttons that show on hover).
func (u *user) click(sel string) {
	u.t.Helper()
	u.waitFor(sel)
	u.eval(q(sel)+".click(); true", nil)
}

// fill types text into an input as a person would (an input event each).
func (u *user) fill(sel, text string) {
	u.t.Helper()
	u.waitFor(sel)
	b, _ := json.Marshal(text)
	u.eval(fmt.Sprintf(`(() => { const e = %s; e.focus(); e.value = %s; e.dispatchEvent(new Event('input', {bubbles: true})); return true })()`, q(sel), b), nil)
}

func (u *user) text(sel string) string {
	u.t.Helper()
	u.waitFor(sel)
	var s string
	u.eval(q(sel)+".textContent", &s)
	return s
}

// send types a message and presses Enter.
func (u *user) send(text string) {
	u.t.Helper()
	u.fill("[data-testid=composer]", text)
	u.do(chromedp.SendKeys("[data-testid=composer]", "\r"))
}

// openConv opens the conversation named name from the chat list.
func (u *user) openConv(name string) {
	u.t.Helper()
	u.click(fmt.Sprintf("[data-testid=conv][data-name=%q]", name))
	u.wait("conversation "+name, fmt.Sprintf(`%s?.textContent === %q`, q("[data-testid=conv-name]"), name), 10*time.Second)
}

// message is a JavaScript expression for the bubble whose text is text.
func message(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('[data-testid=message]')].find(e => e.querySelector('.text')?.textContent === %q)`, text)
}

func screenshotDir(t testing.TB) string {
	if d := os.Getenv("MESHTALK_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return t.TempDir()
}

// shot writes a screenshot of the page as NAME-USER.png.
func (u *user) shot(name string) {
	dir := u.shots
	ctx, cancel := context.WithTimeout(u.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		u.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(dir, name+"-"+strings.ToLower(u.name)+".png")
	if err := os.WriteFile(path, png, 0o644); err == nil {
		u.t.Logf("screenshot: %s", path)
	}
}
