import qrcode from 'qrcode-generator';
import { useMemo } from 'preact/hooks';

/** A QR code drawn as SVG (no network, no canvas). */
export function QR({ text, size = 176, label }: { text: string; size?: number; label: string }) {
  const path = useMemo(() => {
    // Upper case fits QR's compact alphanumeric mode (codes are case-insensitive).
    try {
      const qr = qrcode(0, 'M');
      qr.addData(text.toUpperCase(), 'Alphanumeric');
      qr.make();
      return draw(qr);
    } catch {
      const qr = qrcode(0, 'L');
      qr.addData(text);
      qr.make();
      return draw(qr);
    }
  }, [text]);
  return (
    <svg class="qr" role="img" aria-label={label} viewBox={`0 0 ${path.n + 8} ${path.n + 8}`} width={size} height={size} data-testid="qr">
      <rect width="100%" height="100%" fill="#fff" />
      <path d={path.d} transform="translate(4 4)" fill="#000" />
    </svg>
  );
}

function draw(qr: ReturnType<typeof qrcode>) {
  const n = qr.getModuleCount();
  let d = '';
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) if (qr.isDark(y, x)) d += `M${x} ${y}h1v1h-1z`;
  return { n, d };
}
