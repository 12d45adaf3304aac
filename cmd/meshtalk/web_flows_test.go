package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// picture writes a PNG of w×h pixels.
func picture(t *testing.T, w, h int) string {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(40 + x*180/w), uint8(110 + y*100/h), 150, 255})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	path := filepath.Join(t.TempDir(), "mountains.png")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// overLimit writes a file named name of 6 MiB of noise: over the node's
// 5 MiB limit for a picture or an avatar (the page goes by the name's
// type and the size).
func overLimit(t *testing.T, name string) string {
	b := make([]byte, 6<<20)
	rand.Read(b)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// firstRun sets the person's name on the first-run screen and answers
// their friend code.
func (u *user) firstRun() string {
	u.t.Helper()
	u.waitFor("[data-testid=first-run]")
	u.wait("friend code", q("[data-testid=friend-code]")+"?.textContent.startsWith('mt1')", 10*time.Second)
	code := u.text("[data-testid=friend-code]")
	u.fill("[data-testid=my-name]", u.name)
	u.shot("01-first-run")
	u.click("[data-testid=save-profile]")
	u.waitFor("[data-testid=open-add]")
	return code
}

// befriend: b adds a by code in its page, a accepts in its own.
func befriend(a, b *user, code string) {
	b.click("[data-testid=open-add]")
	b.fill("[data-testid=add-code]", code)
	b.click("[data-testid=add-friend]")
	a.waitFor("[data-testid=friend-request]")
	a.shot("02-friend-request")
	a.click("[data-testid=friend-request] [data-testid=accept]")
	a.waitFor(fmt.Sprintf("[data-testid=conv][data-name=%q]", b.name))
	b.waitFor(fmt.Sprintf("[data-testid=conv][data-name=%q]", a.name))
}

// choose picks value in the select sel as a person would (a change event).
func (u *user) choose(sel, value string) {
	u.t.Helper()
	u.waitFor(sel)
	u.eval(fmt.Sprintf(`(() => { const s = %s; s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})); return true })()`, q(sel), value), nil)
}

// heldMailbox stands in for a relay's mailbox: it takes whatever is
// parked, held by relay (the browser tests run no relay for it).
type heldMailbox struct{ relay peer.ID }

func (m heldMailbox) Park(context.Context, peer.ID, [][]byte) (peer.ID, error) { return m.relay, nil }
func (m heldMailbox) Ready() bool                                              { return true }

// hideAndWatch makes the page hidden (document.hidden, as a tab in the
// background; window.fakeHidden = false shows it again) and records the
// desktop notifications (their titles) and beeps it makes.
const hideAndWatch = `(() => {
	window.notes = []; window.beeps = 0; window.fakeHidden = true;
	const N = window.Notification;
	window.Notification = class extends N { constructor(title, o) { window.notes.push(title); super(title, o); } };
	const osc = AudioContext.prototype.createOscillator;
	AudioContext.prototype.createOscillator = function () { window.beeps++; return osc.call(this); };
	Object.defineProperty(document, 'hidden', { configurable: true, get: () => window.fakeHidden });
	document.dispatchEvent(new Event('visibilitychange'));
	return true })()`

func TestBrowserChat(t *testing.T) {
	chromiumPath(t)
	shots := screenshotDir(t)
	alice, bob := startUser(t, "Alice", shots), startUser(t, "Bob", shots)
	alice.open(1280, 800)
	bob.open(1280, 800)
	code := alice.firstRun()
	bob.firstRun()

	// Bob's request waits in his list; Alice declines it and his page
	// says so (hers does not: she declined); he asks again, she accepts.
	bob.click("[data-testid=open-add]")
	bob.fill("[data-testid=add-code]", code)
	bob.click("[data-testid=add-friend]")
	bob.wait("his request waiting", q("[data-testid=request-out] .grow")+"?.textContent.endsWith(' to accept')", 10*time.Second)
	alice.waitFor("[data-testid=friend-request]")
	alice.click("[data-testid=friend-request] [data-testid=decline]")
	bob.wait("his request declined", q("[data-testid=request-declined] .grow")+"?.textContent.endsWith(' declined your request') && "+q("[data-testid=request-out]")+" === null", 20*time.Second)
	bob.shot("02-request-declined")
	alice.wait("nothing left in her list", q("[data-testid=friend-request]")+" === null && "+q("[data-testid=request-declined]")+" === null", 10*time.Second)
	bob.click("[data-testid=request-declined] [data-testid=ask-again]")
	alice.waitFor("[data-testid=friend-request]")
	alice.click("[data-testid=friend-request] [data-testid=accept]")
	alice.waitFor("[data-testid=conv][data-name=Bob]")
	bob.waitFor("[data-testid=conv][data-name=Alice]")
	bob.wait("no request left in his list", q("[data-testid=request-out]")+" === null && "+q("[data-testid=request-declined]")+" === null", 10*time.Second)

	// Messages both ways; Alice's goes to "read" once Bob has it open.
	alice.openConv("Bob")
	alice.wait("the call buttons on for a friend online", q("[data-testid=call-audio]")+"?.disabled === false && "+q("[data-testid=call-video]")+"?.disabled === false", 20*time.Second)
	alice.send("Hi Bob! Are you coming hiking on Saturday?")
	bob.wait("Alice's message in Bob's list", fmt.Sprintf(`%s?.querySelector('.badge')?.textContent === '1'`, q("[data-testid=conv][data-name=Alice]")), 20*time.Second)
	bob.openConv("Alice")
	bob.wait("Alice's message", message("Hi Bob! Are you coming hiking on Saturday?")+" !== undefined", 20*time.Second)
	alice.wait("read", message("Hi Bob! Are you coming hiking on Saturday?")+"?.dataset.state === 'read'", 20*time.Second)
	bob.send("Yes! I'll bring the map 🗺️")
	alice.wait("Bob's answer", message("Yes! I'll bring the map 🗺️")+" !== undefined", 20*time.Second)

	// A picture: the thumbnail shows on the other side.
	alice.do(chromedp.SetUploadFiles("[data-testid=file-input]", []string{picture(t, 640, 400)}))
	bob.wait("thumbnail", `document.querySelector('[data-testid=message][data-kind=picture] [data-testid=thumbnail]')?.naturalWidth > 0`, 30*time.Second)
	alice.send("The view from last time")
	bob.wait("caption", message("The view from last time")+" !== undefined", 20*time.Second)
	// Replying to a picture quotes it as one (the quote was empty); her
	// caption's send, answered meanwhile or not, leaves that reply be.
	alice.click("[data-testid=message][data-kind=picture] [aria-label=Reply]")
	alice.wait("the picture quoted", q("[data-testid=replying] span")+"?.textContent === 'Replying to yourself: 📷 Picture'", 10*time.Second)
	alice.click("[aria-label='Cancel reply']")
	alice.shot("03-conversation")
	bob.shot("03-conversation")

	// A reply quotes. Its send's answer ends that reply only: one begun
	// meanwhile stays (the page's sends are held back 500 ms to begin one).
	bob.eval(`(() => { const f = window.realFetch = window.fetch; window.fetch = async (u, o) => {
		if (String(u).endsWith('/api/v1/messages') && o?.method === 'POST') await new Promise(r => setTimeout(r, 500));
		return f(u, o) }; return true })()`, nil)
	bob.eval(message("The view from last time")+".querySelector('[aria-label=Reply]').click(); true", nil)
	bob.waitFor("[data-testid=replying]")
	bob.send("Wow, beautiful")
	bob.eval(message("Hi Bob! Are you coming hiking on Saturday?")+".querySelector('[aria-label=Reply]').click(); true", nil)
	bob.wait("his reply sent", message("Wow, beautiful")+" !== undefined", 20*time.Second)
	bob.wait("the reply begun meanwhile", fmt.Sprintf("%s?.textContent === %q", q("[data-testid=replying] span"), "Replying to Alice: Hi Bob! Are you coming hiking on Saturday?"), 5*time.Second)
	bob.click("[aria-label='Cancel reply']")
	bob.eval("window.fetch = window.realFetch; true", nil)
	alice.wait("the reply's quote", message("Wow, beautiful")+"?.querySelector('.quote')?.textContent === 'The view from last time'", 20*time.Second)

	// Reactions: one per person and emoji, however often made; a chip is
	// highlighted when it holds mine, and a click on it (or the emoji
	// again in the menu) adds mine or takes it back.
	chip := message("Wow, beautiful") + "?.querySelector('[data-testid=reaction]')"
	alice.eval(message("Wow, beautiful")+".querySelector('[aria-label=React]').click(); true", nil)
	alice.click("[role=menu] button") // 👍
	bob.wait("the reaction", chip+"?.textContent === '👍' && "+chip+".title === 'Alice' && !"+chip+".classList.contains('mine')", 20*time.Second)
	alice.wait("her reaction", chip+"?.classList.contains('mine')", 20*time.Second)
	// The same again from elsewhere (her command line): still one of hers.
	var wow string
	alice.eval(message("Wow, beautiful")+".dataset.id", &wow)
	if _, err := alice.node.SendMessage(context.Background(), bob.node.ID().String(), node.Draft{ReactTo: wow, Text: "👍"}); err != nil {
		t.Fatal(err)
	}
	alice.reload()
	alice.wait("one reaction of hers", chip+"?.textContent === '👍' && "+chip+".title === 'You'", 20*time.Second)
	bob.eval(chip+".click(); true", nil)
	alice.wait("two people's", chip+"?.textContent === '👍 2' && "+chip+".title === 'You, Bob'", 20*time.Second)
	bob.wait("his own", chip+"?.textContent === '👍 2' && "+chip+".classList.contains('mine')", 20*time.Second)
	alice.eval(message("Wow, beautiful")+".querySelector('[aria-label=React]').click(); true", nil)
	alice.click("[role=menu] button[aria-checked=true]")
	bob.wait("hers taken back, both", chip+"?.textContent === '👍' && "+chip+".title === 'You'", 20*time.Second)
	bob.eval(chip+".click(); true", nil)
	alice.wait("no reaction left", message("Wow, beautiful")+" !== undefined && "+chip+" == null", 20*time.Second)

	// A face: the chat list shows its glyph (it showed its name).
	alice.click("[aria-label='Emoji and faces']")
	alice.click("[aria-label='face party']")
	bob.wait("the face in the chat list", q("[data-testid=conv][data-name=Alice] .preview")+"?.textContent === '🎉'", 20*time.Second)

	// The API token is nowhere in the page or its storage.
	for _, u := range []*user{alice, bob} {
		var page string
		u.eval(`document.documentElement.outerHTML + JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie + location.href`, &page)
		if strings.Contains(page, u.srv.Token()) {
			t.Fatalf("%s's page holds the API token", u.name)
		}
	}

	// Edit and delete for everyone.
	alice.send("See you at 8")
	bob.wait("to edit", message("See you at 8")+" !== undefined", 20*time.Second)
	alice.wait("her own message to edit", message("See you at 8")+" !== undefined", 20*time.Second)
	alice.eval(message("See you at 8")+".querySelector('[data-testid=edit]').click(); true", nil)
	// The edit box takes the keyboard, the cursor after the text.
	alice.wait("the edit box focused", `(e => e?.dataset.testid === 'edit-text' && e.selectionStart === e.value.length && e.value === 'See you at 8')(document.activeElement)`, 10*time.Second)
	alice.fill("[data-testid=edit-text]", "See you at 9")
	alice.click("[data-testid=edit-save]")
	bob.wait("the edit", message("See you at 9")+" !== undefined", 20*time.Second)
	alice.wait("her own page shows the edit", message("See you at 9")+" !== undefined", 20*time.Second)
	alice.eval("window.confirm = () => true; "+message("See you at 9")+".querySelector('[data-testid=delete]').click(); true", nil)
	bob.wait("the deletion", `[...document.querySelectorAll('[data-testid=message]')].some(e => e.textContent.includes('Message deleted'))`+" && "+message("See you at 9")+" === undefined", 20*time.Second)

	avatarAndSearch(t, alice, bob)
	streamAndAlerts(t, alice, bob)

	// The same screens at 360 pixels and in the dark theme.
	bob.dark()
	bob.shot("07-dark")
	alice.do(chromedp.EmulateViewport(360, 740))
	alice.shot("08-phone")
	alice.click("[data-testid=conv-name]")
	alice.waitFor("[data-testid=friend-details]")
	// The round trip names its path (it showed "[object Object]").
	alice.wait("the round trip and its path", "[...document.querySelectorAll('[data-testid=friend-details] dd')].some(d => / ms \\(direct\\)$/.test(d.textContent))", 20*time.Second)
	alice.shot("09-phone-profile")
	// Removing a friend asks first (one click removed them on both sides).
	alice.eval("window.confirm = (t) => { window.asked = t; return false; }; [...document.querySelectorAll('[data-testid=friend-details] button')].find(b => b.textContent === 'Remove friend').click(); true", nil)
	alice.wait("the question", "(window.asked || '').startsWith('Remove Bob from your friends?')", 10*time.Second)
	// A pane hides the chat list at this size; its back button shows it
	// again (there was none: only Esc or a reload left it).
	sidebarShown := "getComputedStyle(document.querySelector('.sidebar')).display !== 'none'"
	alice.eval("dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'})); document.querySelector('.convhead .back').click(); true", nil)
	alice.wait("the chat list", sidebarShown, 10*time.Second)
	alice.click("[data-testid=open-me]")
	alice.waitFor("[data-testid=me]")
	alice.wait("the pane over the list", "!("+sidebarShown+")", 10*time.Second)
	alice.click("[data-testid=pane-back]")
	alice.wait("the chat list again", q("[data-testid=me]")+" === null && "+sidebarShown, 10*time.Second)

	// Logged out, a fresh login link opened in the same tab logs in (only
	// the fragment changes: the page did not use it until a reload).
	alice.click("[data-testid=open-me]")
	alice.click("[data-testid=logout]")
	alice.waitAcrossReload("[data-testid=signed-out]")
	alice.eval("location.href = "+strconv.Quote(alice.openLink())+"; true", nil)
	alice.waitAcrossReload("[data-testid=open-me]")

	// Bob's node stops: his call buttons go off, saying why.
	alice.openConv("Bob")
	if err := bob.node.Close(); err != nil {
		t.Fatal(err)
	}
	alice.wait("the call buttons off for a friend offline", q("[data-testid=call-audio]")+"?.disabled === true && "+q("[data-testid=call-video]")+"?.title === 'Bob is offline'", 30*time.Second)

	// A message for Bob away waits in a relay's mailbox: its bubble says
	// whose (at once, from the event, and after a reload, from the
	// history), and so does how it travelled.
	relayID := alice.node.ID() // a stand-in
	alice.node.Chat().SetMailbox(heldMailbox{relay: relayID}, time.Hour)
	alice.node.Chat().SetRelayPresence(bob.node.ID(), false, time.Now())
	alice.send("Call me when you are back")
	parked := fmt.Sprintf("%s?.querySelector('[data-testid=state]')?.title === %q", message("Call me when you are back"),
		"Waiting in relay …"+relayID.String()[len(relayID.String())-8:]+"'s mailbox for Bob")
	alice.wait("the message parked", parked, 30*time.Second)
	alice.reload()
	alice.wait("still parked after a reload", parked, 20*time.Second)
	alice.eval(message("Call me when you are back")+".querySelector('[data-testid=state]').click(); true", nil)
	alice.wait("where it waits, in how it travelled", q("[data-testid=parked-note]")+"?.textContent.includes(\"'s mailbox for Bob\")", 10*time.Second)
	alice.shot("10-parked")
}

// waitAcrossReload waits for sel in a page that reloads meanwhile: a
// poll that the reload cuts short is polled again in the new page.
func (u *user) waitAcrossReload(sel string) {
	u.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithDeadline(u.ctx, deadline)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](q(sel)+" !== null", chromedp.WithPollingInterval(20*time.Millisecond)))
		cancel()
		switch {
		case err == nil:
			return
		case time.Now().After(deadline):
			u.shot("failed")
			u.t.Fatalf("%s's page: waiting for %s: %v", u.name, sel, err)
		}
	}
}

