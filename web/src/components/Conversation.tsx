import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { Message } from '../api';
import { current, friends, groups, loadConv, loadOlder, markRead, messages, more, panel } from '../state';
import { Avatar } from './Avatar';
import { Icon } from './Icon';
import { Composer, sendFiles } from './Composer';
import { MessageItem } from './MessageItem';
import { CallView } from './CallView';

// At most this many messages are in the DOM; scrolling up shows older
// ones (fetched a page at a time) and lets the newest go.
const WINDOW = 120;

export function Conversation({ id }: { id: string }) {
  const friend = friends.value.find((f) => f.peer_id === id);
  const group = groups.value.find((g) => g.id === id);
  const name = friend?.name ?? group?.name ?? id.slice(-8);
  const all = messages.value[id] ?? [];
  const [end, setEnd] = useState(0); // 0: follow the newest
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [drag, setDrag] = useState(false);
  const [call, setCall] = useState<'' | 'audio' | 'video'>('');
  const list = useRef<HTMLDivElement>(null);
  const stick = useRef(true);

  useEffect(() => { setEnd(0); setReplyTo(null); stick.current = true; if (!messages.value[id]) loadConv(id); markRead(id); }, [id]);
  useEffect(() => { if (!document.hidden) markRead(id); }, [all.length]);
  useLayoutEffect(() => { if (stick.current && list.current) list.current.scrollTop = list.current.scrollHeight; });

  const reactions = new Map<string, Message[]>();
  for (const m of all) if (m.kind === 'reaction' && m.react_to) reactions.set(m.react_to, [...(reactions.get(m.react_to) ?? []), m]);
  const shown = all.filter((m) => m.kind !== 'reaction');
  const stop = end ? end : shown.length;
  const start = Math.max(0, stop - WINDOW);
  const slice = shown.slice(start, stop);

  const onScroll = async () => {
    const el = list.current!;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 80) {
      const before = el.scrollHeight;
      if (start === 0 && more.value[id]) await loadOlder(id);
      else if (start > 0) setEnd(Math.max(WINDOW, stop - WINDOW / 2));
      requestAnimationFrame(() => { el.scrollTop += el.scrollHeight - before; });
    } else if (stick.current && end) setEnd(0);
  };
  const sub = friend ? (friend.online ? 'online' : friend.last_seen ? `last seen ${new Date(friend.last_seen).toLocaleString()}` : 'offline')
    : group ? `${group.members} ${group.members === 1 ? 'member' : 'members'}` : '';
  return (
    <section class={'conversation' + (drag ? ' dragging' : '')} aria-label={`Conversation with ${name}`} data-testid="conversation"
      onDragOver={(e) => { e.preventDefault(); setDrag(true); }} onDragLeave={() => setDrag(false)}
      onDrop={(e) => { e.preventDefault(); setDrag(false); if (e.dataTransfer?.files.length) sendFiles(id, !!group, e.dataTransfer.files); }}>
      <header class="convhead">
        <button class="icon back" aria-label="Back to chats" onClick={() => { current.value = ''; }}><Icon name="back" /></button>
        <Avatar name={name} id={friend?.profile?.avatar_id} online={friend ? !!friend.online : undefined} group={!!group} />
        <button class="grow titlebtn" onClick={() => (panel.value = group ? 'group' : 'people')} aria-label={`About ${name}`}>
          <div class="name" data-testid="conv-name">{name}</div>
          <div class="muted small">{sub}</div>
        </button>
        {friend && <button class="icon" aria-label="Voice call" data-testid="call-audio" onClick={() => setCall('audio')}><Icon name="phone" /></button>}
        {friend && <button class="icon" aria-label="Video call" data-testid="call-video" onClick={() => setCall('video')}><Icon name="video" /></button>}
        <button class="icon" aria-label="Details" onClick={() => (panel.value = group ? 'group' : 'people')}><Icon name="info" /></button>
      </header>
      {call && <CallView name={name} video={call === 'video'} onClose={() => setCall('')} />}
      <div class="messages" ref={list} onScroll={onScroll} role="log" aria-live="polite" aria-label="Messages">
        {start === 0 && !more.value[id] && <div class="start muted small">This is the start of your conversation with {name}.</div>}
        <ul>
          {slice.map((m) => <MessageItem key={m.id} m={m} reactions={reactions.get(m.id) ?? []} group={!!group} onReply={setReplyTo} />)}
        </ul>
      </div>
      {group && group.status !== 'member' ? <div class="composer muted">You are no longer a member of this group.</div>
        : <Composer conv={id} group={!!group} replyTo={replyTo} clearReply={() => setReplyTo(null)} />}
    </section>
  );
}
