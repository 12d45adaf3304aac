import { useState } from 'preact/hooks';
import { api, Message } from '../api';
import { attempt, conversations, current, faces, openAt, panel, refreshFriends, requests, sentRequests, declinedRequests, convOf, friends, groups } from '../state';
import { Avatar } from './Avatar';

export function when(iso?: string) {
  if (!iso) return '';
  const d = new Date(iso), now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

/** A message's content in one line: its text, a picture, a file's name, a face's glyph. */
export function gist(m: Message) {
  switch (m.kind) {
    case 'picture': return '📷 Picture' + (m.text ? ' · ' + m.text : '');
    case 'file': return '📎 ' + (m.file?.name ?? 'File');
    case 'face': return faces.value[m.face ?? ''] ?? m.face ?? 'face';
    default: return m.text ?? '';
  }
}

export function preview(m?: Message) {
  if (!m) return 'No messages yet';
  if (m.deleted) return 'Message deleted';
  if (m.kind === 'call') return '📞 ' + (m.text ?? 'call').replace(/^./, (c) => c.toUpperCase());
  return (m.outgoing ? 'You: ' : m.group && m.name ? `${m.name}: ` : '') + gist(m);
}

/** The left column: requests waiting (theirs and mine), search, and every conversation. */
export function ChatList() {
  const [q, setQ] = useState('');
  const [hits, setHits] = useState<Message[] | null>(null);
  const search = async (text: string) => {
    setQ(text);
    if (text.trim().length < 2) { setHits(null); return; }
    setHits((await api.search(text.trim()).catch(() => [])) ?? []);
  };
  const ql = q.trim().toLowerCase();
  const convs = conversations.value.filter((c) => !ql || c.name.toLowerCase().includes(ql));
  // One of the request rows' buttons: the action on that contact, then the list again.
  const act = (label: string, id: string, a: 'accept' | 'decline' | 'remove' | 'block') => () => attempt(label, () => api.friendAction(id, a).then(refreshFriends));
  const nameOf = (id: string) => friends.value.find((f) => f.peer_id === id)?.name ?? groups.value.find((g) => g.id === id)?.name ?? id.slice(-8);
  return (
    <nav class="chatlist" aria-label="Conversations">
      <div class="search">
        <input type="search" placeholder="Search people and messages" aria-label="Search" value={q} onInput={(e) => search((e.target as HTMLInputElement).value)} data-testid="search" />
      </div>
      {requests.value.length + sentRequests.value.length + declinedRequests.value.length > 0 && (
        <section class="requests" aria-label="Friend requests">
          <h2>Friend requests</h2>
          {requests.value.map((f) => (
            <div class="request" key={f.peer_id} data-testid="friend-request">
              <Avatar name={f.name} id={f.profile?.avatar_id} size={36} />
              <div class="grow">
                <div class="name">{f.profile?.name || f.name}</div>
                {f.message && <div class="muted small">“{f.message}”</div>}
              </div>
              <div class="row">
                <button class="btn primary small" data-testid="accept" onClick={act('Accept', f.peer_id, 'accept')}>Accept</button>
                <button class="btn small" data-testid="decline" onClick={act('Decline', f.peer_id, 'decline')}>Decline</button>
                <button class="btn small danger" onClick={act('Block', f.peer_id, 'block')}>Block</button>
              </div>
            </div>
          ))}
          {sentRequests.value.map((f) => (
            <div class="request" key={f.peer_id} data-testid="request-out">
              <Avatar name={f.name} size={36} />
              <div class="grow small">Waiting for <strong>{f.name}</strong> to accept</div>
              {/* Removing a request not answered yet withdraws it on their side too. */}
              <button class="btn small" data-testid="withdraw" onClick={act('Withdraw', f.peer_id, 'remove')}>Withdraw</button>
            </div>
          ))}
          {declinedRequests.value.map((f) => (
            <div class="request" key={f.peer_id} data-testid="request-declined">
              <Avatar name={f.name} size={36} />
              <div class="grow small"><strong>{f.name}</strong> declined your request</div>
              <div class="row">
                <button class="btn small" data-testid="ask-again" onClick={() => attempt('Ask again', () => api.addFriend(f.peer_id, f.message ?? '').then(refreshFriends))}>Ask again</button>
                <button class="btn small" data-testid="dismiss" onClick={act('Dismiss', f.peer_id, 'remove')}>Dismiss</button>
              </div>
            </div>
          ))}
        </section>
      )}
      <ul class="convs" role="listbox" aria-label="Chats">
        {convs.map((c) => (
          <li key={c.id} role="option" aria-selected={c.id === current.value} tabIndex={0} class={'conv' + (c.id === current.value ? ' active' : '')}
            data-testid="conv" data-conv={c.id} data-name={c.name}
            onClick={() => { current.value = c.id; panel.value = ''; }}
            onKeyDown={(e) => { if (e.key === 'Enter') { current.value = c.id; panel.value = ''; } }}>
            <Avatar name={c.name} id={c.avatar} src={c.avatarSrc} online={c.group ? undefined : c.online} group={c.group} />
            <div class="grow">
              <div class="row between"><span class="name">{c.name}</span><span class="time">{when(c.last?.time)}</span></div>
              <div class="row between"><span class="preview">{preview(c.last)}</span>{c.unread > 0 && <span class="badge" aria-label={`${c.unread} unread`}>{c.unread}</span>}</div>
            </div>
          </li>
        ))}
        {convs.length === 0 && !ql && <li class="empty">No chats yet. Add a friend with their friend code, or join a group.</li>}
      </ul>
      {hits && (
        <section class="hits" aria-label="Messages found">
          <h2>Messages</h2>
          {hits.length === 0 && <p class="muted small">Nothing found.</p>}
          {hits.map((m) => (
            <button key={m.id} class="hit" data-testid="hit" onClick={() => { setQ(''); setHits(null); attempt('Open', () => openAt(convOf(m), m.id)); }}>
              <span class="name">{nameOf(convOf(m))}</span> <span class="muted small">{when(m.time)}</span>
              <div class="preview">{m.text}</div>
            </button>
          ))}
        </section>
      )}
    </nav>
  );
}
