import { Icon } from './Icon';
import { api, Message } from '../api';
import { attempt, files, refreshFiles } from '../state';

/** A size in binary units, as the CLI writes it: 512 B, 1.5 KiB, 20.0 MiB. */
export function size(n?: number) {
  if (n === undefined) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return i ? `${n.toFixed(1)} ${u[i]}` : `${n} ${u[0]}`;
}

/** A file in a conversation: accept, progress with rate and time left, cancel, save. */
export function FileCard({ m }: { m: Message }) {
  const f = m.file!;
  const st = files.value[f.id];
  const state = m.outgoing ? 'sent' : st?.state ?? 'available';
  const pct = st?.bytes && f.size ? Math.min(100, (st.bytes / f.size) * 100) : state === 'done' ? 100 : 0;
  return (
    <div class="filecard" data-testid="file-card" data-state={state}>
      <div class="fileicon"><Icon name="file" size={28} /></div>
      <div class="grow">
        <div class="name">{f.name}</div>
        <div class="muted small">{size(f.size)}{state === 'downloading' && st?.rate_bytes_per_second ? ` · ${size(st.rate_bytes_per_second)}/s · ${Math.ceil(st.eta_seconds ?? 0)} s left` : ''}{state === 'failed' && st?.error ? ` · ${st.error}` : ''}</div>
        {state === 'downloading' && <progress max={100} value={pct} aria-label={`${f.name}: ${pct.toFixed(0)}%`} data-testid="file-progress" />}
      </div>
      {!m.outgoing && (state === 'available' || state === 'failed') && (
        <button class="btn small primary" data-testid="file-accept" onClick={() => attempt('Download', () => api.getFile(f.id).then(refreshFiles))}>Download</button>
      )}
      {state === 'downloading' && <button class="btn small" onClick={() => attempt('Cancel', () => api.cancelFile(f.id).then(refreshFiles))}>Cancel</button>}
      {state === 'done' && <a class="btn small primary" href={api.fileURL(f.id)} download={f.name} data-testid="file-save">Save</a>}
    </div>
  );
}
