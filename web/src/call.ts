// A call of this page: the page is a WebRTC endpoint of its own (the
// browser's stack; its media goes straight to the friend's endpoint). The
// node carries the signaling: the offer and answer through the API, the
// friend's answer, candidates and renegotiations as call.* events
// (docs/api.md, "Calls"). One call at a time; state in signals.
import { signal } from '@preact/signals';
import { api, CallInfo, CallSignal, ICEServer, NodeEvent } from './api';
import { flash, soundOn } from './state';

export type Phase = 'calling' | 'ringing' | 'incoming' | 'connecting' | 'active' | 'ended';

export interface PageCall {
  id: string; peer: string; video: boolean; outgoing: boolean; phase: Phase;
  accepted?: number; reason?: string;
}

/** This page's endpoint ID (random; the node routes a call's signals to the page that holds it). */
export const endpoint = 'page-' + Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, '0')).join('');

export const call = signal<PageCall | null>(null);
export const localStream = signal<MediaStream | null>(null);
export const remoteStream = signal<MediaStream | null>(null);
export const muted = signal(false);
export const cameraOff = signal(false);
export const sharing = signal(false);

let pc: RTCPeerConnection | null = null;
let pending: { call_id: string; endpoint?: string; signal: CallSignal }[] = []; // the friend's signals before this page holds the call (offer, candidates)
let outbox: RTCIceCandidateInit[] = []; // this page's candidates before it may signal
let mayTrickle = false; // the node knows this page holds the call
let negotiated = false; // the first offer/answer is done: later changes renegotiate
let screen: MediaStream | null = null;
let cameraTrack: MediaStreamTrack | null = null;
let generation = 0; // counts the calls this page tore down
/** The call that rings on this page: the caller's signals that came with
 * the ring (its offer), and its answer made meanwhile. */
let ring: { id: string; signals: CallSignal[]; prepared?: Promise<Prepared> } | null = null;

/** The page's peer connection (the call view reads its statistics). */
export const peerConnection = () => pc;

function sendCandidate(c: RTCIceCandidateInit) {
  const id = call.value?.id;
  if (!mayTrickle || !id) { outbox.push(c); return; }
  api.signalCall(id, endpoint, { kind: 'candidate', candidate: c }).catch(() => undefined);
}

function flushCandidates() {
  mayTrickle = true;
  const todo = outbox;
  outbox = [];
  for (const c of todo) sendCandidate(c);
}

/** Starts the camera and microphone; a call that ended meanwhile stops them again. */
async function media(video: boolean): Promise<MediaStream> {
  const gen = generation;
  const s = await navigator.mediaDevices.getUserMedia({ audio: true, video: video ? { width: { ideal: 1280 }, height: { ideal: 720 } } : false });
  if (gen !== generation) {
    s.getTracks().forEach((t) => t.stop());
    throw new Error('the call ended');
  }
  localStream.value = s;
  cameraTrack = s.getVideoTracks()[0] ?? null;
  muted.value = false; cameraOff.value = false;
  return s;
}

/** The ICE servers (STUN and TURN of the relays logged in to), asked for
 * while the camera starts: neither waits for the other. */
function iceServers(): Promise<ICEServer[]> {
  return api.callICE().catch(() => []);
}

function newPeer(ice: ICEServer[]): RTCPeerConnection {
  // max-bundle: one transport for audio and video, so the candidates
  // gathered, signaled and checked are for that one only.
  const p = new RTCPeerConnection({
    bundlePolicy: 'max-bundle',
    iceServers: ice.map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })),
  });
  const remote = new MediaStream();
  remoteStream.value = remote;
  p.onicecandidate = (e) => { if (e.candidate) sendCandidate(e.candidate.toJSON()); };
  p.ontrack = (e) => {
    remote.addTrack(e.track);
    remoteStream.value = new MediaStream(remote.getTracks()); // a new object: the view sees the change
    e.track.onended = () => { remote.removeTrack(e.track); remoteStream.value = new MediaStream(remote.getTracks()); };
  };
  p.onnegotiationneeded = () => { if (negotiated) renegotiate(); };
  p.onconnectionstatechange = () => {
    if (p.connectionState === 'connected' && call.value && call.value.phase === 'connecting') {
      call.value = { ...call.value, phase: 'active' };
    }
  };
  pc = p;
  return p;
}