// avatarAndSearch: Alice's new avatar shows in both pages; Bob's search
// finds a message (its hit opens the conversation) and filters names.
func avatarAndSearch(t *testing.T, alice, bob *user) {
	// Alice's avatar: her own page shows it, and Bob's once her profile
	// reaches his node.
	alice.click("[data-testid=open-me]")
	// One over the limit: the page says the node's limit (the node's
	// answer named its 8 MiB body limit).
	alice.do(chromedp.SetUploadFiles("[data-testid=avatar-input]", []string{overLimit(t, "huge.png")}))
	alice.wait("the avatar's limit", q("[data-testid=toast]")+"?.textContent === 'Avatar: huge.png is over the 5 MiB limit'", 10*time.Second)
	alice.do(chromedp.SetUploadFiles("[data-testid=avatar-input]", []string{picture(t, 96, 96)}))
	alice.wait("her avatar", q("[data-testid=open-me] img")+"?.naturalWidth > 0", 20*time.Second)
	bob.wait("Alice's avatar", q("[data-testid=conv][data-name=Alice] img")+"?.naturalWidth > 0", 30*time.Second)
	alice.openConv("Bob")

	// Search: across the history (a hit opens its conversation) and names.
	bob.fill("[data-testid=search]", "hiking")
	bob.wait("the message found", `[...document.querySelectorAll('[data-testid=hit]')].some(e => e.textContent.includes('Alice') && e.textContent.includes('coming hiking on Saturday'))`, 20*time.Second)
	bob.fill("[data-testid=search]", "nobody")
	bob.wait("no chat for a name no one has", q("[data-testid=conv]")+" === null", 10*time.Second)
	bob.fill("[data-testid=search]", "ali")
	bob.waitFor("[data-testid=conv][data-name=Alice]")
	bob.fill("[data-testid=search]", "hiking")
	bob.click("[data-testid=hit]")
	bob.wait("the conversation of the hit", q("[data-testid=conv-name]")+"?.textContent === 'Alice' && "+q("[data-testid=hit]")+" === null", 10*time.Second)
	// The hit's message is scrolled into view and flashes.
	bob.wait("the hit's message shown", `(m => { if (!m?.classList.contains('found')) return false;
		const r = m.getBoundingClientRect(), v = document.querySelector('.messages').getBoundingClientRect();
		return r.top >= v.top && r.bottom <= v.bottom })(`+message("Hi Bob! Are you coming hiking on Saturday?")+`)`, 10*time.Second)
}

