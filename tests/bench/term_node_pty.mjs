// Node with `ws` + `@lydell/node-pty`, as JS sandboxes run terminals: one
// bash per WebSocket on 127.0.0.1:PORT; binary frames are the terminal's
// bytes both ways, a text frame {"type":"resize","cols","rows"} resizes.
// Prints "ready PORT" once listening. NODE_PATH must reach both packages.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { WebSocketServer } = require('ws');
const pty = require('@lydell/node-pty');

const port = Number(process.argv[2]);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', (ws) => {
  const p = pty.spawn('bash', ['-l'], { name: 'xterm-256color', cols: 80, rows: 24, cwd: '/tmp', env: process.env });
  p.onData((d) => ws.send(Buffer.from(d, 'utf8')));
  p.onExit(() => ws.close());
  ws.on('message', (m, isBinary) => {
    if (isBinary) { p.write(m.toString('utf8')); return; }
    try {
      const c = JSON.parse(m.toString());
      if (c.type === 'resize') p.resize(c.cols, c.rows);
    } catch { /* not control */ }
  });
  ws.on('close', () => p.kill());
});
wss.on('listening', () => console.log(`ready ${port}`));
