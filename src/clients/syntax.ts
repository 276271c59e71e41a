import type { Parts, Reference } from './model.ts';

/** How one client writes variables into its config strings. */
export interface VariableSyntax {
  /** Text → literal parts and references. */
  parse(text: string): Parts;
  /** How the client refers to an environment variable, or undefined when it cannot. */
  readonly env: ((name: string) => string) | undefined;
}

/** A syntax from one pattern: each match becomes a reference (or literal text, for `${/}`-like constants). */
function patternSyntax(pattern: RegExp, resolve: (match: RegExpExecArray) => Reference | string, env: ((name: string) => string) | undefined): VariableSyntax {
  return {
    env,
    parse(text) {
      const parts: (string | Reference)[] = [];
      let last = 0;
      const push = (part: string | Reference): void => {
        const prev = parts.at(-1);
        if (typeof part === 'string' && typeof prev === 'string') parts[parts.length - 1] = prev + part;
        else if (part !== '') parts.push(part);
      };
      for (const match of text.matchAll(new RegExp(pattern.source, 'g'))) {
        push(text.slice(last, match.index));
        push(resolve(match as RegExpExecArray));
        last = match.index + match[0].length;
      }
      push(text.slice(last));
      return parts;
    },
  };
}

/** Claude Desktop and Codex: strings are taken as written. */
export const literalSyntax: VariableSyntax = { env: undefined, parse: (text) => (text === '' ? [] : [text]) };

/** Claude Code: `${VAR}` and `${VAR:-default}`. */
export const shellSyntax = patternSyntax(
  /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/,
  (m) => envRef(m[1] ?? '', m[2]),
  (name) => `\${${name}}`,
);

/** Gemini CLI: `$VAR` and `${VAR}`. */
export const dollarSyntax = patternSyntax(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/, (m) => envRef(m[1] ?? m[2] ?? ''), (name) => `\${${name}}`);

/** What an editor-style `${name}` or `${scheme:arg}` stands for in one client. */
type EditorVariables = (scheme: string, arg: string, text: string) => Reference | string | undefined;

/** VS Code, Cursor and Windsurf: `${env:NAME}` and their own predefined variables. */
export function editorSyntax(client: string, variables: EditorVariables): VariableSyntax {
  return patternSyntax(
    /\$\{([^}]*)\}/,
    (m) => {
      const body = m[1] ?? '';
      const colon = body.indexOf(':');
      const [scheme, arg] = colon < 0 ? [body, ''] : [body.slice(0, colon), body.slice(colon + 1)];
      if (scheme === 'env' && arg !== '') return envRef(arg);
      if (scheme === 'userHome') return envRef('HOME');
      return variables(scheme, arg, m[0]) ?? { kind: 'unsupported', text: m[0], why: `${client} fills in ${m[0]} itself; berth runs servers elsewhere and has no value for it` };
    },
    (name) => `\${env:${name}}`,
  );
}

function envRef(name: string, fallback?: string): Reference {
  return fallback === undefined ? { kind: 'env', name } : { kind: 'env', name, fallback };
}
