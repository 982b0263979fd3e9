/**
 * Progress output for `pxe sync`: cli-progress bars (one per file in flight plus an
 * overall bar) on a TTY, one plain line per file otherwise (logs, CI, tests).
 */
import cliProgress from 'cli-progress';

export interface SyncReporter {
  fileStart(key: string, label: string, total: number | undefined): void;
  fileProgress(key: string, done: number, total: number | undefined): void;
  fileDone(key: string, label: string, outcome: string): void;
  line(text: string): void;
  finish(): void;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export class PlainReporter implements SyncReporter {
  constructor(private readonly out: NodeJS.WritableStream) {}
  fileStart(): void {}
  fileProgress(): void {}
  fileDone(_key: string, label: string, outcome: string): void {
    this.out.write(`  ${label}: ${outcome}\n`);
  }
  line(text: string): void {
    this.out.write(`${text}\n`);
  }
  finish(): void {}
}

export class SilentReporter implements SyncReporter {
  fileStart(): void {}
  fileProgress(): void {}
  fileDone(): void {}
  line(): void {}
  finish(): void {}
}

export class BarReporter implements SyncReporter {
  private readonly multi: cliProgress.MultiBar;
  private readonly bars = new Map<string, { bar: cliProgress.SingleBar; done: number }>();
  private readonly overall: cliProgress.SingleBar;
  private overallTotal = 0;
  private overallDone = 0;

  constructor(out: NodeJS.WritableStream) {
    this.multi = new cliProgress.MultiBar(
      {
        stream: out,
        format: '{bar} {percentage}% | {label} | {done}/{size}',
        hideCursor: true,
        clearOnComplete: false,
        autopadding: true,
      },
      cliProgress.Presets.shades_classic,
    );
    this.overall = this.multi.create(1, 0, { label: 'overall', done: '0 B', size: '?' });
  }

  fileStart(key: string, label: string, total: number | undefined): void {
    this.overallTotal += total ?? 0;
    this.overall.setTotal(Math.max(1, this.overallTotal));
    const bar = this.multi.create(Math.max(1, total ?? 1), 0, { label, done: '0 B', size: total ? formatBytes(total) : '?' });
    this.bars.set(key, { bar, done: 0 });
  }

  fileProgress(key: string, done: number, total: number | undefined): void {
    const b = this.bars.get(key);
    if (!b) return;
    this.overallDone += done - b.done;
    b.done = done;
    if (total) b.bar.setTotal(total);
    b.bar.update(done, { done: formatBytes(done), size: total ? formatBytes(total) : '?' });
    this.overall.update(this.overallDone, { done: formatBytes(this.overallDone), size: formatBytes(this.overallTotal) });
  }

  fileDone(key: string, label: string, outcome: string): void {
    const b = this.bars.get(key);
    if (b) {
      this.multi.remove(b.bar);
      this.bars.delete(key);
    }
    this.multi.log(`  ${label}: ${outcome}\n`);
  }

  line(text: string): void {
    this.multi.log(`${text}\n`);
  }

  finish(): void {
    // log() only queues lines until the next redraw; draw once more so the last
    // results (written after the final timer tick) are not lost.
    this.multi.update();
    this.multi.stop();
  }
}

export function makeReporter(mode: 'auto' | 'bars' | 'plain' | 'none', out: NodeJS.WritableStream): SyncReporter {
  if (mode === 'none') return new SilentReporter();
  const tty = (out as NodeJS.WriteStream).isTTY === true;
  if (mode === 'bars' || (mode === 'auto' && tty)) return new BarReporter(out);
  return new PlainReporter(out);
}
