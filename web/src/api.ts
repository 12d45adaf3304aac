// The one module that talks to the node: typed requests (with the
// session's CSRF header) and the event stream, which resumes from the
// last event ID after a reconnect (the browser's EventSource sends it).

export interface Profile { version?: number; name?: string; status?: string; avatar_id?: string; avatar_type?: string }
export interface Friend {
  peer_id: string; state: string; message?: string; profile?: Profile; name: string; username?: string;
  online?: boolean; last_seen?: string; path?: string; relay?: string; since?: string; asked?: string;
}
export interface FileInfo { id: string; name: string; size: number; mime?: string }
export interface Message {
  id: string; from: string; to?: string; group?: string; kind: string; text?: string; face?: string;
  thumbnail?: string; thumbnail_type?: string; file?: FileInfo; reply_to?: string; react_to?: string;
  state: string; time: string; hlc: number; outgoing: boolean; error?: string; name?: string; quote?: string;
  edited_at?: string; deleted?: boolean; read_count?: number; delivered_count?: number; recipients?: number;
  parked_on?: string;
}
export interface Group { id: string; name: string; avatar?: string; avatar_type?: string; role: string; status: string; members: number; epoch: number }
export interface Member { peer_id: string; name: string; role: string; online?: boolean; self?: boolean }
export interface Identity { peer_id: string; addrs: string[]; friend_code: string }
export interface RelayStatus { peer_id: string; connected?: boolean; reserved?: boolean; logged_in?: boolean; name?: string; error?: string }
export interface Status { peer_id: string; listen_addrs: string[]; reachability: string; relays?: RelayStatus[]; version: string }
export interface FileState extends FileInfo {
  message_id: string; state: string; outgoing: boolean; path?: string; error?: string;
  bytes?: number; rate_bytes_per_second?: number; eta_seconds?: number;
}
export interface Invite { code: string; id: string; uses: number; short?: string; expires: string; short_error?: string }
/** An invite the node made, as it lists them: how many joined, and its state (open, used_up, expired, revoked). */
export interface MadeInvite extends Invite { created: string; used: number; state: string }
export interface CallSignal { kind: string; sdp?: string; audio?: boolean; video?: boolean; candidate?: RTCIceCandidateInit }
export interface CallInfo {
  id: string; peer_id: string; outgoing: boolean; state: string; audio: boolean; video: boolean; endpoint?: string;
  started: string; accepted?: string; ended?: string; reason?: string; pending?: CallSignal[];
}
export interface ConvSummary { id: string; group?: boolean; last?: Message; unread: number }
export interface ICEServer { urls: string[]; username?: string; credential?: string }
export interface NodeEvent { type: string; time: string; data: any }

export class APIError extends Error {
  constructor(public status: number, public code: string, message: string) { super(message); }
}

let csrf = '';

async function request<T>(method: string, path: string, body?: unknown, raw?: Blob): Promise<T> {
  const headers: Record<string, string> = {};
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let payload: BodyInit | undefined;
  if (raw) { payload = raw; headers['Content-Type'] = 'application/octet-stream'; }
  else if (body !== undefined) { payload = JSON.stringify(body); headers['Content-Type'] = 'application/json'; }
  // fetch fails only when no answer came (the browser's "Failed to fetch"): say what that means here.
  const resp = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' }).catch(() => {
    throw new APIError(0, 'unreachable', 'cannot reach your node (is meshtalk running?)');
  });
  if (resp.status === 204) return undefined as T;
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const e = data?.error ?? {};
    throw new APIError(resp.status, e.code ?? 'internal', e.message ?? resp.statusText);
  }
  return data as T;
}

const get = <T>(p: string) => request<T>('GET', p);
const post = <T>(p: string, b?: unknown) => request<T>('POST', p, b ?? {});
const enc = encodeURIComponent;

/** Trades a login code for a session, or picks up the session a cookie holds. */
export async function login(code: string | null): Promise<boolean> {
  try {
    const s = code ? await request<{ csrf: string }>('POST', '/api/v1/session', { code })
      : await get<{ csrf: string }>('/api/v1/session');
    csrf = s.csrf;
    return true;
  } catch { return false; }
}

