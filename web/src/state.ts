// The page's state: what the node said, kept in signals and updated from
// the event stream. Nothing here is guessed: every change comes from an
// answer or an event of the node.
import { batch, signal, computed, effect } from '@preact/signals';
import { onCallEvent, syncCalls } from './call';
import { api, follow, maxImageBytes, Friend, Group, Message, FileState, Identity, Profile, Status, NodeEvent } from './api';

export interface Conv { id: string; group: boolean; name: string; avatar?: string; avatarSrc?: string; online?: boolean; last?: Message; unread: number }

/** A group's avatar as an image source (the node answers it inline), or undefined. */
export const groupAvatar = (g?: Group) => (g?.avatar ? `data:${g.avatar_type || 'image/png'};base64,${g.avatar}` : undefined);

export const me = signal<Identity | null>(null);
export const profile = signal<Profile>({});
export const status = signal<Status | null>(null);
export const friends = signal<Friend[]>([]);
export const groups = signal<Group[]>([]);
export const faces = signal<Record<string, string>>({});
export const files = signal<Record<string, FileState>>({});
export const live = signal(false);
export const current = signal<string>(''); // the open conversation: a peer ID or a group ID
export const panel = signal<'' | 'me' | 'people' | 'group' | 'add' | 'call'>('');
export const soundOn = signal(localStorage.getItem('meshtalk.sound') !== 'off');
export const toast = signal('');
export const focusMsg = signal(''); // a message to scroll to and flash in the open conversation (a search hit)

// The open conversation outlives a reload of the tab (sessionStorage: this
// tab only). It is written once reopen() had its chance to read it.
const convKey = 'meshtalk.conv';
const savedConv = sessionStorage.getItem(convKey);
let reopened = false;
effect(() => {
  const id = current.value;
  if (reopened) id ? sessionStorage.setItem(convKey, id) : sessionStorage.removeItem(convKey);
});

/** Opens the conversation open before a reload, if it still exists (call once the lists are read). */
export function reopen() {
  reopened = true;
  if (savedConv && conversations.value.some((c) => c.id === savedConv)) current.value = savedConv;
  else sessionStorage.removeItem(convKey);
}

/**
 * Messages of each conversation opened so far, oldest first, and whether
 * older ones exist. The chat list needs none of them: the node answers
 * each conversation's newest message and unread count (its read marks),
 * and the events keep them.
 */
export const messages = signal<Record<string, Message[]>>({});
export const more = signal<Record<string, boolean>>({});
const lastOf = signal<Record<string, Message | undefined>>({});
const unread = signal<Record<string, number>>({});

export const convOf = (m: Message) => m.group || (m.outgoing ? m.to! : m.from);

export const conversations = computed<Conv[]>(() => {
  const out: Conv[] = [];
  for (const f of friends.value) {
    if (f.state !== 'friend') continue;
    out.push({ id: f.peer_id, group: false, name: f.name, avatar: f.profile?.avatar_id, online: f.online, last: lastOf.value[f.peer_id], unread: unread.value[f.peer_id] ?? 0 });
  }
  for (const g of groups.value) {
    if (g.status !== 'member') continue;
    out.push({ id: g.id, group: true, name: g.name, avatarSrc: groupAvatar(g), last: lastOf.value[g.id], unread: unread.value[g.id] ?? 0 });
  }
  return out.sort((a, b) => (b.last?.hlc ?? 0) - (a.last?.hlc ?? 0) || a.name.localeCompare(b.name));
});
export const requests = computed(() => friends.value.filter((f) => f.state === 'pending_in'));
export const sentRequests = computed(() => friends.value.filter((f) => f.state === 'pending_out'));
// Both sides of a declined request are "declined": the one who declined
// keeps `asked` (when the request came), so one without it is mine.
export const declinedRequests = computed(() => friends.value.filter((f) => f.state === 'declined' && !f.asked));
export const totalUnread = computed(() => conversations.value.reduce((a, c) => a + c.unread, 0));

export function flash(msg: string) {
  toast.value = msg;
  setTimeout(() => { if (toast.value === msg) toast.value = ''; }, 4000);
}

/** Runs an action and shows its error to the person instead of losing it. */
export async function attempt<T>(what: string, f: () => Promise<T>): Promise<T | undefined> {
  try { return await f(); } catch (e) { flash(`${what}: ${(e as Error).message}`); return undefined; }
}

/** Whether a picture or avatar file is within the node's limit; else says so (the node's answer would name its body limit). */
export function imageFits(what: string, f: File) {
  if (f.size <= maxImageBytes) return true;
  flash(`${what}: ${f.name} is over the ${maxImageBytes >> 20} MiB limit`);
  return false;
}

