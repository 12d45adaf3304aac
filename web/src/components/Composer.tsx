import { Icon } from './Icon';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, base64Of, maxImageBytes, Message } from '../api';
import { gist } from './ChatList';
import { attempt, flash, refreshFiles, upsert } from '../state';
import { EmojiPicker } from './EmojiPicker';

/**
 * Sends a picked, pasted or dropped file: an image within the node's
 * limit as a picture, anything else as a file (an image over the limit
 * too, saying so: the person expected a picture).
 */
export async function sendFiles(conv: string, group: boolean, list: FileList | File[]) {
  for (const f of Array.from(list)) {
    const image = /^image\/(png|jpeg|gif)$/.test(f.type);
    if (image && f.size <= maxImageBytes) {
      const picture = await base64Of(f);
      await attempt('Send picture', () => api.send(conv, group, { picture, picture_name: f.name }).then(upsert));
      continue;
    }
    flash(`Sending ${f.name}…`);
    const up = await attempt('Upload', () => api.upload(f));
    if (!up) continue;
    const m = await attempt('Send file', () => (group ? api.send(conv, true, { path: up.path }) : api.sendFile(conv, up.path)));
    if (!m) continue;
    upsert(m); refreshFiles();
    if (image) flash(`${f.name} is too big for a picture (over ${maxImageBytes >> 20} MiB): sent as a file`);
  }
}

/** The text box: Enter sends, Shift+Enter breaks the line; replies, emoji, files. */
export function Composer({ conv, group, replyTo, clearReply }: { conv: string; group: boolean; replyTo: Message | null; clearReply: (only?: Message) => void }) {
  const [text, setText] = useState('');
  const [picker, setPicker] = useState(false);
  const box = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  useEffect(() => { box.current?.focus(); }, [conv, replyTo]);
  const send = async () => {
    const t = text.trim();
    if (!t) return;
    setText('');
    const d: Record<string, unknown> = { text: t };
    const sent = replyTo; // the person may begin another reply while this one goes: that one stays
    if (sent) d.reply_to = sent.id;
    const m = await attempt('Send', () => api.send(conv, group, d));
    if (m) { upsert(m); if (sent) clearReply(sent); } else setText(t);
  };
  const face = (name: string) => { setPicker(false); attempt('Send', () => api.send(conv, group, { face: name }).then(upsert)); };
  return (
    <div class="composer">
      {replyTo && (
        <div class="replying" data-testid="replying">
          <span>Replying to <strong>{replyTo.outgoing ? 'yourself' : replyTo.name}</strong>: {gist(replyTo).slice(0, 80)}</span>
          <button class="btn small" onClick={() => clearReply()} aria-label="Cancel reply"><Icon name="close" size={16} /></button>
        </div>
      )}
      {picker && <EmojiPicker onClose={() => setPicker(false)} onFace={face} onEmoji={(e) => { setText(text + e); setPicker(false); box.current?.focus(); }} />}
      <div class="row">
        <button class="icon" aria-label="Emoji and faces" aria-expanded={picker} onClick={() => setPicker(!picker)}><Icon name="smile" /></button>
        <button class="icon" aria-label="Send a picture or file" onClick={() => fileInput.current?.click()}><Icon name="clip" /></button>
        <input type="file" ref={fileInput} hidden multiple data-testid="file-input" onChange={(e) => { const fl = (e.target as HTMLInputElement).files; if (fl) sendFiles(conv, group, fl).then(() => { fileInput.current!.value = ''; }); }} />
        <textarea ref={box} rows={1} value={text} placeholder="Write a message" aria-label="Message" data-testid="composer"
          onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          onPaste={(e) => { const fl = e.clipboardData?.files; if (fl && fl.length) { e.preventDefault(); sendFiles(conv, group, fl); } }}
          onKeyDown={(e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); send(); } if (e.key === 'Escape' && replyTo) clearReply(); }} />
        <button class="btn primary" onClick={send} aria-label="Send" data-testid="send">Send</button>
      </div>
    </div>
  );
}