export const api = {
  logout: () => request<void>('DELETE', '/api/v1/session'),
  id: () => get<Identity>('/api/v1/id'),
  status: () => get<Status>('/api/v1/status'),
  profile: () => get<Profile>('/api/v1/profile'),
  setProfile: (p: { name?: string; status?: string; avatar?: string }) => request<Profile>('PUT', '/api/v1/profile', p),
  friends: () => get<Friend[]>('/api/v1/friends'),
  friend: (id: string) => get<Friend>(`/api/v1/friends/${enc(id)}`),
  addFriend: (peer: string, message: string) => post<Friend>('/api/v1/friends', { peer, message }),
  friendAction: (id: string, act: 'accept' | 'decline' | 'remove' | 'block') => post<Friend>(`/api/v1/friends/${enc(id)}/${act}`),
  history: (w: string, before = '', limit = 50) =>
    get<{ messages: Message[] | null; more: boolean }>(`/api/v1/history?with=${enc(w)}&limit=${limit}${before ? '&before=' + enc(before) : ''}`),
  conversations: () => get<ConvSummary[]>('/api/v1/conversations'),
  search: (q: string) => get<Message[]>(`/api/v1/search?q=${enc(q)}&limit=50`),
  send: (to: string, isGroup: boolean, d: Record<string, unknown>) =>
    isGroup ? post<Message>(`/api/v1/groups/${enc(to)}/messages`, d) : post<Message>('/api/v1/messages', { to, ...d }),
  edit: (id: string, text: string) => request<Message>('PATCH', `/api/v1/messages/${enc(id)}`, { text }),
  remove: (id: string, everyone: boolean) => request<Message>('DELETE', `/api/v1/messages/${enc(id)}${everyone ? '?for_everyone=true' : ''}`),
  info: (id: string) => get<any>(`/api/v1/messages/${enc(id)}/info`),
  read: (w: string) => post<{ marked: number }>('/api/v1/read', { with: w }),
  faces: () => get<Record<string, string>>('/api/v1/faces'),
  files: () => get<FileState[]>('/api/v1/files'),
  upload: (f: File) => request<{ path: string }>('POST', `/api/v1/uploads?name=${enc(f.name)}`, undefined, f),
  sendFile: (to: string, path: string, message = '') => post<Message>('/api/v1/files', { to, path, message }),
  getFile: (id: string) => post<FileState>(`/api/v1/files/${enc(id)}/get`, {}),
  cancelFile: (id: string) => post<void>(`/api/v1/files/${enc(id)}/cancel`),
  fileURL: (id: string, inline = false) => `/api/v1/files/${enc(id)}/content${inline ? '?inline=true' : ''}`,
  avatarURL: (id: string) => `/api/v1/avatars/${enc(id)}`,
  groups: () => get<Group[]>('/api/v1/groups'),
  createGroup: (name: string, avatar?: string) => post<Group>('/api/v1/groups', { name, avatar }),
  joinGroup: (code: string) => post<Group>('/api/v1/groups/join', { code }),
  renameGroup: (g: string, name: string) => request<Group>('PUT', `/api/v1/groups/${enc(g)}`, { name }),
  setGroupAvatar: (g: string, avatar: string) => request<Group>('PUT', `/api/v1/groups/${enc(g)}`, { avatar }),
  invite: (g: string, uses: number, expires_seconds: number) => post<Invite>(`/api/v1/groups/${enc(g)}/invites`, { uses, expires_seconds }),
  invites: (g: string) => get<MadeInvite[]>(`/api/v1/groups/${enc(g)}/invites`),
  revokeInvite: (g: string, invite: string) => post<Group>(`/api/v1/groups/${enc(g)}/invites/revoke`, { invite }),
  members: (g: string) => get<Member[]>(`/api/v1/groups/${enc(g)}/members`),
  addMember: (g: string, peer: string) => post<Group>(`/api/v1/groups/${enc(g)}/members`, { peer }),
  kick: (g: string, m: string) => request<Group>('DELETE', `/api/v1/groups/${enc(g)}/members/${enc(m)}`),
  promote: (g: string, peer: string) => post<Group>(`/api/v1/groups/${enc(g)}/admins`, { peer }),
  leave: (g: string) => post<Group>(`/api/v1/groups/${enc(g)}/leave`),
  relays: () => get<{ addr: string; peer_id: string }[]>('/api/v1/relays'),
  addRelay: (addr: string) => post<unknown>('/api/v1/relays', { addr }),
  register: (relay: string, name: string) => post<unknown>('/api/v1/account/register', { relay, name }),
  calls: () => get<CallInfo[]>('/api/v1/calls'),
  callICE: () => get<ICEServer[]>('/api/v1/calls/ice'),
  startCall: (c: { peer: string; audio: boolean; video: boolean; endpoint: string; sdp: string }) => post<CallInfo>('/api/v1/calls', c),
  getCall: (id: string) => get<CallInfo>(`/api/v1/calls/${enc(id)}`),
  answerCall: (id: string, endpoint: string, sdp: string) => post<CallInfo>(`/api/v1/calls/${enc(id)}/answer`, { endpoint, sdp }),
  declineCall: (id: string) => post<CallInfo>(`/api/v1/calls/${enc(id)}/decline`),
  hangupCall: (id: string) => post<CallInfo>(`/api/v1/calls/${enc(id)}/hangup`),
  signalCall: (id: string, endpoint: string, signal: CallSignal) => post<unknown>(`/api/v1/calls/${enc(id)}/signal`, { endpoint, signal }),
};

