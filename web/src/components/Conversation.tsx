import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { Message } from '../api';
import { current, focusMsg, friends, groupAvatar, groups, loadConv, loadOlder, markRead, messages, more, panel } from '../state';
import { Avatar } from './Avatar';
import { Icon } from './Icon';
import { Composer, sendFiles } from './Composer';
import { Bubble } from './MessageItem';
import { placeCall } from '../call';

// At most this many messages are in the DOM; scrolling up shows older
// ones (fetched a page at a time) and lets the newest go.
const WINDOW = 120;

export function Conversation({ id }: { id: string }) {
  const friend = friends.value.find((f) => f.peer_id === id);
  const group = groups.value.find((g) => g.id === id);
  const name = friend?.name ?? group?.name ?? id.slice(-8);
  const all = messages.value[id] ?? [];
  // Newest messages kept out of the DOM below the window; 0: follow the
  // newest. Kept with its conversation: another one opens at its newest.
  const [win, setWin] = useState({ id, fromEnd: 0 });
  const fromEnd = win.id === id ? win.fromEnd : 0;
  const setFromEnd = (n: number) => setWin({ id, fromEnd: n });
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [drag, setDrag] = useState(false);
  const list = useRef<HTMLDivElement>(null);
  const stick = useRef(true);

  useEffect(() => { setReplyTo(null); stick.current = true; if (!messages.value[id]) loadConv(id); markRead(id); }, [id]);
  useEffect(() => { if (!document.hidden) markRead(id); }, [all.length]);
  // Keeps what the person looks at in place while the window moves: the
  // message that was at the top stays where it was.
  const anchor = useRef<{ id: string; top: number } | null>(null);
  useLayoutEffect(() => {
    const el = list.current;
    if (!el) return;
    const a = anchor.current;
    anchor.current = null;
    if (a) {
      const node = el.querySelector(`[data-id="${a.id}"]`) as HTMLElement | null;
      if (node) { el.scrollTop += node.offsetTop - a.top; return; }
    }
    if (stick.current) el.scrollTop = el.scrollHeight;
  });

  const reactions = new Map<string, Message[]>();
  for (const m of all) if (m.kind === 'reaction' && m.react_to) reactions.set(m.react_to, [...(reactions.get(m.react_to) ?? []), m]);
  const shown = all.filter((m) => m.kind !== 'reaction');
  const stop = Math.max(0, shown.length - fromEnd);
  const start = Math.max(0, stop - WINDOW);
  const slice = shown.slice(start, stop);

  // remember notes where a message at the top (or bottom) of the window is.
  const remember = (bottom = false) => {
    const all = list.current?.querySelectorAll('[data-testid=message]');
    const m = all?.[bottom ? all.length - 1 : 0] as HTMLElement | undefined;
    if (m) anchor.current = { id: m.dataset.id!, top: m.offsetTop };
  };
  const visibleCount = (n: number) => (messages.value[id] ?? []).filter((m) => m.kind !== 'reaction').length - n;
  const onScroll = async () => {
    const el = list.current!;
    stick.current = fromEnd === 0 && el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 80) {
      if (start > 0) {
        remember();
        setFromEnd(Math.min(shown.length - WINDOW, fromEnd + WINDOW / 2));
      } else if (more.value[id]) {
        remember();
        const before = shown.length;
        await loadOlder(id);
        const added = visibleCount(before);
        setFromEnd(Math.max(0, Math.min(before + added - WINDOW, fromEnd + Math.min(added, WINDOW / 2))));
      }
    } else if (fromEnd > 0 && el.scrollHeight - el.scrollTop - el.clientHeight < 80) {
      remember(true);
      setFromEnd(Math.max(0, fromEnd - WINDOW / 2));
    }
  };
  // A message asked for (a search hit; openAt loaded it): move the window
  // to it, then scroll it to the middle and flash it. Declared after the
  // effect that opens a conversation, which runs first (and sticks to the newest).
  const target = focusMsg.value; // read here: a hit in the conversation open renders it again
  useEffect(() => {
    if (!target || !messages.value[id]) return;
    const i = shown.findIndex((m) => m.id === target);
    if (i < 0) { focusMsg.value = ''; return; } // not in the pages loaded: nothing to show
    stick.current = false;
    if (i < start || i >= stop) { setFromEnd(shown.length - Math.min(shown.length, i + WINDOW / 2)); return; }
    const node = list.current?.querySelector(`[data-id="${target}"]`);
    if (!node) return;
    focusMsg.value = '';
    node.scrollIntoView({ block: 'center' });
    node.classList.add('found');
    setTimeout(() => node.classList.remove('found'), 2000);
  });
  const sub = friend ? (friend.online ? 'online' : friend.last_seen ? `last seen ${new Date(friend.last_seen).toLocaleString()}` : 'offline')
    : group ? `${group.members} ${group.members === 1 ? 'member' : 'members'}` : '';
  // The node cannot ring a friend offline: the call buttons are off, saying why.
  const offline = friend && !friend.online ? `${name} is offline` : '';
  const beginning = !group ? `This is the start of your conversation with ${name}.` : shown.length ? `This is the start of ${name}.` : `No messages in ${name} yet.`;
  return (
    <section class={'conversation' + (drag ? ' dragging' : '')} aria-label={`Conversation with ${name}`} data-testid="conversation"
      onDragOver={(e) => { e.preventDefault(); setDrag(true); }} onDragLeave={() => setDrag(false)}
      onDrop={(e) => { e.preventDefault(); setDrag(false); if (e.dataTransfer?.files.length) sendFiles(id, !!group, e.dataTransfer.files); }}>
      <header class="convhead">
        <button class="icon back" aria-label="Back to chats" onClick={() => { current.value = ''; }}><Icon name="back" /></button>
        <Avatar name={name} id={friend?.profile?.avatar_id} src={groupAvatar(group)} online={friend ? !!friend.online : undefined} group={!!group} />
        <button class="grow titlebtn" onClick={() => (panel.value = group ? 'group' : 'people')} aria-label={`About ${name}`}>
          <div class="name" data-testid="conv-name">{name}</div>
          <div class="muted small">{sub}</div>
        </button>
        {friend && <button class="icon" aria-label="Voice call" title={offline || 'Voice call'} disabled={!!offline} data-testid="call-audio" onClick={() => placeCall(id, false)}><Icon name="phone" /></button>}
        {friend && <button class="icon" aria-label="Video call" title={offline || 'Video call'} disabled={!!offline} data-testid="call-video" onClick={() => placeCall(id, true)}><Icon name="video" /></button>}
        <button class="icon" aria-label="Details" onClick={() => (panel.value = group ? 'group' : 'people')}><Icon name="info" /></button>
      </header>
      <div class="messages" ref={list} onScroll={onScroll} onLoadCapture={() => { const el = list.current; if (el && stick.current) el.scrollTop = el.scrollHeight; }}
        role="log" aria-live="polite" aria-label="Messages">
        {start === 0 && !more.value[id] && <div class="start muted small" data-testid="conv-start">{beginning}</div>}
        <ul>
          {slice.map((m) => <Bubble key={m.id} m={m} reactions={reactions.get(m.id) ?? []} group={!!group} onReply={setReplyTo} />)}
        </ul>
      </div>
      {group && group.status !== 'member' ? <div class="composer muted">You are no longer a member of this group.</div>
        : <Composer conv={id} group={!!group} replyTo={replyTo} clearReply={(only) => setReplyTo((r) => (!only || r?.id === only.id ? null : r))} />}
    </section>
  );
}
