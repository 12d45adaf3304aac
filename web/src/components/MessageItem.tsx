import { Icon } from './Icon';
import { Component } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, Message } from '../api';
import { attempt, faces, friends, upsert } from '../state';
import { FileCard } from './FileCard';
import { when } from './ChatList';

const stateIcon: Record<string, string> = { queued: '◷', sent: '✓', delivered: '✓✓', read: '✓✓', failed: '!' };

/** Where a queued message waits: in a relay's mailbox for its friend, who is away ('' when not). */
function parkedNote(m: Message) {
  if (m.state !== 'queued' || !m.parked_on) return '';
  const to = friends.value.find((f) => f.peer_id === m.to)?.name ?? `…${(m.to ?? '').slice(-8)}`;
  return `Waiting in relay …${m.parked_on.slice(-8)}'s mailbox for ${to}`;
}

/**
 * The reactions to a message by emoji, in the order they came: who
 * reacted with it (each person once, however many times they did) and
 * my own reaction messages with it (to take it back).
 */
function tally(reactions: Message[]) {
  const by = new Map<string, { who: Map<string, string>; mine: Message[] }>();
  for (const r of reactions) {
    if (r.deleted || !r.text) continue;
    const e = by.get(r.text) ?? { who: new Map<string, string>(), mine: [] };
    e.who.set(r.from, r.outgoing ? 'You' : r.name || `…${r.from.slice(-8)}`);
    if (r.outgoing) e.mine.push(r);
    by.set(r.text, e);
  }
  return by;
}

type Props = { m: Message; reactions: Message[]; group: boolean; onReply: (m: Message) => void };

/**
 * A bubble that renders again only when its message or reactions changed
 * (messages are replaced, never changed in place): a new message in a
 * long conversation renders one bubble, not the whole window.
 */
export class Bubble extends Component<Props> {
  shouldComponentUpdate(next: Props) {
    const p = this.props;
    return next.m !== p.m || next.group !== p.group || next.onReply !== p.onReply ||
      next.reactions.length !== p.reactions.length || next.reactions.some((r, i) => r !== p.reactions[i]);
  }
  render() { return <MessageItem {...this.props} />; }
}

