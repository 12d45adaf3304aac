import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { login } from './api';
import { ChatList } from './components/ChatList';
import { Conversation } from './components/Conversation';
import { Me } from './components/Me';
import { Add } from './components/Add';
import { FriendDetails, GroupDetails } from './components/Details';
import { Avatar } from './components/Avatar';
import { Icon } from './components/Icon';
import { CallView } from './components/CallView';
import { signedOut, conversations, current, live, loadAll, panel, profile, startLive, toast, totalUnread, groups, markRead, reopen } from './state';
import './styles.css';

function App() {
  const [phase, setPhase] = useState<'boot' | 'out' | 'in'>('boot');
  useEffect(() => {
    (async () => {
      // The login code comes in the fragment (never sent to a server, nor in a Referer); drop it at once.
      const m = location.hash.match(/login=([0-9a-f]+)/);
      if (m) history.replaceState(null, '', location.pathname);
      // With a session cookie already (no code), the reads need no CSRF token: they go along with the session check.
      const early = m ? undefined : loadAll();
      early?.catch(() => undefined);
      if (!(await login(m ? m[1] : null)) && !(m && (await login(null)))) { setPhase('out'); return; }
      const stop = startLive();
      await (early ? early.catch(() => loadAll()) : loadAll());
      reopen();
      setPhase('in');
      performance.mark('meshtalk-ready');
      return stop;
    })();
  }, []);
  useEffect(() => { document.title = (totalUnread.value ? `(${totalUnread.value}) ` : '') + 'meshtalk'; }, [totalUnread.value]);
  useEffect(() => {
    const vis = () => { if (!document.hidden && current.value) markRead(current.value); };
    document.addEventListener('visibilitychange', vis);
    const keys = (e: KeyboardEvent) => {
      // Alt+↑/↓ (or Ctrl+K then ↑/↓ in the list) jumps between chats; Esc closes a panel.
      if (e.altKey && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
        const list = conversations.value, i = list.findIndex((c) => c.id === current.value);
        const next = list[(i + (e.key === 'ArrowDown' ? 1 : -1) + list.length) % list.length];
        if (next) { current.value = next.id; panel.value = ''; e.preventDefault(); }
      } else if (e.key === 'k' && (e.ctrlKey || e.metaKey)) {
        (document.querySelector('[data-testid=search]') as HTMLInputElement | null)?.focus(); e.preventDefault();
      } else if (e.key === 'Escape' && panel.value) panel.value = '';
    };
    addEventListener('keydown', keys);
    // A login link opened in a tab already on this page changes only the
    // fragment: start again, to use its code.
    const link = () => { if (/login=/.test(location.hash)) location.reload(); };
    addEventListener('hashchange', link);
    return () => { document.removeEventListener('visibilitychange', vis); removeEventListener('keydown', keys); removeEventListener('hashchange', link); };
  }, []);
  if (phase === 'boot') return <p class="boot">meshtalk…</p>;
  if (phase === 'out' || signedOut.value) return (
    <main class="signin" data-testid="signed-out">
      <h1>meshtalk</h1>
      <p>To open your messenger, run <code>meshtalk open</code> on this computer.</p>
      <p class="muted small">The link it opens logs this page in once; your node never puts its key in a page.</p>
    </main>
  );
  if (!profile.value.name) return <main class="single"><Me first /></main>;
  const id = current.value;
  const isGroup = groups.value.some((g) => g.id === id);
  return (
    <div class={'app' + (id ? ' has-conv' : '') + (panel.value ? ' has-panel' : '')}>
      <aside class="sidebar">
        <header class="sidehead">
          <button class="mebtn" onClick={() => (panel.value = panel.value === 'me' ? '' : 'me')} aria-label="You: profile and settings" data-testid="open-me">
            <Avatar name={profile.value.name ?? ''} id={profile.value.avatar_id} size={36} />
            <span class="name">{profile.value.name}</span>
          </button>
          <span class={'live ' + (live.value ? 'on' : 'off')} title={live.value ? 'Connected to your node' : 'Reconnecting to your node…'} role="status" aria-label={live.value ? 'live' : 'reconnecting'} />
          <button class="icon" onClick={() => (panel.value = 'add')} aria-label="Add a friend or group" data-testid="open-add"><Icon name="plus" /></button>
        </header>
        <ChatList />
      </aside>
      <main class="main">
        {panel.value === 'me' ? <Me /> : panel.value === 'add' ? <Add /> : id ? <Conversation id={id} /> : (
          <div class="welcome"><h2>Pick a chat</h2><p class="muted">or press + to add a friend or start a group.</p></div>
        )}
      </main>
      {id && (panel.value === 'people' || panel.value === 'group') && (isGroup ? <GroupDetails id={id} /> : <FriendDetails id={id} />)}
      <CallView />
      {toast.value && <div class="toast" role="status" data-testid="toast">{toast.value}</div>}
    </div>
  );
}

render(<App />, document.getElementById('app')!);
