import { useState } from 'preact/hooks';
import { api, base64Of } from '../api';
import { attempt, flash, imageFits, me, profile, refreshMe, soundOn, status } from '../state';
import { Avatar } from './Avatar';
import { PaneBack } from './PaneBack';
import { QR } from './QR';

/** Yourself: name, status, avatar, friend code, relays, addresses. Also the first-run screen. */
export function Me({ first }: { first?: boolean }) {
  const p = profile.value;
  const [name, setName] = useState(p.name ?? '');
  const [st, setSt] = useState(p.status ?? '');
  const [relay, setRelay] = useState('');
  const [user, setUser] = useState('');
  const save = async () => {
    const r = await attempt('Save profile', () => api.setProfile({ name: name.trim(), status: st }));
    if (r) { profile.value = r; flash('Saved'); }
  };
  const avatar = async (f?: File) => {
    if (!f || !imageFits('Avatar', f)) return;
    const r = await attempt('Avatar', async () => api.setProfile({ avatar: await base64Of(f) }));
    if (r) profile.value = r;
  };
  // A failed step keeps what was typed, to fix and try again (adding a
  // relay saved already changes nothing); registering needs the relay added.
  const addRelay = async () => {
    if (!relay.trim()) return;
    const added = await attempt('Add relay', async () => { await api.addRelay(relay.trim()); return true; });
    if (!added) return;
    const done = !user.trim() || (await attempt('Register', async () => { await api.register(relay.trim(), user.trim()); return true; }));
    if (done) { setRelay(''); setUser(''); }
    refreshMe();
  };
  const copy = (t: string) => navigator.clipboard?.writeText(t).then(() => flash('Copied'), () => undefined);
  const code = me.value?.friend_code ?? '';
  return (
    <section class="pane me" aria-label={first ? 'Welcome' : 'You'} data-testid={first ? 'first-run' : 'me'}>
      {!first && <PaneBack />}
      {first && <h1>Welcome to meshtalk</h1>}
      {first && <p class="muted">Your messages go straight to your friends, from your computer to theirs. Pick a name your friends will see.</p>}
      <div class="row">
        <label class="avatarpick" aria-label="Change your avatar">
          <Avatar name={p.name || '?'} id={p.avatar_id} size={72} />
          <input type="file" accept="image/png,image/jpeg,image/gif" hidden data-testid="avatar-input" onChange={(e) => { const el = e.target as HTMLInputElement; avatar(el.files?.[0]); el.value = ''; }} />
          <span class="small muted">Change</span>
        </label>
        <div class="grow stack">
          <label>Name<input value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} data-testid="my-name" placeholder="Your name" /></label>
          <label>Status<input value={st} onInput={(e) => setSt((e.target as HTMLInputElement).value)} placeholder="What are you up to?" /></label>
          <div><button class="btn primary" onClick={save} disabled={!name.trim()} data-testid="save-profile">{first ? 'Continue' : 'Save'}</button></div>
        </div>
      </div>
      <h2>Your friend code</h2>
      <p class="muted small">Give it to a friend (or let them scan it): they add you with it.</p>
      <div class="codebox">
        {code && <QR text={code} label="Your friend code as a QR code" />}
        <div class="grow stack">
          <code class="code" data-testid="friend-code">{code}</code>
          <div><button class="btn small" onClick={() => copy(code)}>Copy</button></div>
        </div>
      </div>
      <h2>Relays</h2>
      <p class="muted small">A relay keeps messages for you while you are away and lets friends reach you behind routers.</p>
      <ul class="relays">
        {(status.value?.relays ?? []).map((r) => (
          <li key={r.peer_id} data-testid="relay"><span class={'dot ' + (r.reserved ? 'on' : 'off')} /> …{r.peer_id.slice(-8)} · {r.reserved ? 'reservation held' : r.connected ? 'connected' : 'not connected'} · {r.logged_in ? `logged in as ${r.name}` : r.name ? `registered as ${r.name}` : 'no account'}</li>
        ))}
        {!(status.value?.relays ?? []).length && <li class="muted small">No relays.</li>}
      </ul>
      <div class="stack">
        <label>Relay address<input value={relay} data-testid="relay-addr" placeholder="/ip4/…/p2p/12D3KooW…" onInput={(e) => setRelay((e.target as HTMLInputElement).value)} /></label>
        <label>Username on it (optional)<input value={user} data-testid="relay-user" placeholder="alice" onInput={(e) => setUser((e.target as HTMLInputElement).value)} /></label>
        <div><button class="btn" onClick={addRelay} disabled={!relay.trim()} data-testid="add-relay">Add relay</button></div>
      </div>
      {!first && (
        <>
          <h2>This node</h2>
          <div class="small">Reachability: {status.value?.reachability ?? '…'}</div>
          <details><summary class="small">Addresses</summary><ul class="addrs small">{(me.value?.addrs ?? []).map((a) => <li key={a}><code>{a}</code></li>)}</ul></details>
          <h2>Settings</h2>
          <label class="check"><input type="checkbox" data-testid="sound" checked={soundOn.value} onChange={(e) => { soundOn.value = (e.target as HTMLInputElement).checked; localStorage.setItem('meshtalk.sound', soundOn.value ? 'on' : 'off'); }} /> Sound for new messages</label>
          {'Notification' in window && Notification.permission === 'default' && <button class="btn small" onClick={() => Notification.requestPermission()}>Allow desktop notifications</button>}
          <div><button class="btn danger" data-testid="logout" onClick={async () => { await api.logout().catch(() => undefined); location.reload(); }}>Log out</button></div>
        </>
      )}
    </section>
  );
}
