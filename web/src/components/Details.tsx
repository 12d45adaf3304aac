import { signal } from '@preact/signals';
import { useEffect, useState } from 'preact/hooks';
import { api, base64Of, Friend, Invite, MadeInvite, Member } from '../api';
import { attempt, current, flash, friends, groupAvatar, groups, imageFits, panel, refreshFriends, refreshGroups } from '../state';
import { Avatar } from './Avatar';
import { Icon } from './Icon';
import { QR } from './QR';

/** A friend's profile: status, how the node reaches them, round trip, and what one can do. */
export function FriendDetails({ id }: { id: string }) {
  const [f, setF] = useState<Friend | null>(null);
  const [rtt, setRtt] = useState('');
  const base = friends.value.find((x) => x.peer_id === id);
  useEffect(() => {
    api.friend(id).then(setF, () => undefined);
    setRtt('');
    fetch(`/api/v1/ping?peer=${encodeURIComponent(id)}&count=1&timeout=3s`).then((r) => r.text()).then((t) => {
      try { const r = JSON.parse(t.split('\n')[0]); setRtt(r.error ? r.error : `${(Number(r.rtt_ns) / 1e6).toFixed(1)} ms (${r.path?.path ?? 'connected'}${r.path?.relay ? ` via relay …${String(r.path.relay).slice(-8)}` : ''})`); } catch { /* no answer */ }
    }, () => undefined);
  }, [id, base?.online]);
  const x = f ?? base;
  if (!x) return null;
  const ask = {
    remove: `Remove ${x.name} from your friends? Your conversation leaves your chat list, on both sides, until you are friends again.`,
    block: `Block ${x.name}? They are removed on both sides and everything they send is refused.`,
  };
  const act = (a: 'remove' | 'block') => {
    if (confirm(ask[a])) attempt(a, () => api.friendAction(id, a).then(refreshFriends).then(() => { panel.value = ''; current.value = ''; }));
  };
  return (
    <aside class="details" aria-label={`About ${x.name}`} data-testid="friend-details">
      <CloseBar />
      <div class="center"><Avatar name={x.name} id={x.profile?.avatar_id} size={96} online={!!x.online} /></div>
      <h2 class="center">{x.profile?.name || x.name}</h2>
      {x.profile?.status && <p class="center muted">{x.profile.status}</p>}
      <dl>
        {x.username && <><dt>Username</dt><dd>{x.username}</dd></>}
        <dt>Connection</dt><dd data-testid="path">{x.online ? `${x.path ?? 'connected'}${x.relay ? ` via relay …${x.relay.slice(-8)}` : ''}` : 'offline'}</dd>
        <dt>Round trip</dt><dd>{rtt || '—'}</dd>
        <dt>Peer ID</dt><dd><code class="small">{x.peer_id}</code></dd>
      </dl>
      <div class="row"><button class="btn" onClick={() => act('remove')}>Remove friend</button><button class="btn danger" onClick={() => act('block')}>Block</button></div>
    </aside>
  );
}

function CloseBar() {
  return <div class="row end"><button class="btn small" onClick={() => (panel.value = '')} aria-label="Close details"><Icon name="close" size={14} /></button></div>;
}

/** An invite as the page shows it: made here (with its short code), listed by the node (with its state), or both. */
type ShownInvite = Invite & Partial<MadeInvite> & { revoked?: boolean };

// The invites made, by group, newest first: as the node lists them (every
// one it made, with how many joined and its state), with the short codes
// of those made in this page, which only the relay holds. Kept while the
// page lives, the details closed or not.
const madeInvites = signal<Record<string, ShownInvite[]>>({});

/** merge is the node's list with what the page knows: short codes, and invites made since the list was read. */
function merge(page: ShownInvite[], listed: MadeInvite[]): ShownInvite[] {
  const known = new Map(page.map((x) => [x.id, x]));
  const ids = new Set(listed.map((x) => x.id));
  return [...page.filter((x) => !ids.has(x.id)), ...listed.map((x) => ({ ...known.get(x.id), ...x, revoked: x.state === 'revoked' || known.get(x.id)?.revoked }))];
}

