// The pino logger: JSON lines (or, on a terminal, pretty one-line text via pino-pretty), secrets redacted wherever they appear.
import { pino, type DestinationStream, type Logger } from 'pino';
import { PinoPretty } from 'pino-pretty';

/** json: one JSON object per line (for collectors); pretty: human-readable lines; auto: pretty when stderr is a terminal. */
export type LogFormat = 'json' | 'pretty' | 'auto';

/** A request line reads `GET /v2/... -> 200 hit 12ms`; the fields it shows are not repeated after it. */
const REQUEST_FIELDS = ['method', 'path', 'status', 'outcome', 'bytes', 'ms'];
const MESSAGE_FORMAT = '{msg}{if method} {method} {path} -> {status}{end}{if outcome} {outcome}{end}{if bytes} {bytes}B{end}{if ms} {ms}ms{end}';

function prettyStream(destination: NodeJS.WritableStream | undefined): DestinationStream {
  const out = destination ?? process.stderr;
  return PinoPretty({
    destination: out,
    sync: true,
    colorize: (out as NodeJS.WriteStream).isTTY === true,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
    ignore: ['pid', 'hostname', 'service', 'reqId', ...REQUEST_FIELDS].join(','),
    messageFormat: MESSAGE_FORMAT,
    singleLine: true,
  });
}

export function createLogger(level: string, destination?: NodeJS.WritableStream, format: LogFormat = 'json'): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && ((destination ?? process.stderr) as NodeJS.WriteStream).isTTY === true);
  return pino(
    {
      level,
      base: { service: 'stevedore' },
      redact: {
        paths: [
          'password',
          'token',
          'authorization',
          '*.password',
          '*.token',
          '*.authorization',
          'headers.authorization',
          '*.credentials',
          'credentials',
          'upstreams.*.credentials',
          'upstreams.*.endpoints[*].credentials',
          'endpoints[*].credentials',
        ],
        censor: '[redacted]',
      },
    },
    pretty ? prettyStream(destination) : (destination ?? pino.destination({ fd: 2, sync: false })),
  );
}
