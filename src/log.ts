import { openSync } from 'node:fs';
import pino, { type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** What LogOutput needs of pino.destination()'s SonicBoom. */
type Destination = ReturnType<typeof pino.destination>;

/**
 * The process's log output: pino's own SonicBoom on stdout, plus a second SonicBoom
 * of the same kind on /dev/null that the output switches to while discarding.
 *
 * Why: the proxyDHCP warm-up (src/dhcp/warmup.ts) runs the real request path before
 * its ports open, log calls included. With a throw-away logger, V8 optimised the
 * reply path for that logger's hidden class, and the first real reply deoptimised
 * handle() ("wrong map" at the `this.log.info` call, --trace-deopt) in the middle of
 * the first boot storm. Discarding at the stream keeps the very logger objects real
 * traffic uses, and writing to an identical SonicBoom keeps its code warm as well.
 * Only what is logged between `setDiscarding(true)` and `setDiscarding(false)` is
 * dropped (the proxy sets it around each warm-up request it handles).
 */
export class LogOutput {
  private discarding = false;

  constructor(
    private readonly live: Destination,
    private readonly sink: Destination,
  ) {}

  write(line: string): boolean {
    return (this.discarding ? this.sink : this.live).write(line);
  }

  /** pino's logger.flush() */
  flush(cb?: (err?: Error) => void): void {
    this.live.flush(cb);
  }

  /** pino's fatal() flushes synchronously before the process dies */
  flushSync(): void {
    this.live.flushSync();
  }

  /** Drops (true) or writes (false) the lines logged from now on. */
  setDiscarding(on: boolean): void {
    this.discarding = on;
  }
}

/** The LogOutput behind a logger (or a child of it) made by createLogger, if any. */
export function logOutputOf(logger: Logger): LogOutput | undefined {
  const stream: unknown = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  return stream instanceof LogOutput ? stream : undefined;
}

/**
 * One logger for the process: JSON lines when stdout is not a terminal (journald,
 * files, the tests parse them), pino-pretty on a TTY so a person can read them.
 */
export function createLogger(level: LevelWithSilent = 'info', pretty = process.stdout.isTTY === true): Logger {
  if (pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  // The same SonicBoom options as pino's default destination (stdout, asynchronous,
  // flushed at exit), for both: the two instances then share one hidden class.
  const output = new LogOutput(
    pino.destination({ dest: process.stdout.fd, sync: false }),
    pino.destination({ dest: openSync('/dev/null', 'w'), sync: false }),
  );
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, output);
}

/** A logger that drops everything, for library use in tests that do not read logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
