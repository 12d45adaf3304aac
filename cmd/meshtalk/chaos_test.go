package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// TestKillLoopExactlyOnce's knobs, to replay a run or soak longer.
var (
	chaosSeed   = flag.Uint64("chaos-seed", 0, "seed of TestKillLoopExactlyOnce's choices (0: from the clock)")
	chaosRounds = flag.Int("chaos-rounds", 9, "rounds of TestKillLoopExactlyOnce (a multiple of 3)")
	chaosBudget = flag.Duration("chaos-budget", time.Minute, "time after which TestKillLoopExactlyOnce starts no new round (after the third)")
)

// chaosLab is a delivery lab whose friends share a group, and what each
// send that returned success acknowledged.
type chaosLab struct {
	*deliveryLab
	group string
	acked []chaosSend
	sent  map[string]int // per sender and kind: the next number in the text
}

// chaosSend is one acknowledged send: from a home, direct or to the group.
type chaosSend struct {
	from, kind, id, text string // kind: "dm" or "group"
}

// TestKillLoopExactlyOnce (issue 17): a relay and two friends on it, who
// also share a group. In each round both send direct and group messages
// while one of the three, chosen by a seeded random generator (the seed
// is logged; -chaos-seed replays it), is SIGKILLed at a random moment of
// the burst and started again on its home and addresses. Every message
// whose send returned success then reaches the other side exactly once
// (by ID and by text), stays in its sender's history, and each sender's
// messages keep their order (conversations are ordered by a hybrid
// logical clock that keeps each sender's order).
func TestKillLoopExactlyOnce(t *testing.T) {
	seed := *chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("chaos seed %d (rerun with -chaos-seed %d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	// Park after a second, so that both paths, direct and the mailbox,
	// carry messages, and dedup decides which copy counts.
	conf := strings.Replace(node.DefaultConfigText(node.RolePersonal), `park_after = "10s"`, `park_after = "1s"`, 1)
	l := &chaosLab{deliveryLab: newDeliveryLabWith(t, conf), sent: map[string]int{}}
	l.group = l.shareGroup(t)

	var victims []int // each three rounds: A, B and the relay, in a random order
	for range max(*chaosRounds/3, 1) {
		victims = append(victims, rng.Perm(3)...)
	}
	budget := time.Now().Add(*chaosBudget)
	for round, v := range victims {
		if round >= 3 && time.Now().After(budget) {
			t.Logf("time is up after %d rounds", round)
			break
		}
		l.chaosRound(t, rng, round, v)
	}
	l.waitConverged(t)
	l.checkExactlyOnce(t)
}

// shareGroup has A create a group and B join it, and returns its ID.
func (l *chaosLab) shareGroup(t *testing.T) string {
	t.Helper()
	var g struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(mustRun(t, l.env, l.homeA, "group", "create", "Chaos", "--json")), &g)
	var inv struct {
		Code string `json:"code"`
	}
	json.Unmarshal([]byte(mustRun(t, l.env, l.homeA, "group", "invite", g.ID, "--json")), &inv)
	mustRun(t, l.env, l.homeB, "group", "join", inv.Code)
	for _, home := range []string{l.homeA, l.homeB} {
		nodetest.Eventually(t, 30*time.Second, "two members", func() bool {
			var members []map[string]any
			json.Unmarshal([]byte(mustRun(t, l.env, home, "group", "members", g.ID, "--json")), &members)
			return len(members) == 2
		})
	}
	return g.ID
}

// chaosRound is one round: A and B each send three direct and three group
// messages, in turn; after a random number of sends and a random delay
// the victim (0: A, 1: B, 2: the relay) is SIGKILLed, and once the burst
// is over, started again.
func (l *chaosLab) chaosRound(t *testing.T, rng *rand.Rand, round, victim int) {
	t.Helper()
	procs := []**running{&l.a, &l.b, &l.relay}
	homes := []string{l.homeA, l.homeB, l.relayHome}
	proc := *procs[victim]
	const burst = 12
	killAfter, delay := rng.IntN(burst), time.Duration(rng.Int64N(int64(300*time.Millisecond)))
	t.Logf("round %d: SIGKILL %s after send %d and %v", round, []string{"A", "B", "the relay"}[victim], killAfter, delay)

	trigger, killed := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case <-trigger:
		case <-t.Context().Done(): // the burst failed before its kill
			return
		}
		<-time.After(delay)
		proc.cmd.Process.Kill()
		close(killed)
	}()
	for i := range burst {
		if i == killAfter {
			close(trigger)
		}
		from, to := l.homeA, l.idB
		if i%2 == 1 {
			from, to = l.homeB, l.idA
		}
		if i%4 < 2 {
			l.send(t, from, "dm", "send", to)
		} else {
			l.send(t, from, "group", "group", "send", l.group)
		}
	}
	<-killed
	<-proc.exited
	*procs[victim] = l.relaunch(t, proc, homes[victim])
}