const visible = (m: Message) => m.kind !== 'reaction';

function summarise(id: string, list: Message[]) {
  const shown = list.filter(visible);
  lastOf.value = { ...lastOf.value, [id]: shown[shown.length - 1] };
}

/** Reads the chat list's lines: each conversation's newest message and unread count. */
export async function refreshConversations() {
  const list = (await api.conversations()) ?? [];
  lastOf.value = Object.fromEntries(list.map((c) => [c.id, c.last]));
  unread.value = Object.fromEntries(list.map((c) => [c.id, c.unread]));
}

/** Loads the newest page of a conversation. */
export async function loadConv(id: string) {
  const page = await api.history(id, '', 50);
  const list = page.messages ?? [];
  messages.value = { ...messages.value, [id]: list };
  more.value = { ...more.value, [id]: page.more };
  summarise(id, list);
}

/** Loads the page before the oldest message shown. */
export async function loadOlder(id: string) {
  const list = messages.value[id] ?? [];
  if (!more.value[id] || !list.length) return;
  const page = await api.history(id, list[0].id, 50);
  messages.value = { ...messages.value, [id]: [...(page.messages ?? []), ...list] };
  more.value = { ...more.value, [id]: page.more };
}

/**
 * Opens a conversation at one of its messages (a search hit): loads older
 * pages until the message is there (at most 20 pages), then asks the
 * conversation to show it. Loaded before the conversation opens, so that
 * its own first load does not replace the older pages.
 */
export async function openAt(id: string, msg: string) {
  const has = () => (messages.value[id] ?? []).some((m) => m.id === msg);
  if (!messages.value[id]) await loadConv(id);
  for (let i = 0; i < 20 && !has() && more.value[id]; i++) await loadOlder(id);
  batch(() => { current.value = id; panel.value = ''; focusMsg.value = msg; });
}

/**
 * Puts a message into its conversation, replacing an older copy; of a
 * conversation not opened yet, only what the chat list shows.
 */
export function upsert(m: Message) {
  const seen = early.get(m.id);
  if (seen !== undefined) {
    early.delete(m.id);
    m = moved(m, seen);
  }
  const id = convOf(m);
  if (!messages.value[id]) {
    const last = lastOf.value[id];
    if (visible(m) && (!last || last.id === m.id || last.hlc < m.hlc)) lastOf.value = { ...lastOf.value, [id]: { ...last, ...m } };
    return;
  }
  const list = messages.value[id] ? [...messages.value[id]] : [];
  const i = list.findIndex((x) => x.id === m.id);
  if (i >= 0) list[i] = moved(list[i], m);
  else {
    list.push(m);
    list.sort((a, b) => a.hlc - b.hlc);
  }
  messages.value = { ...messages.value, [id]: list };
  summarise(id, list);
}

/**
 * The steps of a sent message's state, in order: a state never goes back
 * to an earlier one. Its events can come before the answer to the send
 * that made it, which says "queued".
 */
const steps: Record<string, number> = { queued: 0, sent: 1, failed: 2, delivered: 3, read: 4 };

/** The later of two states of a sent message (b when either is no step). */
function later(a: string, b: string): string {
  return steps[a] !== undefined && steps[b] !== undefined && steps[a] > steps[b] ? a : b;
}

type StateOf = { state: string; parked_on?: string };

/**
 * prev with what next says of it (a newer copy, or a state event): its
 * state never goes back, and parked_on (the relay whose mailbox holds
 * it) holds only while it is queued.
 */
function moved<T extends StateOf>(prev: T, next: StateOf): T {
  const m = { ...prev, ...next, state: later(prev.state, next.state) };
  if (m.state !== 'queued') delete m.parked_on;
  return m;
}

/** States of messages not listed yet (their send not answered yet), by ID. */
const early = new Map<string, StateOf>();

function setState(id: string, state: string, parked?: string) {
  const ev: StateOf = parked ? { state, parked_on: parked } : { state };
  for (const [conv, list] of Object.entries(messages.value)) {
    const i = list.findIndex((m) => m.id === id);
    if (i < 0) continue;
    const next = [...list];
    next[i] = moved(next[i], ev);
    messages.value = { ...messages.value, [conv]: next };
    return;
  }
  const seen = early.get(id);
  early.set(id, seen ? moved(seen, ev) : ev);
  // Bounded: the IDs of conversations never opened are never listed.
  if (early.size > 1000) early.delete(early.keys().next().value as string);
}

export async function markRead(id: string) {
  if (!(unread.value[id] > 0) && !(messages.value[id] ?? []).some((m) => m.state === 'received')) return;
  unread.value = { ...unread.value, [id]: 0 };
  await api.read(id).catch(() => undefined);
  messages.value = { ...messages.value, [id]: (messages.value[id] ?? []).map((m) => (m.state === 'received' ? { ...m, state: 'read' } : m)) };
}