/** The video bitrate the friend's browser starts at, in kbit/s. */
export const startKbps = 1000;

/**
 * The SDP this page sends the friend: its own, with the bitrate the
 * friend's browser should start its video at (x-google-start-bitrate on
 * each video codec; other endpoints ignore it). A browser starts at
 * 300 kbit/s otherwise, too little for the camera's 720p: its encoder
 * drops the first frames while it scales down to 640 wide before it
 * sends one (BenchmarkBrowserCallSetup, loaded: the first frame 450-1,100
 * ms after the connection; at 1,000 kbit/s, 960 wide, 300-650 ms).
 * Congestion control takes over from the first packets either way.
 */
export function withStartBitrate(sdp: string): string {
  const lines = sdp.split('\r\n');
  const codecs = new Set<string>(); // "section:payload type" of video codecs (not RTX, RED or FEC)
  const hasFmtp = new Set<string>();
  let section = 0, video = false;
  for (const l of lines) {
    if (l.startsWith('m=')) { section++; video = l.startsWith('m=video'); }
    const r = /^a=rtpmap:(\d+) ([^/]+)/.exec(l);
    if (video && r && !/^(rtx|red|ulpfec|flexfec-03)$/i.test(r[2])) codecs.add(`${section}:${r[1]}`);
    const f = /^a=fmtp:(\d+) /.exec(l);
    if (f) hasFmtp.add(`${section}:${f[1]}`);
  }
  const param = `x-google-start-bitrate=${startKbps}`;
  const out: string[] = [];
  section = 0;
  for (const l of lines) {
    if (l.startsWith('m=')) section++;
    const r = /^a=rtpmap:(\d+) /.exec(l), f = /^a=fmtp:(\d+) /.exec(l);
    if (f && codecs.has(`${section}:${f[1]}`) && !l.includes('x-google-start-bitrate')) { out.push(`${l};${param}`); continue; }
    out.push(l);
    if (r && codecs.has(`${section}:${r[1]}`) && !hasFmtp.has(`${section}:${r[1]}`)) out.push(`a=fmtp:${r[1]} ${param}`);
  }
  return out.join('\r\n');
}

/** Places a call to a friend from this page. */
export async function placeCall(peer: string, video: boolean) {
  if (call.value) { flash('You are already in a call'); return; }
  call.value = { id: '', peer, video, outgoing: true, phase: 'calling' };
  const gen = generation;
  try {
    const [stream, ice] = await Promise.all([media(video), iceServers()]);
    const p = newPeer(ice);
    for (const t of stream.getTracks()) p.addTrack(t, stream);
    if (!video) p.addTransceiver('video', { direction: 'recvonly' }); // the friend may still share a screen or camera
    const offer = await p.createOffer();
    await p.setLocalDescription(offer);
    const c = await api.startCall({ peer, audio: true, video, endpoint, sdp: withStartBitrate(offer.sdp!) });
    if (gen !== generation) { api.hangupCall(c.id).catch(() => undefined); return; } // hung up while it rang
    call.value = { ...call.value, id: c.id, phase: 'ringing' };
    flushCandidates();
    for (const s of pending.splice(0)) if (s.call_id === c.id) await handle(s.signal);
  } catch (e) {
    if (gen !== generation) return; // hung up meanwhile
    flash(`Call: ${(e as Error).message}`);
    teardown();
  }
}

/**
 * The answer of the call that rings on this page, made while it rings:
 * the caller's offer taken, and the media lines this page will send on
 * (sendrecv, no tracks yet). Nothing of it touches the network (ICE
 * starts only with the answer set, once accepted), and no camera is on.
 */
interface Prepared { p: RTCPeerConnection; answer: RTCSessionDescriptionInit; senders: Map<string, RTCRtpSender> }

