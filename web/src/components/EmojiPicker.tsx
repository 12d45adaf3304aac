import { useEffect, useRef } from 'preact/hooks';
import { faces } from '../state';

const emoji = '😀 😂 🥲 😊 😍 😘 😎 🤔 😴 😭 😡 👍 👎 👏 🙏 💪 👋 🎉 ❤️ 🔥 ✨ ⭐ ✅ ❌ 👀 🙈 🍕 ☕ 🍻 🎂 🚀 🌍'.split(' ');

/** Emoji to put into the text, and the node's faces to send as they are. */
export function EmojiPicker({ onEmoji, onFace, onClose }: { onEmoji: (e: string) => void; onFace?: (name: string) => void; onClose: () => void }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => { (ref.current?.querySelector('button') as HTMLButtonElement | null)?.focus(); }, []);
  return (
    <div class="picker" role="dialog" aria-label="Emoji and faces" ref={ref} onKeyDown={(e) => { if (e.key === 'Escape') { e.stopPropagation(); onClose(); } }}>
      <div class="grid">
        {emoji.map((e) => <button key={e} class="emoji" aria-label={e} onClick={() => onEmoji(e)}>{e}</button>)}
      </div>
      {onFace && Object.keys(faces.value).length > 0 && (
        <>
          <div class="muted small">Faces</div>
          <div class="grid">
            {Object.entries(faces.value).map(([name, glyph]) => <button key={name} class="emoji" title={name} aria-label={`face ${name}`} onClick={() => onFace(name)}>{glyph}</button>)}
          </div>
        </>
      )}
    </div>
  );
}