// send runs one send command from home; what it acknowledges (exit 0) is
// remembered. The text numbers the sender's messages of the kind.
func (l *chaosLab) send(t *testing.T, home, kind string, args ...string) {
	t.Helper()
	key := home + " " + kind
	text := fmt.Sprintf("%s %s %03d", l.who(home), kind, l.sent[key])
	l.sent[key]++
	out, _, code := meshtalk(t, l.env, append(args, text, "--home", home)...)
	if code == 0 {
		l.acked = append(l.acked, chaosSend{from: home, kind: kind, id: strings.Fields(out)[0], text: text})
	}
}

func (l *chaosLab) who(home string) string {
	if home == l.homeA {
		return "A"
	}
	return "B"
}

// conversations are the four histories: each side's direct conversation
// with the other and each side's copy of the group.
func (l *chaosLab) conversations(t *testing.T) map[string][]map[string]any {
	t.Helper()
	return map[string][]map[string]any{
		l.homeA + " dm":    historyOf(t, l.env, l.homeA, l.idB),
		l.homeB + " dm":    historyOf(t, l.env, l.homeB, l.idA),
		l.homeA + " group": historyOf(t, l.env, l.homeA, l.group),
		l.homeB + " group": historyOf(t, l.env, l.homeB, l.group),
	}
}

// waitConverged waits, everything up, until both sides hold every
// acknowledged message and each direct one is delivered (or read) in its
// sender's history.
func (l *chaosLab) waitConverged(t *testing.T) {
	t.Helper()
	start := time.Now()
	var lacking []string
	defer func() {
		if t.Failed() {
			t.Logf("lacking at the deadline: %s", strings.Join(lacking, "; "))
		}
	}()
	nodetest.Eventually(t, 120*time.Second, "every acknowledged message on both sides, the direct ones delivered", func() bool {
		convs := l.conversations(t)
		lacking = lacking[:0]
		for _, s := range l.acked {
			for _, home := range []string{l.homeA, l.homeB} {
				m := find(convs[home+" "+s.kind], s.id)
				if m == nil {
					lacking = append(lacking, fmt.Sprintf("%q (%s) missing on %s", s.text, s.id, l.who(home)))
				} else if home == s.from && s.kind == "dm" && m["state"] != "delivered" && m["state"] != "read" {
					lacking = append(lacking, fmt.Sprintf("%q (%s) %v on its sender", s.text, s.id, m["state"]))
				}
			}
		}
		return len(lacking) == 0
	})
	t.Logf("%d messages acknowledged; both sides had them %v after the last round", len(l.acked), time.Since(start).Round(time.Millisecond))
}

// find is the message with id in msgs, or nil.
func find(msgs []map[string]any, id string) map[string]any {
	for _, m := range msgs {
		if m["id"] == id {
			return m
		}
	}
	return nil
}

// checkExactlyOnce checks the four histories: no ID and no text twice,
// every acknowledged message with its text, each sender's messages in
// the order sent.
func (l *chaosLab) checkExactlyOnce(t *testing.T) {
	t.Helper()
	convs := l.conversations(t)
	ids := map[string]chaosSend{}
	for _, s := range l.acked {
		ids[s.id] = s
	}
	for name, msgs := range convs {
		byID, byText := map[string]int{}, map[string]int{}
		last := map[string]int{"A": -1, "B": -1}
		for _, m := range msgs {
			id, text := m["id"].(string), m["text"].(string)
			byID[id]++
			byText[text]++
			if s, ok := ids[id]; ok && s.text != text {
				t.Errorf("%s: %s has text %q, sent as %q", name, id, text, s.text)
			}
			var who, kind string
			var n int
			if _, err := fmt.Sscanf(text, "%s %s %d", &who, &kind, &n); err != nil {
				t.Errorf("%s: a message %q that nobody sent", name, text)
				continue
			}
			if n <= last[who] {
				t.Errorf("%s: %q after %s's message %d: out of the order sent", name, text, who, last[who])
			}
			last[who] = n
		}
		for k, c := range byID {
			if c > 1 {
				t.Errorf("%s: message %s %d times", name, k, c)
			}
		}
		for k, c := range byText {
			if c > 1 {
				t.Errorf("%s: %q %d times", name, k, c)
			}
		}
	}
	for _, s := range l.acked {
		for _, home := range []string{l.homeA, l.homeB} {
			if find(convs[home+" "+s.kind], s.id) == nil {
				t.Errorf("acknowledged %q (%s) is missing on %s", s.text, s.id, l.who(home))
			}
		}
	}
	t.Logf("%d of %d sends acknowledged", len(l.acked), l.sent[l.homeA+" dm"]+l.sent[l.homeB+" dm"]+l.sent[l.homeA+" group"]+l.sent[l.homeB+" group"])
}