/** One bubble: its content, time and state, reactions, and what one can do with it. */
export function MessageItem({ m, reactions, group, onReply }: { m: Message; reactions: Message[]; group: boolean; onReply: (m: Message) => void }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(m.text ?? '');
  const [info, setInfo] = useState<any>(null);
  const [menu, setMenu] = useState(false);
  const editBox = useRef<HTMLTextAreaElement>(null);
  // The edit box takes the keyboard when it opens, the cursor after the text (autofocus works only once a page).
  useEffect(() => {
    const b = editBox.current;
    if (editing && b) { b.focus(); b.setSelectionRange(b.value.length, b.value.length); }
  }, [editing]);
  const reacted = tally(reactions);
  const busy = useRef(false); // a toggle on its way: a second click would add or delete twice
  // My reaction with e, added, or taken back (deleted for everyone) when I reacted with it already.
  const react = async (e: string) => {
    setMenu(false);
    if (busy.current) return;
    busy.current = true;
    const mine = reacted.get(e)?.mine ?? [];
    if (mine.length) await attempt('Remove reaction', async () => { for (const r of mine) upsert(await api.remove(r.id, true)); });
    else await attempt('React', () => api.send(m.group || (m.outgoing ? m.to! : m.from), group, { react_to: m.id, text: e }).then(upsert));
    busy.current = false;
  };
  const save = async () => {
    const r = await attempt('Edit', () => api.edit(m.id, text));
    if (r) { upsert(r); setEditing(false); }
  };
  const showInfo = async () => { setInfo(info ? null : await attempt('Info', () => api.info(m.id))); };
  const parked = m.outgoing ? parkedNote(m) : '';
  return (
    <li class={'msg' + (m.outgoing ? ' out' : ' in')} data-testid="message" data-id={m.id} data-state={m.state} data-kind={m.kind}>
      <div class="bubble" tabIndex={0} onKeyDown={(e) => { if (e.key === 'Enter' && e.target === e.currentTarget) setMenu(!menu); if (e.key === 'Escape') { setMenu(false); setInfo(null); } }}>
        {group && !m.outgoing && <div class="author">{m.name}</div>}
        {m.reply_to && m.quote !== undefined && <blockquote class="quote">{m.quote || '…'}</blockquote>}
        {m.deleted ? <em class="muted">Message deleted</em> : editing ? (
          <div class="edit">
            <textarea ref={editBox} value={text} aria-label="Edit message" data-testid="edit-text" onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
              onKeyDown={(e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); save(); } if (e.key === 'Escape') setEditing(false); }} />
            <div class="row"><button class="btn small primary" onClick={save} data-testid="edit-save">Save</button><button class="btn small" onClick={() => setEditing(false)}>Cancel</button></div>
          </div>
        ) : (
          <>
            {m.kind === 'face' && <div class="face" title={m.face}>{faces.value[m.face ?? ''] ?? m.face}</div>}
            {m.kind === 'picture' && m.thumbnail && (
              <a href={m.file && !m.outgoing ? api.fileURL(m.file.id, true) : undefined} target="_blank" rel="noopener" class="picture">
                <img src={`data:${m.thumbnail_type || 'image/jpeg'};base64,${m.thumbnail}`} alt={m.text || 'picture'} data-testid="thumbnail" />
              </a>
            )}
            {m.kind === 'file' && m.file && <FileCard m={m} />}
            {m.kind === 'call' ? <CallNote m={m} /> : m.text && <div class="text">{m.text}</div>}
          </>
        )}
        <div class="meta">
          {m.edited_at && !m.deleted && <span class="muted">edited · </span>}
          <time dateTime={m.time}>{when(m.time)}</time>
          {m.outgoing && m.kind !== 'call' && (
            <button class={'state ' + m.state + (parked ? ' parked' : '')} onClick={showInfo} aria-label={`${parked || m.state}; show how it travelled`} data-testid="state" title={parked || m.state}>
              {parked ? <Icon name="inbox" size={12} /> : stateIcon[m.state] ?? m.state}{group && m.recipients ? ` ${m.read_count ?? 0}/${m.recipients}` : ''}
            </button>
          )}
          {!m.outgoing && <button class="state" onClick={showInfo} aria-label="show how it travelled"><Icon name="info" size={12} /></button>}
        </div>
        {reacted.size > 0 && (
          <div class="reactions">
            {[...reacted].map(([e, { who, mine }]) => {
              const names = [...who.values()].join(', ');
              return (
                <button key={e} class={'reaction' + (mine.length ? ' mine' : '')} aria-pressed={mine.length > 0} title={names} data-testid="reaction"
                  aria-label={`${e} from ${names}; ${mine.length ? 'take yours back' : 'react with it too'}`} onClick={() => react(e)}>
                  {e}{who.size > 1 ? ` ${who.size}` : ''}
                </button>
              );
            })}
          </div>
        )}
      </div>
      {!m.deleted && (
        <div class="actions" role="toolbar" aria-label="Message actions">
          <button aria-label="Reply" title="Reply" onClick={() => onReply(m)}><Icon name="reply" size={16} /></button>
          <button aria-label="React" title="React" onClick={() => setMenu(!menu)}><Icon name="smile" size={16} /></button>
          {m.outgoing && m.kind !== 'face' && m.kind !== 'call' && <button aria-label="Edit" title="Edit" data-testid="edit" onClick={() => { setText(m.text ?? ''); setEditing(true); }}><Icon name="edit" size={16} /></button>}
          {m.outgoing && <button aria-label="Delete for everyone" title="Delete for everyone" data-testid="delete" onClick={() => { if (confirm('Delete this message for everyone?')) attempt('Delete', () => api.remove(m.id, true).then(upsert)); }}><Icon name="trash" size={16} /></button>}
        </div>
      )}
      {menu && (
        <div class="quickreact" role="menu" aria-label="React with">
          {['👍', '❤️', '😂', '😮', '😢', '🎉'].map((e) => {
            const mine = !!reacted.get(e)?.mine.length;
            return <button key={e} role="menuitemcheckbox" aria-checked={mine} class={mine ? 'on' : ''} title={mine ? `Take back your ${e}` : undefined} onClick={() => react(e)}>{e}</button>;
          })}
        </div>
      )}
      {info && <Trace info={info} note={parked} onClose={() => setInfo(null)} />}
    </li>
  );
}

/**
 * A call in the conversation (written by each node for itself): "missed
 * call", "video call, 3:12", "declined", "busy", "call failed".
 */
function CallNote({ m }: { m: Message }) {
  const t = m.text ?? 'call';
  const video = t.startsWith('video');
  const answered = /\d:\d\d$/.test(t);
  const [what, length] = answered ? [t.slice(0, t.lastIndexOf(',')), t.slice(t.lastIndexOf(',') + 2)] : [t, ''];
  const label = answered ? `${m.outgoing ? 'Outgoing' : 'Incoming'} ${what}` : what.charAt(0).toUpperCase() + what.slice(1);
  return (
    <div class={'callnote' + (answered ? '' : ' unanswered')} data-testid="call-note">
      <span class="callicon"><Icon name={video ? 'video' : answered ? 'phone' : 'hangup'} size={18} /></span>
      <span class="text">{label}</span>
      {length && <span class="muted small length" data-testid="call-length">{length}</span>}
    </div>
  );
}

function Trace({ info, note, onClose }: { info: any; note: string; onClose: () => void }) {
  const names = info.names ?? {};
  return (
    <div class="trace" role="dialog" aria-label="How the message travelled" data-testid="trace">
      <div class="row between"><strong>How it travelled</strong><button class="btn small" onClick={onClose} aria-label="Close"><Icon name="close" size={14} /></button></div>
      {note && <div class="parkednote" data-testid="parked-note"><Icon name="inbox" size={14} /> {note}.</div>}
      <ol>
        {(info.hops ?? []).map((h: any, i: number) => (
          <li key={i}><span class="hop">{h.event}</span> {new Date(h.at).toLocaleTimeString()}{h.path ? ` · ${h.path}` : ''}{h.relay ? ` via relay …${h.relay.slice(-8)}` : ''}</li>
        ))}
      </ol>
      {info.members && Object.entries(info.members).map(([p, hops]: [string, any]) => (
        <div key={p} class="small"><strong>{names[p] ?? p.slice(-8)}</strong>: {(hops as any[]).map((h) => h.event).join(' → ')}</div>
      ))}
    </div>
  );
}