// streamAndAlerts: a page cut off its node misses nothing; a hidden page
// counts unread messages in its title, notifies and beeps, and keeps the
// sound off over a reload.
func streamAndAlerts(t *testing.T, alice, bob *user) {
	// Bob's page is cut off its node (every connection to the API closed,
	// new ones refused, as a network down would) while Alice's message
	// comes; back on, it reconnects by itself, resumes from its last
	// event ID and shows the message (nothing but the replayed event
	// brings it: the page re-reads no history on a reconnect).
	bob.conns.setDown(true)
	bob.wait("the page to see the stream cut", q(".live.off")+" !== null", 30*time.Second)
	// A request meanwhile says what failed (it said "Failed to fetch").
	bob.send("Can you hear me?")
	bob.wait("the node unreachable", q("[data-testid=toast]")+"?.textContent === 'Send: cannot reach your node (is meshtalk running?)'", 20*time.Second)
	bob.fill("[data-testid=composer]", "")
	bobEvents := nodetest.Events(t, bob.node)
	alice.send("Sent while you were cut off")
	nodetest.WaitEvent(t, bobEvents, "message.received", func(ev node.Event) bool {
		m, ok := ev.Data.(*node.Message)
		return ok && m.Text == "Sent while you were cut off"
	})
	bob.conns.setDown(false)
	bob.wait("the message missed while cut off", message("Sent while you were cut off")+" !== undefined", 30*time.Second)
	bob.wait("the stream live again", q(".live.on")+" !== null", 30*time.Second)

	// Alerts: with Bob's page hidden, a message counts in the title, makes
	// a desktop notification and a beep; shown again, it is read. With
	// the sound off (kept over a reload), the notification comes alone.
	bob.grant("notifications")
	bob.eval(hideAndWatch, nil)
	alice.send("Are you there?")
	bob.wait("the unread count in the title", `document.title === '(1) meshtalk'`, 20*time.Second)
	bob.wait("a notification and a beep", `window.notes.join() === 'Alice' && window.beeps > 0`, 20*time.Second)
	bob.eval(`window.fakeHidden = false; document.dispatchEvent(new Event('visibilitychange')); true`, nil)
	bob.wait("the title once read", `document.title === 'meshtalk'`, 20*time.Second)
	bob.click("[data-testid=open-me]")
	bob.click("[data-testid=sound]")
	bob.reload()
	// The open conversation is open again after the reload.
	bob.wait("the conversation kept over a reload", q("[data-testid=conv-name]")+"?.textContent === 'Alice'", 10*time.Second)
	bob.click("[data-testid=open-me]")
	bob.wait("the sound still off after a reload", q("[data-testid=sound]")+"?.checked === false", 10*time.Second)
	bob.eval(hideAndWatch, nil)
	alice.send("Hello?")
	bob.wait("a notification", `window.notes.join() === 'Alice' && document.title === '(1) meshtalk'`, 20*time.Second)
	var beeps int
	bob.eval("window.beeps", &beeps)
	if beeps != 0 {
		t.Fatalf("%d beeps with the sound off", beeps)
	}
	bob.eval(`window.fakeHidden = false; document.dispatchEvent(new Event('visibilitychange')); true`, nil)
	bob.openConv("Alice")
}

