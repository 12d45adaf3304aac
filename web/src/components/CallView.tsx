import { useEffect, useRef, useState } from 'preact/hooks';
import {
  answerCall, call, cameraOff, declineCall, devices, elapsed, hangUp, localStream, muted, peerConnection, remoteStream,
  sharing, toggleCamera, toggleMute, toggleScreen, useDevice,
} from '../call';
import { friends } from '../state';
import { Avatar } from './Avatar';
import { Icon } from './Icon';

/** A <video> that shows a MediaStream (srcObject is a property, not an attribute). */
function Video({ stream, class: cls, muted: mute, testid }: { stream: MediaStream | null; class: string; muted?: boolean; testid: string }) {
  const ref = useRef<HTMLVideoElement>(null);
  useEffect(() => { if (ref.current && ref.current.srcObject !== stream) ref.current.srcObject = stream; }, [stream]);
  return <video ref={ref} class={cls} autoplay playsInline muted={mute} data-testid={testid} />;
}

interface Quality { frames: number; fps: number; rtt?: number; path?: string; audio: number }

/** Reads the page's WebRTC statistics every second: path, round trip, frames decoded. */
function useQuality(on: boolean): Quality | null {
  const [q, setQ] = useState<Quality | null>(null);
  useEffect(() => {
    if (!on) return;
    const tick = async () => {
      const pc = peerConnection();
      if (!pc) return;
      const stats = await pc.getStats().catch(() => null);
      if (!stats) return;
      const next: Quality = { frames: 0, fps: 0, audio: 0 };
      const byId = new Map<string, any>();
      stats.forEach((r: any) => byId.set(r.id, r));
      stats.forEach((r: any) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') { next.frames += r.framesDecoded ?? 0; next.fps += r.framesPerSecond ?? 0; }
        if (r.type === 'inbound-rtp' && r.kind === 'audio') next.audio += r.packetsReceived ?? 0;
        if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
          if (r.currentRoundTripTime !== undefined) next.rtt = Math.round(r.currentRoundTripTime * 1000);
          const local = byId.get(r.localCandidateId);
          if (local) next.path = local.candidateType === 'relay' ? 'relayed (TURN)' : local.candidateType === 'host' ? 'direct' : local.candidateType;
        }
      });
      setQ(next);
    };
    tick();
    const t = setInterval(tick, 1000);
    return () => clearInterval(t);
  }, [on]);
  return q;
}

function Devices({ onClose }: { onClose: () => void }) {
  const [list, setList] = useState<MediaDeviceInfo[]>([]);
  useEffect(() => { devices().then(setList); }, []);
  const current = (kind: string) => localStream.value?.getTracks().find((t) => t.kind === (kind === 'audioinput' ? 'audio' : 'video'))?.getSettings().deviceId;
  const pick = (kind: 'audioinput' | 'videoinput') => (
    <label>{kind === 'audioinput' ? 'Microphone' : 'Camera'}
      <select value={current(kind)} onChange={(e) => useDevice(kind, (e.target as HTMLSelectElement).value).catch(() => undefined)}>
        {list.filter((d) => d.kind === kind).map((d, i) => <option key={d.deviceId} value={d.deviceId}>{d.label || `${kind === 'audioinput' ? 'Microphone' : 'Camera'} ${i + 1}`}</option>)}
      </select>
    </label>
  );
  return (
    <div class="call-devices stack" role="dialog" aria-label="Devices" data-testid="call-devices">
      {pick('audioinput')}
      {localStream.value?.getVideoTracks().length ? pick('videoinput') : null}
      <button class="btn small" onClick={onClose}>Done</button>
    </div>
  );
}

const said: Record<string, string> = { calling: 'Calling…', ringing: 'Ringing…', connecting: 'Connecting…', incoming: 'is calling you' };

/**
 * The call of this page, over everything: an incoming call with the
 * caller's avatar and accept/decline; then the friend's video large, this
 * page's own small, the timer, and mute, camera, screen, devices, hang up.
 */