export async function refreshFriends() { friends.value = (await api.friends()) ?? []; }
export async function refreshGroups() { groups.value = (await api.groups()) ?? []; }
export async function refreshFiles() {
  const list = (await api.files()) ?? [];
  files.value = Object.fromEntries(list.map((f) => [f.id, f]));
}
export async function refreshMe() {
  const [id, p, st] = await Promise.all([api.id(), api.profile(), api.status()]);
  me.value = id; profile.value = p; status.value = st;
}

/**
 * Reads everything the page shows: first what the chat list needs (the
 * page is usable then), the rest behind it.
 */
export async function loadAll() {
  const [p] = await Promise.all([api.profile(), refreshFriends(), refreshGroups(), refreshConversations()]);
  profile.value = p;
  for (const f of [refreshMe, refreshFiles, syncCalls, async () => { faces.value = await api.faces(); }]) f().catch(() => undefined);
}

let refreshTimer: Record<string, number> = {};
function soon(key: string, f: () => Promise<unknown>) {
  clearTimeout(refreshTimer[key]);
  refreshTimer[key] = window.setTimeout(() => { f().catch(() => undefined); }, 50);
}

function notify(m: Message) {
  if (!document.hidden && convOf(m) === current.value) return;
  if (soundOn.value) beep();
  if (document.hidden && 'Notification' in window && Notification.permission === 'granted') {
    new Notification(m.name || 'meshtalk', { body: m.kind === 'text' || m.kind === 'reply' || m.kind === 'call' ? m.text : `sent a ${m.kind}`, tag: convOf(m) });
  }
}

let audio: AudioContext | undefined;
function beep() {
  try {
    audio ??= new AudioContext();
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = 880; g.gain.value = 0.05;
    o.connect(g).connect(audio.destination);
    o.start(); o.stop(audio.currentTime + 0.12);
  } catch { /* no audio: fine */ }
}

export function onEvent(ev: NodeEvent) {
  const d = ev.data;
  switch (ev.type) {
    case 'message.received': {
      const id = convOf(d);
      // New here (neither in the open list nor the node's newest when the list was read): one more unread.
      const fresh = lastOf.value[id]?.id !== d.id && !(messages.value[id] ?? []).some((m) => m.id === d.id);
      upsert(d);
      if (fresh && !d.outgoing && d.state === 'received') {
        if (id === current.value && !document.hidden) markRead(id);
        else unread.value = { ...unread.value, [id]: (unread.value[id] ?? 0) + 1 };
        notify(d);
      }
      if (d.file) soon('files', refreshFiles);
      break;
    }
    case 'message.state': setState(d.id, d.state, d.parked_on); break;
    case 'message.edited': case 'message.deleted': upsert(d); break;
    case 'group.receipt': if (d.group === current.value) soon('conv', () => loadConv(current.value)); break;
    case 'friend.request': case 'friend.update': case 'friend.presence': case 'friend.profile':
      soon('friends', refreshFriends);
      if (ev.type === 'friend.update' && d.state === 'friend') loadConv(d.peer_id).catch(() => undefined);
      break;
    case 'group.update': soon('groups', async () => { await refreshGroups(); if (d.id) await loadConv(d.id).catch(() => undefined); }); break;
    case 'transfer.progress': {
      const f = files.value[d.id];
      if (f) files.value = { ...files.value, [d.id]: { ...f, state: 'downloading', bytes: d.bytes } };
      soon('files', refreshFiles);
      break;
    }
    case 'transfer.done': case 'transfer.failed': case 'file.dropped': soon('files', refreshFiles); break;
    case 'node.reachability': case 'peer.connected': case 'peer.disconnected': soon('status', refreshMe); break;
    case 'reset': // the node no longer holds what was missed: read it all again
      messages.value = {};
      loadAll().then(() => current.value && loadConv(current.value)).catch(() => undefined);
      break;
    default: if (ev.type.startsWith('call.')) onCallEvent(ev);
  }
}

export const signedOut = signal(false);

/**
 * Follows the node's events. Back after a break, the stream replays
 * what was missed (its last event ID); the calls are read anew besides,
 * since a ring that began and ended meanwhile is no state to replay.
 */
export function startLive() {
  let opened = false;
  return follow(onEvent, (on) => {
    const was = live.value;
    live.value = on;
    if (on && !was && opened) { soon('friends', refreshFriends); soon('calls', syncCalls); }
    if (on) opened = true;
  }, () => { signedOut.value = true; });
}