func TestBrowserFile(t *testing.T) {
	chromiumPath(t)
	shots := screenshotDir(t)
	// Alice serves files at 4 MiB/s ([files] upload_kib_per_second), so
	// that the 20 MB take a few seconds and the progress bar is there to
	// see, however fast loopback is.
	alice := startUserWith(t, "Alice", shots, func(c *node.Config) { c.Files.UploadKiBPerSecond = 4 << 10 })
	bob := startUser(t, "Bob", shots)
	alice.open(1280, 800)
	bob.open(1280, 800)
	code := alice.firstRun()
	bob.firstRun()
	// Bob takes his request back: it leaves Alice's page too.
	bob.click("[data-testid=open-add]")
	bob.fill("[data-testid=add-code]", code)
	bob.click("[data-testid=add-friend]")
	alice.waitFor("[data-testid=friend-request]")
	bob.click("[data-testid=request-out] [data-testid=withdraw]")
	alice.wait("the request withdrawn", q("[data-testid=friend-request]")+" === null", 20*time.Second)
	bob.wait("his request gone", q("[data-testid=request-out]")+" === null", 10*time.Second)
	befriend(alice, bob, code)

	data := make([]byte, 20<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	path := filepath.Join(t.TempDir(), "trip-photos.tar")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	alice.openConv("Bob")
	alice.do(chromedp.SetUploadFiles("[data-testid=file-input]", []string{path}))
	bob.openConv("Alice")
	bob.waitFor("[data-testid=file-card] [data-testid=file-accept]")
	// Sizes in binary units, as the CLI writes them.
	bob.wait("the size in MiB", q("[data-testid=file-card] .muted")+"?.textContent === '20.0 MiB'", 10*time.Second)
	// The progress bar shows while the file comes, and moves.
	bob.click("[data-testid=file-accept]")
	bob.wait("the progress bar past 0%", q("[data-testid=file-progress]")+"?.value > 0", 30*time.Second)
	bob.shot("04-file-progress")
	bob.wait("download done", q("[data-testid=file-save]")+" !== null", 60*time.Second)
	bob.shot("04-file")
	// Save it as the page does (its link), and compare.
	var got string
	bob.eval(`fetch(document.querySelector('[data-testid=file-save]').href).then(r => r.arrayBuffer()).then(b => crypto.subtle.digest('SHA-256', b)).then(d => [...new Uint8Array(d)].map(x => x.toString(16).padStart(2, '0')).join(''))`, &got)
	if got != hex.EncodeToString(sum[:]) {
		t.Fatalf("the saved file's SHA-256 is %s, want %s", got, hex.EncodeToString(sum[:]))
	}

	// A picture over the node's limit goes as a file, and the page says so.
	alice.do(chromedp.SetUploadFiles("[data-testid=file-input]", []string{overLimit(t, "panorama.png")}))
	alice.wait("the notice", q("[data-testid=toast]")+"?.textContent === 'panorama.png is too big for a picture (over 5 MiB): sent as a file'", 30*time.Second)
	bob.wait("the picture as a file", `[...document.querySelectorAll('[data-testid=file-card] .name')].some(e => e.textContent === 'panorama.png')`, 30*time.Second)
}

func TestBrowserGroup(t *testing.T) {
	chromiumPath(t)
	shots := screenshotDir(t)
	alice, bob := startUser(t, "Alice", shots), startUser(t, "Bob", shots)
	alice.open(1280, 800)
	bob.open(1280, 800)
	code := alice.firstRun()
	bob.firstRun()
	befriend(alice, bob, code)

	// Alice adds a relay and registers a username on it, in her page.
	relay := nodetest.Start(t, nodetest.Options{Role: node.RoleRelay})
	alice.click("[data-testid=open-me]")
	// A wrong address (no /p2p/ID) fails: what was typed stays, and no
	// registration is tried.
	alice.eval(`(() => { window.registers = 0; const f = window.fetch;
		window.fetch = (u, o) => { if (String(u).includes('/account/register')) window.registers++; return f(u, o); }; return true })()`, nil)
	alice.fill("[data-testid=relay-addr]", "/ip4/127.0.0.1/tcp/1")
	alice.fill("[data-testid=relay-user]", "alice")
	alice.click("[data-testid=add-relay]")
	alice.wait("the relay's error", q("[data-testid=toast]")+"?.textContent.startsWith('Add relay: ')", 10*time.Second)
	alice.wait("the inputs kept, no registration", q("[data-testid=relay-addr]")+".value === '/ip4/127.0.0.1/tcp/1' && "+q("[data-testid=relay-user]")+".value === 'alice' && window.registers === 0", 5*time.Second)
	alice.fill("[data-testid=relay-addr]", nodetest.Addr(t, relay))
	alice.fill("[data-testid=relay-user]", "alice")
	alice.click("[data-testid=add-relay]")
	alice.wait("registered on the relay", fmt.Sprintf(`[...document.querySelectorAll('[data-testid=relay]')].some(e => e.textContent.includes(%q) && e.textContent.includes('as alice'))`, relay.ID().String()[len(relay.ID().String())-8:]), 30*time.Second)
	if us, err := relay.RelayUsers(); err != nil || len(us) != 1 || us[0].Name != "alice" {
		t.Fatalf("the relay's users: %+v %v", us, err)
	}

	// A group with a picture: Bob's page shows it too once he joins.
	alice.click("[data-testid=open-add]")
	alice.fill("[data-testid=group-name]", "Hikers")
	alice.do(chromedp.SetUploadFiles("[data-testid=group-avatar]", []string{picture(t, 64, 64)}))
	alice.click("[data-testid=create-group]")
	alice.wait("the empty group", q("[data-testid=conv-start]")+"?.textContent === 'No messages in Hikers yet.'", 10*time.Second)
	alice.click("[data-testid=invite]")
	alice.wait("invite code", q("[data-testid=invite-code]")+"?.textContent.length > 40", 20*time.Second)
	invite := alice.text("[data-testid=invite-code]")
	// By default one person may join with it, within a day; it says so.
	alice.wait("the invite's terms", q("[data-testid=invite-terms]")+"?.textContent.startsWith('one use · expires ') && Math.abs(new Date("+q("[data-testid=invite-card]")+".dataset.expires) - Date.now() - 864e5) < 6e5", 10*time.Second)
	alice.shot("05-group-invite")
	// Another, for 5 people within 7 days, revoked: Bob cannot join with it.
	alice.choose("[data-testid=invite-uses]", "5")
	alice.choose("[data-testid=invite-expiry]", "604800")
	alice.click("[data-testid=invite]")
	alice.wait("the second invite", "document.querySelectorAll('[data-testid=invite-card]').length === 2 && "+q("[data-testid=invite-terms]")+"?.textContent.startsWith('5 uses · expires ') && Math.abs(new Date("+q("[data-testid=invite-card]")+".dataset.expires) - Date.now() - 7 * 864e5) < 6e5", 20*time.Second)
	revoked := alice.text("[data-testid=invite-code]")
	alice.click("[data-testid=invite-card] [data-testid=invite-revoke]")
	alice.wait("the invite revoked", q("[data-testid=invite-card]")+"?.dataset.state === 'revoked'", 20*time.Second)

	bob.click("[data-testid=open-add]")
	bob.fill("[data-testid=join-code]", revoked)
	bob.click("[data-testid=join-group]")
	bob.wait("the revoked invite refused", q("[data-testid=toast]")+"?.textContent.startsWith('Join group: ') && "+q("[data-testid=toast]")+".textContent.startsWith('Join group: an admin revoked the invite: ask a group admin for a new one')", 30*time.Second)
	bob.fill("[data-testid=join-code]", invite)
	bob.click("[data-testid=join-group]")
	bob.openConv("Hikers")
	bob.send("Hello hikers!")
	alice.openConv("Hikers")
	alice.wait("Bob's group message", message("Hello hikers!")+" !== undefined", 30*time.Second)
	alice.send("Welcome, Bob")
	bob.wait("Alice's group message", message("Welcome, Bob")+" !== undefined", 30*time.Second)
	bob.shot("06-group")

	bob.wait("the group's picture", q("[data-testid=conv][data-name=Hikers] img")+"?.naturalWidth > 0", 20*time.Second)

	// Alice's details list the invites she made, as her node has them: the
	// one Bob joined with is used up, the other revoked.
	alice.click("[data-testid=conv-name]")
	alice.wait("the invites' states", `(() => { const s = [...document.querySelectorAll('[data-testid=invite-card]')].map(e => e.dataset.state + ': ' + e.textContent); return s.length === 2 && s[0].startsWith('revoked: ') && s[1].startsWith('used up: ') && s[1].includes('(one use · 1 joined)') })()`, 20*time.Second)

	// Alice makes Bob an admin; he renames the group, in both pages.
	alice.click("[data-testid=member][data-name=Bob] [data-testid=promote]")
	bob.click("[data-testid=conv-name]")
	bob.waitFor("[data-testid=group-details] [data-testid=rename]")
	bob.fill("[data-testid=rename]", "Hikers and bikers")
	bob.click("[data-testid=rename-save]")
	alice.waitFor("[data-testid=conv][data-name='Hikers and bikers']")
	alice.shot("06-group-details")

	// Bob leaves (Alice's page sees one member left); she adds him back.
	bob.eval("window.confirm = () => true; true", nil)
	bob.click("[data-testid=leave]")
	bob.wait("left", `document.querySelector('.composer')?.textContent.includes('no longer a member')`, 30*time.Second)
	alice.wait("Bob gone", q("[data-testid=member][data-name=Bob]")+" === null && "+q("[data-testid=add-member] option[value]:not([value=''])")+" !== null", 30*time.Second)
	alice.eval(`(() => { const s = document.querySelector('[data-testid=add-member]'); s.value = s.querySelector("option:not([value=''])").value; s.dispatchEvent(new Event('change', {bubbles: true})); return true })()`, nil)
	alice.click("[data-testid=add-member-save]")
	bob.waitFor("[data-testid=composer]")

	// Alice removes Bob: Bob's page says he is no longer a member.
	alice.click("[data-testid=member][data-name=Bob] [data-testid=kick]")
	bob.wait("removed", `document.querySelector('.composer')?.textContent.includes('no longer a member')`, 30*time.Second)
}

// TestBrowserLongHistory: a long conversation's unread count is the
// node's (all 600, over a reload, none once read), and the conversation
// keeps a bounded number of messages in the DOM while the person scrolls
// back to its first message.
func TestBrowserLongHistory(t *testing.T) {
	chromiumPath(t)
	shots := screenshotDir(t)
	alice, bob := startUser(t, "Alice", shots), startUser(t, "Bob", shots)
	ctx := context.Background()
	for _, u := range []*user{alice, bob} {
		if _, err := u.node.SetProfile(ctx, node.ProfileUpdate{Name: ptr(u.name)}); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Befriend(t, alice.node, bob.node)
	const total = 600
	for i := range total {
		if _, err := bob.node.SendMessage(ctx, alice.node.ID().String(), node.Draft{Text: fmt.Sprintf("message %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The unread count is the node's, over the whole history (a page
	// holds 50), and a reload keeps it.
	alice.open(1280, 800)
	badge := q("[data-testid=conv][data-name=Bob]") + "?.querySelector('.badge')?.textContent"
	alice.wait("all unread", fmt.Sprintf("%s === '%d' && document.title === '(%d) meshtalk'", badge, total, total), 60*time.Second)
	alice.reload()
	alice.wait("all unread after a reload", fmt.Sprintf("%s === '%d'", badge, total), 30*time.Second)
	alice.openConv("Bob")
	alice.wait("the newest", message(fmt.Sprintf("message %d", total-1))+" !== undefined", 30*time.Second)
	alice.wait("read", badge+" === undefined && document.title === 'meshtalk'", 30*time.Second)
	most := 0
	for step := 0; step < 200; step++ {
		var st struct {
			Count int  `json:"count"`
			First bool `json:"first"`
		}
		alice.eval(`(() => { const el = document.querySelector('.messages'); el.scrollTop = 0; el.dispatchEvent(new Event('scroll'));
			return { count: document.querySelectorAll('[data-testid=message]').length, first: `+message("message 0")+` !== undefined } })()`, &st)
		most = max(most, st.Count)
		if st.First {
			t.Logf("reached the first of %d messages after %d scrolls; at most %d in the DOM", total, step, most)
			if most > 150 {
				t.Fatalf("%d messages in the DOM at once; the window is 120", most)
			}
			alice.reload()
			alice.waitFor("[data-testid=conv][data-name=Bob]")
			alice.wait("still read after a reload", badge+" === undefined", 10*time.Second)
			return
		}
		alice.eval(`new Promise(r => setTimeout(() => r(true), 50))`, nil)
	}
	t.Fatalf("never reached the first message; at most %d in the DOM", most)
}
