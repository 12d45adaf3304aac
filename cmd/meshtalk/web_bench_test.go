package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// BenchmarkUI measures the web UI's budgets with the browser's
// Performance API: first load (navigation start to a usable chat list:
// the page's "meshtalk-ready" mark) and a message typed in one page until
// it shows in the other node's page. The baseline in the same run is the
// same message sent node to node with no browser (API call to the
// receiving node's event).
func BenchmarkUI(b *testing.B) {
	chromiumPath(b)
	shots := b.TempDir()
	alice, bob := startUser(b, "Alice", shots), startUser(b, "Bob", shots)
	ctx := context.Background()
	for _, u := range []*user{alice, bob} {
		if _, err := u.node.SetProfile(ctx, node.ProfileUpdate{Name: ptr(u.name)}); err != nil {
			b.Fatal(err)
		}
	}
	nodetest.Befriend(b, alice.node, bob.node)
	for i := range 30 {
		if _, err := alice.node.SendMessage(ctx, bob.node.ID().String(), node.Draft{Text: fmt.Sprintf("warm-up %d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	alice.open(1280, 800)
	bob.open(1280, 800)
	alice.waitFor("[data-testid=conv][data-name=Bob]")

	// First load, in a page that logs in anew each time.
	var loads []float64
	for range 5 {
		// A query of its own makes it a whole new load, not a jump to a fragment.
		alice.do(chromedp.Navigate(strings.Replace(alice.openLink(), "/#", fmt.Sprintf("/?load=%d#", len(loads)), 1)))
		alice.wait("ready", `performance.getEntriesByName('meshtalk-ready').length > 0 && document.querySelector('[data-testid=conv][data-name=Bob]') !== null`, 20*time.Second)
		var ms float64
		alice.eval(`performance.getEntriesByName('meshtalk-ready')[0].startTime`, &ms)
		loads = append(loads, ms)
	}
	// Where the last load's time went: the page, then each request (start → end, ms).
	var steps string
	alice.eval(`(() => { const n = performance.getEntriesByType('navigation')[0];
		return 'page ' + n.responseEnd.toFixed(0) + ', DOM ' + n.domInteractive.toFixed(0) + '; ' +
			performance.getEntriesByType('resource').filter(r => r.startTime < performance.getEntriesByName('meshtalk-ready')[0].startTime)
				.map(r => r.name.replace(location.origin, '') + ' ' + r.startTime.toFixed(0) + '→' + r.responseEnd.toFixed(0)).join(', ') })()`, &steps)
	b.Logf("first load %.0f ms: %s", ms0(loads), steps)
	alice.openConv("Bob")
	bob.openConv("Alice")

	b.ResetTimer()
	var pages, nodes []float64
	events := nodetest.Events(b, bob.node)
	for i := range b.N {
		// Baseline: node to node, no browser.
		start := time.Now()
		text := fmt.Sprintf("node %d", i)
		if _, err := alice.node.SendMessage(ctx, bob.node.ID().String(), node.Draft{Text: text}); err != nil {
			b.Fatal(err)
		}
		nodetest.WaitEvent(b, events, "message.received", func(ev node.Event) bool {
			raw, _ := json.Marshal(ev.Data)
			return bytes.Contains(raw, []byte(`"text":"`+text+`"`))
		})
		nodes = append(nodes, float64(time.Since(start).Microseconds())/1000)
		// Page to page.
		text = fmt.Sprintf("page %d", i)
		bob.eval(fmt.Sprintf(`window.seen = 0; window.obs?.disconnect(); window.obs = new MutationObserver(() => { if (!window.seen && %s) window.seen = performance.timeOrigin + performance.now(); }); window.obs.observe(document.body, {subtree: true, childList: true}); true`, message(text)), nil)
		alice.fill("[data-testid=composer]", text)
		var sent float64
		alice.eval(`(() => { const t = performance.timeOrigin + performance.now(); document.querySelector('[data-testid=send]').click(); return t })()`, &sent)
		bob.wait("the message", "window.seen > 0", 10*time.Second)
		var seen float64
		bob.eval("window.seen", &seen)
		pages = append(pages, seen-sent)
	}
	b.StopTimer()
	b.ReportMetric(medianOf(loads), "first-load-ms")
	b.ReportMetric(medianOf(pages), "page-to-page-ms")
	b.ReportMetric(percentile(pages, 0.95), "page-to-page-p95-ms")
	b.ReportMetric(medianOf(nodes), "baseline-node-to-node-ms")
}

func ptr[T any](v T) *T { return &v }

// ms0 is the last of v (0: none).
func ms0(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return v[len(v)-1]
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}