/** One invite made: its codes and terms, with Revoke; once revoked or expired, a line saying so. */
function InviteCard({ inv, qr, onRevoke }: { inv: ShownInvite; qr: boolean; onRevoke: () => void }) {
  const uses = inv.uses === 0 ? 'unlimited uses' : inv.uses === 1 ? 'one use' : `${inv.uses} uses`;
  const until = new Date(inv.expires).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
  const over = inv.revoked ? 'revoked' : inv.state === 'used_up' ? 'used up' : new Date(inv.expires).getTime() <= Date.now() ? 'expired' : '';
  const joined = inv.used ? ` · ${inv.used} joined` : '';
  if (over) return <div class="invite small muted" data-testid="invite-card" data-state={over}>Invite {inv.short ?? `…${inv.id.slice(-6)}`} ({uses}{joined}): {over}</div>;
  return (
    <div class="invite stack" data-testid="invite-card" data-state="active" data-expires={inv.expires}>
      {inv.short && <div>Short code: <code data-testid="invite-short">{inv.short}</code></div>}
      <code class="code small" data-testid="invite-code">{inv.code}</code>
      <div class="muted small" data-testid="invite-terms">{uses}{joined} · expires {until}</div>
      <div class="row">
        <button class="btn small" onClick={() => navigator.clipboard?.writeText(inv.code).then(() => flash('Copied'))}>Copy code</button>
        <button class="btn small danger" data-testid="invite-revoke" onClick={onRevoke}>Revoke</button>
      </div>
      {qr && <QR text={inv.short ?? inv.code} label="The invite as a QR code" size={200} />}
    </div>
  );
}

