import { styleText } from 'node:util';

type Style = Parameters<typeof styleText>[0];

/** Colors only for people: a TTY, and NO_COLOR unset. */
export function paint(stream: NodeJS.WriteStream, style: Style, text: string): string {
  return styleText(style, text, { stream, validateStream: true });
}

/** Exit codes shared by every command. */
export const exitCode = { ok: 0, failed: 1, changes: 2 } as const;
