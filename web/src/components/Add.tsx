import { useState } from 'preact/hooks';
import { api, base64Of } from '../api';
import { attempt, current, flash, imageFits, loadConv, panel, refreshFriends, refreshGroups } from '../state';
import { PaneBack } from './PaneBack';

/** Add a friend by code or username; create a group; join one by code. */
export function Add() {
  const [code, setCode] = useState('');
  const [hello, setHello] = useState('');
  const [gname, setGname] = useState('');
  const [join, setJoin] = useState('');
  const [gavatar, setGavatar] = useState<File | undefined>();
  const add = async () => {
    const f = await attempt('Add friend', () => api.addFriend(code.trim(), hello.trim()));
    if (f) { setCode(''); setHello(''); flash(`Asked ${f.name}; they will show up once they accept.`); refreshFriends(); }
  };
  const create = async () => {
    const g = await attempt('Create group', async () => api.createGroup(gname.trim(), gavatar && (await base64Of(gavatar))));
    if (g) { setGname(''); setGavatar(undefined); await refreshGroups(); await loadConv(g.id); current.value = g.id; panel.value = 'group'; }
  };
  const joinIt = async () => {
    flash('Joining… a member must answer.');
    const g = await attempt('Join group', () => api.joinGroup(join.trim()));
    if (g) { setJoin(''); await refreshGroups(); await loadConv(g.id); current.value = g.id; panel.value = ''; }
  };
  return (
    <section class="pane" aria-label="Add">
      <PaneBack />
      <h2>Add a friend</h2>
      <div class="stack">
        <label>Friend code or username<input value={code} onInput={(e) => setCode((e.target as HTMLInputElement).value)} placeholder="mt1… or bob" data-testid="add-code" /></label>
        <label>Message (optional)<input value={hello} onInput={(e) => setHello((e.target as HTMLInputElement).value)} placeholder="Hi, it's me" /></label>
        <div><button class="btn primary" onClick={add} disabled={!code.trim()} data-testid="add-friend">Send friend request</button></div>
      </div>
      <h2>New group</h2>
      <div class="row">
        <input class="grow" value={gname} onInput={(e) => setGname((e.target as HTMLInputElement).value)} placeholder="Group name" aria-label="Group name" data-testid="group-name" />
        <button class="btn primary" onClick={create} disabled={!gname.trim()} data-testid="create-group">Create</button>
      </div>
      <label class="small">Picture (optional) <input type="file" accept="image/png,image/jpeg,image/gif" data-testid="group-avatar" onChange={(e) => {
        const el = e.target as HTMLInputElement, f = el.files?.[0];
        if (f && !imageFits('Picture', f)) { el.value = ''; setGavatar(undefined); } else setGavatar(f);
      }} /></label>
      <h2>Join a group</h2>
      <div class="row">
        <input class="grow" value={join} onInput={(e) => setJoin((e.target as HTMLInputElement).value)} placeholder="Invite code or short code" aria-label="Invite code" data-testid="join-code" />
        <button class="btn primary" onClick={joinIt} disabled={!join.trim()} data-testid="join-group">Join</button>
      </div>
    </section>
  );
}