/** A group: invite codes, members with roles and presence, rename, add, kick, promote, leave. */
export function GroupDetails({ id }: { id: string }) {
  const g = groups.value.find((x) => x.id === id);
  const [members, setMembers] = useState<Member[]>([]);
  const [uses, setUses] = useState('1'); // the node's defaults: one use, a day
  const [ttl, setTtl] = useState(String(24 * 3600));
  const [name, setName] = useState(g?.name ?? '');
  const [add, setAdd] = useState('');
  const reload = () => api.members(id).then((m) => setMembers(m ?? []), () => undefined);
  useEffect(() => { reload(); }, [id, g?.members, g?.epoch]);
  useEffect(() => setName(g?.name ?? ''), [id, g?.name]);
  // The invites this node made, read again as members come and go: an
  // invite used up says so.
  useEffect(() => {
    if (g?.role !== 'admin') return;
    api.invites(id).then((l) => { madeInvites.value = { ...madeInvites.value, [id]: merge(madeInvites.value[id] ?? [], l ?? []) }; }, () => undefined);
  }, [id, g?.role, g?.members]);
  if (!g) return null;
  const admin = g.role === 'admin';
  const after = () => { refreshGroups(); reload(); };
  const invites = madeInvites.value[id] ?? [];
  const keep = (list: ShownInvite[]) => { madeInvites.value = { ...madeInvites.value, [id]: list }; };
  const invite = async () => {
    const inv = await attempt('Invite', () => api.invite(id, Number(uses), Number(ttl)));
    if (inv) keep([inv, ...(madeInvites.value[id] ?? [])]);
  };
  const revoke = async (inv: ShownInvite) => {
    if (!(await attempt('Revoke', () => api.revokeInvite(id, inv.id)))) return;
    keep((madeInvites.value[id] ?? []).map((x) => (x.id === inv.id ? { ...x, revoked: true } : x)));
    refreshGroups();
  };
  return (
    <aside class="details" aria-label={`About ${g.name}`} data-testid="group-details">
      <CloseBar />
      <div class="center">
        {admin ? (
          <label class="avatarpick" aria-label="Change the group's picture">
            <Avatar name={g.name} src={groupAvatar(g)} size={96} group />
            <input type="file" accept="image/png,image/jpeg,image/gif" hidden onChange={async (e) => {
              const f = (e.target as HTMLInputElement).files?.[0];
              if (f && imageFits('Picture', f)) attempt('Picture', async () => api.setGroupAvatar(id, await base64Of(f)).then(after));
            }} />
            <span class="small muted">Change</span>
          </label>
        ) : <Avatar name={g.name} src={groupAvatar(g)} size={96} group />}
      </div>
      <h2 class="center">{g.name}</h2>
      <p class="center muted small">{g.members} {g.members === 1 ? "member" : "members"} · you are {g.role}</p>
      {admin && (
        <>
          <div class="row">
            <input class="grow" value={name} aria-label="Group name" data-testid="rename" onInput={(e) => setName((e.target as HTMLInputElement).value)} />
            <button class="btn small" data-testid="rename-save" onClick={() => attempt('Rename', () => api.renameGroup(id, name.trim()).then(after))}>Rename</button>
          </div>
          <div class="row">
            <select class="grow" aria-label="How many may join with the invite" data-testid="invite-uses" value={uses} onChange={(e) => setUses((e.target as HTMLSelectElement).value)}>
              <option value="1">One use</option>
              <option value="5">5 uses</option>
              <option value="0">Unlimited uses</option>
            </select>
            <select class="grow" aria-label="How long the invite is valid" data-testid="invite-expiry" value={ttl} onChange={(e) => setTtl((e.target as HTMLSelectElement).value)}>
              <option value={String(3600)}>For 1 hour</option>
              <option value={String(24 * 3600)}>For 1 day</option>
              <option value={String(7 * 24 * 3600)}>For 7 days</option>
            </select>
          </div>
          <button class="btn primary" data-testid="invite" onClick={invite}>Invite people</button>
          {invites.map((inv) => <InviteCard key={inv.id} inv={inv} qr={inv === invites.find((x) => !x.revoked)} onRevoke={() => revoke(inv)} />)}
          <div class="row">
            <select class="grow" aria-label="Friend to add" data-testid="add-member" value={add} onChange={(e) => setAdd((e.target as HTMLSelectElement).value)}>
              <option value="">Add a friend…</option>
              {friends.value.filter((f) => f.state === 'friend' && !members.some((m) => m.peer_id === f.peer_id)).map((f) => <option key={f.peer_id} value={f.peer_id}>{f.name}</option>)}
            </select>
            <button class="btn small" disabled={!add} data-testid="add-member-save" onClick={() => attempt('Add', () => api.addMember(id, add).then(after))}>Add</button>
          </div>
        </>
      )}
      <h3>Members</h3>
      <ul class="members">
        {members.map((m) => (
          <li key={m.peer_id} class="row" data-testid="member" data-name={m.name}>
            <Avatar name={m.name} size={32} online={m.self ? undefined : !!m.online} />
            <span class="grow">{m.self ? `${m.name} (you)` : m.name} {m.role === 'admin' && <span class="tag">admin</span>}</span>
            {admin && !m.self && m.role !== 'admin' && <button class="btn small" data-testid="promote" onClick={() => attempt('Promote', () => api.promote(id, m.peer_id).then(after))}>Make admin</button>}
            {admin && !m.self && <button class="btn small danger" data-testid="kick" onClick={() => attempt('Remove', () => api.kick(id, m.peer_id).then(after))}>Remove</button>}
          </li>
        ))}
      </ul>
      {g.status === 'member' && <button class="btn danger" data-testid="leave" onClick={() => { if (confirm(`Leave ${g.name}?`)) attempt('Leave', () => api.leave(id).then(after)); }}>Leave group</button>}
    </aside>
  );
}