export function CallView() {
  const c = call.value;
  const [now, setNow] = useState(Date.now());
  const [picking, setPicking] = useState(false);
  useEffect(() => { const t = setInterval(() => setNow(Date.now()), 1000); return () => clearInterval(t); }, []);
  const q = useQuality(!!c && (c.phase === 'active' || c.phase === 'connecting'));
  if (!c) return null;
  const f = friends.value.find((x) => x.peer_id === c.peer);
  const name = f?.name ?? c.peer.slice(-8);
  const remoteVideo = !!remoteStream.value?.getVideoTracks().length;
  const localVideo = !!localStream.value?.getVideoTracks().length;
  const kind = c.video ? 'Video call' : 'Voice call';
  if (c.phase === 'incoming') return (
    <section class="call incoming" role="dialog" aria-label={`${kind} from ${name}`} data-testid="call-view" data-state="incoming">
      <div class="call-stage">
        <span class="ringing"><Avatar name={name} id={f?.profile?.avatar_id} size={120} /></span>
        <div class="call-name">{name}</div>
        <div class="call-sub">{kind} · {said.incoming}</div>
      </div>
      <div class="call-controls">
        <button class="round decline" onClick={declineCall} aria-label="Decline" data-testid="call-decline"><Icon name="hangup" size={26} /></button>
        <button class="round accept" onClick={answerCall} aria-label="Accept" data-testid="call-accept" autofocus><Icon name={c.video ? 'video' : 'phone'} size={26} /></button>
      </div>
    </section>
  );
  const status = c.phase === 'active' && c.accepted ? elapsed(c.accepted, now) : said[c.phase] ?? '';
  return (
    <section class={'call' + (remoteVideo ? ' has-video' : '')} role="dialog" aria-label={`${kind} with ${name}`} data-testid="call-view" data-state={c.phase}>
      <header class="call-top">
        <div class="call-name">{name}</div>
        <div class="call-sub" data-testid="call-status">{status}</div>
        {q && c.phase === 'active' && (
          <div class="call-stats" data-testid="call-stats" data-frames-decoded={q.frames} data-audio-packets={q.audio}>
            {[q.path, q.rtt !== undefined ? `${q.rtt} ms` : '', remoteVideo ? `${Math.round(q.fps)} fps` : ''].filter(Boolean).join(' · ')}
          </div>
        )}
      </header>
      <div class="call-stage">
        <Video stream={remoteStream.value} class={'remote' + (remoteVideo ? '' : ' hidden')} testid="call-remote" />
        {!remoteVideo && <span class={c.phase === 'active' ? '' : 'ringing'}><Avatar name={name} id={f?.profile?.avatar_id} size={120} /></span>}
        {localVideo && <Video stream={localStream.value} class={'local' + (cameraOff.value && !sharing.value ? ' off' : '')} muted testid="call-local" />}
      </div>
      {picking && <Devices onClose={() => setPicking(false)} />}
      <div class="call-controls" role="toolbar" aria-label="Call controls">
        <button class={'round' + (muted.value ? ' on' : '')} onClick={toggleMute} aria-pressed={muted.value} aria-label={muted.value ? 'Unmute' : 'Mute'} data-testid="call-mute"><Icon name={muted.value ? 'micoff' : 'mic'} /></button>
        {localVideo && <button class={'round' + (cameraOff.value ? ' on' : '')} onClick={toggleCamera} aria-pressed={cameraOff.value} aria-label={cameraOff.value ? 'Turn camera on' : 'Turn camera off'} data-testid="call-camera"><Icon name={cameraOff.value ? 'videooff' : 'video'} /></button>}
        {'getDisplayMedia' in (navigator.mediaDevices ?? {}) && <button class={'round' + (sharing.value ? ' on' : '')} onClick={toggleScreen} aria-pressed={sharing.value} aria-label={sharing.value ? 'Stop sharing the screen' : 'Share the screen'} data-testid="call-screen"><Icon name="screen" /></button>}
        <button class="round" onClick={() => setPicking(!picking)} aria-label="Microphone and camera" data-testid="call-devices-open"><Icon name="settings" /></button>
        <button class="round decline" onClick={hangUp} aria-label="Hang up" data-testid="call-hangup"><Icon name="hangup" /></button>
      </div>
    </section>
  );
}