/**
 * Follows the node's event stream. EventSource reconnects by itself and
 * sends Last-Event-ID, so the node replays what was missed; a "reset"
 * event (the node no longer holds them) asks for a full re-read. When the
 * browser gives up (the node answered an error), a new stream resumes from
 * the last ID seen, unless the session is gone (the node restarted).
 */
export function follow(on: (ev: NodeEvent) => void, onState: (live: boolean) => void, onSignedOut: () => void): () => void {
  const types = ['peer.connected', 'peer.disconnected', 'friend.request', 'friend.update', 'friend.presence', 'friend.profile',
    'message.received', 'message.state', 'message.edited', 'message.deleted', 'group.update', 'group.receipt',
    'transfer.progress', 'transfer.done', 'transfer.failed', 'file.dropped', 'node.reachability', 'call.ringing', 'call.calling', 'call.accepted', 'call.ended', 'call.signal', 'reset'];
  let last = '';
  let es: EventSource | undefined;
  let timer = 0;
  let stopped = false;
  const open = () => {
    es = new EventSource('/api/v1/events' + (last ? `?last_event_id=${last}` : ''));
    for (const t of types) {
      es.addEventListener(t, (e) => {
        const me = e as MessageEvent;
        if (me.lastEventId) last = me.lastEventId;
        try { on(JSON.parse(me.data)); } catch { /* a malformed event: skip */ }
      });
    }
    es.onopen = () => onState(true);
    es.onerror = async () => {
      onState(false);
      if (es!.readyState !== EventSource.CLOSED || stopped) return;
      const alive = await fetch('/api/v1/session', { credentials: 'same-origin' }).then((r) => r.status, () => 0);
      if (alive === 401) { onSignedOut(); return; }
      timer = window.setTimeout(open, 2000);
    };
  };
  open();
  return () => { stopped = true; clearTimeout(timer); es?.close(); };
}

/** The largest picture or avatar file the node takes (MaxImageInput in Go; docs/api.md). */
export const maxImageBytes = 5 << 20;

/** Reads a File as base64 (no data: prefix), for avatars and pictures. */
export function base64Of(f: Blob): Promise<string> {
  return new Promise((ok, fail) => {
    const r = new FileReader();
    r.onload = () => ok(String(r.result).replace(/^data:[^,]*,/, ''));
    r.onerror = () => fail(r.error);
    r.readAsDataURL(f);
  });
}
