// Builds src/ into dist/: app.js and app.css (esbuild, minified), and the
// static files. The output depends on the sources and the locked esbuild
// only, so a rebuild of the same commit is byte for byte the same (CI
// checks that the committed dist/ is what the sources build).
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist');
await esbuild.build({
  entryPoints: { app: 'src/main.tsx' },
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  outdir: 'dist',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  charset: 'utf8',
  logLevel: 'warning',
});
for (const f of ['index.html', 'manifest.webmanifest', 'icon.svg']) copyFileSync(`src/${f}`, `dist/${f}`);
