import { api } from '../api';

const palette = ['#2f6f5e', '#7a4fa0', '#b5562b', '#2b6cb5', '#a0304f', '#5f7a1f', '#8a6d1d', '#1f7a7a'];

function hue(s: string) {
  let h = 0;
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return palette[h % palette.length];
}

/** A round picture: the avatar when there is one, else initials on a colour of the name. */
export function Avatar({ name, id, src, size = 40, online, group }: { name: string; id?: string; src?: string; size?: number; online?: boolean; group?: boolean }) {
  const initials = (name || '?').replace(/^…/, '').split(/\s+/).map((w) => w[0]).join('').slice(0, 2).toUpperCase();
  return (
    <span class={'avatar' + (group ? ' group' : '')} style={{ width: size, height: size, fontSize: size * 0.4, background: hue(name || '?') }} aria-hidden="true">
      {id || src ? <img src={src ?? api.avatarURL(id!)} alt="" /> : initials}
      {online !== undefined && <span class={'dot ' + (online ? 'on' : 'off')} />}
    </span>
  );
}