async function prepare(id: string, video: boolean, ice: Promise<ICEServer[]>): Promise<Prepared> {
  const [sigs, servers] = await Promise.all([callerSignals(id), ice]);
  const offer = sigs.find((s) => s.kind === 'offer');
  if (!offer) throw new Error('the caller sent no offer');
  if (call.value?.id !== id) throw new Error('the call ended');
  const p = newPeer(servers);
  try {
    await p.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    const senders = new Map<string, RTCRtpSender>();
    for (const kind of video ? ['audio', 'video'] : ['audio']) {
      const t = p.getTransceivers().find((x) => x.receiver.track.kind === kind);
      if (t) { t.direction = 'sendrecv'; senders.set(kind, t.sender); }
    }
    return { p, answer: await p.createAnswer(), senders };
  } catch (e) {
    p.close();
    throw e;
  }
}

/**
 * The answer to call c: the one its ring made, or, when there is none or
 * making it failed (the page asked the node for the caller's offer and
 * got no answer, say), one made now.
 */
function prepared(c: PageCall): Promise<Prepared> {
  const again = () => prepare(c.id, c.video, iceServers());
  const made = ring?.id === c.id ? ring.prepared : undefined;
  return made ? made.catch(again) : again();
}

/**
 * Answers the call that rings on this page. The answer (made while it
 * rang) goes out at once; the camera and microphone start meanwhile
 * (only now: their light means a call) and join the call when they are
 * on, on the media lines the answer already sends on (replaceTrack:
 * nothing to renegotiate). So the friend's video waits for neither.
 */
export async function answerCall() {
  const c = call.value;
  if (!c || c.phase !== 'incoming') return;
  call.value = { ...c, phase: 'connecting' };
  const gen = generation;
  const stream = media(c.video);
  stream.catch(() => undefined); // handled below, once the answer is out
  try {
    const { p, answer, senders } = await prepared(c);
    await p.setLocalDescription(answer);
    const sigs = await callerSignals(c.id);
    pending = pending.filter((s) => s.call_id !== c.id);
    const added = Promise.all(sigs.filter((s) => s.kind === 'candidate' && s.candidate).map((s) => p.addIceCandidate(s.candidate!).catch(() => undefined)));
    await api.answerCall(c.id, endpoint, withStartBitrate(answer.sdp!));
    negotiated = true;
    if (call.value?.id === c.id) call.value = { ...call.value, accepted: call.value.accepted ?? Date.now() };
    flushCandidates();
    await added;
    for (const s of pending.splice(0)) if (s.call_id === c.id) await handle(s.signal); // came in while answering
    for (const t of (await stream).getTracks()) {
      const sender = senders.get(t.kind);
      if (sender) await sender.replaceTrack(t); else p.addTrack(t);
    }
  } catch (e) {
    if (gen !== generation) return; // the call ended meanwhile
    flash(`Answer: ${(e as Error).message}`);
    const answered = negotiated;
    teardown();
    if (answered) api.hangupCall(c.id).catch(() => undefined); // answered, then the camera failed
  }
}

/**
 * The offer and candidates the caller sent so far: those the ring and
 * the event stream brought, or (a page opened while it rang) what the
 * node kept; each candidate once.
 */
