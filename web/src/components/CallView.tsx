/**
 * The call view: the calls work fills it (local and remote video, mute,
 * hang up). Until then it says so, and the header's call buttons open it.
 */
export function CallView({ name, video, onClose }: { name: string; video: boolean; onClose: () => void }) {
  return (
    <section class="call" role="dialog" aria-label={`Call with ${name}`} data-testid="call-view">
      <div class="call-stage">
        <div class="call-name">{video ? 'Video call' : 'Voice call'} with {name}</div>
        <p class="muted">Calls are not available in this build of the web UI yet.</p>
      </div>
      <div class="call-controls">
        <button class="btn danger" onClick={onClose} autofocus>Close</button>
      </div>
    </section>
  );
}
