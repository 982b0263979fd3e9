/**
 * LocalMirror in its own process (forked with an IPC channel), so a benchmark can
 * measure a client without the mirror competing for the client's event loop.
 * Protocol (process.send / 'message'):
 *   parent -> {type:'load', table}   child -> {type:'loaded'}
 *   parent -> {type:'stats'}         child -> {type:'stats', requests, bodyBytes, notModified}
 *   parent -> {type:'reset'}         child -> {type:'reset'}
 * On start the child sends {type:'ready', port}. It exits when the channel closes.
 */
import { LocalMirror, type MirrorTableEntry } from './localmirror.js';

type Msg = { type: 'load'; table: MirrorTableEntry[] } | { type: 'stats' } | { type: 'reset' };

const send = (m: unknown) => process.send?.(m);
const mirror = await new LocalMirror().start();
process.on('message', (raw: unknown) => {
  const m = raw as Msg;
  if (m?.type === 'load') {
    mirror.importTable(m.table);
    send({ type: 'loaded' });
  } else if (m?.type === 'stats') {
    send({ type: 'stats', requests: mirror.stats.requests, bodyBytes: mirror.stats.bodyBytes, notModified: mirror.stats.notModified });
  } else if (m?.type === 'reset') {
    mirror.resetStats();
    send({ type: 'reset' });
  }
});
process.on('disconnect', () => {
  void mirror.stop().then(() => process.exit(0));
});
send({ type: 'ready', port: mirror.port });