async function callerSignals(id: string): Promise<CallSignal[]> {
  if (ring?.id === id && !ring.signals.some((s) => s.kind === 'offer')) ring.signals = (await api.getCall(id)).pending ?? [];
  const known = ring?.id === id ? ring.signals : (await api.getCall(id)).pending ?? [];
  const all = [...known, ...pending.filter((s) => s.call_id === id).map((s) => s.signal)];
  const seen = new Set<string>();
  return all.filter((s) => {
    const key = s.kind === 'candidate' ? JSON.stringify(s.candidate) : s.kind;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export async function declineCall() {
  const c = call.value;
  if (!c) return;
  teardown();
  await api.declineCall(c.id).catch(() => undefined);
}

export async function hangUp() {
  const c = call.value;
  teardown();
  if (c?.id) await api.hangupCall(c.id).catch(() => undefined);
}

/** Mutes or unmutes the microphone. */
export function toggleMute() {
  muted.value = !muted.value;
  for (const t of localStream.value?.getAudioTracks() ?? []) t.enabled = !muted.value;
}

/** Turns the camera off or on (the friend sees black, the track stays). */
export function toggleCamera() {
  cameraOff.value = !cameraOff.value;
  if (cameraTrack) cameraTrack.enabled = !cameraOff.value;
}

function videoSender(): RTCRtpSender | undefined {
  return pc?.getTransceivers().find((t) => t.receiver.track.kind === 'video' && t.currentDirection !== 'stopped')?.sender;
}

/**
 * Shares the screen instead of the camera, or stops sharing. A call
 * without video gets a new video track: the page renegotiates (a new
 * offer through the node, answered by the friend's endpoint).
 */
export async function toggleScreen() {
  if (!pc) return;
  if (sharing.value) { stopScreen(); return; }
  try {
    screen = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch { return; } // the person cancelled the picker
  const track = screen.getVideoTracks()[0];
  track.onended = () => stopScreen();
  const sender = videoSender();
  if (sender?.track) await sender.replaceTrack(track);
  else {
    const tr = pc.getTransceivers().find((t) => t.receiver.track.kind === 'video');
    if (tr) { tr.direction = 'sendrecv'; await tr.sender.replaceTrack(track); } else pc.addTrack(track, screen);
  }
  sharing.value = true;
  localStream.value = new MediaStream([...(localStream.value?.getAudioTracks() ?? []), track]);
}

function stopScreen() {
  const track = screen?.getVideoTracks()[0];
  screen?.getTracks().forEach((t) => t.stop());
  screen = null;
  sharing.value = false;
  const sender = track && pc?.getSenders().find((s) => s.track === track);
  if (sender) sender.replaceTrack(cameraTrack).catch(() => undefined);
  const audio = localStream.value?.getAudioTracks() ?? [];
  localStream.value = new MediaStream(cameraTrack ? [...audio, cameraTrack] : audio);
}

/** Lists the microphones and cameras there are. */
export async function devices(): Promise<MediaDeviceInfo[]> {
  const all = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  return all.filter((d) => d.kind === 'audioinput' || d.kind === 'videoinput');
}

/** Switches to another microphone or camera mid-call. */
export async function useDevice(kind: 'audioinput' | 'videoinput', deviceId: string) {
  const audio = kind === 'audioinput';
  const s = await navigator.mediaDevices.getUserMedia(audio ? { audio: { deviceId: { exact: deviceId } } } : { video: { deviceId: { exact: deviceId } } });
  const track = s.getTracks()[0];
  const old = audio ? localStream.value?.getAudioTracks()[0] : cameraTrack;
  const sender = pc?.getSenders().find((x) => x.track === old);
  if (sender) await sender.replaceTrack(track);
  old?.stop();
  if (audio) track.enabled = !muted.value;
  else { cameraTrack = track; track.enabled = !cameraOff.value; }
  const keep = (localStream.value?.getTracks() ?? []).filter((t) => t !== old);
  localStream.value = new MediaStream([...keep, track]);
}

async function renegotiate() {
  const c = call.value;
  if (!pc || !c?.id) return;
  try {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await api.signalCall(c.id, endpoint, { kind: 'offer', sdp: withStartBitrate(offer.sdp!) });
  } catch (e) { flash(`Call: ${(e as Error).message}`); }
}

/** Takes a signal of the friend's endpoint for this page's call. */
async function handle(s: CallSignal) {
  if (!pc) return;
  try {
    if (s.kind === 'answer') {
      await pc.setRemoteDescription({ type: 'answer', sdp: s.sdp });
      negotiated = true;
    } else if (s.kind === 'offer') {
      await pc.setRemoteDescription({ type: 'offer', sdp: s.sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      await api.signalCall(call.value!.id, endpoint, { kind: 'answer', sdp: withStartBitrate(answer.sdp!) });
    } else if (s.kind === 'candidate' && s.candidate) {
      await pc.addIceCandidate(s.candidate);
    }
  } catch (e) { console.warn('call signal', s.kind, e); }
}

function teardown() {
  generation++;
  pc?.close();
  pc = null;
  for (const s of [localStream.value, screen]) s?.getTracks().forEach((t) => t.stop());
  localStream.value = null; remoteStream.value = null; screen = null; cameraTrack = null;
  sharing.value = false; muted.value = false; cameraOff.value = false;
  pending = []; outbox = []; mayTrickle = false; negotiated = false; ring = null;
  call.value = null;
  stopRing();
}

const reasons: Record<string, string> = {
  missed: 'No answer', declined: 'Declined', busy: 'Busy', refused: 'Refused', lost: 'Connection lost', failed: 'The call failed', error: 'The call failed',
};

/** Follows the node's call.* events (state.ts passes them on). */
export function onCallEvent(ev: NodeEvent) {
  const d = ev.data;
  const c = call.value;
  switch (ev.type) {
    case 'call.ringing':
      if (c) return; // busy here: other pages or the node may take it
      call.value = { id: d.id, peer: d.peer_id, video: !!d.video, outgoing: false, phase: 'incoming' };
      ring = { id: d.id, signals: d.pending ?? [] };
      ring.prepared = prepare(d.id, !!d.video, iceServers());
      ring.prepared.catch(() => undefined); // answerCall reports it
      startRing(d.peer_id);
      break;
    case 'call.accepted':
      if (!c || c.id !== d.id) return;
      if (c.outgoing) call.value = { ...c, phase: pc?.connectionState === 'connected' ? 'active' : 'connecting', accepted: Date.now() };
      else if (d.endpoint !== endpoint && c.phase === 'incoming') { teardown(); } // answered elsewhere
      else {
        call.value = { ...c, phase: pc?.connectionState === 'connected' ? 'active' : c.phase, accepted: c.accepted ?? Date.now() };
        stopRing();
      }
      break;
    case 'call.ended':
      if (!c || c.id !== d.id) return;
      if (d.reason && d.reason !== 'hangup' && c.outgoing) flash(reasons[d.reason] ?? `Call ended: ${d.reason}`);
      teardown();
      break;
    case 'call.signal':
      if (!c) return;
      if (!c.id || (!c.outgoing && !negotiated)) { pending.push(d); return; } // kept until this page holds the call
      if (d.call_id === c.id && (d.endpoint === endpoint || !d.endpoint)) handle(d.signal);
      break;
  }
}

/**
 * Catches up with the node's calls: a page opened (or its event stream
 * back) while a call rings shows it; an incoming call that stopped
 * ringing meanwhile (answered elsewhere, ended) goes.
 */
export async function syncCalls() {
  const list = (await api.calls()) ?? [];
  const c = call.value;
  if (c && !c.outgoing && c.phase === 'incoming' && !list.some((x) => x.id === c.id && x.state === 'ringing')) teardown();
  const ringing = list.find((x) => !x.outgoing && x.state === 'ringing');
  if (ringing && !call.value) onCallEvent({ type: 'call.ringing', time: ringing.started, data: ringing });
}

// Ringing: a soft tone every 2 s and, when the page is hidden, a notification.
let ringTimer = 0;
let ringCtx: AudioContext | undefined;
function startRing(peer: string) {
  stopRing();
  const tone = () => {
    if (!soundOn.value) return;
    try {
      ringCtx ??= new AudioContext();
      for (const [f, at] of [[660, 0], [880, 0.25]]) {
        const o = ringCtx.createOscillator(), g = ringCtx.createGain();
        o.frequency.value = f; g.gain.value = 0.06;
        o.connect(g).connect(ringCtx.destination);
        o.start(ringCtx.currentTime + at); o.stop(ringCtx.currentTime + at + 0.2);
      }
    } catch { /* no audio */ }
  };
  tone();
  ringTimer = window.setInterval(tone, 2000);
  if (document.hidden && 'Notification' in window && Notification.permission === 'granted') {
    new Notification('Incoming call', { body: peer, tag: 'call' });
  }
}
function stopRing() { clearInterval(ringTimer); ringTimer = 0; }

/** How long the call has been answered: "3:12". */
export function elapsed(since: number, now: number): string {
  const s = Math.max(0, Math.floor((now - since) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
  return (h ? `${h}:${String(m).padStart(2, '0')}` : `${m}`) + ':' + String(sec).padStart(2, '0');
}
